package boot

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"seckill/pkg/config"
	"seckill/pkg/logging"
)

// testConfig is a service Config as the services write theirs.
type testConfig struct {
	Common `yaml:",inline"`
	Redis  `yaml:",inline"`
	Token  string `yaml:"token" json:"token"`
}

func (c testConfig) Validate() error {
	errs := append(c.Common.Check([]string{"t.apply"}), c.Redis.Check()...)
	if c.Token == "" {
		errs = append(errs, errors.New("token: empty"))
	}
	return errors.Join(errs...)
}

func (c testConfig) LogValue() slog.Value {
	type plain testConfig
	m := plain(c)
	m.Common = c.Common.Masked()
	m.Token = logging.Secret(c.Token).String()
	return slog.AnyValue(m)
}

func defaults() testConfig {
	return testConfig{
		Common: Common{
			HTTPAddr: ":8080", MySQLDSN: "root@tcp(127.0.0.1:3306)/t", ConsumeRate: 200,
			RocketMQ: config.RocketMQ{NameSrvAddr: "127.0.0.1:9876", ConsumerGroups: []config.ConsumerGroup{{
				GroupID: "GID-t", Consumers: []config.Consumer{{Topic: "T", Tag: "*", Handler: "t.apply"}},
			}}},
		},
		Redis: Redis{RedisAddr: "127.0.0.1:6379"},
		Token: "tok",
	}
}

