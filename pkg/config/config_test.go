package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var known = []string{"order.apply", "order.timeout"}

func valid() RocketMQ {
	return RocketMQ{
		NameSrvAddr: "127.0.0.1:9876",
		ConsumerGroups: []ConsumerGroup{{
			GroupID:   "GID-order",
			Consumers: []Consumer{{Topic: "ORDER", Tag: "created || paid", Handler: "order.apply"}},
		}},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(r *RocketMQ)
		want   []string // substrings, one per expected problem
	}{
		{"valid", func(r *RocketMQ) {}, nil},
		{"two name servers", func(r *RocketMQ) { r.NameSrvAddr = "10.0.0.1:9876; 10.0.0.2:9876" }, nil},
		{"empty nameSrvAddr", func(r *RocketMQ) { r.NameSrvAddr = " ; " }, []string{"rocketmq.nameSrvAddr: empty"}},
		{"hostname nameSrvAddr", func(r *RocketMQ) { r.NameSrvAddr = "localhost:9876" },
			[]string{`rocketmq.nameSrvAddr: "localhost:9876" is not ip:port`}},
		{"missing port", func(r *RocketMQ) { r.NameSrvAddr = "127.0.0.1" },
			[]string{`rocketmq.nameSrvAddr: "127.0.0.1" is not ip:port`}},
		{"unknown handler", func(r *RocketMQ) { r.ConsumerGroups[0].Consumers[0].Handler = "x" },
			[]string{`rocketmq.consumerGroups[0].consumers[0].handler: unknown handler "x" (known: order.apply, order.timeout)`}},
		{"bad model", func(r *RocketMQ) { r.ConsumerGroups[0].Model = "fanout" },
			[]string{`rocketmq.consumerGroups[0].model: "fanout" is not clustering or broadcasting`}},
		{"orderly broadcasting", func(r *RocketMQ) {
			r.ConsumerGroups[0].Model = ModelBroadcasting
			r.ConsumerGroups[0].Orderly = true
		}, []string{"rocketmq.consumerGroups[0].orderly:"}},
		{"empty group and topic", func(r *RocketMQ) {
			r.ConsumerGroups[0].GroupID = ""
			r.ConsumerGroups[0].Consumers[0].Topic = ""
		}, []string{"rocketmq.consumerGroups[0].groupId: empty", "rocketmq.consumerGroups[0].consumers[0].topic: empty"}},
		{"duplicate group", func(r *RocketMQ) { r.ConsumerGroups = append(r.ConsumerGroups, r.ConsumerGroups[0]) },
			[]string{`rocketmq.consumerGroups[1].groupId: duplicate group "GID-order"`}},
		{"secret without access key", func(r *RocketMQ) { r.SecretKey = "s" }, []string{"rocketmq.accessKey:"}},
		{"every problem at once", func(r *RocketMQ) {
			r.NameSrvAddr = ""
			r.ConsumerGroups[0].Model = "x"
			r.ConsumerGroups[0].Consumers = append(r.ConsumerGroups[0].Consumers, Consumer{Topic: "SOLDOUT", Handler: "nope"})
		}, []string{"rocketmq.nameSrvAddr: empty", "rocketmq.consumerGroups[0].model:", `rocketmq.consumerGroups[0].consumers[1].handler: unknown handler "nope"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := valid()
			r.ConsumerGroups = append([]ConsumerGroup(nil), r.ConsumerGroups...)
			r.ConsumerGroups[0].Consumers = append([]Consumer(nil), r.ConsumerGroups[0].Consumers...)
			tc.modify(&r)
			err := r.Validate(known)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("Validate() reported %d problems %q, want %d", len(lines), lines, len(tc.want))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNameServers(t *testing.T) {
	t.Parallel()
	got := RocketMQ{NameSrvAddr: " 10.0.0.1:9876;;10.0.0.2:9876 "}.NameServers()
	if diff := cmp.Diff([]string{"10.0.0.1:9876", "10.0.0.2:9876"}, got); diff != "" {
		t.Errorf("NameServers() mismatch (-want +got):\n%s", diff)
	}
}

type fileConfig struct {
	HTTPAddr string   `yaml:"httpAddr"`
	RocketMQ RocketMQ `yaml:"rocketmq"`
}

func TestLoadYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		want    fileConfig
		wantErr string // the whole message after the directory; "" = success
	}{
		{"full", "httpAddr: :8080\nrocketmq:\n  nameSrvAddr: 127.0.0.1:9876\n  consumerGroups:\n    - groupId: G\n      orderly: true\n      consumers:\n        - {topic: T, tag: a, handler: h}\n",
			fileConfig{HTTPAddr: ":8080", RocketMQ: RocketMQ{NameSrvAddr: "127.0.0.1:9876", ConsumerGroups: []ConsumerGroup{{GroupID: "G", Orderly: true, Consumers: []Consumer{{"T", "a", "h"}}}}}}, ""},
		{"empty file keeps defaults", "", fileConfig{HTTPAddr: ":9999"}, ""},
		{"unknown top-level key", "httpAdr: :8080\n", fileConfig{}, `c.yaml: line 1: unknown key "httpAdr"`},
		{"unknown nested key", "rocketmq:\n  nameServer: 1.2.3.4:9876\n", fileConfig{}, `c.yaml: line 2: unknown key "rocketmq.nameServer"`},
		{"unknown key in consumer", "rocketmq:\n  consumerGroups:\n    - groupId: G\n      consumers:\n        - {topic: T}\n        - {topic: U, handlr: h}\n", fileConfig{},
			`c.yaml: line 6: unknown key "rocketmq.consumerGroups[0].consumers[1].handlr"`},
		{"every unknown key, one line each", "httpAdr: a\nrocketmq:\n  nameServer: b\nport: 1\n", fileConfig{},
			`c.yaml: line 1: unknown key "httpAdr"` + "\n" + `c.yaml: line 3: unknown key "rocketmq.nameServer"` + "\n" + `c.yaml: line 4: unknown key "port"`},
		{"wrong type", "rocketmq:\n  consumerGroups:\n    - orderly: maybe\n", fileConfig{}, "c.yaml: line 3: cannot unmarshal !!str `maybe` into bool"},
		{"syntax error", "httpAddr: a\n  b: c\n", fileConfig{}, "c.yaml: line 2: mapping values are not allowed in this context"},
		{"two documents", "httpAddr: a\n---\nhttpAddr: b\n", fileConfig{}, "c.yaml: more than one YAML document"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			got := fileConfig{HTTPAddr: ":9999"}
			err := LoadYAML(path, &got)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("LoadYAML() = nil error, want %q", tc.wantErr)
				}
				got := strings.ReplaceAll(err.Error(), filepath.Dir(path)+string(filepath.Separator), "")
				if got != tc.wantErr {
					t.Fatalf("LoadYAML() error =\n%s\nwant\n%s", got, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadYAML() error = %v", err)
			}
			if tc.name == "full" {
				tc.want.HTTPAddr = ":8080"
			} else {
				tc.want.HTTPAddr = ":9999"
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("LoadYAML() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if err := LoadYAML(filepath.Join(t.TempDir(), "missing.yaml"), &fileConfig{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadYAML(missing) error = %v, want os.ErrNotExist", err)
	}
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"S": "text", "I": "42", "F": "2.5", "D": "1m30s", "B": "true",
		"BAD_I": "12x", "BAD_F": "fast", "BAD_D": "10", "BAD_B": "yes please",
		"EMPTY":            "",
		"ROCKETMQ_NAMESRV": "10.0.0.1:9876", "ROCKETMQ_ACCESS_KEY": "ak", "ROCKETMQ_SECRET_KEY": "sk",
	}
	o := NewOverridesFrom(env)
	var (
		s       = "default"
		empty   = "kept"
		i, badI = 1, 7
		f, badF = 1.0, 3.0
		d, badD = time.Second, time.Second
		b, badB bool
		unset   = 5
		r       RocketMQ
	)
	o.String("S", &s)
	o.String("EMPTY", &empty)
	o.Int("I", &i)
	o.Int("UNSET", &unset)
	o.Float("F", &f)
	o.Duration("D", &d)
	o.Bool("B", &b)
	o.Int("BAD_I", &badI)
	o.Float("BAD_F", &badF)
	o.Duration("BAD_D", &badD)
	o.Bool("BAD_B", &badB)
	r.ApplyEnv(o)

	if s != "text" || empty != "kept" || i != 42 || unset != 5 || f != 2.5 || d != 90*time.Second || !b {
		t.Errorf("good overrides: s=%q empty=%q i=%d unset=%d f=%v d=%v b=%v", s, empty, i, unset, f, d, b)
	}
	if badI != 7 || badF != 3.0 || badD != time.Second || badB {
		t.Errorf("bad values changed their targets: %d %v %v %v", badI, badF, badD, badB)
	}
	want := RocketMQ{NameSrvAddr: "10.0.0.1:9876", AccessKey: "ak", SecretKey: "sk"}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("ApplyEnv mismatch (-want +got):\n%s", diff)
	}
	err := o.Err()
	if err == nil {
		t.Fatal("Err() = nil, want the four bad values")
	}
	for _, w := range []string{`BAD_I: "12x" is not an integer`, `BAD_F: "fast" is not a number`, `BAD_D: "10" is not a duration`, `BAD_B: "yes please" is not a boolean`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Err() = %q, want it to contain %q", err, w)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 4 {
		t.Errorf("Err() has %d lines, want 4", n)
	}
}

func TestLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	const secret, access = "s3cr3t-value", "AK-visible-nowhere"
	r := valid()
	r.AccessKey, r.SecretKey = access, secret
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "rocketmq", r)
	out := buf.String()
	for _, s := range []string{secret, access} {
		if strings.Contains(out, s) {
			t.Errorf("log line %s contains credential %q", out, s)
		}
	}
	for _, s := range []string{`"accessKey":"***"`, `"secretKey":"***"`, `"nameSrvAddr":"127.0.0.1:9876"`, "GID-order"} {
		if !strings.Contains(out, s) {
			t.Errorf("log line %s lacks %s", out, s)
		}
	}
	buf.Reset()
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "rocketmq", valid())
	if !strings.Contains(buf.String(), `"secretKey":""`) {
		t.Errorf("empty secret logged as %s, want \"\"", buf.String())
	}
}

func TestJSONUsesYAMLKeysAndMasksSecrets(t *testing.T) {
	t.Parallel()
	const secret, access = "s3cr3t-value", "AK-visible-nowhere"
	r := valid()
	r.AccessKey, r.SecretKey = access, secret
	for _, v := range []any{r, &r, struct{ R RocketMQ }{r}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		for _, s := range []string{secret, access} {
			if strings.Contains(string(b), s) {
				t.Errorf("json.Marshal(%T) = %s, contains credential %q", v, b, s)
			}
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"accessKey":"***","secretKey":"***","nameSrvAddr":"127.0.0.1:9876","consumerGroups":[` +
		`{"groupId":"GID-order","model":"","orderly":false,"consumers":[{"topic":"ORDER","tag":"created || paid","handler":"order.apply"}]}]}`
	if string(b) != want {
		t.Errorf("json.Marshal(RocketMQ) =\n%s\nwant\n%s", b, want)
	}
	b, err = json.Marshal(valid())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"accessKey":"","secretKey":""`) {
		t.Errorf("json.Marshal without credentials = %s, want empty accessKey and secretKey", b)
	}
}
