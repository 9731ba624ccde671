package stock

// Redis keys only inventory-service uses, next to the shared ones of
// pkg/events; each carries the product's hash tag.

// genKey holds a token that changes whenever the product's stock key is
// written whole (a sale start or a rebuild), so a give-back prepared against
// the previous value can tell (see giveback.lua).
func genKey(productID string) string { return "sk:{" + productID + "}:gen" }

// lockKey is the rebuild lock: the token of the replica rebuilding the
// product's stock, with a TTL the owner renews. A sale start deletes it, which
// cancels the rebuild.
func lockKey(productID string) string { return "sk:{" + productID + "}:rebuild" }

// rebuildUsersKey is where a rebuild writes the per-user counts before the
// last step renames it onto the users hash.
func rebuildUsersKey(productID, token string) string {
	return "sk:{" + productID + "}:users:" + token
}
