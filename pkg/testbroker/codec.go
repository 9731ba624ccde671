package testbroker

// Behavior: the remoting frame codec, independent of broker logic.
//
// A frame is: int32 BE L (= 4 + H + B, excluding itself) | int32 BE typeAndLen
// (byte0 = serialize type 0 JSON / 1 ROCKETMQ binary, bytes1..3 = H) | H header
// bytes | B body bytes. client-go always sends JSON and decodes both; the broker
// decodes both and always answers JSON. extFields values are JSON strings (a
// number there makes client-go drop the whole response).
//
// Decoding never panics and never allocates more than the declared frame
// length, which readFrame caps at maxFrame before reading the payload.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

const (
	serializeJSON     = 0
	serializeRocketMQ = 1

	// flagResponse is bit0 of flag: the command is a response. (Bit1 marks
	// oneway requests in Java; client-go never sets it, so every request is
	// answered and client-go drops answers to its oneway calls.)
	flagResponse = 1

	// DefaultMaxFrame bounds one frame (header + body). Java's default is 16 MiB.
	DefaultMaxFrame = 16 << 20
)

// command is one remoting command (request or response).
type command struct {
	Code      int16             `json:"code"`
	Language  string            `json:"language"`
	Version   int16             `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int32             `json:"flag"`
	Remark    string            `json:"remark"`
	ExtFields map[string]string `json:"extFields"`
	Body      []byte            `json:"-"`
	// extPairs holds ext fields as key, value, key, value… without a map:
	// what the JSON fast path decodes and what setExt adds to a response (a
	// map per request and response was the broker's largest allocation).
	// A later pair wins, as in a JSON object; pairs win over ExtFields.
	extPairs []string
}

// jsonCommand mirrors command for decoding: language may be a string or a
// number depending on the peer, so it is decoded leniently.
type jsonCommand struct {
	Code      int16             `json:"code"`
	Language  json.RawMessage   `json:"language"`
	Version   int16             `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int32             `json:"flag"`
	Remark    *string           `json:"remark"`
	ExtFields map[string]string `json:"extFields"`
}

var (
	errFrameTooLarge = errors.New("frame too large")
	errFrameTooSmall = errors.New("frame too small")
)

func (c *command) isResponse() bool { return c.Flag&flagResponse != 0 }

func (c *command) ext(key string) string {
	v, _ := c.extValue(key)
	return v
}

// extValue looks key up in extPairs, then ExtFields.
func (c *command) extValue(key string) (string, bool) {
	for i := len(c.extPairs) - 2; i >= 0; i -= 2 {
		if c.extPairs[i] == key {
			return c.extPairs[i+1], true
		}
	}
	v, ok := c.ExtFields[key]
	return v, ok
}

// setExt adds an ext field (to a command being built, before it is encoded).
func (c *command) setExt(key, value string) {
	if c.extPairs == nil {
		c.extPairs = make([]string, 0, 12)
	}
	c.extPairs = append(c.extPairs, key, value)
}

// extMap returns every ext field in one map (for logs and tests).
func (c *command) extMap() map[string]string {
	m := make(map[string]string, len(c.ExtFields)+len(c.extPairs)/2)
	for k, v := range c.ExtFields {
		m[k] = v
	}
	for i := 0; i+1 < len(c.extPairs); i += 2 {
		m[c.extPairs[i]] = c.extPairs[i+1]
	}
	return m
}

// readFrame reads one length-prefixed frame from r and decodes it. It returns
// errFrameTooLarge without reading the payload when L exceeds maxFrame, so a
// hostile length never causes a large allocation.
func readFrame(r io.Reader, maxFrame int) (*command, error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, err
	}
	l := int64(int32(binary.BigEndian.Uint32(lenBuf[:])))
	if l < 4 {
		return nil, fmt.Errorf("length %d: %w", l, errFrameTooSmall)
	}
	if l > int64(maxFrame) {
		return nil, fmt.Errorf("length %d > %d: %w", l, maxFrame, errFrameTooLarge)
	}
	buf := make([]byte, l)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read frame of %d bytes: %w", l, err)
	}
	return decodeFrame(buf)
}

