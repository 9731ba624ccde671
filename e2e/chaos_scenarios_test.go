package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"seckill/e2e/internal/stack"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// chaosScenarios lists the scenarios. The fast ones (also in `make test`)
// are 1 duplicate delivery, 4 order-service SIGKILL and 9 pay/timeout race.
func chaosScenarios() []chaosScenario {
	return []chaosScenario{
		{"1_duplicate_delivery", true, chaosDuplicate},
		{"2_dropped_offset_commits", false, chaosDroppedCommits},
		{"3_consumer_sigkill", false, chaosConsumerKill},
		{"4_order_sigkill", true, chaosOrderKill},
		{"5_broker_restart", false, chaosBrokerRestart},
		{"6_mysql_outage", false, chaosMySQLOutage},
		{"7_redis_lost", false, chaosRedisLost},
		{"8_poison_messages", false, chaosPoison},
		{"9_pay_timeout_race", true, chaosPayTimeoutRace},
		{"10_sigterm_each_service", false, chaosSigterm},
		{"11_log_secrets", false, chaosLogSecrets},
		{"12_broker_refusing_60s", false, chaosBrokerRefusing},
		{"13_redis_partial_loss", false, chaosRedisPartialLoss},
		{"14_sale_reset_under_load", false, chaosSaleResetUnderLoad},
	}
}

// needEmbedded skips scenarios that need the embedded broker's fault hooks.
func needEmbedded(t *testing.T, s *stack.Stack) {
	t.Helper()
	if !s.Embedded {
		t.Skip("needs the embedded broker's fault hooks (ROCKETMQ_NAMESRV is set)")
	}
}

// Scenario 1: the broker stores every message sent during the load three
// times (same msgId, new offsets: a producer retry after a lost ack), so
// every consumer sees each event three times → one effect each.
func chaosDuplicate(t *testing.T, bin *stack.Binaries) {
	r := startChaos(t, bin, chaosConfig{stock: 150, buyers: 180, spread: 4 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 2})
	needEmbedded(t, r.s)
	ctx := t.Context()
	three := 3
	if err := r.s.SetFaults(ctx, stack.Faults{Duplicate: &three}); err != nil {
		t.Fatal(err)
	}
	r.load(ctx)
	r.verify(ctx)
	// Evidence the fault was on: GID-payment handled created and closed
	// three times each (two of three as no-op duplicates).
	n := len(r.accepted)
	got, err := r.s.Payment.Metric(ctx, "payment_messages_consumed_total", map[string]string{"group": "GID-payment", "result": "ok"})
	if err != nil {
		t.Fatal(err)
	}
	dups := 0
	for _, line := range r.s.Payment.Proc.Grep("event already applied") {
		if strings.Contains(line, `"tag":"created"`) {
			dups++
		}
	}
	if got < float64(3*n) || dups < 2*n {
		t.Errorf("GID-payment consumed %.0f messages, %d duplicate created events, want ≥ %d and ≥ %d (3 deliveries of %d orders)", got, dups, 3*n, 2*n, n)
	}
	t.Logf("duplicates: GID-payment consumed %.0f messages for %d orders; %d created events recognised as already applied", got, n, dups)
	r.noErrorLines()
}

