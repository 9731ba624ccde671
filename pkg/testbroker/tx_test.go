package testbroker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// txListener commits "commit", rolls back "rollback" and leaves "unknown"
// open; the broker's check then commits it.
type txListener struct{ checks atomic.Int32 }

func (l *txListener) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	switch string(m.Body) {
	case "commit":
		return primitive.CommitMessageState
	case "rollback":
		return primitive.RollbackMessageState
	}
	return primitive.UnkonwnState
}

func (l *txListener) CheckLocalTransaction(m *primitive.MessageExt) primitive.LocalTransactionState {
	l.checks.Add(1)
	return primitive.CommitMessageState
}

func TestTransactionalMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) {
		o.TxCheckTimeout = 200 * time.Millisecond
		o.TxCheckInterval = 200 * time.Millisecond
	})
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 1)
	l := &txListener{}
	p, err := rocketmq.NewTransactionProducer(l,
		producer.WithNameServer([]string{e.ns}),
		producer.WithGroupName(unique(t, "txpg")),
		producer.WithInstanceName(unique(t, "txpi")))
	if err != nil {
		t.Fatalf("NewTransactionProducer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { shutdownClient(p) })
	for _, body := range []string{"rollback", "unknown", "commit"} {
		res, err := p.SendMessageInTransaction(context.Background(), primitive.NewMessage(topicName, []byte(body)))
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("SendMessageInTransaction(%s) = %+v, %v", body, res, err)
		}
	}
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "*")
	waitFor(t, waitLong, "commit and checked-then-committed messages", func() bool { return s.len() >= 2 })
	got := bodySet(s.all())
	if got["commit"] != 1 || got["unknown"] != 1 || got["rollback"] != 0 {
		t.Errorf("consumed %s, want commit×1 unknown×1 and no rollback", joinSorted(got))
	}
	if l.checks.Load() == 0 {
		t.Error("CheckLocalTransaction never called, want a check for the unknown transaction")
	}
	for _, m := range s.all() {
		if int(m.SysFlag)&primitive.TransactionRollbackType != primitive.TransactionCommitType {
			t.Errorf("delivered %s sysFlag = %#x, want the commit type 0x8", m.Body, m.SysFlag)
		}
		if string(m.Body) == "unknown" && m.GetProperty("TRANSACTION_CHECK_TIMES") == "" {
			t.Errorf("checked message %s has no TRANSACTION_CHECK_TIMES", m.Body)
		}
	}
}
