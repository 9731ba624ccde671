package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"seckill/pkg/httpx"
)

// Bounds of GET /api/v1/products?limit=N.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
)

// productList is the JSON of GET /api/v1/products.
type productList struct {
	Products []Product `json:"products"`
}

// listProducts answers the latest sales (by sale start, newest first), at
// most ?limit= of them: read-only, for dashboards such as the console.
func (a *API) listProducts(c *gin.Context) {
	limit := DefaultListLimit
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			a.fail(c, &httpx.BadRequest{Field: "limit", Message: fmt.Sprintf("must be 1..%d", MaxListLimit)})
			return
		}
		limit = n
	}
	ps, err := a.sales.RecentSales(c.Request.Context(), limit)
	if err != nil {
		a.fail(c, err)
		return
	}
	out := productList{Products: make([]Product, 0, len(ps))}
	for _, p := range ps {
		out.Products = append(out.Products, productJSON(p))
	}
	c.JSON(http.StatusOK, out)
}