// Scenario 2: GID-inventory's offset commits are dropped for most of the
// load, then inventory-service is restarted: it re-reads everything since the
// last kept offset → the redelivered batch has no effect.
func chaosDroppedCommits(t *testing.T, bin *stack.Binaries) {
	r := startChaos(t, bin, chaosConfig{stock: 150, buyers: 180, spread: 6 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 3})
	needEmbedded(t, r.s)
	ctx := t.Context()
	r.goLoad(ctx)
	r.waitAccepted(30)
	if err := r.s.SetFaults(ctx, stack.Faults{DropCommits: map[string]bool{"GID-inventory": true}}); err != nil {
		t.Fatal(err)
	}
	atDrop := int(r.nAccepted.Load())
	<-r.acceptedSig
	n := len(r.accepted)
	eventually(t, 60*time.Second, "inventory deducted every order", func() error {
		var d int
		if err := r.s.Inventory.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM stock_movements WHERE kind = 'deduct'").Scan(&d); err != nil {
			return err
		}
		if d != n {
			return fmt.Errorf("%d deductions, want %d", d, n)
		}
		return nil
	})
	lag, err := r.s.Lag(ctx, "GID-inventory")
	if err != nil {
		t.Fatal(err)
	}
	if lag < int64(n-atDrop) {
		t.Fatalf("GID-inventory lag %d with commits dropped after %d of %d orders, want ≥ %d", lag, atDrop, n, n-atDrop)
	}
	d, err := r.s.Inventory.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.s.SetFaults(ctx, stack.Faults{DropCommits: map[string]bool{"GID-inventory": false}}); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Inventory.Restart(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Every created event of an order accepted after the drop was consumed
	// with its commit dropped: the restarted consumer gets it again and finds
	// it applied (inventory_duplicates_total).
	var dups float64
	eventually(t, 60*time.Second, "the uncommitted batch redelivered as duplicates", func() error {
		dups, err = r.s.Inventory.Metric(ctx, "inventory_duplicates_total", nil)
		if err != nil {
			return err
		}
		if dups < float64(n-atDrop) {
			return fmt.Errorf("restarted inventory-service saw %.0f duplicates, want ≥ %d", dups, n-atDrop)
		}
		return nil
	})
	t.Logf("commits dropped after %d of %d orders: broker lag %d at restart (stopped in %s); the restarted inventory-service got %.0f already-applied messages again",
		atDrop, n, lag, d.Round(time.Millisecond), dups)
	r.verify(ctx)
	r.noErrorLines()
}