// decodeFrame decodes the bytes after the 4-byte length word: typeAndLen,
// header and body. The returned body aliases data.
func decodeFrame(data []byte) (*command, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%d bytes: %w", len(data), errFrameTooSmall)
	}
	typeAndLen := binary.BigEndian.Uint32(data[:4])
	kind := byte(typeAndLen >> 24)
	h := int(typeAndLen & 0xFFFFFF)
	if h > len(data)-4 {
		return nil, fmt.Errorf("header length %d exceeds frame payload %d", h, len(data)-4)
	}
	header := data[4 : 4+h]
	var (
		cmd *command
		err error
	)
	switch kind {
	case serializeJSON:
		cmd, err = decodeJSONHeader(header)
	case serializeRocketMQ:
		cmd, err = decodeBinaryHeader(header)
	default:
		err = fmt.Errorf("unknown serialize type %d", kind)
	}
	if err != nil {
		return nil, err
	}
	if body := data[4+h:]; len(body) > 0 {
		cmd.Body = body
	}
	return cmd, nil
}

func decodeJSONHeader(b []byte) (*command, error) {
	if cmd, ok := parseJSONHeaderFast(b); ok {
		return cmd, nil
	}
	return decodeJSONHeaderSlow(b)
}

// decodeJSONHeaderSlow is encoding/json, for whatever the fast path
// declines (codec_json.go).
func decodeJSONHeaderSlow(b []byte) (*command, error) {
	var jc jsonCommand
	if err := json.Unmarshal(b, &jc); err != nil {
		return nil, fmt.Errorf("decode json header: %w", err)
	}
	cmd := &command{Code: jc.Code, Version: jc.Version, Opaque: jc.Opaque, Flag: jc.Flag, ExtFields: jc.ExtFields}
	if jc.Remark != nil {
		cmd.Remark = *jc.Remark
	}
	var lang string
	if json.Unmarshal(jc.Language, &lang) == nil {
		cmd.Language = lang
	}
	if cmd.ExtFields == nil {
		cmd.ExtFields = map[string]string{}
	}
	return cmd, nil
}

// decodeBinaryHeader decodes the ROCKETMQ serialize type:
// code i16 | lang u8 | version i16 | opaque i32 | flag i32 | remarkLen i32 |
// remark | extLen i32 | {keyLen i16, key, valLen i32, val}*.
func decodeBinaryHeader(b []byte) (*command, error) {
	r := byteReader{b: b}
	cmd := &command{ExtFields: map[string]string{}}
	cmd.Code = int16(r.u16())
	r.skip(1)
	cmd.Version = int16(r.u16())
	cmd.Opaque = int32(r.u32())
	cmd.Flag = int32(r.u32())
	cmd.Remark = string(r.bytes(int(int32(r.u32()))))
	extLen := int(int32(r.u32()))
	ext := r.bytes(extLen)
	if r.err != nil {
		return nil, fmt.Errorf("decode binary header: %w", r.err)
	}
	er := byteReader{b: ext}
	for er.err == nil && len(er.b) > 0 {
		k := er.bytes(int(int16(er.u16())))
		v := er.bytes(int(int32(er.u32())))
		if er.err == nil {
			cmd.ExtFields[string(k)] = string(v)
		}
	}
	if er.err != nil {
		return nil, fmt.Errorf("decode binary ext fields: %w", er.err)
	}
	return cmd, nil
}

// byteReader reads big-endian values and records the first short read
// instead of panicking.
type byteReader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (r *byteReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *byteReader) skip(n int) { r.bytes(n) }

func (r *byteReader) u16() uint16 {
	if v := r.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *byteReader) u32() uint32 {
	if v := r.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

// encodeFrame encodes cmd as a complete frame (with the length word) using the
// JSON serialize type.
func encodeFrame(cmd *command) []byte {
	return appendFrame(make([]byte, 0, 8+160+32*(len(cmd.ExtFields)+len(cmd.extPairs)/2)+len(cmd.Body)), cmd)
}

// appendFrame appends cmd's frame to dst.
func appendFrame(dst []byte, cmd *command) []byte {
	if cmd.Language == "" {
		cmd.Language = "JAVA"
	}
	start := len(dst)
	out := append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	out = appendJSONHeader(out, cmd)
	h := len(out) - start - 8
	binary.BigEndian.PutUint32(out[start:], uint32(4+h+len(cmd.Body)))
	binary.BigEndian.PutUint32(out[start+4:], uint32(h)&0xFFFFFF)
	return append(out, cmd.Body...)
}

// newResponse builds the response to req with the given code and remark.
func newResponse(req *command, code int16, remark string) *command {
	return &command{
		Code:    code,
		Version: req.Version,
		Opaque:  req.Opaque,
		Flag:    flagResponse,
		Remark:  remark,
	}
}