func load(t *testing.T, file string, env map[string]string) (testConfig, error) {
	t.Helper()
	path := ""
	if file != "" {
		path = filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := defaults()
	o := config.NewOverridesFrom(env)
	err := Load(&cfg, path, o, func() {
		o.String("HTTP_ADDR", &cfg.HTTPAddr)
		o.Float("CONSUME_RATE", &cfg.ConsumeRate)
		o.Int("REDIS_DB", &cfg.RedisDB)
	})
	return cfg, err
}

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file string
		env        map[string]string
		wantLines  []string // one per problem, in order; none = valid
		wantGroups []string
	}{
		{name: "defaults", wantGroups: []string{"GID-t"}},
		{name: "file values, default groups kept", file: "consumeRate: 5\nredisDB: 3\ntoken: x\n", wantGroups: []string{"GID-t"}},
		{name: "file groups replace the defaults", file: `
rocketmq:
  consumerGroups:
    - groupId: GID-a
      consumers: [{topic: T, tag: "*", handler: t.apply}]
    - groupId: GID-b
      consumers: [{topic: U, tag: "*", handler: t.apply}]
`, wantGroups: []string{"GID-a", "GID-b"}},
		{name: "unknown key", file: "httpAdr: :1\n", wantLines: []string{`unknown key "httpAdr"`}},
		{name: "bad variables first, then bad values", env: map[string]string{"CONSUME_RATE": "fast", "HTTP_ADDR": "8080", "REDIS_DB": "16"},
			wantLines: []string{"CONSUME_RATE: ", "httpAddr: \"8080\" is not host:port", "redisDB: 16 out of 0..15"}},
		{name: "every shared key", file: "mysqlDSN: \"root@tcp(127.0.0.1:3306)/\"\nconsumeRate: 0\nredisAddr: nope\ntoken: \"\"\nrocketmq: {nameSrvAddr: \"localhost:9876\"}\n",
			wantLines: []string{"mysqlDSN: no database name", "consumeRate: 0 out of", `rocketmq.nameSrvAddr: "localhost:9876" is not ip:port`, "redisAddr: \"nope\" is not host:port", "token: empty"}},
		{name: "unknown handler", file: "rocketmq:\n  consumerGroups:\n    - {groupId: G, consumers: [{topic: T, tag: '*', handler: t.nope}]}\n",
			wantLines: []string{`rocketmq.consumerGroups[0].consumers[0].handler: unknown handler "t.nope" (known: t.apply)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := load(t, tc.file, tc.env)
			if len(tc.wantLines) == 0 {
				if err != nil {
					t.Fatalf("Load() error = %v, want nil", err)
				}
				var groups []string
				for _, g := range cfg.RocketMQ.ConsumerGroups {
					groups = append(groups, g.GroupID)
				}
				if diff := cmp.Diff(tc.wantGroups, groups); diff != "" {
					t.Errorf("consumer groups (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load() error = nil, want %q", tc.wantLines)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.wantLines) {
				t.Fatalf("Load() error lines = %q, want %d", lines, len(tc.wantLines))
			}
			for i, want := range tc.wantLines {
				if !strings.Contains(lines[i], want) {
					t.Errorf("error line %d = %q, want it to contain %q", i, lines[i], want)
				}
			}
		})
	}
}

func TestBadDSNNeverQuoted(t *testing.T) {
	t.Parallel()
	cfg := defaults()
	cfg.MySQLDSN = "root:pw-secret@tcp(127.0.0.1:3306"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "mysqlDSN: ") || strings.Contains(err.Error(), "pw-secret") {
		t.Errorf("Validate() error = %v, want one naming mysqlDSN without the password", err)
	}
}

func TestMaskDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ dsn, want string }{
		{"root@tcp(127.0.0.1:3306)/db?parseTime=true", "root@tcp(127.0.0.1:3306)/db?parseTime=true"},
		{"app:hunter2@tcp(127.0.0.1:3306)/db", "app:***@tcp(127.0.0.1:3306)/db"},
		{"app:hunter2@tcp(127.0.0.1:3306", "(unparsable)"},
	}
	for _, tc := range tests {
		if got := MaskDSN(tc.dsn); got != tc.want {
			t.Errorf("MaskDSN(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

func TestCheckConfigLogsMasked(t *testing.T) {
	t.Parallel()
	cfg := defaults()
	cfg.MySQLDSN = "app:pw-123456@tcp(127.0.0.1:3306)/seckill_t"
	cfg.Token = "tok-123456"
	cfg.RocketMQ.AccessKey, cfg.RocketMQ.SecretKey = "ak-123456", "sk-123456"
	var buf bytes.Buffer
	log := logging.NewWriter(&buf, "t", slog.LevelInfo)
	if err := CheckConfig(log, func() (testConfig, error) { return cfg, nil }); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Count(out, "\n") != 1 {
		t.Errorf("CheckConfig logged %q, want one line", out)
	}
	for _, want := range []string{`"msg":"config ok"`, `"mysqlDSN":"app:***@tcp(127.0.0.1:3306)/seckill_t"`, `"token":"***"`, `"accessKey":"***"`, `"redisDB":0`, `"consumeRate":200`} {
		if !strings.Contains(out, want) {
			t.Errorf("CheckConfig logged %s, want it to contain %s", out, want)
		}
	}
	for _, secret := range []string{"pw-123456", "tok-123456", "ak-123456", "sk-123456"} {
		if strings.Contains(out, secret) {
			t.Errorf("CheckConfig logged %s, contains the secret %q", out, secret)
		}
	}
	wantErr := errors.New("bad")
	if err := CheckConfig(log, func() (testConfig, error) { return testConfig{}, wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("CheckConfig(failing load) = %v, want %v", err, wantErr)
	}
}

func TestLogErrorsOneLinePerLeaf(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := logging.NewWriter(&buf, "t", slog.LevelInfo)
	err := errors.Join(errors.New("a: bad"), errors.Join(errors.New("b: bad"), errors.New("c: bad")))
	LogErrors(log, "t-service failed", err)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("LogErrors logged %d lines, want 3:\n%s", len(lines), buf.String())
	}
	for i, key := range []string{"a", "b", "c"} {
		if !strings.Contains(lines[i], `"err":"`+key+`: bad"`) || !strings.Contains(lines[i], `"level":"ERROR"`) {
			t.Errorf("line %d = %s, want an error line with err %q", i, lines[i], key+": bad")
		}
	}
	if got := Leaves(nil); got != nil {
		t.Errorf("Leaves(nil) = %v, want nil", got)
	}
}
