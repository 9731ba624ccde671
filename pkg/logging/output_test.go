package logging_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"seckill/pkg/logging"
)

// syncBuf is a bytes.Buffer safe for the flusher goroutine and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestBufferedOutput(t *testing.T) {
	var dst syncBuf
	out := logging.NewOutput(&dst, time.Hour) // no timed flush during the test
	log := logging.NewBuffered(out, "svc", slog.LevelInfo).With("order_id", "o-1")

	log.Info("order accepted")
	if got := dst.String(); got != "" {
		t.Errorf("after an Info line the destination holds %q, want nothing yet (buffered)", got)
	}
	log.Warn("retrying")
	got := dst.String()
	if !strings.Contains(got, `"msg":"order accepted"`) || !strings.Contains(got, `"msg":"retrying"`) || !strings.Contains(got, `"order_id":"o-1"`) {
		t.Errorf("after a Warn line the destination holds %q, want both lines with order_id", got)
	}
	log.Info("last words")
	if err := out.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := dst.String(); !strings.Contains(got, `"msg":"last words"`) || !strings.Contains(got, `"service":"svc"`) {
		t.Errorf("after Close the destination holds %q, want the last Info line", got)
	}
}

func TestBufferedOutputFlushesOnInterval(t *testing.T) {
	var dst syncBuf
	out := logging.NewOutput(&dst, 10*time.Millisecond)
	defer out.Close()
	logging.NewBuffered(out, "svc", slog.LevelInfo).Info("tick")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(dst.String(), `"msg":"tick"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the Info line was not flushed within 5 s (interval 10 ms)")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
