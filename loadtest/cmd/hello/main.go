// Command hello is the ceiling of the bench: a bare gin server whose
// POST /api/v1/orders parses the same JSON body as order-service and answers
// 202 with an order_id, touching nothing else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

type orderRequest struct {
	UserID    string `json:"user_id"`
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18090", "listen address")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	var seq atomic.Int64
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.POST("/api/v1/orders", func(c *gin.Context) {
		var req orderRequest
		if err := c.ShouldBindJSON(&req); err != nil || req.UserID == "" || req.Quantity < 1 {
			c.JSON(http.StatusBadRequest, gin.H{"error": "invalid_request", "message": "bad body"})
			return
		}
		c.JSON(http.StatusAccepted, gin.H{"order_id": "h" + strconv.FormatInt(seq.Add(1), 10), "status": "pending"})
	})
	srv := &http.Server{Addr: *addr, Handler: r, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}
