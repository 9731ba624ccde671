// Package config holds the configuration pieces every service shares: the
// rocketmq block of the YAML file, strict YAML loading, and environment
// overrides that collect every bad value instead of stopping at the first.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"seckill/pkg/logging"
)

// RocketMQ is the rocketmq block of a service's YAML file. Its JSON and
// slog forms use the YAML keys and mask the credentials (see MarshalJSON and
// LogValue).
type RocketMQ struct {
	AccessKey      string          `yaml:"accessKey" json:"accessKey"`
	SecretKey      string          `yaml:"secretKey" json:"secretKey"`
	NameSrvAddr    string          `yaml:"nameSrvAddr" json:"nameSrvAddr"` // ';'-separated ip:port list
	ConsumerGroups []ConsumerGroup `yaml:"consumerGroups" json:"consumerGroups"`
}

// ConsumerGroup is one consumer group of a service and what it subscribes to.
type ConsumerGroup struct {
	GroupID   string     `yaml:"groupId" json:"groupId"`
	Model     string     `yaml:"model" json:"model"` // "clustering" (default) | "broadcasting"
	Orderly   bool       `yaml:"orderly" json:"orderly"`
	Consumers []Consumer `yaml:"consumers" json:"consumers"`
}

// Consumer binds a topic and tag expression to a handler registered by name.
type Consumer struct {
	Topic   string `yaml:"topic" json:"topic"`
	Tag     string `yaml:"tag" json:"tag"`
	Handler string `yaml:"handler" json:"handler"`
}

// Message models accepted in ConsumerGroup.Model.
const (
	ModelClustering   = "clustering"
	ModelBroadcasting = "broadcasting"
)

// NameServers splits NameSrvAddr on ';', dropping blanks.
func (r RocketMQ) NameServers() []string {
	var out []string
	for _, s := range strings.Split(r.NameSrvAddr, ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Validate reports every problem of the block at once (errors.Join), each
// naming its key. knownHandlers are the handler names the service registers.
func (r RocketMQ) Validate(knownHandlers []string) error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rocketmq.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	servers := r.NameServers()
	if len(servers) == 0 {
		add("nameSrvAddr", "empty")
	}
	for _, s := range servers {
		// client-go rejects host names for the name server: ip:port only.
		if _, err := netip.ParseAddrPort(s); err != nil {
			add("nameSrvAddr", "%q is not ip:port", s)
		}
	}
	if (r.AccessKey == "") != (r.SecretKey == "") {
		add("accessKey", "accessKey and secretKey must be set together")
	}
	known := slices.Clone(knownHandlers)
	slices.Sort(known)
	groups := map[string]bool{}
	for i, g := range r.ConsumerGroups {
		gk := fmt.Sprintf("consumerGroups[%d]", i)
		switch {
		case g.GroupID == "":
			add(gk+".groupId", "empty")
		case groups[g.GroupID]:
			add(gk+".groupId", "duplicate group %q", g.GroupID)
		}
		groups[g.GroupID] = true
		switch g.Model {
		case "", ModelClustering:
		case ModelBroadcasting:
			if g.Orderly {
				add(gk+".orderly", "orderly consumption needs model clustering")
			}
		default:
			add(gk+".model", "%q is not %s or %s", g.Model, ModelClustering, ModelBroadcasting)
		}
		if len(g.Consumers) == 0 {
			add(gk+".consumers", "empty")
		}
		topics := map[string]bool{}
		for j, c := range g.Consumers {
			ck := fmt.Sprintf("%s.consumers[%d]", gk, j)
			switch {
			case c.Topic == "":
				add(ck+".topic", "empty")
			case topics[c.Topic]:
				// client-go keeps one tag expression per topic and group.
				add(ck+".topic", "topic %q subscribed twice in one group", c.Topic)
			}
			topics[c.Topic] = true
			if c.Handler == "" {
				add(ck+".handler", "empty (known: %s)", strings.Join(known, ", "))
			} else if !slices.Contains(known, c.Handler) {
				add(ck+".handler", "unknown handler %q (known: %s)", c.Handler, strings.Join(known, ", "))
			}
		}
	}
	return errors.Join(errs...)
}

// LogValue implements slog.LogValuer with the credentials masked.
func (r RocketMQ) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("accessKey", logging.Secret(r.AccessKey)),
		slog.Any("secretKey", logging.Secret(r.SecretKey)),
		slog.String("nameSrvAddr", r.NameSrvAddr),
		slog.Any("consumerGroups", r.ConsumerGroups),
	)
}

// MarshalJSON writes the block with the YAML keys and the credentials masked
// like LogValue ("***", or "" when unset), so a printed config never holds
// them. The output is for reading: decoding it back yields "***" keys.
func (r RocketMQ) MarshalJSON() ([]byte, error) {
	type plain RocketMQ // without this method
	m := plain(r)
	m.AccessKey = logging.Secret(r.AccessKey).String()
	m.SecretKey = logging.Secret(r.SecretKey).String()
	return json.Marshal(m)
}

// ApplyEnv overrides the block from ROCKETMQ_NAMESRV, ROCKETMQ_ACCESS_KEY and
// ROCKETMQ_SECRET_KEY.
func (r *RocketMQ) ApplyEnv(o *Overrides) {
	o.String("ROCKETMQ_NAMESRV", &r.NameSrvAddr)
	o.String("ROCKETMQ_ACCESS_KEY", &r.AccessKey)
	o.String("ROCKETMQ_SECRET_KEY", &r.SecretKey)
}

// LoadYAML decodes the file at path into dst strictly: an unknown key is an
// error naming it, and the file must hold exactly one document. An empty file
// leaves dst untouched. Errors have one line per problem, each starting with
// path and the line in the file:
//
//	config.yaml: line 3: unknown key "rocketmq.nameServer"
func LoadYAML(path string, dst any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	errs := decodeYAML(b, dst)
	for i, e := range errs {
		errs[i] = fmt.Errorf("%s: %w", path, e)
	}
	return errors.Join(errs...)
}

// DecodeYAML is LoadYAML for bytes already read (its lines start at "line N").
func DecodeYAML(b []byte, dst any) error {
	return errors.Join(decodeYAML(b, dst)...)
}

func decodeYAML(b []byte, dst any) []error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return []error{errors.New(strings.TrimPrefix(err.Error(), "yaml: "))}
		}
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, errors.New(rewordTypeError(b, msg)))
		}
		return errs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return []error{errors.New("more than one YAML document")}
	}
	return nil
}

// yaml.v3 reports an unknown key as "line N: field K not found in type T".
var unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type \S+$`)

// rewordTypeError turns yaml.v3's unknown-field message into
// `line N: unknown key "a.b[0].k"` (the key's path in the file when it can
// be found); other messages are kept.
func rewordTypeError(doc []byte, msg string) string {
	m := unknownField.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	key := m[2]
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) == nil {
		if p, ok := keyPath(&root, "", line, key); ok {
			key = p
		}
	}
	return fmt.Sprintf("line %d: unknown key %q", line, key)
}

// keyPath finds the mapping key named key on line under n and returns its
// dotted path (list items as [i]).
func keyPath(n *yaml.Node, prefix string, line int, key string) (string, bool) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p, ok := keyPath(c, prefix, line, key); ok {
				return p, true
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == key && k.Line == line {
				return join(k.Value), true
			}
			if p, ok := keyPath(v, join(k.Value), line, key); ok {
				return p, true
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p, ok := keyPath(c, fmt.Sprintf("%s[%d]", prefix, i), line, key); ok {
				return p, true
			}
		}
	}
	return "", false
}
