package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"seckill/pkg/config"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		env       map[string]string
		wantLines []string // one error line per bad key, in order
	}{
		{name: "defaults"},
		{name: "every bad key reported", env: map[string]string{
			"HTTP_ADDR": "localhost", "MYSQL_DSN": "root@tcp(127.0.0.1:3306)", "CONSUME_RATE": "-5", "ROCKETMQ_NAMESRV": "mq:9876",
		}, wantLines: []string{"httpAddr: ", "mysqlDSN: ", "consumeRate: ", `rocketmq.nameSrvAddr: "mq:9876" is not ip:port`}},
		{name: "credentials set together", env: map[string]string{"ROCKETMQ_ACCESS_KEY": "ak"},
			wantLines: []string{"rocketmq.accessKey: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(config.NewOverridesFrom(tc.env))
			if len(tc.wantLines) == 0 {
				if err != nil {
					t.Fatalf("loadConfig(%v) error = %v, want nil", tc.env, err)
				}
				if cfg.HTTPAddr != ":8083" || cfg.RocketMQ.ConsumerGroups[0].GroupID != "GID-logistics" {
					t.Errorf("defaults = %+v, want :8083 and GID-logistics", cfg)
				}
				return
			}
			if err == nil {
				t.Fatalf("loadConfig(%v) error = nil, want %d problems", tc.env, len(tc.wantLines))
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.wantLines) {
				t.Fatalf("loadConfig(%v) error lines = %q, want %d", tc.env, lines, len(tc.wantLines))
			}
			for i, want := range tc.wantLines {
				if !strings.Contains(lines[i], want) {
					t.Errorf("error line %d = %q, want it to contain %q", i, lines[i], want)
				}
			}
		})
	}
}

func TestConfigLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(config.NewOverridesFrom(map[string]string{
		"MYSQL_DSN":           "app:hunter2@tcp(127.0.0.1:3306)/seckill_logistics",
		"ROCKETMQ_ACCESS_KEY": "AK-visible-nowhere",
		"ROCKETMQ_SECRET_KEY": "SK-visible-nowhere",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", cfg)
	got := buf.String()
	if !strings.Contains(got, "seckill_logistics") {
		t.Fatalf("logged config = %s, want the DSN with its password masked", got)
	}
	for _, secret := range []string{"hunter2", "AK-visible-nowhere", "SK-visible-nowhere"} {
		if strings.Contains(got, secret) {
			t.Errorf("logged config = %s, contains secret %q", got, secret)
		}
	}
}
