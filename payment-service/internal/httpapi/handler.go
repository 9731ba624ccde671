// Package httpapi is payment-service's HTTP API:
//
//	POST /api/v1/payments/{order_id}  pay: 200 {"status":"paid","pay_deadline"}, 409 order_closed
//	                                  (after the pay deadline, or refused by inventory), 404 not_found
//	                                  (never accepted), 503 unavailable (retry)
//	GET  /api/v1/payments/{order_id}  {"order_id","amount_cents","status","pay_deadline"}
//
// An accepted order is payable from its 202 on, whatever the consumers'
// backlog.
//
// Bad input answers 400 invalid_request; nothing the client sends yields a 5xx.
package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"

	"seckill/pkg/httpx"

	"seckill/payment-service/internal/payment"
)

// orderIDPattern bounds what reaches the database: the payments key is VARCHAR(64).
var orderIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// API serves the payment routes.
type API struct {
	svc *payment.Service
	log *slog.Logger
}

// New returns the API over svc.
func New(svc *payment.Service, log *slog.Logger) *API {
	return &API{svc: svc, log: log}
}

// Register adds the payment routes to r.
func (a *API) Register(r gin.IRoutes) {
	r.POST("/api/v1/payments/:order_id", a.pay)
	r.GET("/api/v1/payments/:order_id", a.get)
}

type paymentView struct {
	OrderID     string         `json:"order_id"`
	AmountCents int64          `json:"amount_cents"`
	Status      payment.Status `json:"status"`
	PayDeadline *time.Time     `json:"pay_deadline,omitempty"`
	PaidAt      *time.Time     `json:"paid_at,omitempty"`
}

func view(p payment.Payment) paymentView {
	v := paymentView{OrderID: p.OrderID, AmountCents: p.AmountCents, Status: p.Status}
	if d := p.Deadline(); !d.IsZero() {
		v.PayDeadline = &d
	}
	if p.PaidAt != nil {
		at := p.PaidAt.UTC()
		v.PaidAt = &at
	}
	return v
}

func (a *API) pay(c *gin.Context) {
	orderID, ok := orderIDParam(c)
	if !ok {
		return
	}
	p, err := a.svc.Pay(c.Request.Context(), orderID)
	if err != nil {
		a.fail(c, orderID, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": p.Status, "pay_deadline": p.Deadline()})
}

func (a *API) get(c *gin.Context) {
	orderID, ok := orderIDParam(c)
	if !ok {
		return
	}
	p, err := a.svc.Get(c.Request.Context(), orderID)
	if err != nil {
		a.fail(c, orderID, err)
		return
	}
	c.JSON(http.StatusOK, view(p))
}

func orderIDParam(c *gin.Context) (string, bool) {
	id := c.Param("order_id")
	if !orderIDPattern.MatchString(id) {
		httpx.Error(c, http.StatusBadRequest, "invalid_request", "order_id: 1 to 64 letters, digits, '-' or '_'")
		return "", false
	}
	return id, true
}

// fail maps a service error to its answer: the one place errors become statuses.
func (a *API) fail(c *gin.Context, orderID string, err error) {
	switch {
	case errors.Is(err, payment.ErrNotFound):
		httpx.Error(c, http.StatusNotFound, "not_found", "no payment for order "+orderID)
	case errors.Is(err, payment.ErrClosed):
		httpx.Error(c, http.StatusConflict, "order_closed", "order "+orderID+" is closed")
	case errors.Is(err, payment.ErrUnavailable):
		c.Header("Retry-After", "1")
		httpx.Error(c, http.StatusServiceUnavailable, "unavailable", "payment temporarily unavailable; retry")
	case httpx.ClientGone(c, err):
	default:
		a.log.ErrorContext(c.Request.Context(), "payment request failed", "order_id", orderID, "err", err)
		httpx.Error(c, http.StatusInternalServerError, "internal", "internal error")
	}
}
