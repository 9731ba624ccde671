package boot

import (
	"context"
	"errors"
	"testing"

	"seckill/pkg/config"
	"seckill/pkg/mq"
)

func TestDispatch(t *testing.T) {
	t.Parallel()
	var got []string
	handler := func(name string) mq.Handler {
		return func(_ context.Context, m mq.Message) error { got = append(got, name+" "+m.Topic); return nil }
	}
	handlers := map[string]mq.Handler{"a": handler("a"), "b": handler("b")}
	one := dispatch(config.ConsumerGroup{GroupID: "G1", Consumers: []config.Consumer{{Topic: "T", Handler: "a"}, {Topic: "U", Handler: "a"}}}, handlers)
	two := dispatch(config.ConsumerGroup{GroupID: "G2", Consumers: []config.Consumer{{Topic: "T", Handler: "a"}, {Topic: "U", Handler: "b"}}}, handlers)
	ctx := t.Context()
	for _, call := range []struct {
		h     mq.Handler
		topic string
	}{{one, "T"}, {one, "%RETRY%G1"}, {two, "T"}, {two, "U"}} {
		if err := call.h(ctx, mq.Message{Topic: call.topic}); err != nil {
			t.Errorf("handle topic %s: %v", call.topic, err)
		}
	}
	want := []string{"a T", "a %RETRY%G1", "a T", "b U"}
	if len(got) != len(want) {
		t.Fatalf("handled %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d handled %q, want %q", i, got[i], want[i])
		}
	}
	if err := two(ctx, mq.Message{Topic: "V"}); !errors.Is(err, mq.ErrPermanent) {
		t.Errorf("two handlers, unknown topic: error = %v, want mq.ErrPermanent", err)
	}
}
