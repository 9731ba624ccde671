package testbroker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func frame(typeByte byte, header, body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(4+len(header)+len(body)))
	out = binary.BigEndian.AppendUint32(out, uint32(typeByte)<<24|uint32(len(header)))
	return append(append(out, header...), body...)
}

// clientFrame is the frame client-go encodes for a SEND (notes §1).
var clientFrame = frame(0, []byte(`{"code":10,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"queueId":"1","topic":"T","properties":"TAGS\u0001TagA\u0002"}}`), []byte("hi"))

func binaryHeader(code int16, opaque int32, remark string, ext map[string]string) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	b = append(b, 9)
	b = binary.BigEndian.AppendUint16(b, 317)
	b = binary.BigEndian.AppendUint32(b, uint32(opaque))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(remark)))
	b = append(b, remark...)
	var e []byte
	for k, v := range ext {
		e = binary.BigEndian.AppendUint16(e, uint16(len(k)))
		e = append(e, k...)
		e = binary.BigEndian.AppendUint32(e, uint32(len(v)))
		e = append(e, v...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e)))
	return append(b, e...)
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    *command
		wantErr error // nil: any error is accepted when wantFail
		wantOK  bool
	}{
		{"client json frame", clientFrame, &command{Code: 10, Language: "GO", Version: 317, Opaque: 1,
			ExtFields: map[string]string{"queueId": "1", "topic": "T", "properties": "TAGS\x01TagA\x02"}, Body: []byte("hi")}, nil, true},
		{"binary header", frame(1, binaryHeader(105, 7, "r", map[string]string{"topic": "T"}), nil),
			&command{Code: 105, Version: 317, Opaque: 7, Remark: "r", ExtFields: map[string]string{"topic": "T"}}, nil, true},
		{"null remark and no ext", frame(0, []byte(`{"code":34,"opaque":2,"remark":null}`), nil),
			&command{Code: 34, Opaque: 2, ExtFields: map[string]string{}}, nil, true},
		{"length below 4", []byte{0, 0, 0, 3, 0, 0, 0}, nil, errFrameTooSmall, false},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xff}, nil, errFrameTooSmall, false},
		{"huge length", []byte{0x7f, 0xff, 0xff, 0xff}, nil, errFrameTooLarge, false},
		{"truncated payload", clientFrame[:20], nil, io.ErrUnexpectedEOF, false},
		{"header longer than frame", frame(0, nil, nil)[:4:4], nil, nil, false},
		{"bad json", frame(0, []byte(`{"code":`), nil), nil, nil, false},
		{"numeric ext value", frame(0, []byte(`{"code":10,"extFields":{"queueId":1}}`), nil), nil, nil, false},
		{"unknown serialize type", frame(7, []byte(`{}`), nil), nil, nil, false},
		{"truncated binary header", frame(1, binaryHeader(105, 7, "r", nil)[:9], nil), nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readFrame(bytes.NewReader(tc.in), DefaultMaxFrame)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("readFrame error = %v", err)
				}
				if diff := cmp.Diff(tc.want, folded(got), cmp.AllowUnexported(command{})); diff != "" {
					t.Errorf("readFrame (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("readFrame = %+v, want an error", got)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("readFrame error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestEncodeFrameRoundTrip(t *testing.T) {
	in := &command{Code: 0, Language: "JAVA", Version: 317, Opaque: 42, Flag: flagResponse, Remark: "ok",
		ExtFields: map[string]string{"queueOffset": "7", "msgId": "7F000001"}, Body: []byte{1, 2, 3}}
	got, err := readFrame(bytes.NewReader(encodeFrame(in)), DefaultMaxFrame)
	if err != nil {
		t.Fatalf("readFrame(encodeFrame) error = %v", err)
	}
	if diff := cmp.Diff(in, folded(got), cmp.AllowUnexported(command{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// folded returns a copy of cmd with all its ext fields in ExtFields (the
// form the tests compare).
func folded(cmd *command) *command {
	c := *cmd
	c.ExtFields, c.extPairs = cmd.extMap(), nil
	return &c
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(clientFrame[4:])
	f.Add(frame(1, binaryHeader(105, 7, "r", map[string]string{"topic": "T"}), []byte("body"))[4:])
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{1, 0, 0, 30, 0, 1})
	f.Add([]byte{0, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := decodeFrame(data)
		if err != nil {
			return
		}
		// A decoded command must re-encode and decode to the same header.
		again, err := readFrame(bytes.NewReader(encodeFrame(cmd)), DefaultMaxFrame)
		if err != nil {
			t.Fatalf("re-decode of %+v: %v", cmd, err)
		}
		if again.Code != cmd.Code || again.Opaque != cmd.Opaque || !bytes.Equal(again.Body, cmd.Body) {
			t.Fatalf("round trip changed %+v into %+v", cmd, again)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	rec := func(body, props string) []byte {
		size := 20 + len(body) + 2 + len(props)
		b := binary.BigEndian.AppendUint32(nil, uint32(size))
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		b = append(b, body...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(props)))
		return append(b, props...)
	}
	f.Add(append(rec("a", "TAGS\x01x\x02"), rec("bb", "")...))
	f.Add(rec("a", "")[:10])
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeBatch(data) // must not panic
	})
}

// dial opens a raw connection to the embedded broker.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return nc
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	srv := Start(t)

	t.Run("unknown code answers 3 and the connection stays usable", func(t *testing.T) {
		nc := dial(t, srv.BrokerAddr())
		nc.Write(encodeFrame(&command{Code: 9999, Opaque: 5, Language: "GO"}))
		resp, err := readFrame(nc, DefaultMaxFrame)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if resp.Code != codeRequestNotSupported || resp.Opaque != 5 || resp.Flag&flagResponse == 0 || !strings.Contains(resp.Remark, "9999") {
			t.Fatalf("response = %+v, want code 3 for opaque 5 naming 9999", resp)
		}
		nc.Write(encodeFrame(&command{Code: 30, Opaque: 6, Language: "GO", ExtFields: map[string]string{"topic": "TBW102", "queueId": "0"}}))
		if resp, err := readFrame(nc, DefaultMaxFrame); err != nil || resp.Opaque != 6 || resp.ext("offset") != "0" {
			t.Fatalf("follow-up GET_MAX_OFFSET = %+v, %v", resp, err)
		}
	})
	closes := []struct {
		name string
		in   []byte
	}{
		{"huge length", []byte{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0}},
		{"negative length", []byte{0x80, 0, 0, 0}},
		{"bad header", frame(0, []byte(`not json`), nil)},
		{"header length beyond frame", []byte{0, 0, 0, 8, 0, 0xff, 0xff, 0xff, 1, 2, 3, 4}},
	}
	for _, tc := range closes {
		t.Run(tc.name+" closes the connection", func(t *testing.T) {
			nc := dial(t, srv.BrokerAddr())
			nc.Write(tc.in)
			var buf [1]byte
			if n, err := nc.Read(buf[:]); err == nil {
				t.Fatalf("read %d bytes, want the connection closed", n)
			}
		})
	}
	t.Run("truncated frame then close leaves the broker serving", func(t *testing.T) {
		nc := dial(t, srv.BrokerAddr())
		nc.Write(clientFrame[:len(clientFrame)-3])
		nc.Close()
		if !routeExists(srv.NameSrvAddr(), "TBW102") {
			t.Fatal("route lookup failed after a truncated frame")
		}
	})
	t.Run("malformed bodies answer errors", func(t *testing.T) {
		nc := dial(t, srv.BrokerAddr())
		for i, code := range []int16{34, 41, 42, 320} {
			nc.Write(encodeFrame(&command{Code: code, Opaque: int32(100 + i), Language: "GO", Body: []byte("{garbage"),
				ExtFields: map[string]string{"b": "T", "e": "0"}}))
			resp, err := readFrame(nc, DefaultMaxFrame)
			if err != nil {
				t.Fatalf("code %d: read: %v", code, err)
			}
			if resp.Code == codeSuccess {
				t.Errorf("code %d with a garbage body answered 0, want an error code", code)
			}
		}
	})
}

// TestUnreadResponsesStayBounded: a peer that sends requests but never reads
// the answers must not make the broker queue them without bound.
func TestUnreadResponsesStayBounded(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	srv.CreateTopic("T", 1)
	srv.Latency(time.Microsecond) // every request on its own goroutine, the case that queues
	nc := dial(t, srv.BrokerAddr())
	req := encodeFrame(&command{Code: 30, Language: "GO", Version: 317, ExtFields: map[string]string{"topic": "T", "queueId": "0"}})
	chunk := bytes.Repeat(req, 1000)
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for range 300 { // 300k requests, far more than the socket buffers hold
		if _, err := nc.Write(chunk); err != nil {
			break // the broker stopped reading: backpressure reached the peer
		}
	}
	srv.mu.Lock()
	var conns []*conn
	for c := range srv.conns {
		conns = append(conns, c)
	}
	srv.mu.Unlock()
	for _, c := range conns {
		c.wmu.Lock()
		pending := len(c.pending)
		c.wmu.Unlock()
		// 8 MiB: the 4 MiB bound plus one small frame per waiting writer,
		// a fixed number so the test does not move with the constant.
		if limit := 8 << 20; pending > limit {
			t.Errorf("%d bytes of responses queued for a peer that does not read, want ≤ %d", pending, limit)
		}
	}
}
