package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is a minimal HTTP/1.1 keep-alive client connection for the hot path:
// it writes one pre-built request and reads one response (Content-Length or
// chunked). net/http's client costs several times the CPU per request, and on
// a 2-core box the load tool shares the CPU with what it measures.
type conn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	body []byte
}

func newConn(addr string) *conn { return &conn{addr: addr} }

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// do sends req (a complete request) and returns the status and body. The
// body is valid until the next call. On any error the connection is closed
// (the next call redials).
func (c *conn) do(req []byte, timeout time.Duration) (int, []byte, error) {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.addr, timeout)
		if err != nil {
			return 0, nil, err
		}
		c.c = nc
		c.r = bufio.NewReaderSize(nc, 4096)
		c.w = bufio.NewWriterSize(nc, 4096)
	}
	_ = c.c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.w.Write(req); err != nil {
		c.close()
		return 0, nil, err
	}
	if err := c.w.Flush(); err != nil {
		c.close()
		return 0, nil, err
	}
	status, body, keep, err := c.read()
	if err != nil {
		c.close()
		return 0, nil, err
	}
	if !keep {
		c.close()
	}
	return status, body, nil
}

var errMalformed = errors.New("malformed HTTP response")

func (c *conn) read() (status int, body []byte, keep bool, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, false, err
	}
	// HTTP/1.1 202 Accepted
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	length, chunked := -1, false
	keep = true
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return 0, nil, false, fmt.Errorf("%w: Content-Length %q", errMalformed, v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			keep = !bytes.EqualFold(v, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		for {
			l, err := c.r.ReadSlice('\n')
			if err != nil {
				return 0, nil, false, err
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.SplitN(l, []byte(";"), 2)[0])), 16, 32)
			if err != nil {
				return 0, nil, false, fmt.Errorf("%w: chunk size %q", errMalformed, l)
			}
			if n == 0 {
				for { // trailers up to the empty line
					t, err := c.r.ReadSlice('\n')
					if err != nil {
						return 0, nil, false, err
					}
					if len(bytes.TrimRight(t, "\r\n")) == 0 {
						return status, c.body, keep, nil
					}
				}
			}
			start := len(c.body)
			c.body = append(c.body, make([]byte, n)...)
			if _, err := io.ReadFull(c.r, c.body[start:]); err != nil {
				return 0, nil, false, err
			}
			if _, err := c.r.Discard(2); err != nil {
				return 0, nil, false, err
			}
		}
	case length >= 0:
		if cap(c.body) < length {
			c.body = make([]byte, length)
		}
		c.body = c.body[:length]
		if _, err := io.ReadFull(c.r, c.body); err != nil {
			return 0, nil, false, err
		}
	default:
		return 0, nil, false, fmt.Errorf("%w: no Content-Length", errMalformed)
	}
	return status, c.body, keep, nil
}

// postRequest builds a POST with a JSON body and optional Idempotency-Key.
func postRequest(buf []byte, host, path, idemKey string, body []byte) []byte {
	buf = append(buf[:0], "POST "...)
	buf = append(buf, path...)
	buf = append(buf, " HTTP/1.1\r\nHost: "...)
	buf = append(buf, host...)
	buf = append(buf, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	buf = strconv.AppendInt(buf, int64(len(body)), 10)
	if idemKey != "" {
		buf = append(buf, "\r\nIdempotency-Key: "...)
		buf = append(buf, idemKey...)
	}
	buf = append(buf, "\r\n\r\n"...)
	return append(buf, body...)
}

// jsonField returns the string value of "name":"..." in a flat JSON body.
func jsonField(body []byte, name string) string {
	key := `"` + name + `":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
