package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"seckill/order-service/internal/order"
	"seckill/pkg/httpx"
)

// maxCountProducts bounds the product_id parameters of one counts request.
const maxCountProducts = 100

// productCounts is one product of GET /api/v1/order-counts.
type productCounts struct {
	ProductID string           `json:"product_id"`
	Counts    map[string]int64 `json:"counts"` // status → orders
}

type countsResponse struct {
	Since    *time.Time      `json:"since,omitempty"`
	Products []productCounts `json:"products"`
}

// counts answers GET /api/v1/order-counts[?since=RFC3339][&product_id=…]:
// the persisted orders by product and status (created, paid, shipped,
// closed), of orders created at or after since. Read-only, for dashboards
// such as the console. It is not an intake request, so its errors stay out
// of order_requests_total.
func (a *API) counts(c *gin.Context) {
	var since time.Time
	if s := c.Query("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			httpx.Error(c, http.StatusBadRequest, "invalid_request", "since: must be an RFC 3339 time")
			return
		}
		since = t
	}
	ids := c.QueryArray("product_id")
	if len(ids) > maxCountProducts {
		httpx.Error(c, http.StatusBadRequest, "invalid_request", fmt.Sprintf("product_id: at most %d", maxCountProducts))
		return
	}
	for _, id := range ids {
		if err := checkID("product_id", id); err != nil {
			httpx.Error(c, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
	}
	ctx := c.Request.Context()
	byProduct, err := order.CountByProduct(a.db.WithContext(ctx), since, ids)
	if httpx.ClientGone(c, err) {
		return
	}
	if err != nil {
		a.log.ErrorContext(ctx, "request failed", "path", c.FullPath(), "err", err)
		httpx.Error(c, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	out := countsResponse{Products: make([]productCounts, 0, len(byProduct))}
	if !since.IsZero() {
		out.Since = &since
	}
	for id, n := range byProduct {
		out.Products = append(out.Products, productCounts{ProductID: id, Counts: n})
	}
	slices.SortFunc(out.Products, func(x, y productCounts) int { return strings.Compare(x.ProductID, y.ProductID) })
	c.JSON(http.StatusOK, out)
}
