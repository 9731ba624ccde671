package testbroker

// Behavior: delay levels and scheduled delivery.
//
// Levels 1..18 are 1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h
// (Java messageDelayLevel), each multiplied by Options.DelayScale. Levels
// above 18 are clamped; TIMER_DELIVER_MS (absolute ms, WithDelayTimestamp)
// is honoured the same way with its remaining time scaled. A delayed message
// is first stored in SCHEDULE_TOPIC_XXXX (queue level-1) with REAL_TOPIC and
// REAL_QID; when due, a copy is appended to the real topic and queue with a
// new queueOffset and commitLogOffset and every property (UNIQ_KEY, DELAY,
// REAL_TOPIC, REAL_QID) kept, as 4.9.4 delivers it; TIMER_DELIVER_MS (a 5.x
// feature that 4.9.4 ignores) is honoured and then removed. Pending
// deliveries are in s.delayed (a min-heap by due time, in memory) and survive
// the schedule queue's retention bound (with a data dir their segment is
// kept until delivery, for a restart).

import (
	"container/heap"
	"strconv"
	"time"
)

var delayLevels = [maxDelayLevel]time.Duration{
	1 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	1 * time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute,
	5 * time.Minute, 6 * time.Minute, 7 * time.Minute, 8 * time.Minute,
	9 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute,
	1 * time.Hour, 2 * time.Hour,
}

// DelayLevelDuration is the unscaled duration of level (1..18), or 0.
func DelayLevelDuration(level int) time.Duration {
	if level < 1 || level > maxDelayLevel {
		return 0
	}
	return delayLevels[level-1]
}

// delayOf reports whether m must be scheduled, when, and at which level.
func (s *Server) delayOf(m *message) (time.Time, int, bool) {
	now := s.now()
	if v := m.props[propTimerDeliverMS]; v != "" {
		at, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			wait := time.Until(time.UnixMilli(at))
			return now.Add(s.scaled(max(wait, 0))), 1, true
		}
	}
	level, err := strconv.Atoi(m.props[propDelay])
	if err != nil || level <= 0 {
		return time.Time{}, 0, false
	}
	level = min(level, maxDelayLevel)
	m.props[propDelay] = strconv.Itoa(level)
	return now.Add(s.scaled(delayLevels[level-1])), level, true
}

func (s *Server) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.opts.DelayScale)
}

type delayed struct {
	due time.Time
	msg *message
}

type delayHeap []delayed

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = delayed{}
	*h = old[:len(old)-1]
	return x
}

func (s *Server) scheduleLocked(m *message, due time.Time) {
	heap.Push(&s.delayed, delayed{due: due, msg: m})
	s.refLocked(m.commitLogOffset) // its record must outlive retention until delivered
	select {
	case s.delayWake <- struct{}{}:
	default:
	}
}

// delayLoop delivers due messages until the server stops.
func (s *Server) delayLoop() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := s.now()
		for s.delayed.Len() > 0 && !s.delayed[0].due.After(now) {
			d := heap.Pop(&s.delayed).(delayed)
			s.deliverDelayedLocked(d.msg)
			s.logDoneLocked(recDelayDone, d.msg.commitLogOffset)
			s.unrefLocked(d.msg.commitLogOffset)
		}
		wait := time.Hour
		if s.delayed.Len() > 0 {
			wait = s.delayed[0].due.Sub(now)
		}
		s.mu.Unlock()
		s.flushLog()
		timer.Reset(wait)
		select {
		case <-s.ctx.Done():
			return
		case <-s.delayWake:
		case <-timer.C:
		}
	}
}

func (s *Server) deliverDelayedLocked(src *message) {
	// 4.9.4 keeps DELAY on the delivered message (measured: the consumer
	// sees DELAY=<level>); only the timer property is consumed here.
	m := src.clone()
	delete(m.props, propTimerDeliverMS)
	name := m.props[propRealTopic]
	qid, _ := strconv.Atoi(m.props[propRealQueueID])
	m.storeTimestamp = 0
	t := s.ensureTopicLocked(name, s.autoQueues(name), permRW)
	if qid < 0 || qid >= len(t.queues) {
		qid = 0
	}
	m.queueID = int32(qid)
	s.appendLocked(t, m)
}
