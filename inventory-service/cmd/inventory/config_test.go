package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
    - groupId: GID-inventory
      consumers:
        - topic: ORDER
          tag: created
          handler: inventory.nope
`)
	unknownKey := write("unknown_key.yaml", "httpAdr: :1\n")
	fileRate := write("rate.yaml", "consumeRate: 50\nredisDB: 3\nstockCheckInterval: 500ms\nstockRebuildGrace: 3s\n")

	tests := []struct {
		name     string
		env      map[string]string
		wantErrs []string // each must appear in the error; none = valid
	}{
		{"defaults with a token", map[string]string{"ADMIN_TOKEN": "t"}, nil},
		{"missing token", map[string]string{}, []string{"adminToken"}},
		{"bad rate", map[string]string{"ADMIN_TOKEN": "t", "CONSUME_RATE": "fast"}, []string{"CONSUME_RATE"}},
		{"zero rate", map[string]string{"ADMIN_TOKEN": "t", "CONSUME_RATE": "0"}, []string{"consumeRate"}},
		{"bad dsn", map[string]string{"ADMIN_TOKEN": "t", "MYSQL_DSN": "not a dsn"}, []string{"mysqlDSN"}},
		{"dsn without db", map[string]string{"ADMIN_TOKEN": "t", "MYSQL_DSN": "root@tcp(127.0.0.1:3306)/"}, []string{"mysqlDSN"}},
		{"host name server", map[string]string{"ADMIN_TOKEN": "t", "ROCKETMQ_NAMESRV": "localhost:9876"}, []string{"rocketmq.nameSrvAddr"}},
		{"bad http addr", map[string]string{"ADMIN_TOKEN": "t", "HTTP_ADDR": "8082"}, []string{"httpAddr"}},
		{"bad redis db", map[string]string{"ADMIN_TOKEN": "t", "REDIS_DB": "x"}, []string{"REDIS_DB"}},
		{"every problem at once", map[string]string{"CONSUME_RATE": "-1", "REDIS_ADDR": "nope"}, []string{"adminToken", "consumeRate", "redisAddr"}},
		{"unknown handler", map[string]string{"ADMIN_TOKEN": "t", "CONFIG_FILE": badHandler}, []string{"rocketmq.consumerGroups[0].consumers[0].handler"}},
		{"unknown yaml key", map[string]string{"ADMIN_TOKEN": "t", "CONFIG_FILE": unknownKey}, []string{"httpAdr"}},
		{"file values", map[string]string{"ADMIN_TOKEN": "t", "CONFIG_FILE": fileRate}, nil},
		{"rebuild timings", map[string]string{"ADMIN_TOKEN": "t", "STOCK_CHECK_INTERVAL": "250ms", "STOCK_REBUILD_GRACE": "2s"}, nil},
		{"bad check interval", map[string]string{"ADMIN_TOKEN": "t", "STOCK_CHECK_INTERVAL": "soon"}, []string{"STOCK_CHECK_INTERVAL"}},
		{"check interval too short", map[string]string{"ADMIN_TOKEN": "t", "STOCK_CHECK_INTERVAL": "1ms"}, []string{"stockCheckInterval"}},
		{"no grace", map[string]string{"ADMIN_TOKEN": "t", "STOCK_REBUILD_GRACE": "0s"}, []string{"stockRebuildGrace"}},
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

func TestConfigDefaultsAndFile(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(config.NewOverridesFrom(map[string]string{"ADMIN_TOKEN": "t"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8082" || cfg.ConsumeRate != 200 || len(cfg.RocketMQ.ConsumerGroups) != 2 ||
		cfg.StockCheckInterval != time.Second || cfg.StockRebuildGrace != 10*time.Second {
		t.Errorf("defaults = %+v, want :8082, rate 200, two groups, stock check every 1s, rebuild grace 10s", cfg)
	}
	durations := filepath.Join(t.TempDir(), "durations.yaml")
	if err := os.WriteFile(durations, []byte("stockCheckInterval: 500ms\nstockRebuildGrace: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := loadConfig(config.NewOverridesFrom(map[string]string{"ADMIN_TOKEN": "t", "CONFIG_FILE": durations}))
	if err != nil || fromFile.StockCheckInterval != 500*time.Millisecond || fromFile.StockRebuildGrace != 3*time.Second {
		t.Errorf("loadConfig(%s) = interval %s grace %s (%v), want 500ms 3s", durations, fromFile.StockCheckInterval, fromFile.StockRebuildGrace, err)
	}
	g := cfg.RocketMQ.ConsumerGroups
	if g[0].GroupID != "GID-inventory" || g[0].Consumers[0].Tag != "created || closed" || g[0].Consumers[0].Handler != handlerReserve ||
		g[1].GroupID != "GID-inventory-ledger" || !g[1].Orderly || g[1].Consumers[0].Topic != "STOCK_LEDGER" || g[1].Consumers[0].Handler != handlerLedger {
		t.Errorf("default groups = %+v", g)
	}
	example := filepath.Join("..", "..", "..", "deploy", "config", "inventory.yaml")
	if _, err := os.Stat(example); err == nil {
		if _, err := loadConfig(config.NewOverridesFrom(map[string]string{"ADMIN_TOKEN": "t", "CONFIG_FILE": example})); err != nil {
			t.Errorf("loadConfig(%s) error = %v, want nil", example, err)
		}
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"ADMIN_TOKEN": "tok-123456", "ROCKETMQ_ACCESS_KEY": "ak-123456", "ROCKETMQ_SECRET_KEY": "sk-123456",
		"MYSQL_DSN": "inventory:pw-123456@tcp(127.0.0.1:3306)/seckill_inventory?parseTime=true",
	}
	cfg, err := loadConfig(config.NewOverridesFrom(env))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("starting", "config", cfg)
	if err := boot.CheckConfig(log, func() (Config, error) { return cfg, nil }); err != nil { // -check-config
		t.Fatal(err)
	}
	out := buf.String()
	for _, secret := range []string{"tok-123456", "ak-123456", "sk-123456", "pw-123456"} {
		if strings.Contains(out, secret) {
			t.Errorf("logged/printed config contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "seckill_inventory") || !strings.Contains(out, `"adminToken":"***"`) {
		t.Errorf("logged config lacks the DSN's database:\n%s", buf.String())
	}
}
