package mq

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"
)

// A minimal RocketMQ remoting client for the few requests client-go keeps
// internal (routes, offsets): JSON-serialized frames, one request at a time
// on a connection, requests signed like client-go's ACL hook when an access
// key is set.

const (
	codeSuccess       = 0
	codeQueryNotFound = 22 // QUERY_CONSUMER_OFFSET: the group never committed
)

type remotingHeader struct {
	Code      int               `json:"code"`
	Language  string            `json:"language"`
	Version   int               `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int               `json:"flag"`
	Remark    string            `json:"remark"`
	ExtFields map[string]string `json:"extFields"`
}

// remotingError is a non-zero response code.
type remotingError struct {
	Addr   string
	Code   int
	Remark string
}

func (e *remotingError) Error() string {
	return fmt.Sprintf("code %d from %s: %s", e.Code, e.Addr, e.Remark)
}

// remotingConn is one connection to a name server or broker. Not safe for
// concurrent use.
type remotingConn struct {
	conn   net.Conn
	addr   string
	cfg    Config // credentials
	opaque int32
}

// dialRemoting connects to addr; every call on the connection must finish
// by ctx's deadline, or within 5 s when ctx has none.
func dialRemoting(ctx context.Context, addr string, cfg Config) (*remotingConn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	return &remotingConn{conn: conn, addr: addr, cfg: cfg}, nil
}

func (c *remotingConn) Close() error { return c.conn.Close() }

// call sends one request and returns the response header and body; a
// non-zero response code is a *remotingError.
func (c *remotingConn) call(code int, ext map[string]string) (remotingHeader, []byte, error) {
	c.opaque++
	req := remotingHeader{Code: code, Language: "GO", Version: 317, Opaque: c.opaque, ExtFields: c.sign(ext)}
	header, err := json.Marshal(req)
	if err != nil {
		return remotingHeader{}, nil, err
	}
	frame := make([]byte, 8, 8+len(header))
	binary.BigEndian.PutUint32(frame[0:4], uint32(4+len(header)))
	binary.BigEndian.PutUint32(frame[4:8], uint32(len(header))) // serialize type 0 = JSON
	frame = append(frame, header...)
	if _, err := c.conn.Write(frame); err != nil {
		return remotingHeader{}, nil, err
	}
	var lens [8]byte
	if _, err := io.ReadFull(c.conn, lens[:]); err != nil {
		return remotingHeader{}, nil, err
	}
	total := binary.BigEndian.Uint32(lens[0:4])
	hlen := binary.BigEndian.Uint32(lens[4:8]) & 0xFFFFFF
	if total > 64<<20 || hlen+4 > total {
		return remotingHeader{}, nil, fmt.Errorf("bad frame from %s", c.addr)
	}
	rest := make([]byte, total-4)
	if _, err := io.ReadFull(c.conn, rest); err != nil {
		return remotingHeader{}, nil, err
	}
	if lens[4] != 0 {
		return remotingHeader{}, nil, fmt.Errorf("%s answered in serialize type %d, want JSON", c.addr, lens[4])
	}
	var resp remotingHeader
	if err := json.Unmarshal(rest[:hlen], &resp); err != nil {
		return remotingHeader{}, nil, fmt.Errorf("response header from %s: %w", c.addr, err)
	}
	if resp.Opaque != req.Opaque {
		return remotingHeader{}, nil, fmt.Errorf("%s answered opaque %d to request %d", c.addr, resp.Opaque, req.Opaque)
	}
	if resp.Code != codeSuccess {
		return resp, nil, &remotingError{Addr: c.addr, Code: resp.Code, Remark: resp.Remark}
	}
	return resp, rest[hlen:], nil
}

// sign adds AccessKey and Signature when credentials are set: HMAC-SHA1 with
// the secret key over the values of every ext field plus AccessKey, in key
// order (the request has no body), as client-go's ACLInterceptor does.
func (c *remotingConn) sign(ext map[string]string) map[string]string {
	if c.cfg.AccessKey == "" {
		return ext
	}
	out := make(map[string]string, len(ext)+2)
	for k, v := range ext {
		out[k] = v
	}
	out["AccessKey"] = c.cfg.AccessKey
	out["Signature"] = signature(out, c.cfg.SecretKey)
	return out
}

func signature(fields map[string]string, secretKey string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var content strings.Builder
	for _, k := range keys {
		content.WriteString(fields[k])
	}
	mac := hmac.New(sha1.New, []byte(secretKey))
	mac.Write([]byte(content.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// remotingCall sends one request on a connection of its own and returns the
// response body.
func remotingCall(ctx context.Context, addr string, cfg Config, code int, ext map[string]string) ([]byte, error) {
	c, err := dialRemoting(ctx, addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_, body, err := c.call(code, ext)
	return body, err
}
