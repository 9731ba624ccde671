package e2e

import (
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"seckill/e2e/internal/stack"
)

// TestChaosStoreReset (issue 13 item 0) does what a newcomer does to start
// over without dropping the databases: a sale, stop everything, delete the
// broker's store (`rm -rf .run/broker`), start everything again, a second
// sale. The new store hands out the broker's offset IDs (broker address +
// log offset) a second time; a consumer that deduplicated on them took some
// new messages for ones it had applied in the first sale and acked them with
// no effect: accepted orders never persisted, payments left pending for
// closed orders. Every order of the second sale must be persisted and
// settled, and the verifier must find nothing wrong. Sales of 3,000 orders
// make the second store reach offsets the first sale's claims hold (with
// 1,000 a sale the stores' layouts rarely lined up). Slow (~100 s with
// E2E_BIN_DIR): runs with CHAOS=1 (make chaos). E2E_REDIS_DB picks the
// Redis database (default the chaos scenarios').
func TestChaosStoreReset(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system; skipped under -short")
	}
	if os.Getenv("CHAOS") == "" {
		t.Skip("slow chaos scenario: runs with CHAOS=1 (make chaos)")
	}
	if os.Getenv("ROCKETMQ_NAMESRV") != "" {
		t.Skip("resets the embedded broker's store")
	}
	redisDB := chaosRedisDB
	if v := os.Getenv("E2E_REDIS_DB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("E2E_REDIS_DB=%q: %v", v, err)
		}
		redisDB = n
	}
	bin := stack.Build(t)
	cfg := chaosConfig{stock: 3000, buyers: 3200, spread: 3 * time.Second, payEach: 2}
	r1 := startChaos(t, bin, cfg, stack.Options{PayTimeoutLevel: 2, ConsumeRate: 1000,
		BrokerDataDir: t.TempDir(), RedisDB: redisDB})
	ctx := t.Context()
	r1.load(ctx)
	r1.verify(ctx)
	t.Logf("first sale: %d orders accepted and settled", len(r1.accepted))

	s := r1.s
	for _, svc := range s.Services() {
		if _, err := svc.Stop(); err != nil {
			t.Fatalf("stop %s: %v", svc.Name, err)
		}
	}
	if err := s.ResetBrokerStore(); err != nil {
		t.Fatal(err)
	}
	for _, svc := range s.Services() {
		if err := svc.Restart(60 * time.Second); err != nil {
			t.Fatalf("restart %s: %v", svc.Name, err)
		}
	}
	t.Log("services stopped, broker store deleted, everything started again; databases and Redis kept")

	// The second sale: another product, other buyers (an Idempotency-Key is
	// per user, not per product).
	r2 := &chaosRun{t: t, s: s, cfg: cfg, product: "chaos-" + randHex(),
		accepted: map[string]string{}, paid: map[string]bool{}, acceptedSig: make(chan struct{}),
		secrets: r1.secrets}
	r2.createSale(ctx)
	r2.loadRange(ctx, 10000, 10000+cfg.buyers)
	close(r2.acceptedSig)
	if t.Failed() {
		t.FailNow()
	}
	ids := make([]string, 0, len(r2.accepted))
	for id := range r2.accepted {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	final := r2.finals(ctx, ids)
	shipped := 0
	for _, id := range ids {
		if final[id] == "shipped" {
			shipped++
		}
	}
	// The databases still hold the first sale, so the checks are the
	// verifier's, which look at one sale of one product.
	paid := make([]string, 0, len(r2.paid))
	for id := range r2.paid {
		paid = append(paid, id)
	}
	r2.verifierPasses(ctx, 90*time.Second, ids, paid)
	groupsDrained(ctx, t, s)
	r2.checkSecrets()
	t.Logf("second sale after the store reset: %d orders accepted, %d paid, %d shipped, %d closed; every one persisted and settled",
		len(ids), len(r2.paid), shipped, len(ids)-shipped)
}
