// Package httpx builds the gin engine every service serves: JSON errors,
// request logging through slog, panic recovery, a body size limit, and the
// /healthz and /metrics endpoints.
package httpx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxBodyBytes is the largest request body the engine accepts.
const MaxBodyBytes = 1 << 20

// NewEngine returns a gin engine with the middleware and endpoints every
// service shares. reg may be nil (no /metrics then).
//
// A path that matches no route exactly (a trailing slash, other letter
// case) gets the JSON 404, not a redirect.
//
// Handlers must pass c.Request.Context() to I/O (gorm's WithContext,
// go-redis, pkg/mq), never c itself: gin reuses *gin.Context for the next
// request once the handler returns, so a driver goroutine still holding c
// would read another request's state. The engine leaves gin's
// ContextWithFallback off, so c carries neither the request's cancellation
// nor its values, and passing it by mistake never looks like it works.
func NewEngine(log *slog.Logger, reg *prometheus.Registry, service string) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.Use(requestLog(log), recovery(log), limitBody(MaxBodyBytes))
	if reg != nil {
		e.Use(requestMetrics(reg, service))
		e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	}
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.NoRoute(func(c *gin.Context) { Error(c, http.StatusNotFound, "not_found", "no such endpoint") })
	e.NoMethod(func(c *gin.Context) {
		Error(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint")
	})
	return e
}

// Error aborts the request with {"error":code,"message":message}.
func Error(c *gin.Context, status int, code, message string) {
	c.AbortWithStatusJSON(status, gin.H{"error": code, "message": message})
}

// StatusClientClosed is the status recorded for a request whose client went
// away before its answer (nginx's 499): not a server error, so it neither
// logs at Error nor counts as a 5xx in the request metrics and alerts.
const StatusClientClosed = 499

// ClientGone answers StatusClientClosed and reports true when err comes from
// the request's own context being canceled — the client disconnected or
// timed out while the handler waited on a dependency. A handler's error
// mapping calls it before treating err as a server error.
func ClientGone(c *gin.Context, err error) bool {
	if !errors.Is(err, context.Canceled) || c.Request.Context().Err() == nil {
		return false
	}
	Error(c, StatusClientClosed, "client_closed_request", "the client went away before the answer")
	return true
}

func requestLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		level := slog.LevelDebug // 10k req/s on intake: successful requests stay quiet
		switch {
		case status == http.StatusServiceUnavailable:
			level = slog.LevelWarn // "retry later" while a dependency recovers, not a bug
		case status >= 500:
			level = slog.LevelError
		case status >= 400:
			level = slog.LevelInfo
		}
		ctx := c.Request.Context()
		if !log.Enabled(ctx, level) {
			return // the attributes below (client IP, route) cost more than the check
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.String("route", c.FullPath()),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("remote", c.ClientIP()),
		}
		if len(c.Errors) > 0 {
			attrs = append(attrs, slog.String("err", c.Errors.String()))
		}
		log.LogAttrs(ctx, level, "http request", attrs...)
	}
}

// recovery turns a panic into a 500 with a generic body; the panic value is
// logged, never sent to the client.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, v any) {
		if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
			panic(v) // the client went away; let net/http handle it
		}
		log.ErrorContext(c.Request.Context(), "handler panic",
			"method", c.Request.Method, "path", c.Request.URL.Path, "panic", v)
		Error(c, http.StatusInternalServerError, "internal", "internal error")
	})
}

func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > n {
			Error(c, http.StatusRequestEntityTooLarge, "body_too_large",
				"request body larger than 1 MiB")
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		c.Next()
	}
}

func requestMetrics(reg prometheus.Registerer, service string) gin.HandlerFunc {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: service + "_http_requests_total",
		Help: "HTTP requests by route, method and status.",
	}, []string{"route", "method", "status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    service + "_http_request_duration_seconds",
		Help:    "HTTP request duration by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route"})
	reg.MustRegister(requests, duration)
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath() // the pattern, never the IDs in the path
		if route == "" {
			route = "unmatched"
		}
		requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
		duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
}
