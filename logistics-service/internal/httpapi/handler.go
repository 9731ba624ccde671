// Package httpapi is logistics-service's HTTP API:
//
//	GET /api/v1/shipments/{order_id}  {"order_id","status","created_at"}, 404 not_found
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
	"gorm.io/gorm"

	"seckill/pkg/httpx"

	"seckill/logistics-service/internal/shipment"
)

// orderIDPattern bounds what reaches the database: the shipments key is VARCHAR(64).
var orderIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// API serves the shipment routes.
type API struct {
	db  *gorm.DB
	log *slog.Logger
}

// New returns the API reading shipments from gdb.
func New(gdb *gorm.DB, log *slog.Logger) *API {
	return &API{db: gdb, log: log}
}

// Register adds the shipment routes to r.
func (a *API) Register(r gin.IRoutes) {
	r.GET("/api/v1/shipments/:order_id", a.get)
}

type shipmentView struct {
	OrderID   string    `json:"order_id"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

func (a *API) get(c *gin.Context) {
	orderID := c.Param("order_id")
	if !orderIDPattern.MatchString(orderID) {
		httpx.Error(c, http.StatusBadRequest, "invalid_request", "order_id: 1 to 64 letters, digits, '-' or '_'")
		return
	}
	s, err := shipment.Get(c.Request.Context(), a.db, orderID)
	switch {
	case errors.Is(err, shipment.ErrNotFound):
		httpx.Error(c, http.StatusNotFound, "not_found", "no shipment for order "+orderID)
	case httpx.ClientGone(c, err):
	case err != nil:
		a.log.ErrorContext(c.Request.Context(), "shipment request failed", "order_id", orderID, "err", err)
		httpx.Error(c, http.StatusInternalServerError, "internal", "internal error")
	default:
		c.JSON(http.StatusOK, shipmentView{OrderID: s.OrderID, Status: s.Status, CreatedAt: s.CreatedAt.UTC()})
	}
}
