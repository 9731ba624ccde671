package httpapi_test

import (
	"net/http"
	"slices"
	"testing"
)

func TestListProducts(t *testing.T) {
	s := newServer(t)
	var ids []string
	for range 3 {
		id := productID(t, s.rdb)
		if code, body := s.do(t, http.MethodPut, "/api/v1/products/"+id, "Bearer "+token, goodBody); code != http.StatusOK {
			t.Fatalf("PUT %s = %d %v, want 200", id, code, body)
		}
		ids = append(ids, id)
	}
	// A reset starts the sale again: the first product becomes the newest.
	if code, body := s.do(t, http.MethodPut, "/api/v1/products/"+ids[0], "Bearer "+token, goodBody); code != http.StatusOK {
		t.Fatalf("PUT %s again = %d %v, want 200", ids[0], code, body)
	}

	code, body := s.do(t, http.MethodGet, "/api/v1/products?limit=2", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/products?limit=2 = %d %v, want 200", code, body)
	}
	var got []string
	for _, p := range body["products"].([]any) {
		m := p.(map[string]any)
		got = append(got, m["product_id"].(string))
		if m["stock"] != 100.0 || m["available"] != 100.0 || m["sold"] != 0.0 {
			t.Errorf("listed %v, want stock 100 available 100 sold 0", m)
		}
	}
	if want := []string{ids[0], ids[2]}; !slices.Equal(got, want) {
		t.Errorf("GET /api/v1/products?limit=2 products = %v, want %v (newest sale first)", got, want)
	}

	if code, body := s.do(t, http.MethodGet, "/api/v1/products", "", ""); code != http.StatusOK || len(body["products"].([]any)) != 3 {
		t.Errorf("GET /api/v1/products = %d %v, want 200 with the 3 products", code, body)
	}
	for _, q := range []string{"0", "101", "x", "-1"} {
		if code, body := s.do(t, http.MethodGet, "/api/v1/products?limit="+q, "", ""); code != http.StatusBadRequest || body["error"] != "invalid_request" {
			t.Errorf("GET /api/v1/products?limit=%s = %d %v, want 400 invalid_request", q, code, body)
		}
	}
}
