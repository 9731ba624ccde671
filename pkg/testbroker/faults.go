package testbroker

// Behavior: fault hooks for fault-injection tests. All are off by default
// and safe to call from any goroutine while clients run.
//   - DuplicateDelivery(n): every message sent afterwards (single or batch,
//     not delayed/retry deliveries) is stored n times; the copies have new
//     offsets but the same UNIQ_KEY, so consumers see the same msgId n times
//     (what a producer retry after a lost ack looks like). n ≤ 1 turns it off.
//   - DropOffsetCommits(group, on): UPDATE_CONSUMER_OFFSET and pull-carried
//     commits of group are ignored, so a restarted or rebalanced consumer
//     re-reads from the last kept offset.
//   - Pause()/Resume(): every request received while paused waits (not
//     answered) until Resume or until its connection closes; client RPCs time
//     out as with a stalled broker.
//   - Latency(d): every request waits d before it is handled.
//   - RefuseSends(on): SEND/SEND_BATCH answer 14 SERVICE_NOT_AVAILABLE
//     (client-go sync sends retry, then fail).

import (
	"sync/atomic"
	"time"
)

// faultState: duplicate and dropCommits are guarded by Server.mu (read
// inside store operations); the per-request checks are atomics so a request
// without faults takes no lock for them.
type faultState struct {
	duplicate   int
	dropCommits map[string]bool
	paused      atomic.Pointer[chan struct{}] // non-nil while paused; closed by Resume
	latency     atomic.Int64                  // time.Duration
	refuseSends atomic.Bool
}

// DuplicateDelivery stores every later sent message n times.
func (s *Server) DuplicateDelivery(n int) {
	s.mu.Lock()
	s.faults.duplicate = n
	s.mu.Unlock()
}

// DropOffsetCommits makes the broker ignore offset commits of group.
func (s *Server) DropOffsetCommits(group string, on bool) {
	s.mu.Lock()
	if on {
		s.faults.dropCommits[group] = true
	} else {
		delete(s.faults.dropCommits, group)
	}
	s.mu.Unlock()
}

// Pause holds every new request until Resume.
func (s *Server) Pause() {
	s.mu.Lock()
	if s.faults.paused.Load() == nil {
		ch := make(chan struct{})
		s.faults.paused.Store(&ch)
	}
	s.mu.Unlock()
}

// Resume releases the requests held by Pause.
func (s *Server) Resume() {
	s.mu.Lock()
	if ch := s.faults.paused.Load(); ch != nil {
		close(*ch)
		s.faults.paused.Store(nil)
	}
	s.mu.Unlock()
}

// Latency delays every request by d (0 turns it off).
func (s *Server) Latency(d time.Duration) {
	s.faults.latency.Store(int64(d))
}

// RefuseSends makes sends answer 14 SERVICE_NOT_AVAILABLE while on.
func (s *Server) RefuseSends(on bool) {
	s.faults.refuseSends.Store(on)
}

// applyFaults runs before every handler; false means the connection or the
// server went away while waiting.
func (s *Server) applyFaults(c *conn) bool {
	latency := time.Duration(s.faults.latency.Load())
	if paused := s.faults.paused.Load(); paused != nil {
		select {
		case <-*paused:
		case <-c.done:
			return false
		case <-s.ctx.Done():
			return false
		}
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.done:
			return false
		case <-s.ctx.Done():
			return false
		}
	}
	return true
}

func (s *Server) faultSend(req *command) *command {
	if s.faults.refuseSends.Load() {
		return newResponse(req, codeServiceNotAvailable, "service not available now (fault injected)")
	}
	return nil
}
