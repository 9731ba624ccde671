// Package web serves the console page: the embedded static files (the page,
// its script and the vendored uPlot chart library; nothing is loaded from
// another origin) and the board as JSON and as server-sent events.
//
//	GET /               the page
//	GET /api/board      the latest board (503 before the first read)
//	GET /api/history    the chart points of the last minutes
//	GET /api/events     server-sent events: one "board" event per read
//	GET /healthz        200 while the console runs
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"seckill/console/internal/board"
)

//go:embed static
var static embed.FS

// Boards is what the server needs of the poller.
type Boards interface {
	Latest() (board.Board, bool)
	History() []board.Point
	Subscribe() (<-chan board.Board, func())
}

// Handler returns the console's routes over boards.
func Handler(boards Boards, log *slog.Logger) http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded directory exists by construction
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(files))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /api/board", func(w http.ResponseWriter, r *http.Request) {
		b, ok := boards.Latest()
		if !ok {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "starting", "message": "no read of the system yet"})
			return
		}
		writeJSON(w, http.StatusOK, b)
	})
	mux.HandleFunc("GET /api/history", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, boards.History())
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		events(w, r, boards, log)
	})
	return headers(mux)
}

// headers forbids every other origin to the page: the chart library is
// served from here, and a page that tried to load from a CDN would fail
// visibly instead of depending on the network.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// events streams every new board as a server-sent event until the client
// goes away or the server shuts down (the request's context ends with it).
func events(w http.ResponseWriter, r *http.Request, boards Boards, log *slog.Logger) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, cancel := boards.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 1000\n\n")
	flusher.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-ch:
			data, err := json.Marshal(b)
			if err != nil {
				log.ErrorContext(r.Context(), "encode board", "err", err)
				return
			}
			if _, err := fmt.Fprintf(w, "event: board\ndata: %s\n\n", data); err != nil {
				return // the client went away
			}
			flusher.Flush()
		}
	}
}

// Serve serves h on ln until ctx is done, then shuts down within 5 s. The
// requests' contexts derive from ctx, so the event streams end first.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: an event stream is one long response.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
