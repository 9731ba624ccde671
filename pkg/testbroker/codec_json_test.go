package testbroker

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzJSONHeaderFastPath checks the hand-written header decoder never
// disagrees with encoding/json, and that the encoder's output decodes back.
func FuzzJSONHeaderFastPath(f *testing.F) {
	f.Add([]byte(`{"code":10,"language":"GO","version":317,"opaque":5,"flag":0,"remark":"","extFields":{"topic":"T","properties":"TAGS\u0001a\u0002"}}`))
	f.Add([]byte(`{"code":-1,"extFields":null,"remark":null,"language":null}`))
	f.Add([]byte(` { "code" : 1 , "remark" : "\"\\\/\b\f\n\r\t\ud83d\ude00é" } `))
	f.Add([]byte(`{"code":1,"code":null,"Code":2}`))
	f.Add([]byte(`{"opaque":99999999999}`))
	f.Add([]byte(`{"extFields":{"a":"1"},"extFields":{"b":"2"}}`))
	f.Add([]byte(`{"remark":"\ud800x"}`))
	f.Add([]byte("{\"remark\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseJSONHeaderFast(b)
		if ok {
			slow, err := decodeJSONHeaderSlow(b)
			if err != nil {
				t.Fatalf("fast path accepted %q, encoding/json: %v", b, err)
			}
			if diff := cmp.Diff(slow, folded(fast), cmp.AllowUnexported(command{})); diff != "" {
				t.Fatalf("decode %q (-encoding/json +fast):\n%s", b, diff)
			}
		}
		cmd, err := decodeJSONHeaderSlow(b)
		if err != nil {
			return
		}
		if cmd.Language == "" {
			cmd.Language = "JAVA"
		}
		enc := appendJSONHeader(nil, cmd)
		var back command
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("encoding of %+v is not JSON: %v\n%s", cmd, err, enc)
		}
		valid := utf8.ValidString(cmd.Remark) && utf8.ValidString(cmd.Language)
		for k, v := range cmd.ExtFields {
			valid = valid && utf8.ValidString(k) && utf8.ValidString(v)
		}
		if valid {
			if back.ExtFields == nil {
				back.ExtFields = map[string]string{}
			}
			if diff := cmp.Diff(cmd, &back, cmp.AllowUnexported(command{})); diff != "" {
				t.Fatalf("encode/decode (-want +got):\n%s", diff)
			}
		}
	})
}
