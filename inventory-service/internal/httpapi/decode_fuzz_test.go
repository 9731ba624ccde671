package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"seckill/pkg/httpx"
)

// FuzzDecodeSale: any body either decodes into a sale within the limits or
// is refused with a *httpx.BadRequest; never a panic, never another error.
func FuzzDecodeSale(f *testing.F) {
	for _, s := range []string{
		`{"name":"phone","price_cents":999,"stock":100,"per_user_limit":2}`,
		`{"name":"a","price_cents":0,"stock":0,"per_user_limit":1}`,
		`{"name":"","price_cents":-1}`, `{`, `[]`, `null`, `{"stock":1e400}`, "\xff\xfe",
		`{"name":"a","price_cents":1,"stock":1,"per_user_limit":1}{}`,
	} {
		f.Add(s)
	}
	gin.SetMode(gin.ReleaseMode)
	f.Fuzz(func(t *testing.T, body string) {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPut, "/api/v1/products/p", strings.NewReader(body))
		sale, err := decodeSale(c)
		var br *httpx.BadRequest
		switch {
		case err == nil:
			if sale.Name == "" || sale.PriceCents < 0 || sale.Stock < 0 || sale.Stock > MaxStock || sale.PerUserLimit < 1 {
				t.Errorf("decodeSale(%q) = %+v, nil: accepted a sale outside the limits", body, sale)
			}
		case !errors.As(err, &br):
			t.Errorf("decodeSale(%q) error = %v (%T), want *httpx.BadRequest", body, err, err)
		}
	})
}
