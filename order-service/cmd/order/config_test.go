package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"seckill/pkg/boot"
	"seckill/pkg/config"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badHandler := write("bad_handler.yaml", `
rocketmq:
  nameSrvAddr: 127.0.0.1:9876
  consumerGroups:
    - groupId: GID-order
      consumers:
        - topic: ORDER
          tag: created
          handler: order.nope
`)
	unknownKey := write("unknown_key.yaml", "payTimeoutLvl: 3\n")
	example := filepath.Join("..", "..", "..", "deploy", "config", "order.yaml")

	tests := []struct {
		name     string
		env      map[string]string
		wantErrs []string // each must appear in the error; none = valid
	}{
		{"defaults", map[string]string{}, nil},
		{"level 0", map[string]string{"PAY_TIMEOUT_LEVEL": "0"}, []string{"payTimeoutLevel"}},
		{"level 19", map[string]string{"PAY_TIMEOUT_LEVEL": "19"}, []string{"payTimeoutLevel"}},
		{"level not a number", map[string]string{"PAY_TIMEOUT_LEVEL": "five"}, []string{"PAY_TIMEOUT_LEVEL"}},
		{"level 18", map[string]string{"PAY_TIMEOUT_LEVEL": "18"}, nil},
		{"send mode batch", map[string]string{"ORDER_SEND_MODE": "batch"}, nil},
		{"send mode sync", map[string]string{"ORDER_SEND_MODE": "sync"}, nil},
		{"bad send mode", map[string]string{"ORDER_SEND_MODE": "async"}, []string{"orderSendMode"}},
		{"outbox bound off", map[string]string{"OUTBOX_MAX_AGE": "0s"}, nil},
		{"negative outbox bound", map[string]string{"OUTBOX_MAX_AGE": "-1s"}, []string{"outboxMaxAge"}},
		{"outbox bound not a duration", map[string]string{"OUTBOX_MAX_AGE": "30"}, []string{"OUTBOX_MAX_AGE"}},
		{"bad rate", map[string]string{"CONSUME_RATE": "fast"}, []string{"CONSUME_RATE"}},
		{"zero rate", map[string]string{"CONSUME_RATE": "0"}, []string{"consumeRate"}},
		{"bad dsn", map[string]string{"MYSQL_DSN": "not a dsn"}, []string{"mysqlDSN"}},
		{"dsn without db", map[string]string{"MYSQL_DSN": "root@tcp(127.0.0.1:3306)/"}, []string{"mysqlDSN"}},
		{"empty name server", map[string]string{"CONFIG_FILE": write("empty_ns.yaml", "rocketmq:\n  nameSrvAddr: \"\"\n")}, []string{"rocketmq.nameSrvAddr"}},
		{"host name server", map[string]string{"ROCKETMQ_NAMESRV": "localhost:9876"}, []string{"rocketmq.nameSrvAddr"}},
		{"bad http addr", map[string]string{"HTTP_ADDR": "8080"}, []string{"httpAddr"}},
		{"bad redis db", map[string]string{"REDIS_DB": "16"}, []string{"redisDB"}},
		{"every problem at once", map[string]string{"PAY_TIMEOUT_LEVEL": "0", "ORDER_SEND_MODE": "x", "REDIS_ADDR": "nope"},
			[]string{"payTimeoutLevel", "orderSendMode", "redisAddr"}},
		{"unknown handler", map[string]string{"CONFIG_FILE": badHandler}, []string{"rocketmq.consumerGroups[0].consumers[0].handler"}},
		{"unknown yaml key", map[string]string{"CONFIG_FILE": unknownKey}, []string{"payTimeoutLvl"}},
		{"example file", map[string]string{"CONFIG_FILE": example}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(config.NewOverridesFrom(tc.env))
			if len(tc.wantErrs) == 0 && err != nil {
				t.Fatalf("loadConfig() error = %v, want nil", err)
			}
			for _, want := range tc.wantErrs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("loadConfig() error = %v, want it to name %q", err, want)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(config.NewOverridesFrom(map[string]string{"PAY_TIMEOUT_LEVEL": "2"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8080" || cfg.ConsumeRate != 200 || cfg.PayTimeoutLevel != 2 || cfg.OrderSendMode != "outbox" {
		t.Errorf("config = %+v, want :8080, rate 200, level 2 (env), outbox", cfg)
	}
	var groups []string
	for _, g := range cfg.RocketMQ.ConsumerGroups {
		groups = append(groups, g.GroupID+" "+g.Model+" "+g.Consumers[0].Topic+" "+g.Consumers[0].Tag+" "+g.Consumers[0].Handler)
	}
	want := []string{
		"GID-order  ORDER created || paid || deducted || closed || shipped order.apply",
		"GID-order-soldout broadcasting SOLDOUT * order.soldout",
		"GID-order-stats  ORDER_STATS * order.stats",
	}
	if diff := cmp.Diff(want, groups); diff != "" {
		t.Errorf("default consumer groups (-want +got):\n%s", diff)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(config.NewOverridesFrom(map[string]string{
		"ROCKETMQ_ACCESS_KEY": "AK-visible", "ROCKETMQ_SECRET_KEY": "SK-hidden-value",
		"MYSQL_DSN": "root:pw-hidden@tcp(127.0.0.1:3306)/seckill_order",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	if err := boot.CheckConfig(log, func() (Config, error) { return cfg, nil }); err != nil { // -check-config
		t.Fatal(err)
	}
	log.Info("starting", "config", cfg)
	for _, secret := range []string{"AK-visible", "SK-hidden-value", "pw-hidden"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("printed config contains %q:\n%s", secret, out.String())
		}
	}
}
