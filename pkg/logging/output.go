package logging

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Output buffers log lines on their way to w and writes them out every
// interval, when 64 KiB have gathered, at once for a line at Warn or above
// (through NewBuffered's handler), and on Close. A service at 10,000
// requests/s writes several lines per order; one write(2) per line costs
// more CPU on a virtual machine than the request's own work. The price: a
// process killed with SIGKILL loses its last interval of Info lines (never a
// warning or an error, which are written through).
type Output struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewOutput starts an Output flushing to w every interval; stop it with Close.
func NewOutput(w io.Writer, interval time.Duration) *Output {
	o := &Output{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go o.flushEvery(interval)
	return o
}

func (o *Output) flushEvery(interval time.Duration) {
	defer close(o.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
			_ = o.Flush()
		}
	}
}

// Write buffers p (one whole line: slog handlers write a record at once).
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

// Flush writes out what is buffered.
func (o *Output) Flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Flush()
}

// Close stops the flusher and writes out what is left.
func (o *Output) Close() error {
	o.once.Do(func() { close(o.stop) })
	<-o.done
	return o.Flush()
}

// NewBuffered is NewWriter on out, writing lines at Warn and above through
// at once.
func NewBuffered(out *Output, service string, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level})
	return slog.New(flushing{h, out}).With("service", service)
}

// flushing flushes out after every record at Warn or above.
type flushing struct {
	slog.Handler
	out *Output
}

func (f flushing) Handle(ctx context.Context, r slog.Record) error {
	err := f.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := f.out.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (f flushing) WithAttrs(as []slog.Attr) slog.Handler {
	return flushing{f.Handler.WithAttrs(as), f.out}
}

func (f flushing) WithGroup(name string) slog.Handler {
	return flushing{f.Handler.WithGroup(name), f.out}
}
