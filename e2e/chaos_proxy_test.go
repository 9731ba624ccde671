package e2e

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpProxy forwards loopback TCP connections to a target. Down closes every
// open connection and makes new ones close at once (the peer sees a reset
// or EOF, as with a database that went away); Up lets them through again.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	down    bool
	conns   map[net.Conn]bool
	dropped int // connections closed by Down or refused while down
}

// startProxy listens on 127.0.0.1:0 and forwards to target until t ends.
func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
	})
	return p
}

// Addr is the proxy's listen address.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *tcpProxy) serve(c net.Conn) {
	p.mu.Lock()
	down := p.down
	if down {
		p.dropped++
	}
	p.mu.Unlock()
	if down {
		c.Close()
		return
	}
	u, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, u) {
		return
	}
	go func() {
		_, _ = io.Copy(u, c)
		u.Close()
	}()
	_, _ = io.Copy(c, u)
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// track registers a forwarded pair; false (both closed) if the proxy went
// down meanwhile.
func (p *tcpProxy) track(c, u net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		p.dropped++
		c.Close()
		u.Close()
		return false
	}
	p.conns[c], p.conns[u] = true, true
	return true
}

// Down drops every connection and refuses new ones until Up.
func (p *tcpProxy) Down() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.closeAll()
}

// Up forwards new connections again.
func (p *tcpProxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// Dropped is the number of connections the proxy closed or refused.
func (p *tcpProxy) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

func (p *tcpProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		p.dropped++
	}
	clear(p.conns)
}
