package mq

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Message IDs the producer controls.
//
// A consumer sees a message's UNIQ_KEY property as its message ID and, when
// there is none, the broker's offset ID (broker address ‖ commit-log offset).
// A broker whose store starts again at the same address hands the same
// offset IDs out again, so a claim of an old message's offset ID makes a new
// message look like a duplicate. client-go sets UNIQ_KEY on single sends
// only, never on batch members, and builds it from the host IP, the pid (1 in
// every container), whole seconds since the start of the month and a 16-bit
// counter that wraps. So every message pkg/mq sends carries a UNIQ_KEY from
// uniqIDs, in RocketMQ's own 16-byte layout (RocketMQ's tools read the time
// at the same place to find a message by key):
//
//	IPv4 (4) ‖ pid (2) ‖ salt (4) ‖ ms since the month began (4) ‖ sequence (2)
//
// Within a process the pair (ms, sequence) strictly increases: several IDs
// in one millisecond take the next sequence numbers, and a full sequence
// moves to the next millisecond rather than wrapping, so a process never
// repeats an ID. Two processes alive at the same time on one host differ by
// pid; a process that starts later on the same host and month (a restarted
// container is pid 1 again) issues later milliseconds. The salt, random per
// process and drawn again each month (when the millisecond count starts
// over), separates everything else: processes on hosts that share an address
// and a pid, and the same millisecond in another month.

// uniqIDs is the process's generator: one per process, because the IDs of
// every producer in it must differ from each other (they share the host
// address and the pid).
var uniqIDs = newIDGen(time.Now)

type idGen struct {
	now func() time.Time

	mu         sync.Mutex
	prefix     [6]byte // IPv4 ‖ pid
	salt       [4]byte
	monthStart time.Time // of the current salt; zero before the first ID
	nextMonth  time.Time
	lastMS     uint32
	seq        uint16
}

func newIDGen(now func() time.Time) *idGen {
	g := &idGen{now: now}
	copy(g.prefix[:4], hostIPv4())
	binary.BigEndian.PutUint16(g.prefix[4:], uint16(os.Getpid()))
	return g
}

// hostIPv4 is the first non-loopback IPv4 address of this host, or 127.0.0.1.
func hostIPv4() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
			if ip := n.IP.To4(); ip != nil {
				return ip
			}
		}
	}
	return net.IPv4(127, 0, 0, 1).To4()
}

// next returns a new ID: 32 upper-case hex digits.
func (g *idGen) next() string {
	g.mu.Lock()
	now := g.now()
	fresh := g.monthStart.IsZero() || !now.Before(g.nextMonth)
	if fresh {
		y, m, _ := now.Date()
		g.monthStart = time.Date(y, m, 1, 0, 0, 0, 0, now.Location())
		g.nextMonth = g.monthStart.AddDate(0, 1, 0)
		_, _ = rand.Read(g.salt[:]) // crypto/rand.Read never fails
	}
	ms := uint32(max(now.Sub(g.monthStart).Milliseconds(), 0))
	switch {
	case fresh || ms > g.lastMS:
		g.lastMS, g.seq = ms, 0
	case g.seq == 0xFFFF: // this millisecond is used up (or the clock went back)
		g.lastMS, g.seq = g.lastMS+1, 0
	default:
		g.seq++
	}
	var raw [16]byte
	copy(raw[:6], g.prefix[:])
	copy(raw[6:10], g.salt[:])
	binary.BigEndian.PutUint32(raw[10:14], g.lastMS)
	binary.BigEndian.PutUint16(raw[14:16], g.seq)
	g.mu.Unlock()
	return strings.ToUpper(hex.EncodeToString(raw[:]))
}

// propUniqKey is the property RocketMQ keeps the producer's message ID in.
const propUniqKey = primitive.PropertyUniqueClientMessageIdKeyIndex
