package testbroker

// Behavior: a hand-written fast path for the JSON header, which every
// client-go request carries (encoding/json's reflection was the broker's
// largest cost per request).
//
// parseJSONHeaderFast accepts the shape client-go writes: one object with the
// exact keys code, language, version, opaque, flag, remark, extFields
// (integers, strings or null; extFields an object of strings), JSON string
// escapes included. Anything else (other keys, key case variants, floats,
// out-of-range numbers, invalid UTF-8, trailing data) returns ok=false and
// the caller falls back to encoding/json, so the fast path never decides
// differently from it (FuzzJSONHeaderFastPath checks that).
// appendJSONHeader writes the same JSON encoding/json would, minus HTML
// escaping: invalid UTF-8 becomes U+FFFD.
//
// Decoded ext fields go to command.extPairs, not a map, and every unescaped
// string is a slice of one copy of the header: a handler that keeps a value
// beyond the request (stored properties, topic names) clones it, so a stored
// message does not pin its whole request header.

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

type jsonScanner struct {
	b   []byte
	hs  string // b as one string: unescaped strings are slices of it (one allocation per header)
	i   int
	bad bool
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// eat consumes c after optional whitespace.
func (s *jsonScanner) eat(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *jsonScanner) null() bool {
	s.ws()
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// str reads a JSON string; s.bad on anything the fast path does not handle.
func (s *jsonScanner) str() string {
	if !s.eat('"') {
		s.bad = true
		return ""
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.hs[start:s.i]
			s.i++
			if !utf8.ValidString(v) {
				s.bad = true
			}
			return v
		case c == '\\':
			return s.escapedStr(start)
		case c < 0x20:
			s.bad = true
			return ""
		}
		s.i++
	}
	s.bad = true
	return ""
}

func (s *jsonScanner) escapedStr(start int) string {
	out := make([]byte, 0, s.i-start+16)
	out = append(out, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				s.bad = true
			}
			return string(out)
		case c < 0x20:
			s.bad = true
			return ""
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			break
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				s.bad = true
				return ""
			}
			if utf16.IsSurrogate(r) {
				// Only a well-formed pair is taken; encoding/json maps lone
				// surrogates to U+FFFD, which the slow path handles.
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					lo, ok := s.hex4()
					if r2 := utf16.DecodeRune(r, lo); ok && r2 != utf8.RuneError {
						out = utf8.AppendRune(out, r2)
						continue
					}
				}
				s.bad = true
				return ""
			}
			out = utf8.AppendRune(out, r)
		default:
			s.bad = true
			return ""
		}
	}
	s.bad = true
	return ""
}

func (s *jsonScanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 32)
	s.i += 4
	return rune(n), err == nil
}

// integer reads a JSON integer that fits bits into *dst; null leaves *dst
// as it is (as encoding/json does).
func (s *jsonScanner) integer(bits int, dst *int64) {
	if s.null() {
		return
	}
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	if n := s.i - digits; n == 0 || n > 1 && s.b[digits] == '0' {
		s.bad = true
		return
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.bad = true
		return
	}
	v, err := strconv.ParseInt(string(s.b[start:s.i]), 10, bits)
	if err != nil {
		s.bad = true
	}
	*dst = v
}

// parseJSONHeaderFast decodes client-go's header shape; ok=false means "use
// encoding/json".
func parseJSONHeaderFast(b []byte) (*command, bool) {
	s := &jsonScanner{b: b, hs: string(b)}
	cmd := &command{}
	var code, version, opaque, flag int64
	if !s.eat('{') {
		return nil, false
	}
	if !s.eat('}') {
		for {
			key := s.str()
			if s.bad || !s.eat(':') {
				return nil, false
			}
			switch key {
			case "code":
				s.integer(16, &code)
			case "version":
				s.integer(16, &version)
			case "opaque":
				s.integer(32, &opaque)
			case "flag":
				s.integer(32, &flag)
			case "language":
				cmd.Language = ""
				if !s.null() {
					cmd.Language = s.str()
				}
			case "remark":
				cmd.Remark = ""
				if !s.null() {
					cmd.Remark = s.str()
				}
			case "extFields":
				if s.null() {
					cmd.extPairs = nil
				} else {
					s.extFields(cmd)
				}
			default:
				return nil, false
			}
			if s.bad {
				return nil, false
			}
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				break
			}
			return nil, false
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, false
	}
	cmd.Code, cmd.Version, cmd.Opaque, cmd.Flag = int16(code), int16(version), int32(opaque), int32(flag)
	return cmd, true
}

func (s *jsonScanner) extFields(cmd *command) {
	if !s.eat('{') {
		s.bad = true
		return
	}
	if cmd.extPairs == nil {
		cmd.extPairs = make([]string, 0, 32)
	}
	if s.eat('}') {
		return
	}
	for !s.bad {
		k := s.str()
		if s.bad || !s.eat(':') {
			s.bad = true
			return
		}
		cmd.extPairs = append(cmd.extPairs, k, s.str())
		if s.eat(',') {
			continue
		}
		if !s.eat('}') {
			s.bad = true
		}
		return
	}
}

// appendJSONHeader appends cmd's header as JSON.
func appendJSONHeader(b []byte, cmd *command) []byte {
	b = append(b, `{"code":`...)
	b = strconv.AppendInt(b, int64(cmd.Code), 10)
	b = append(b, `,"language":`...)
	b = appendJSONString(b, cmd.Language)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(cmd.Version), 10)
	b = append(b, `,"opaque":`...)
	b = strconv.AppendInt(b, int64(cmd.Opaque), 10)
	b = append(b, `,"flag":`...)
	b = strconv.AppendInt(b, int64(cmd.Flag), 10)
	b = append(b, `,"remark":`...)
	b = appendJSONString(b, cmd.Remark)
	b = append(b, `,"extFields":{`...)
	first := true
	for k, v := range cmd.ExtFields {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	for i := 0; i+1 < len(cmd.extPairs); i += 2 {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, cmd.extPairs[i])
		b = append(b, ':')
		b = appendJSONString(b, cmd.extPairs[i+1])
	}
	return append(b, "}}"...)
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
