package httpapi

import (
	"strings"

	"seckill/order-service/internal/intake"
)

// Limits of an order request.
const (
	maxIDLen       = 64
	maxIdemKeyLen  = 128
	maxQuantity    = 100
	idempotencyHdr = "Idempotency-Key"
)

// fieldError is an invalid field of a well-formed request.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func validate(b createRequest, idemKey string) (intake.Request, error) {
	switch {
	case b.UserID == nil:
		return intake.Request{}, &fieldError{"user_id", "required"}
	case b.ProductID == nil:
		return intake.Request{}, &fieldError{"product_id", "required"}
	case b.Quantity == nil:
		return intake.Request{}, &fieldError{"quantity", "required"}
	}
	if err := checkID("user_id", *b.UserID); err != nil {
		return intake.Request{}, err
	}
	// ':' separates the user from the key in the idempotency record.
	if strings.Contains(*b.UserID, ":") {
		return intake.Request{}, &fieldError{"user_id", "must not contain ':'"}
	}
	if err := checkID("product_id", *b.ProductID); err != nil {
		return intake.Request{}, err
	}
	if q := *b.Quantity; q < 1 || q > maxQuantity {
		return intake.Request{}, &fieldError{"quantity", "must be between 1 and 100"}
	}
	if idemKey != "" {
		if len(idemKey) > maxIdemKeyLen || !printable(idemKey) {
			return intake.Request{}, &fieldError{idempotencyHdr, "must be 1-128 printable ASCII characters"}
		}
	}
	return intake.Request{UserID: *b.UserID, ProductID: *b.ProductID, Quantity: *b.Quantity, IdempotencyKey: idemKey}, nil
}

// checkID accepts 1-64 printable ASCII characters without spaces.
func checkID(field, v string) error {
	switch {
	case v == "":
		return &fieldError{field, "must not be empty"}
	case len(v) > maxIDLen:
		return &fieldError{field, "longer than 64 characters"}
	case !printable(v):
		return &fieldError{field, "must be printable ASCII without spaces"}
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
