// Package httpapi is inventory-service's HTTP surface: the admin API that
// creates or resets a sale (bearer token) and the public product reads.
package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"seckill/inventory-service/internal/stock"
	"seckill/pkg/httpx"
)

// Limits of the admin body.
const (
	MaxStock      = 10_000_000
	MaxPriceCents = 1_000_000_000_000
	MaxUserLimit  = 10_000_000
	MaxNameLen    = 200
	MaxProductID  = 64
)

// API serves the product endpoints.
type API struct {
	sales     *stock.Sales
	tokenHash [sha256.Size]byte
	log       *slog.Logger
}

// New returns an API; adminToken must not be empty (the config checks it).
func New(sales *stock.Sales, adminToken string, log *slog.Logger) *API {
	return &API{sales: sales, tokenHash: sha256.Sum256([]byte(adminToken)), log: log}
}

// Register adds the routes to r.
func (a *API) Register(r gin.IRouter) {
	r.PUT("/api/v1/products/:product_id", a.requireAdmin, a.putProduct)
	r.GET("/api/v1/products/:product_id", a.getProduct)
	r.GET("/api/v1/products", a.listProducts) // list.go
}

// Product is the JSON of a product and its current sale.
type Product struct {
	ProductID    string    `json:"product_id"`
	Name         string    `json:"name"`
	PriceCents   int64     `json:"price_cents"`
	Stock        int       `json:"stock"`
	Available    int       `json:"available"`
	Sold         int       `json:"sold"`
	PerUserLimit int       `json:"per_user_limit"`
	SaleID       int64     `json:"sale_id"`
	SaleStarted  time.Time `json:"sale_started_at"`
}

func productJSON(p stock.Product) Product {
	return Product{
		ProductID: p.ProductID, Name: p.Name, PriceCents: p.PriceCents, Stock: p.Stock,
		Available: p.Available(), Sold: p.Sold, PerUserLimit: p.PerUserLimit,
		SaleID: p.SaleID, SaleStarted: p.SaleStartedAt,
	}
}

// requireAdmin accepts "Authorization: Bearer <token>". Both sides are hashed
// before the constant-time compare so neither content nor length leaks
// through timing.
func (a *API) requireAdmin(c *gin.Context) {
	h := c.GetHeader("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		token = ""
	}
	got := sha256.Sum256([]byte(token))
	if !ok || subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="inventory-admin"`)
		httpx.Error(c, http.StatusUnauthorized, "unauthorized", "missing or wrong admin token")
		return
	}
	c.Next()
}

type putRequest struct {
	Name         *string `json:"name"`
	PriceCents   *int64  `json:"price_cents"`
	Stock        *int64  `json:"stock"`
	PerUserLimit *int64  `json:"per_user_limit"`
}

func (r putRequest) sale() (stock.Sale, error) {
	bad := func(field, msg string) error { return &httpx.BadRequest{Field: field, Message: msg} }
	switch {
	case r.Name == nil:
		return stock.Sale{}, bad("name", "required")
	case *r.Name == "" || utf8.RuneCountInString(*r.Name) > MaxNameLen:
		return stock.Sale{}, bad("name", fmt.Sprintf("must be 1..%d characters", MaxNameLen))
	case !utf8.ValidString(*r.Name) || strings.ContainsFunc(*r.Name, unicode.IsControl):
		return stock.Sale{}, bad("name", "must be printable text")
	case r.PriceCents == nil:
		return stock.Sale{}, bad("price_cents", "required")
	case *r.PriceCents < 0 || *r.PriceCents > MaxPriceCents:
		return stock.Sale{}, bad("price_cents", fmt.Sprintf("must be between 0 and %d", int64(MaxPriceCents)))
	case r.Stock == nil:
		return stock.Sale{}, bad("stock", "required")
	case *r.Stock < 0 || *r.Stock > MaxStock:
		return stock.Sale{}, bad("stock", fmt.Sprintf("must be between 0 and %d", MaxStock))
	case r.PerUserLimit == nil:
		return stock.Sale{}, bad("per_user_limit", "required")
	case *r.PerUserLimit < 1 || *r.PerUserLimit > MaxUserLimit:
		return stock.Sale{}, bad("per_user_limit", fmt.Sprintf("must be between 1 and %d", MaxUserLimit))
	}
	return stock.Sale{
		Name: *r.Name, PriceCents: *r.PriceCents, Stock: int(*r.Stock), PerUserLimit: int(*r.PerUserLimit),
	}, nil
}

// decodeSale reads and validates the PUT body; errors are *httpx.BadRequest.
func decodeSale(c *gin.Context) (stock.Sale, error) {
	var req putRequest
	if err := httpx.DecodeJSON(c, &req); err != nil {
		return stock.Sale{}, err
	}
	return req.sale()
}

// validProductID: 1..64 printable ASCII characters without spaces, so the ID
// is safe in Redis keys, logs and URLs.
func validProductID(id string) error {
	if id == "" || len(id) > MaxProductID {
		return &httpx.BadRequest{Field: "product_id", Message: fmt.Sprintf("must be 1..%d characters", MaxProductID)}
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return &httpx.BadRequest{Field: "product_id", Message: "must be printable ASCII without spaces"}
		}
	}
	return nil
}

func (a *API) putProduct(c *gin.Context) {
	id := c.Param("product_id")
	if err := validProductID(id); err != nil {
		a.fail(c, err)
		return
	}
	sale, err := decodeSale(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	p, err := a.sales.Put(c.Request.Context(), id, sale)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, productJSON(p))
}

func (a *API) getProduct(c *gin.Context) {
	id := c.Param("product_id")
	if err := validProductID(id); err != nil {
		a.fail(c, err)
		return
	}
	p, err := a.sales.Product(c.Request.Context(), id)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, productJSON(p))
}

// Handlers pass c.Request.Context(), never c: gin recycles *gin.Context after
// the handler returns, while database/sql may still watch the context.

// fail maps an error to its status in one place: bad input 400 (413 for a
// body over the limit), an unknown product 404, anything else 500 with a
// generic body (and the error in the log).
func (a *API) fail(c *gin.Context, err error) {
	var br *httpx.BadRequest
	switch {
	case errors.As(err, &br) && br.TooLarge:
		httpx.Error(c, http.StatusRequestEntityTooLarge, "body_too_large", br.Error())
	case errors.As(err, &br):
		httpx.Error(c, http.StatusBadRequest, "invalid_request", br.Error())
	case errors.Is(err, stock.ErrUnknownProduct):
		httpx.Error(c, http.StatusNotFound, "unknown_product", "no such product")
	case httpx.ClientGone(c, err):
	default:
		a.log.ErrorContext(c.Request.Context(), "product request failed", "product_id", c.Param("product_id"), "err", err)
		httpx.Error(c, http.StatusInternalServerError, "internal", "internal error")
	}
}
