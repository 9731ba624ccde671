package testenv

import (
	"net"
	"testing"
)

// FreeAddr returns a 127.0.0.1 address with a port free a moment ago, for a
// server under test to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
