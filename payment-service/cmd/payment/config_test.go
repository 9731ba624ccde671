package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seckill/pkg/config"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name      string
		env       map[string]string
		wantLines []string // one error line per bad key, in order
	}{
		{name: "defaults"},
		{name: "env overrides", env: map[string]string{
			"HTTP_ADDR": "127.0.0.1:9001", "CONSUME_RATE": "50", "ROCKETMQ_NAMESRV": "10.0.0.1:9876;10.0.0.2:9876",
		}},
		{name: "every bad key reported", env: map[string]string{
			"HTTP_ADDR": "8081", "MYSQL_DSN": "no slash", "CONSUME_RATE": "0", "ROCKETMQ_NAMESRV": " ",
		}, wantLines: []string{"httpAddr: ", "mysqlDSN: ", "consumeRate: ", "rocketmq.nameSrvAddr: empty"}},
		{name: "consume rate not a number", env: map[string]string{"CONSUME_RATE": "fast"},
			wantLines: []string{"CONSUME_RATE: "}},
		{name: "bad variable and bad value together", env: map[string]string{"CONSUME_RATE": "fast", "HTTP_ADDR": "x"},
			wantLines: []string{"CONSUME_RATE: ", "httpAddr: "}},
		{name: "host name for the name server", env: map[string]string{"ROCKETMQ_NAMESRV": "localhost:9876"},
			wantLines: []string{`rocketmq.nameSrvAddr: "localhost:9876" is not ip:port`}},
		{name: "unknown handler in the file", env: map[string]string{"CONFIG_FILE": file("handler.yaml", `
rocketmq:
  consumerGroups:
    - groupId: GID-payment
      consumers:
        - topic: ORDER
          tag: created || closed
          handler: payment.reserve
`)}, wantLines: []string{`rocketmq.consumerGroups[0].consumers[0].handler: unknown handler "payment.reserve" (known: payment.apply, payment.timeout)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(config.NewOverridesFrom(tc.env))
			if len(tc.wantLines) == 0 {
				if err != nil {
					t.Fatalf("loadConfig(%v) error = %v, want nil", tc.env, err)
				}
				if got := cfg.RocketMQ.ConsumerGroups[0].Consumers[0].Handler; got != handlerApply {
					t.Errorf("default handler = %q, want %q", got, handlerApply)
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

func TestLoadConfigUnknownKeyInFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(path, []byte("httpAdr: :1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(config.NewOverridesFrom(map[string]string{"CONFIG_FILE": path}))
	if err == nil || !strings.Contains(err.Error(), "httpAdr") {
		t.Errorf("loadConfig(file with httpAdr) error = %v, want one naming httpAdr", err)
	}
}

func TestConfigLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(config.NewOverridesFrom(map[string]string{
		"MYSQL_DSN":           "app:hunter2@tcp(127.0.0.1:3306)/seckill_payment",
		"ROCKETMQ_ACCESS_KEY": "AK-visible-nowhere",
		"ROCKETMQ_SECRET_KEY": "SK-visible-nowhere",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", cfg)
	got := buf.String()
	if !strings.Contains(got, "seckill_payment") {
		t.Fatalf("logged config = %s, want the DSN with its password masked", got)
	}
	for _, secret := range []string{"hunter2", "AK-visible-nowhere", "SK-visible-nowhere"} {
		if strings.Contains(got, secret) {
			t.Errorf("LogValue() = %s, contains secret %q", got, secret)
		}
	}
}
