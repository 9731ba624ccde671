// Package httpapi is order-service's HTTP API: place an order (Redis only, no
// MySQL on this path) and read one back.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/order-service/internal/intake"
	"seckill/order-service/internal/order"
	"seckill/order-service/internal/stock"
	"seckill/pkg/httpx"
)

// API serves /api/v1/orders.
type API struct {
	intake   *intake.Service
	db       *gorm.DB
	log      *slog.Logger
	requests *prometheus.CounterVec
}

// New returns the API; reg receives order_requests_total{result}.
func New(svc *intake.Service, gdb *gorm.DB, log *slog.Logger, reg prometheus.Registerer) *API {
	a := &API{intake: svc, db: gdb, log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_requests_total", Help: "Order attempts by result.",
		}, []string{"result"})}
	reg.MustRegister(a.requests)
	return a
}

// Routes registers the endpoints on e.
func (a *API) Routes(e *gin.Engine) {
	e.POST("/api/v1/orders", a.create)
	e.GET("/api/v1/orders/:order_id", a.get)
	e.GET("/api/v1/order-counts", a.counts) // counts.go
}

type createRequest struct {
	UserID    *string `json:"user_id"`
	ProductID *string `json:"product_id"`
	Quantity  *int    `json:"quantity"`
}

type createResponse struct {
	OrderID     string    `json:"order_id"`
	Status      string    `json:"status"`
	PayDeadline time.Time `json:"pay_deadline"` // pay before it (POST /api/v1/payments/{order_id})
}

func (a *API) create(c *gin.Context) {
	var body createRequest
	if err := httpx.DecodeJSON(c, &body); err != nil {
		a.fail(c, err)
		return
	}
	req, err := validate(body, c.GetHeader("Idempotency-Key"))
	if err != nil {
		a.fail(c, err)
		return
	}
	o, err := a.intake.Place(c.Request.Context(), req)
	if err != nil {
		a.fail(c, err)
		return
	}
	result := "accepted"
	if o.Replayed {
		result = "replayed"
	}
	a.requests.WithLabelValues(result).Inc()
	c.JSON(http.StatusAccepted, createResponse{OrderID: o.OrderID, Status: "pending", PayDeadline: o.PayDeadline})
}

type orderResponse struct {
	OrderID     string    `json:"order_id"`
	UserID      string    `json:"user_id"`
	ProductID   string    `json:"product_id"`
	Quantity    int       `json:"quantity"`
	AmountCents int64     `json:"amount_cents"`
	Status      string    `json:"status"`
	CloseReason string    `json:"close_reason,omitempty"`
	PayDeadline time.Time `json:"pay_deadline"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// get answers from the order DB, or from the Redis reservation while the
// order is accepted but not yet persisted (status pending).
func (a *API) get(c *gin.Context) {
	id := c.Param("order_id")
	if err := checkID("order_id", id); err != nil {
		a.fail(c, fmt.Errorf("order %q: %w", id, order.ErrNotFound))
		return
	}
	ctx := c.Request.Context()
	o, err := order.Get(a.db.WithContext(ctx), id)
	if err == nil {
		c.JSON(http.StatusOK, orderResponse{
			OrderID: o.OrderID, UserID: o.UserID, ProductID: o.ProductID, Quantity: o.Quantity,
			AmountCents: o.AmountCents, Status: o.Status, CloseReason: o.CloseReason, PayDeadline: o.Deadline(),
			CreatedAt: o.CreatedAt.UTC(), UpdatedAt: o.UpdatedAt.UTC(),
		})
		return
	}
	if !errors.Is(err, order.ErrNotFound) {
		a.fail(c, err)
		return
	}
	r, err := a.intake.Pending(ctx, id)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, orderResponse{
		OrderID: r.OrderID, UserID: r.UserID, ProductID: r.ProductID, Quantity: r.Quantity,
		AmountCents: r.AmountCents, Status: "pending", PayDeadline: r.PayDeadline, CreatedAt: r.CreatedAt, UpdatedAt: r.CreatedAt,
	})
}

// retryAfter is the Retry-After of a 503: the stock of a product being
// rebuilt and an outbox waiting for the broker are both worth retrying
// within seconds (a refusal costs no Redis call).
const retryAfter = "1"

// fail answers err: the one place errors become status codes.
func (a *API) fail(c *gin.Context, err error) {
	if httpx.ClientGone(c, err) {
		return
	}
	status, code, msg, result := classify(err)
	if result != "" {
		a.requests.WithLabelValues(result).Inc()
	}
	switch {
	case status == http.StatusServiceUnavailable:
		// Expected while a dependency recovers; the request log has it at Warn.
		c.Header("Retry-After", retryAfter)
	case status >= 500:
		a.log.ErrorContext(c.Request.Context(), "request failed", "path", c.FullPath(), "err", err)
	}
	httpx.Error(c, status, code, msg)
}

// classify maps an error to status, error code, client message and the
// result label of order_requests_total ("" for reads).
func classify(err error) (status int, code, msg, result string) {
	var bad *httpx.BadRequest
	var field *fieldError
	switch {
	case errors.As(err, &bad) && bad.TooLarge:
		return http.StatusRequestEntityTooLarge, "body_too_large", bad.Error(), "invalid"
	case errors.As(err, &bad):
		return http.StatusBadRequest, "invalid_request", bad.Error(), "invalid"
	case errors.As(err, &field):
		return http.StatusBadRequest, "invalid_request", field.Error(), "invalid"
	case errors.Is(err, stock.ErrSoldOut):
		return http.StatusConflict, "sold_out", "the product is sold out", "sold_out"
	case errors.Is(err, stock.ErrLimitExceeded):
		return http.StatusConflict, "limit_exceeded", "per-user limit for this product reached", "limit_exceeded"
	case errors.Is(err, stock.ErrUnknownProduct):
		return http.StatusNotFound, "unknown_product", "no sale for this product", "unknown_product"
	case errors.Is(err, stock.ErrNotLoaded):
		return http.StatusServiceUnavailable, "stock_rebuilding", "stock of this product is being rebuilt; retry later", "rebuilding"
	case errors.Is(err, intake.ErrUnavailable):
		return http.StatusServiceUnavailable, "unavailable", "orders are not reaching the broker; retry later with the same Idempotency-Key", "backpressure"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "unavailable", "order not accepted; retry with the same Idempotency-Key", "unavailable"
	case errors.Is(err, order.ErrNotFound), errors.Is(err, stock.ErrNotFound):
		return http.StatusNotFound, "not_found", "no such order", ""
	default:
		return http.StatusInternalServerError, "internal", "internal error", "error"
	}
}
