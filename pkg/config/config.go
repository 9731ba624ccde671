// Package config holds the configuration pieces every service shares: the
// rocketmq block of the YAML file, strict YAML loading, and environment
// overrides that collect every bad value instead of stopping at the first.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"seckill/pkg/logging"
)

// RocketMQ is the rocketmq block of a service's YAML file.
type RocketMQ struct {
	AccessKey      string          `yaml:"accessKey"`
	SecretKey      string          `yaml:"secretKey"`
	NameSrvAddr    string          `yaml:"nameSrvAddr"` // ';'-separated ip:port list
	ConsumerGroups []ConsumerGroup `yaml:"consumerGroups"`
}

// ConsumerGroup is one consumer group of a service and what it subscribes to.
type ConsumerGroup struct {
	GroupID   string     `yaml:"groupId"`
	Model     string     `yaml:"model"` // "clustering" (default) | "broadcasting"
	Orderly   bool       `yaml:"orderly"`
	Consumers []Consumer `yaml:"consumers"`
}

// Consumer binds a topic and tag expression to a handler registered by name.
type Consumer struct {
	Topic   string `yaml:"topic"`
	Tag     string `yaml:"tag"`
	Handler string `yaml:"handler"`
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

// ApplyEnv overrides the block from ROCKETMQ_NAMESRV, ROCKETMQ_ACCESS_KEY and
// ROCKETMQ_SECRET_KEY.
func (r *RocketMQ) ApplyEnv(o *Overrides) {
	o.String("ROCKETMQ_NAMESRV", &r.NameSrvAddr)
	o.String("ROCKETMQ_ACCESS_KEY", &r.AccessKey)
	o.String("ROCKETMQ_SECRET_KEY", &r.SecretKey)
}

// LoadYAML decodes the file at path into dst strictly: an unknown key is an
// error naming it, and the file must hold exactly one document. An empty file
// leaves dst untouched.
func LoadYAML(path string, dst any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := DecodeYAML(b, dst); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// DecodeYAML is LoadYAML for bytes already read.
func DecodeYAML(b []byte, dst any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}
