package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"seckill/pkg/config"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		check    func(Config) bool
		wantErrs []string // each must be in the error
	}{
		{"defaults", nil, nil, func(c Config) bool {
			return c.HTTPAddr == "127.0.0.1:8090" && c.OrderURL == "http://127.0.0.1:8080" && c.NameSrv == "127.0.0.1:9876" &&
				c.ConsumeRate == 200 && c.Interval == time.Second && c.Products == 10
		}, nil},
		{"environment", map[string]string{"HTTP_ADDR": ":9000", "INVENTORY_URL": "http://inv:8082", "ROCKETMQ_NAMESRV": "10.0.0.1:9876;10.0.0.2:9876",
			"CONSUME_RATE": "50", "CONSOLE_INTERVAL": "2s", "CONSOLE_PRODUCTS": "3"}, nil, func(c Config) bool {
			return c.HTTPAddr == ":9000" && c.InventoryURL == "http://inv:8082" && len(c.NameServers()) == 2 &&
				c.ConsumeRate == 50 && c.Interval == 2*time.Second && c.Products == 3
		}, nil},
		{"a flag wins over its variable", map[string]string{"ORDER_URL": "http://a:1"}, []string{"-order-url", "http://b:2", "-consume-rate", "75"},
			func(c Config) bool { return c.OrderURL == "http://b:2" && c.ConsumeRate == 75 }, nil},
		{"every problem at once", map[string]string{"CONSUME_RATE": "fast", "PAYMENT_URL": "ftp://x", "ROCKETMQ_ACCESS_KEY": "ak"},
			[]string{"-namesrv", "ns.local:9876", "-products", "0", "-http-addr", "8090"}, nil,
			[]string{"CONSUME_RATE", "PAYMENT_URL", "ROCKETMQ_NAMESRV", "ROCKETMQ_ACCESS_KEY", "CONSOLE_PRODUCTS", "HTTP_ADDR"}},
		{"unknown flag", nil, []string{"-listen", ":1"}, nil, []string{"-listen"}},
		{"stray argument", nil, []string{"extra"}, nil, []string{"unexpected arguments"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(config.NewOverridesFrom(tc.env), tc.args, io.Discard)
			if tc.wantErrs == nil {
				if err != nil {
					t.Fatalf("loadConfig() error = %v, want nil", err)
				}
				if !tc.check(cfg) {
					t.Errorf("loadConfig() = %+v, not what %q wants", cfg, tc.name)
				}
				return
			}
			if err == nil {
				t.Fatalf("loadConfig() = %+v, want an error naming %v", cfg, tc.wantErrs)
			}
			for _, w := range tc.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("loadConfig() error = %q, want it to name %s", err, w)
				}
			}
		})
	}
}

func TestConfigLogMasksSecrets(t *testing.T) {
	cfg, err := loadConfig(config.NewOverridesFrom(map[string]string{"ROCKETMQ_ACCESS_KEY": "ak-123", "ROCKETMQ_SECRET_KEY": "sk-456"}), nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", cfg)
	if out := buf.String(); strings.Contains(out, "ak-123") || strings.Contains(out, "sk-456") {
		t.Errorf("config log %s holds a credential", out)
	}
	var line struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line.Config["interval"] != "1s" || line.Config["nameSrv"] != "127.0.0.1:9876" {
		t.Errorf("config log %s: want interval 1s and nameSrv (err %v)", buf.String(), err)
	}
}

func TestPageURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8090": "http://127.0.0.1:8090/",
		"[::]:8090":      "http://127.0.0.1:8090/",
		"0.0.0.0:8090":   "http://127.0.0.1:8090/",
		"10.1.2.3:80":    "http://10.1.2.3:80/",
	} {
		if got := pageURL(addr); got != want {
			t.Errorf("pageURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
