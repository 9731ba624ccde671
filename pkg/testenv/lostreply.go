package testenv

import (
	"bytes"
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// LostReply is a TCP proxy in front of the test Redis that loses the reply
// of one command: once armed (Arm), the first command it forwards whose
// bytes contain the match it hands to Redis, then closes the client's
// connection instead of passing the reply back. Redis has run the command; go-redis sees a dropped
// connection and sends the same command again on a new one (MaxRetries),
// which is what a read timeout or a network blip does to a script call.
type LostReply struct {
	Client *redis.Client // a client for the test Redis through the proxy
	match  []byte
	on     atomic.Bool // Arm was called
	armed  atomic.Bool // the next reply is the one to lose
	lost   atomic.Int64
}

// RedisLostReply starts a LostReply for commands containing match (e.g.
// "evalsha"), closed in Cleanup with its client.
func RedisLostReply(t testing.TB, match string) *LostReply {
	t.Helper()
	skipShort(t)
	target := os.Getenv("REDIS_ADDR")
	if target == "" {
		target = "127.0.0.1:6379"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: listen: %v", err)
	}
	p := &LostReply{match: bytes.ToLower([]byte(match))}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			track(c)
			track(s)
			wg.Go(func() { p.pipe(c, s) })
		}
	})
	p.Client = redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: 3})
	t.Cleanup(func() {
		p.Client.Close()
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Client.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis unreachable through the proxy (%s): %v", target, err)
	}
	return p
}

// Arm makes the proxy lose the reply of the next matching command.
func (p *LostReply) Arm() { p.on.Store(true) }

// Lost is how many replies the proxy has lost (0 or 1).
func (p *LostReply) Lost() int64 { return p.lost.Load() }

// pipe copies client → server and server → client until either side closes;
// it loses the reply to the first matching command.
func (p *LostReply) pipe(c, s net.Conn) {
	defer c.Close()
	defer s.Close()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if p.on.Load() && p.lost.Load() == 0 && bytes.Contains(bytes.ToLower(buf[:n]), p.match) {
					p.armed.Store(true)
				}
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				s.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if p.armed.Load() && p.lost.CompareAndSwap(0, 1) {
				return // the deferred closes drop the connection, reply unsent
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