// Scenario 3: inventory-service (a pure consumer) is SIGKILLed a third into
// the load and restarted 2 s later → nothing lost, nothing doubled.
func chaosConsumerKill(t *testing.T, bin *stack.Binaries) {
	r := startChaos(t, bin, chaosConfig{stock: 150, buyers: 180, spread: 6 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 3})
	ctx := t.Context()
	r.goLoad(ctx)
	r.waitAccepted(50)
	r.s.Inventory.Kill9()
	t.Logf("inventory-service SIGKILLed after %d accepted orders", r.nAccepted.Load())
	time.Sleep(2 * time.Second)
	if err := r.s.Inventory.Restart(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-r.acceptedSig
	r.verify(ctx)
	r.errorLines()
}

// Scenario 4: order-service is SIGKILLed while it answers 202s (a third
// into the load), so reservations it made may not be in the broker yet; it
// is restarted 1 s later. Clients retry their failed requests with the same
// Idempotency-Key. Every 202 order must reach every database and no reserved
// unit may leak (Redis available = DB available, outbox empty).
func chaosOrderKill(t *testing.T, bin *stack.Binaries) {
	r := startChaos(t, bin, chaosConfig{stock: 150, buyers: 180, spread: 4 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 2})
	ctx := t.Context()
	r.goLoad(ctx)
	r.waitAccepted(60)
	// The broker refuses sends for a moment, so the outbox holds accepted
	// orders that are in no queue yet when the process dies.
	if r.s.Embedded {
		on := true
		if err := r.s.SetFaults(ctx, stack.Faults{RefuseSends: &on}); err != nil {
			t.Fatal(err)
		}
		r.waitAccepted(90)
	}
	backlog, _ := r.s.Redis.XLen(ctx, events.OutboxStream).Result()
	r.s.Order.Kill9()
	t.Logf("order-service SIGKILLed after %d accepted orders (outbox stream had %d entries not yet in the broker)", r.nAccepted.Load(), backlog)
	if r.s.Embedded {
		off := false
		if err := r.s.SetFaults(ctx, stack.Faults{RefuseSends: &off}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	if err := r.s.Order.Restart(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-r.acceptedSig
	if r.orderRetry == 0 {
		t.Logf("note: no order request needed a retry")
	}
	r.verify(ctx)
	r.errorLines()
}

// Scenario 9 (the deadline race): every order is paid at a random moment
// within 2 s of its 202, while its pay window is 1 s (PAY_TIMEOUT_LEVEL 1):
// hundreds of pays land around their deadline (± 1 s), racing the pay
// timeout. payment-service decides each one against the deadline fixed at
// acceptance: every pay answered 200 ends paid and shipped, every one
// answered 409 order_closed ends closed with the payment expired, nothing is
// refunded, and stock comes back exactly once per closed order.
func chaosPayTimeoutRace(t *testing.T, bin *stack.Binaries) {
	r := startChaos(t, bin, chaosConfig{stock: 300, buyers: 300, spread: 3 * time.Second, payEach: 1, payJitter: 2 * time.Second},
		stack.Options{PayTimeoutLevel: 1})
	ctx := t.Context()
	r.load(ctx)
	final := r.verify(ctx) // every 200 shipped, nothing paid but not kept, payments of closed orders expired
	shipped := 0
	for _, st := range final {
		if st == "shipped" {
			shipped++
		}
	}
	if shipped == 0 || r.payClosed == 0 {
		t.Errorf("no race: %d paid in time, %d pays refused after the deadline; want both outcomes", shipped, r.payClosed)
	}
	t.Logf("race over %d orders: %d paid before their deadline (shipped), %d pays after it refused (409, closed)",
		len(final), shipped, r.payClosed)
	r.noErrorLines()
}

// Scenario 10: each service in turn gets SIGTERM under load: it must exit
// with code 0 within 10 s (stack.StopTimeout); it is restarted at once and
// nothing is lost.
func chaosSigterm(t *testing.T, bin *stack.Binaries) {
	r := startChaos(t, bin, chaosConfig{stock: 200, buyers: 240, spread: 16 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 3})
	ctx := t.Context()
	r.goLoad(ctx)
	var took []string
	for _, svc := range []*stack.Service{r.s.Inventory, r.s.Payment, r.s.Logistics, r.s.Order} {
		time.Sleep(3 * time.Second)
		d, err := svc.Stop()
		if err != nil {
			t.Errorf("SIGTERM %s under load: %v", svc.Name, err)
		}
		took = append(took, fmt.Sprintf("%s %s", svc.Name, d.Round(time.Millisecond)))
		if err := svc.Restart(60 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("SIGTERM → exit 0 took: %s", strings.Join(took, ", "))
	<-r.acceptedSig
	r.verify(ctx)
	r.errorLines()
}

// poison is one bad message sent straight to the ORDER topic.
type poison struct {
	name, tag string
	body      []byte
	msgID     string
}

// Scenario 8: poison messages on ORDER between two waves of good orders.
// What the system promises (pkg/mq): a message a handler can never apply
// (undecodable, unknown version, invalid) is classified permanent, logged at
// ERROR with its msg_id and body, counted as
// <svc>_messages_consumed_total{result="permanent"}, redelivered
// mq.PoisonRetries times and then moved to %DLQ%<group> (result="dlq"). A tag
// no group subscribes to is filtered out by the broker and client. Either way
// the queue keeps flowing. Delays run at a tenth of real time, so the retry
// schedule (10 s, 30 s, 1 min) takes 10 s.
func chaosPoison(t *testing.T, bin *stack.Binaries) {
	r := startChaos(t, bin, chaosConfig{stock: 100, buyers: 80, spread: 3 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 5, DelayScale: 0.1})
	ctx := t.Context()
	r.loadRange(ctx, 0, 40)

	valid := func(orderID string, version int) []byte {
		b, _ := json.Marshal(events.OrderCreated{Version: version, EventID: events.EventID(orderID, events.TagCreated),
			OrderID: orderID, UserID: "poison-user", ProductID: r.product, Quantity: 1, AmountCents: salePrice, CreatedAt: time.Now().UTC()})
		return b
	}
	big := fmt.Sprintf(`{"version":1,"event_id":"poison-big:created","order_id":"poison-big","pad":%q}`, strings.Repeat("x", 2<<20))
	ps := []*poison{
		{name: "bad JSON", tag: events.TagCreated, body: []byte(`{"version":1,"order_id":`)},
		{name: "unknown tag", tag: "bogus", body: valid("poison-tag", events.Version)},
		{name: "oversized body (2 MiB)", tag: events.TagCreated, body: []byte(big)},
		{name: "wrong event version", tag: events.TagCreated, body: valid("poison-version", 99)},
	}
	p, err := mq.NewProducer(ctx, mq.Config{NameServers: []string{r.s.NameSrv}}, "GID-chaos-poison", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	delivered := map[string]bool{} // msg IDs every created-subscribed group must dead-letter
	for _, m := range ps {
		res, err := p.SendSync(ctx, mq.Outgoing{Topic: events.TopicOrder, Tag: m.tag, Keys: []string{"poison"}, Body: m.body})
		if err != nil {
			t.Fatalf("send poison %s: %v", m.name, err)
		}
		m.msgID = res.MsgID
		if m.tag == events.TagCreated {
			delivered[m.msgID] = true
		}
	}
	r.load2(ctx, 40, 80)
	r.verify(ctx)

	groups := []struct {
		svc   *stack.Service
		group string
	}{{r.s.Order, "GID-order"}, {r.s.Inventory, "GID-inventory"}, {r.s.Payment, "GID-payment"}}
	// The retries run on the broker's schedule, behind the good orders.
	deadline := time.Now().Add(90 * time.Second)
	for _, g := range groups {
		for {
			n, err := g.svc.Metric(ctx, g.svc.Name+"_messages_consumed_total", map[string]string{"group": g.group, "result": "dlq"})
			if err != nil {
				t.Fatal(err)
			}
			if int(n) >= len(delivered) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Every group subscribed to created: PoisonRetries+1 ERROR lines per
	// poison (the last one result="dlq"), no transient retry.
	for _, m := range ps {
		for _, g := range groups {
			lines := g.svc.Proc.Grep(`"msg_id":"` + m.msgID + `"`)
			perm, dead, retry := 0, 0, 0
			for _, l := range lines {
				switch {
				case !strings.Contains(l, `"level":"ERROR"`):
				case strings.Contains(l, `"result":"permanent"`):
					perm++
				case strings.Contains(l, `"result":"dlq"`):
					dead++
				}
				if strings.Contains(l, `"result":"retry"`) || strings.Contains(l, `"result":"panic"`) {
					retry++
				}
			}
			wantPerm, wantDead := mq.PoisonRetries, 1
			if !delivered[m.msgID] {
				wantPerm, wantDead = 0, 0 // filtered by tag: never delivered
			}
			if perm != wantPerm || dead != wantDead || retry != 0 {
				t.Errorf("%s (%s) in %s: %d permanent, %d dlq, %d transient ERROR lines, want %d, %d and 0; lines:\n%s",
					m.name, m.msgID, g.group, perm, dead, retry, wantPerm, wantDead, strings.Join(lines, "\n"))
			}
		}
	}
	for _, g := range groups {
		for result, want := range map[string]int{"permanent": mq.PoisonRetries * len(delivered), "dlq": len(delivered)} {
			n, err := g.svc.Metric(ctx, g.svc.Name+"_messages_consumed_total", map[string]string{"group": g.group, "result": result})
			if err != nil {
				t.Fatal(err)
			}
			if int(n) != want {
				t.Errorf("%s_messages_consumed_total{group=%q,result=%q} = %.0f, want %d", g.svc.Name, g.group, result, n, want)
			}
		}
		if r.s.Embedded {
			dlq, err := r.s.DLQ(ctx, g.group)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, d := range dlq {
				got[d.MsgID] = true
			}
			if len(dlq) != len(delivered) || !maps.Equal(got, delivered) {
				t.Errorf("DLQ of %s = %+v, want the %d poison messages %v", g.group, dlq, len(delivered), slices.Collect(maps.Keys(delivered)))
			}
		}
	}
	// The only ERROR lines are the poison messages.
	ids := map[string]bool{}
	for _, m := range ps {
		ids[m.msgID] = true
	}
	for svc, lines := range r.s.ErrorLines() {
		for _, l := range lines {
			var f struct {
				MsgID string `json:"msg_id"`
			}
			_ = json.Unmarshal([]byte(l), &f)
			if !ids[f.MsgID] {
				t.Errorf("%s logged an ERROR that is not a poison message: %.400s", svc, l)
			}
		}
	}
	t.Logf("poison: %d messages (%s) → per group subscribed to created: %d permanent deliveries each, then the DLQ; unknown tag filtered; 40 orders after them processed",
		len(ps), names(ps), mq.PoisonRetries)
}

func names(ps []*poison) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.name)
	}
	return strings.Join(out, ", ")
}

// load2 runs a second wave of buyers from..to-1 and marks the load over.
func (r *chaosRun) load2(ctx context.Context, from, to int) {
	r.loadRange(ctx, from, to)
	close(r.acceptedSig)
}
