package e2e

// The compose file cannot be run on a machine without a Docker engine, so these
// tests check it the way `docker compose` would read it (compose-spec loader),
// against what the services actually read: ports, env names, healthchecks,
// mounted config files, the name server's static IP, and finally each service
// binary's own `-check-config` under the compose environment.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"seckill/pkg/events"
)

// composeService is what the compose file must say about one of our services.
// env lists every variable the service reads (docs/design.md "Configuration",
// the team's service contract); required are the ones the compose file must set.
type composeService struct {
	name        string // compose service name = cmd/<name> = deploy/config/<name>.yaml
	defaultPort int
	env         []string
	required    []string
	groups      []wantGroup // consumer groups of docs/design.md
}

type wantGroup struct {
	id, model string
	orderly   bool
	topic     string
	tag       string
	handler   string
}

// envCommon is read by every service; ROCKETMQ_* are applied by pkg/config.
var envCommon = []string{
	"CONFIG_FILE", "HTTP_ADDR", "MYSQL_DSN", "CONSUME_RATE",
	"ROCKETMQ_NAMESRV", "ROCKETMQ_ACCESS_KEY", "ROCKETMQ_SECRET_KEY",
}

var envFromPkgConfig = []string{"ROCKETMQ_NAMESRV", "ROCKETMQ_ACCESS_KEY", "ROCKETMQ_SECRET_KEY"}

var composeServices = []composeService{
	{
		name: "order", defaultPort: 8080,
		env:      append(slices.Clone(envCommon), "REDIS_ADDR", "REDIS_DB", "PAY_TIMEOUT_LEVEL", "ORDER_SEND_MODE", "OUTBOX_MAX_AGE"),
		required: []string{"CONFIG_FILE", "HTTP_ADDR", "MYSQL_DSN", "ROCKETMQ_NAMESRV", "REDIS_ADDR"},
		groups: []wantGroup{
			{"GID-order", "clustering", false, events.TopicOrder, "created || paid || deducted || closed || shipped", "order.apply"},
			{"GID-order-soldout", "broadcasting", false, events.TopicSoldOut, "*", "order.soldout"},
			{"GID-order-stats", "clustering", false, events.TopicOrderStats, "*", "order.stats"},
		},
	},
	{
		name: "payment", defaultPort: 8081,
		env:      append(slices.Clone(envCommon), "REDIS_ADDR", "REDIS_DB"),
		required: []string{"CONFIG_FILE", "HTTP_ADDR", "MYSQL_DSN", "ROCKETMQ_NAMESRV", "REDIS_ADDR"},
		groups: []wantGroup{
			{"GID-payment", "clustering", false, events.TopicOrder, "created || closed", "payment.apply"},
			{"GID-payment-timeout", "clustering", false, events.TopicOrder, "timeout", "payment.timeout"},
		},
	},
	{
		name: "inventory", defaultPort: 8082,
		env:      append(slices.Clone(envCommon), "REDIS_ADDR", "REDIS_DB", "ADMIN_TOKEN"),
		required: []string{"CONFIG_FILE", "HTTP_ADDR", "MYSQL_DSN", "ROCKETMQ_NAMESRV", "REDIS_ADDR", "ADMIN_TOKEN"},
		groups: []wantGroup{
			{"GID-inventory", "clustering", false, events.TopicOrder, "created || closed", "inventory.reserve"},
			{"GID-inventory-ledger", "clustering", true, events.TopicStockLedger, "*", "inventory.ledger"},
		},
	},
	{
		name: "logistics", defaultPort: 8083,
		env:      slices.Clone(envCommon),
		required: []string{"CONFIG_FILE", "HTTP_ADDR", "MYSQL_DSN", "ROCKETMQ_NAMESRV"},
		groups: []wantGroup{
			{"GID-logistics", "clustering", false, events.TopicOrder, events.TagConfirmed, "logistics.ship"},
		},
	},
}

// Infrastructure services of the compose file.
const (
	svcNamesrv    = "namesrv"
	svcBroker     = "broker"
	svcTopicInit  = "topic-init"
	svcMySQL      = "mysql"
	svcRedis      = "redis"
	brokerUID     = "3000" // the apache/rocketmq image's user rocketmq
	rocketmqImage = "apache/rocketmq"
	rocketmqStart = "/home/rocketmq/start.sh" // deploy/rocketmq/start.sh in the RocketMQ containers
	svcPrometheus = "prometheus"
	svcGrafana    = "grafana"
	namesrvPort   = 9876
	imageBinary   = "/app/service" // where deploy/Dockerfile puts the binary
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// composeAdminToken is the ADMIN_TOKEN the tests export: the compose file
// has no default for it.
const composeAdminToken = "compose-test-token"

// loadCompose parses docker-compose.yml with only ADMIN_TOKEN in the
// environment, so every other ${VAR:-default} takes its default, as on a
// fresh machine.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadComposeEnv(t, types.Mapping{"ADMIN_TOKEN": composeAdminToken})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// loadComposeEnv parses docker-compose.yml as `docker compose` does with
// exactly the environment env (no .env file is read).
func loadComposeEnv(t *testing.T, env types.Mapping) (*types.Project, error) {
	t.Helper()
	root := repoRoot(t)
	file := filepath.Join(root, "docker-compose.yml")
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("seckill", true) })
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	return p, nil
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("compose service %q: %v", name, err)
	}
	return s
}

// env returns the service's environment with every value resolved.
func env(s types.ServiceConfig) map[string]string {
	m := make(map[string]string, len(s.Environment))
	for k, v := range s.Environment {
		if v != nil {
			m[k] = *v
		} else {
			m[k] = ""
		}
	}
	return m
}

// staticIP is the service's ipv4_address on the compose network.
func staticIP(t *testing.T, p *types.Project, s types.ServiceConfig) netip.Addr {
	t.Helper()
	for nw, cfg := range s.Networks {
		if cfg == nil || cfg.Ipv4Address == "" {
			continue
		}
		ip, err := netip.ParseAddr(cfg.Ipv4Address)
		if err != nil {
			t.Fatalf("%s: networks.%s.ipv4_address %q: %v", s.Name, nw, cfg.Ipv4Address, err)
		}
		inSubnet := false
		for _, pool := range p.Networks[nw].Ipam.Config {
			if pfx, err := netip.ParsePrefix(pool.Subnet); err == nil && pfx.Contains(ip) {
				inSubnet = true
			}
		}
		if !inSubnet {
			t.Errorf("%s: ipv4_address %s is not inside a fixed subnet of network %q", s.Name, ip, nw)
		}
		return ip
	}
	t.Fatalf("%s: no static ipv4_address (client-go needs IP literals for the name server and broker)", s.Name)
	return netip.Addr{}
}

// containerFiles maps the container path of every bind mount to its host path.
func containerFiles(s types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			m[v.Target] = v.Source
		}
	}
	return m
}

func TestComposeInfrastructure(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	for _, name := range []string{svcNamesrv, svcBroker, svcTopicInit, svcMySQL, svcRedis} {
		service(t, p, name)
	}

	namesrvIP := staticIP(t, p, service(t, p, svcNamesrv))
	brokerIP := staticIP(t, p, service(t, p, svcBroker))

	// The broker registers brokerIP1 with the name server; clients dial it.
	conf := readProperties(t, filepath.Join(root, "deploy/rocketmq/broker.conf"))
	if got := conf["brokerIP1"]; got != brokerIP.String() {
		t.Errorf("broker.conf brokerIP1 = %q, want the broker's static IP %s", got, brokerIP)
	}
	if got, want := conf["namesrvAddr"], netip.AddrPortFrom(namesrvIP, namesrvPort).String(); got != want {
		t.Errorf("broker.conf namesrvAddr = %q, want %q", got, want)
	}
	if got := conf["autoCreateTopicEnable"]; got != "true" {
		t.Errorf("broker.conf autoCreateTopicEnable = %q, want true", got)
	}
	if got := len(strings.Fields(conf["messageDelayLevel"])); got != 18 {
		t.Errorf("broker.conf messageDelayLevel has %d levels, want the 18 defaults", got)
	}
	broker := service(t, p, svcBroker)
	if !slices.Contains(broker.Command, "/home/rocketmq/broker.conf") ||
		containerFiles(broker)["/home/rocketmq/broker.conf"] != filepath.Join(root, "deploy/rocketmq/broker.conf") {
		t.Errorf("broker: command %q does not use the mounted deploy/rocketmq/broker.conf", broker.Command)
	}

	// topic-init creates every topic with its queue count; the services start after it.
	script, err := os.ReadFile(filepath.Join(root, "deploy/rocketmq/init-topics.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{
		events.TopicOrder + ":4", events.TopicSoldOut + ":1",
		events.TopicStockLedger + ":1", events.TopicOrderStats + ":4",
	} {
		if !bytes.Contains(script, []byte(spec)) {
			t.Errorf("deploy/rocketmq/init-topics.sh does not create %s (topic:queues)", spec)
		}
	}
	ti := service(t, p, svcTopicInit)
	if got, want := env(ti)["NAMESRV_ADDR"], netip.AddrPortFrom(namesrvIP, namesrvPort).String(); got != want {
		t.Errorf("topic-init NAMESRV_ADDR = %q, want %q", got, want)
	}

	// The outbox lives in Redis: it must be durable.
	redis := service(t, p, svcRedis)
	if i := slices.Index(redis.Command, "--appendonly"); i < 0 || i+1 >= len(redis.Command) || redis.Command[i+1] != "yes" {
		t.Errorf("redis command %q, want --appendonly yes (the order outbox must survive a restart)", redis.Command)
	}

	// Every bind mount of every service points at a file in the repository.
	for name, s := range p.Services {
		for target, source := range containerFiles(s) {
			if _, err := os.Stat(source); err != nil {
				t.Errorf("%s: volume %s -> %s: %v", name, source, target, err)
			}
		}
		if s.HealthCheck == nil && !oneShots(p)[name] {
			t.Errorf("%s: no healthcheck (depends_on conditions need one)", name)
		}
	}

	// The mysql init script creates every service database.
	initSQL, err := os.ReadFile(filepath.Join(root, "deploy/mysql/init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cs := range composeServices {
		if !bytes.Contains(initSQL, []byte("seckill_"+cs.name)) {
			t.Errorf("deploy/mysql/init.sql does not mention database seckill_%s", cs.name)
		}
	}
}

// TestComposeBrokerDisk checks the broker's disk thresholds. RocketMQ 4.9.4
// refuses every write once the store's disk is more than the JVM property
// rocketmq.broker.diskSpaceWarningLevelRatio full (default 0.90, common on a
// laptop), and past rocketmq.broker.diskSpaceCleanForciblyRatio (default 0.85)
// deletes commit log files whatever their age; broker.conf's
// diskMaxUsedSpaceRatio only governs deletion (and is capped at 95).
func TestComposeBrokerDisk(t *testing.T) {
	p := loadCompose(t)
	props := javaProperties(env(service(t, p, svcBroker))["JAVA_OPT_EXT"])
	ratio := func(key string) float64 {
		v, ok := props[key]
		if !ok {
			t.Errorf("broker JAVA_OPT_EXT has no -D%s", key)
			return 0
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f >= 1 {
			t.Errorf("broker -D%s=%s, want a ratio between 0 and 1", key, v)
		}
		return f
	}
	warn := ratio("rocketmq.broker.diskSpaceWarningLevelRatio")
	clean := ratio("rocketmq.broker.diskSpaceCleanForciblyRatio")
	if warn <= 0.90 {
		t.Errorf("diskSpaceWarningLevelRatio = %v, want above the default 0.90", warn)
	}
	if clean <= 0.85 || clean >= warn {
		t.Errorf("diskSpaceCleanForciblyRatio = %v, want above the default 0.85 and below diskSpaceWarningLevelRatio %v", clean, warn)
	}
	conf := readProperties(t, filepath.Join(repoRoot(t), "deploy/rocketmq/broker.conf"))
	if used, err := strconv.Atoi(conf["diskMaxUsedSpaceRatio"]); err != nil || used > 95 || float64(used)/100 >= warn {
		t.Errorf("broker.conf diskMaxUsedSpaceRatio = %q, want a percentage <= 95 (the broker's cap) below the write limit %v", conf["diskMaxUsedSpaceRatio"], warn)
	}
}

// TestComposeBrokerStore checks that the broker's store is on a named volume
// (a recreated container otherwise loses unconsumed messages, consumer
// offsets and pending pay timeouts while MySQL and the Redis outbox survive),
// at the path broker.conf stores to, and that a one-shot service hands the
// volume to the broker's user before the broker starts: a fresh named volume
// is root-owned and the image runs as uid 3000.
func TestComposeBrokerStore(t *testing.T) {
	p := loadCompose(t)
	conf := readProperties(t, filepath.Join(repoRoot(t), "deploy/rocketmq/broker.conf"))
	storeDir := conf["storePathRootDir"]
	if storeDir == "" {
		t.Fatal("broker.conf does not set storePathRootDir")
	}
	if cl := conf["storePathCommitLog"]; cl != "" && !strings.HasPrefix(cl, storeDir+"/") {
		t.Errorf("broker.conf storePathCommitLog = %s, not under storePathRootDir %s", cl, storeDir)
	}

	broker := service(t, p, svcBroker)
	vol := ""
	for _, v := range broker.Volumes {
		if v.Target == storeDir {
			if v.Type != types.VolumeTypeVolume {
				t.Errorf("broker: %s is a %s mount, want a named volume", storeDir, v.Type)
			}
			vol = v.Source
		}
	}
	if vol == "" {
		t.Fatalf("broker: storePathRootDir %s is not on a volume", storeDir)
	}
	if _, ok := p.Volumes[vol]; !ok {
		t.Errorf("broker volume %q is not declared under volumes:", vol)
	}

	var inits []string
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Source != vol || name == svcBroker {
				continue
			}
			cmd := strings.Join(s.Command, " ")
			if !slices.Contains(s.Command, "chown") || !strings.Contains(cmd, " "+v.Target) {
				t.Errorf("%s mounts %s but does not chown %s: %q", name, vol, v.Target, cmd)
				continue
			}
			if owner, _, _ := strings.Cut(s.Command[len(s.Command)-2], ":"); owner != brokerUID {
				t.Errorf("%s: %q gives the store to %q, want uid %s", name, cmd, owner, brokerUID)
			}
			if s.User != "0" && s.User != "root" {
				t.Errorf("%s runs as user %q; only root can chown the volume", name, s.User)
			}
			if s.Restart != types.RestartPolicyNo {
				t.Errorf("%s: restart %q, want \"no\" (a one-shot)", name, s.Restart)
			}
			inits = append(inits, name)
		}
	}
	if len(inits) != 1 {
		t.Fatalf("services that chown the broker store: %v, want one", inits)
	}
	if d, ok := broker.DependsOn[inits[0]]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("broker depends_on %s = %+v, want condition %s", inits[0], d, types.ServiceConditionCompletedSuccessfully)
	}
}

// TestComposePlatforms checks that every RocketMQ service names its platform:
// apache/rocketmq:4.9.4 exists for linux/amd64 only, so without it an arm64
// Linux host fails with "exec format error" instead of emulating, and Docker
// Desktop on Apple Silicon warns on every start.
func TestComposePlatforms(t *testing.T) {
	p := loadCompose(t)
	n := 0
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, rocketmqImage+":") {
			continue
		}
		n++
		if s.Platform != "linux/amd64" {
			t.Errorf("%s (%s): platform %q, want linux/amd64", name, s.Image, s.Platform)
		}
	}
	if n < 3 {
		t.Errorf("%d services run %s, want namesrv, broker and topic-init at least", n, rocketmqImage)
	}
}

// TestComposePorts checks that every published port binds 127.0.0.1 (an
// admin API is behind them), and that no RocketMQ port is published: the name
// server hands out the broker's compose-network address, so a host client
// gets nothing from it, and the port collides with a running `make run`.
func TestComposePorts(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		for _, pc := range s.Ports {
			if pc.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s:%d on %q, want 127.0.0.1", name, pc.Published, pc.Target, pc.HostIP)
			}
			if strings.HasPrefix(s.Image, rocketmqImage+":") {
				t.Errorf("%s publishes port %d; host clients cannot use the compose broker", name, pc.Target)
			}
		}
	}
}

// TestComposeNetwork checks that the network's dynamic addresses (ip_range)
// are inside its subnet and leave out every static address, so a container
// that starts first cannot take the name server's or the broker's.
func TestComposeNetwork(t *testing.T) {
	p := loadCompose(t)
	for nw, n := range p.Networks {
		for _, pool := range n.Ipam.Config {
			subnet, err := netip.ParsePrefix(pool.Subnet)
			if err != nil {
				t.Errorf("network %s: subnet %q: %v", nw, pool.Subnet, err)
				continue
			}
			dynamic, err := netip.ParsePrefix(pool.IPRange)
			if err != nil {
				t.Errorf("network %s: ip_range %q: %v (without one, dynamic addresses can take the static ones)", nw, pool.IPRange, err)
				continue
			}
			if !subnet.Contains(dynamic.Addr()) || dynamic.Bits() < subnet.Bits() {
				t.Errorf("network %s: ip_range %s is not inside subnet %s", nw, dynamic, subnet)
			}
			static := 0
			for name, s := range p.Services {
				cfg := s.Networks[nw]
				if cfg == nil || cfg.Ipv4Address == "" {
					continue
				}
				static++
				ip, err := netip.ParseAddr(cfg.Ipv4Address)
				if err != nil {
					t.Errorf("%s: ipv4_address %q: %v", name, cfg.Ipv4Address, err)
					continue
				}
				if dynamic.Contains(ip) {
					t.Errorf("%s: static address %s is inside ip_range %s", name, ip, dynamic)
				}
				if ip == subnet.Addr().Next() {
					t.Errorf("%s: static address %s is the subnet's gateway", name, ip)
				}
			}
			if static == 0 {
				t.Errorf("network %s has a fixed subnet but no static address", nw)
			}
		}
	}
}

// TestComposeRestart checks the restart policies: every long-running service
// comes back after a crash or a Docker restart, and the one-shots run once.
func TestComposeRestart(t *testing.T) {
	p := loadCompose(t)
	once := oneShots(p)
	for name, s := range p.Services {
		switch {
		case once[name] && s.Restart != types.RestartPolicyNo:
			t.Errorf("%s is a one-shot (others wait for it to complete) but restart = %q, want \"no\"", name, s.Restart)
		case !once[name] && s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways:
			t.Errorf("%s: restart = %q, want unless-stopped", name, s.Restart)
		}
	}
	// mqadmin runs through tools.sh, which never reads JAVA_OPT_EXT.
	if _, ok := service(t, p, svcTopicInit).Environment["JAVA_OPT_EXT"]; ok {
		t.Errorf("%s sets JAVA_OPT_EXT, which mqadmin's tools.sh ignores", svcTopicInit)
	}
}

// TestComposeRocketMQStart checks that the name server and the broker start
// through deploy/rocketmq/start.sh under an init, so SIGTERM reaches the JVM
// (TestRocketMQStartScript checks the script itself).
func TestComposeRocketMQStart(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	for _, role := range []string{svcNamesrv, svcBroker} {
		s := service(t, p, role)
		if s.Init == nil || !*s.Init {
			t.Errorf("%s: init is not true (without an init, PID 1 ignores SIGTERM)", role)
		}
		want := []string{"bash", rocketmqStart, role}
		if len(s.Command) < len(want) || !slices.Equal([]string(s.Command[:len(want)]), want) {
			t.Errorf("%s: command %q, want it to start with %q", role, s.Command, want)
		}
		if got := containerFiles(s)[rocketmqStart]; got != filepath.Join(root, "deploy/rocketmq/start.sh") {
			t.Errorf("%s: %s is mounted from %q, want deploy/rocketmq/start.sh", role, rocketmqStart, got)
		}
	}
}

// TestRocketMQStartScript runs deploy/rocketmq/start.sh against stand-ins for
// the image's start scripts, whose java launch lines have the shapes of
// runbroker.sh/runserver.sh in apache/rocketmq:4.9.4 (plain, and behind
// numactl when it is installed), and a stand-in java that reports its PID:
// java must be the very process the container started (every shell in
// between exec'd), with the main class, the arguments, JAVA_OPT_EXT and a
// classpath found from the script's own path.
func TestRocketMQStartScript(t *testing.T) {
	script := filepath.Join(repoRoot(t), "deploy/rocketmq/start.sh")
	home := t.TempDir()
	bin := filepath.Join(home, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	tools := t.TempDir() // java, and numactl for the numactl case
	for dir, files := range map[string]map[string]string{
		bin: {
			"runbroker.sh": `#!/bin/bash
export JAVA="$FAKE_JAVA"
export BASE_DIR=$(dirname $0)/..
JAVA_OPT="${JAVA_OPT} -server -Xms1g"
JAVA_OPT="${JAVA_OPT} ${JAVA_OPT_EXT}"
JAVA_OPT="${JAVA_OPT} -cp .:${BASE_DIR}/conf"

numactl --interleave=all pwd > /dev/null 2>&1
if [ $? -eq 0 ]
then
	if [ -z "$RMQ_NUMA_NODE" ] ; then
		numactl --interleave=all $JAVA ${JAVA_OPT} $@
	else
		numactl --cpunodebind=$RMQ_NUMA_NODE --membind=$RMQ_NUMA_NODE $JAVA ${JAVA_OPT} $@
	fi
else
	$JAVA ${JAVA_OPT} $@
fi
`,
			"runserver.sh": `#!/bin/bash
export JAVA="$FAKE_JAVA"
export BASE_DIR=$(dirname $0)/..
JAVA_OPT="${JAVA_OPT} ${JAVA_OPT_EXT}"
JAVA_OPT="${JAVA_OPT} -cp .:${BASE_DIR}/conf"

$JAVA ${JAVA_OPT} $@
`,
		},
		tools: {
			"java": "#!/bin/sh\necho \"pid=$$\"\necho \"args=$*\"\n",
			// numactl stand-in: the probe succeeds, a launch runs its command.
			"numactl": "#!/bin/sh\nwhile [ \"${1#--}\" != \"$1\" ]; do shift; done\n[ \"$1\" = pwd ] && exit 0\nexec \"$@\"\n",
		},
	} {
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, tc := range []struct {
		name, role, main string
		numactl          bool
	}{
		{"broker", "broker", "org.apache.rocketmq.broker.BrokerStartup", false},
		{"broker behind numactl", "broker", "org.apache.rocketmq.broker.BrokerStartup", true},
		{"namesrv", "namesrv", "org.apache.rocketmq.namesrv.NamesrvStartup", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/usr/bin:/bin"
			if tc.numactl {
				path = tools + ":" + path
			} else if _, err := exec.LookPath("numactl"); err == nil {
				t.Log("numactl is installed here: the plain case runs behind it too")
			}
			cmd := exec.CommandContext(t.Context(), "bash", script, tc.role, "-n", "10.0.0.1:9876", "-c", "/conf/broker.conf")
			cmd.Env = []string{"PATH=" + path, "ROCKETMQ_HOME=" + home, "FAKE_JAVA=" + filepath.Join(tools, "java"),
				"JAVA_OPT_EXT=-Dexample.ratio=0.5"}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("start.sh %s: %v\n%s%s", tc.role, err, stdout.String(), stderr.String())
			}
			out := stdout.String()
			if want := fmt.Sprintf("pid=%d\n", cmd.Process.Pid); !strings.Contains(out, want) {
				t.Errorf("java did not replace start.sh (pid %d): a shell stays between the init and the JVM\n%s%s", cmd.Process.Pid, out, stderr.String())
			}
			want := "-Dexample.ratio=0.5 -cp .:" + bin + "/../conf " + tc.main + " -n 10.0.0.1:9876 -c /conf/broker.conf\n"
			if !strings.Contains(out, want) {
				t.Errorf("java arguments:\n%s\nwant them to end with %q", out, want)
			}
		})
	}
}

// TestComposePrometheus checks the prometheus service against the files it
// reads: its config is deploy/prometheus/prometheus.yml, the rule files that
// config names are mounted where it looks for them (relative to the config
// file), it scrapes exactly the four services at their HTTP ports with one job
// each, and its data is on a named volume.
func TestComposePrometheus(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	s := service(t, p, svcPrometheus)
	flags := map[string]string{}
	for _, arg := range s.Command {
		k, v, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		flags[k] = v
	}
	configPath := flags["config.file"]
	files := containerFiles(s)
	if files[configPath] != filepath.Join(root, "deploy/prometheus/prometheus.yml") {
		t.Fatalf("prometheus --config.file=%q is not deploy/prometheus/prometheus.yml (mounts: %v)", configPath, files)
	}
	cfg := readPrometheusConfig(t, files[configPath])

	// rule_files are relative to the config file, in the container as here.
	if len(cfg.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	for _, pattern := range cfg.RuleFiles {
		inContainer := filepath.Join(filepath.Dir(configPath), pattern)
		host, ok := files[filepath.Dir(inContainer)]
		if !ok {
			t.Errorf("rule_files %q: %s is not mounted", pattern, filepath.Dir(inContainer))
			continue
		}
		inRepo, _ := filepath.Glob(filepath.Join(host, filepath.Base(pattern)))
		if len(inRepo) == 0 {
			t.Errorf("rule_files %q: no file matches in %s", pattern, host)
		}
		if want := filepath.Join(filepath.Dir(files[configPath]), filepath.Dir(pattern)); host != want {
			t.Errorf("rule_files %q: the container reads %s, promtool checks %s", pattern, host, want)
		}
	}

	want := map[string]string{}
	for _, cs := range composeServices {
		_, port, _ := net.SplitHostPort(env(service(t, p, cs.name))["HTTP_ADDR"])
		want[cs.name] = net.JoinHostPort(cs.name, port) + "/metrics"
	}
	got := map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		path := sc.MetricsPath
		if path == "" {
			path = "/metrics"
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if _, dup := got[sc.JobName]; dup {
					t.Errorf("job %s has more than one target", sc.JobName)
				}
				got[sc.JobName] = target + path
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prometheus.yml scrape jobs (-want +got):\n%s", diff)
	}

	if v := volumeAt(s, flags["storage.tsdb.path"]); v == nil || v.Type != types.VolumeTypeVolume {
		t.Errorf("prometheus --storage.tsdb.path=%q is not on a named volume", flags["storage.tsdb.path"])
	}
}

// TestComposeConsole checks the console service: built from the console
// module, published on 127.0.0.1:8090, pointed at each service's address in
// the compose network (the port that service listens on) and at the name
// server, with CONSUME_RATE as its reference line.
func TestComposeConsole(t *testing.T) {
	p := loadCompose(t)
	s := service(t, p, "console")
	if s.Build == nil || s.Build.Args["SERVICE"] == nil || *s.Build.Args["SERVICE"] != "console" {
		t.Errorf("console: build args %v, want SERVICE=console", s.Build)
	}
	e := env(s)
	if e["HTTP_ADDR"] != ":8090" {
		t.Errorf("console HTTP_ADDR = %q, want :8090", e["HTTP_ADDR"])
	}
	for _, cs := range composeServices {
		_, port, _ := net.SplitHostPort(env(service(t, p, cs.name))["HTTP_ADDR"])
		key := strings.ToUpper(cs.name) + "_URL"
		if want := "http://" + net.JoinHostPort(cs.name, port); e[key] != want {
			t.Errorf("console %s = %q, want %s", key, e[key], want)
		}
		if _, ok := s.DependsOn[cs.name]; !ok {
			t.Errorf("console does not start after %s", cs.name)
		}
	}
	if want := env(service(t, p, "order"))["ROCKETMQ_NAMESRV"]; e["ROCKETMQ_NAMESRV"] != want {
		t.Errorf("console ROCKETMQ_NAMESRV = %q, want the services' %q", e["ROCKETMQ_NAMESRV"], want)
	}
	if want := env(service(t, p, "order"))["CONSUME_RATE"]; e["CONSUME_RATE"] != want {
		t.Errorf("console CONSUME_RATE = %q, want the services' %q", e["CONSUME_RATE"], want)
	}
	var published []string
	for _, port := range s.Ports {
		published = append(published, fmt.Sprintf("%s:%s:%d", port.HostIP, port.Published, port.Target))
	}
	if !slices.Equal(published, []string{"127.0.0.1:8090:8090"}) {
		t.Errorf("console ports = %v, want [127.0.0.1:8090:8090]", published)
	}
}

// TestComposeGrafana checks the grafana service against its provisioning: the
// data source is the compose prometheus, the dashboard provider reads the
// mounted deploy/grafana/dashboards, every panel of every dashboard there
// queries that data source, and the home dashboard is one of them.
func TestComposeGrafana(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	s := service(t, p, svcGrafana)
	files := containerFiles(s)
	provisioning := filepath.Join(root, "deploy/grafana/provisioning")
	if files["/etc/grafana/provisioning"] != provisioning {
		t.Fatalf("grafana: /etc/grafana/provisioning is mounted from %q, want %s", files["/etc/grafana/provisioning"], provisioning)
	}

	var ds struct {
		Datasources []struct{ Name, UID, Type, URL string } `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(provisioning, "datasources/prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 {
		t.Fatalf("provisioned data sources: %+v, want one", ds.Datasources)
	}
	src := ds.Datasources[0]
	prom := service(t, p, svcPrometheus)
	if want := "http://" + svcPrometheus + ":9090"; src.Type != "prometheus" || src.URL != want {
		t.Errorf("data source %s: type %s url %s, want prometheus at %s", src.Name, src.Type, src.URL, want)
	}
	if len(prom.Ports) != 1 || prom.Ports[0].Target != 9090 {
		t.Errorf("prometheus ports %+v, want it listening on 9090 (the data source URL)", prom.Ports)
	}

	var dp struct {
		Providers []struct {
			Options struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(provisioning, "dashboards/seckill.yml"), &dp)
	if len(dp.Providers) != 1 {
		t.Fatalf("dashboard providers: %+v, want one", dp.Providers)
	}
	dashDir := dp.Providers[0].Options.Path
	if want := filepath.Join(root, "deploy/grafana/dashboards"); files[dashDir] != want {
		t.Fatalf("dashboard provider path %s is mounted from %q, want %s", dashDir, files[dashDir], want)
	}
	home := env(s)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if _, err := os.Stat(filepath.Join(files[dashDir], strings.TrimPrefix(home, dashDir))); err != nil || !strings.HasPrefix(home, dashDir+"/") {
		t.Errorf("home dashboard %q is not a file of %s: %v", home, dashDir, err)
	}

	dashboards, _ := filepath.Glob(filepath.Join(files[dashDir], "*.json"))
	if len(dashboards) == 0 {
		t.Fatal("no dashboard in deploy/grafana/dashboards")
	}
	for _, path := range dashboards {
		d := readDashboard(t, path)
		for _, panel := range d.allPanels() {
			if panel.Type == "row" || panel.Type == "text" {
				continue
			}
			if panel.Datasource.UID != src.UID {
				t.Errorf("%s: panel %q uses data source %q, want the provisioned %q", filepath.Base(path), panel.Title, panel.Datasource.UID, src.UID)
			}
			if len(panel.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", filepath.Base(path), panel.Title)
			}
			for _, q := range panel.Targets {
				if q.Datasource.UID != src.UID || strings.TrimSpace(q.Expr) == "" {
					t.Errorf("%s: panel %q query %s: data source %q, expr %q", filepath.Base(path), panel.Title, q.RefID, q.Datasource.UID, q.Expr)
				}
			}
		}
	}
}

// volumeAt returns the mount of s at target, or nil.
func volumeAt(s types.ServiceConfig, target string) *types.ServiceVolumeConfig {
	for i, v := range s.Volumes {
		if v.Target == target {
			return &s.Volumes[i]
		}
	}
	return nil
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}

// oneShots are the services another one waits for to complete: they run
// once and exit.
func oneShots(p *types.Project) map[string]bool {
	m := map[string]bool{}
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				m[dep] = true
			}
		}
	}
	return m
}

// javaProperties returns the -Dkey=value options of a JVM option string.
func javaProperties(opts string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(opts) {
		if kv, ok := strings.CutPrefix(f, "-D"); ok {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
	}
	return m
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	namesrvIP := staticIP(t, p, service(t, p, svcNamesrv))

	dockerfile, err := os.ReadFile(filepath.Join(root, "deploy/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dockerfile, []byte(`ENTRYPOINT ["`+imageBinary+`"]`)) {
		t.Fatalf("deploy/Dockerfile has no ENTRYPOINT [%q]; the healthchecks below call that path", imageBinary)
	}
	// The download layer copies every go.mod/go.sum of the workspace; a module
	// missing there makes `go mod download` fail inside the image build.
	for _, dir := range workModules(t, root) {
		if line := fmt.Sprintf("COPY %[1]s/go.mod %[1]s/go.sum %[1]s/", dir); !bytes.Contains(dockerfile, []byte(line)) {
			t.Errorf("deploy/Dockerfile does not have %q (module %s is in go.work)", line, dir)
		}
	}

	for _, cs := range composeServices {
		t.Run(cs.name, func(t *testing.T) {
			s := service(t, p, cs.name)
			e := env(s)

			if s.Build == nil || s.Build.Context != root || s.Build.Dockerfile != "deploy/Dockerfile" {
				t.Errorf("build = %+v, want context = repository root, dockerfile = deploy/Dockerfile", s.Build)
			} else if arg := s.Build.Args["SERVICE"]; arg == nil || *arg != cs.name {
				t.Errorf("build arg SERVICE = %v, want %q", arg, cs.name)
			}

			for k := range e {
				if !slices.Contains(cs.env, k) {
					t.Errorf("environment sets %s, which %s-service does not read (it reads %v)", k, cs.name, cs.env)
				}
			}
			for _, k := range cs.required {
				if e[k] == "" {
					t.Errorf("environment does not set %s", k)
				}
			}

			// HTTP_ADDR, the published port and the documented default agree.
			_, portStr, err := net.SplitHostPort(e["HTTP_ADDR"])
			if err != nil {
				t.Fatalf("HTTP_ADDR %q: %v", e["HTTP_ADDR"], err)
			}
			if port, _ := strconv.Atoi(portStr); port != cs.defaultPort {
				t.Errorf("HTTP_ADDR port = %s, want the default %d", portStr, cs.defaultPort)
			}
			var published []string
			for _, pc := range s.Ports {
				published = append(published, pc.Published+":"+strconv.Itoa(int(pc.Target)))
			}
			if want := []string{portStr + ":" + portStr}; !slices.Equal(published, want) {
				t.Errorf("ports = %q, want %q", published, want)
			}

			// Readiness (database, Redis, broker, consumers), not mere liveness:
			// compose gates depends_on on "healthy", and Docker restarts no
			// container for being unhealthy. distroless has no curl.
			if s.HealthCheck == nil || !slices.Equal([]string(s.HealthCheck.Test), []string{"CMD", imageBinary, "-readycheck"}) {
				t.Errorf("healthcheck = %+v, want test [CMD %s -readycheck]", s.HealthCheck, imageBinary)
			}

			// client-go rejects hostnames: every name server is an IP literal,
			// and it is the namesrv container's static address.
			for _, addr := range strings.Split(e["ROCKETMQ_NAMESRV"], ";") {
				ap, err := netip.ParseAddrPort(addr)
				if err != nil {
					t.Errorf("ROCKETMQ_NAMESRV %q: %v (must be ip:port)", addr, err)
					continue
				}
				if want := netip.AddrPortFrom(namesrvIP, namesrvPort); ap != want {
					t.Errorf("ROCKETMQ_NAMESRV = %s, want the namesrv static address %s", ap, want)
				}
			}

			if !strings.Contains(e["MYSQL_DSN"], "tcp("+svcMySQL+":3306)/seckill_"+cs.name+"?") {
				t.Errorf("MYSQL_DSN %q does not point at %s:3306/seckill_%s", e["MYSQL_DSN"], svcMySQL, cs.name)
			}

			wantDeps := map[string]string{
				svcMySQL:     types.ServiceConditionHealthy,
				svcTopicInit: types.ServiceConditionCompletedSuccessfully,
			}
			if slices.Contains(cs.env, "REDIS_ADDR") {
				wantDeps[svcRedis] = types.ServiceConditionHealthy
				if e["REDIS_ADDR"] != svcRedis+":6379" {
					t.Errorf("REDIS_ADDR = %q, want %s:6379", e["REDIS_ADDR"], svcRedis)
				}
			}
			gotDeps := map[string]string{}
			for dep, d := range s.DependsOn {
				gotDeps[dep] = d.Condition
			}
			if diff := cmp.Diff(wantDeps, gotDeps); diff != "" {
				t.Errorf("depends_on conditions (-want +got):\n%s", diff)
			}

			// CONFIG_FILE is a mounted file of the repository whose consumer
			// groups are the ones of docs/design.md.
			host, ok := containerFiles(s)[e["CONFIG_FILE"]]
			if !ok {
				t.Fatalf("CONFIG_FILE %q is not a bind-mounted file", e["CONFIG_FILE"])
			}
			if want := filepath.Join(root, "deploy/config", cs.name+".yaml"); host != want {
				t.Errorf("CONFIG_FILE is mounted from %s, want %s", host, want)
			}
			if diff := cmp.Diff(cs.groups, configGroups(t, host), cmp.AllowUnexported(wantGroup{})); diff != "" {
				t.Errorf("%s consumer groups differ from docs/design.md (-want +got):\n%s", host, diff)
			}
		})
	}
}

// TestComposeImageBuild checks what `docker compose build` reads besides the
// compose file: deploy/Dockerfile builds with go.work's exact Go version (with
// GOTOOLCHAIN=local an older image refuses the workspace, and a floating tag is
// whatever the host cached), and its build context leaves out the repository's
// .git and CI folders and everything .gitignore lists (binaries, run, bench
// and load output), which would otherwise be sent with every build.
func TestComposeImageBuild(t *testing.T) {
	root := repoRoot(t)
	dockerfile, err := os.ReadFile(filepath.Join(root, "deploy/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindSubmatch(dockerfile)
	if m == nil {
		t.Fatal("deploy/Dockerfile has no ARG GO_VERSION=<version>")
	}
	if got, want := string(m[1]), goWork(t, root).Go; got != want {
		t.Errorf("deploy/Dockerfile GO_VERSION = %s, want go.work's go %s", got, want)
	}
	if !bytes.Contains(dockerfile, []byte("FROM golang:${GO_VERSION} ")) {
		t.Errorf("deploy/Dockerfile does not build FROM golang:${GO_VERSION}")
	}

	ignored := map[string]bool{}
	for _, line := range readLines(t, filepath.Join(root, "deploy/Dockerfile.dockerignore")) {
		ignored[line] = true
	}
	want := []string{".git", ".ci"}
	for _, p := range readLines(t, filepath.Join(root, ".gitignore")) {
		want = append(want, dockerignorePattern(p))
	}
	for _, p := range want {
		if !ignored[p] {
			t.Errorf("deploy/Dockerfile.dockerignore does not exclude %s", p)
		}
	}
}

// TestComposeAdminTokenRequired checks that `docker compose` refuses to start
// without ADMIN_TOKEN instead of falling back to a well-known token (the
// distroless images have no shell to read a generated one back), and that the
// exported value is the one inventory-service gets.
func TestComposeAdminTokenRequired(t *testing.T) {
	_, err := loadComposeEnv(t, types.Mapping{})
	if err == nil {
		t.Fatal("docker-compose.yml loads without ADMIN_TOKEN; want an error (${ADMIN_TOKEN:?...})")
	}
	if !strings.Contains(err.Error(), "ADMIN_TOKEN") {
		t.Errorf("error without ADMIN_TOKEN does not name it: %v", err)
	}
	if _, err := loadComposeEnv(t, types.Mapping{"ADMIN_TOKEN": ""}); err == nil {
		t.Error("docker-compose.yml loads with ADMIN_TOKEN empty; want an error")
	}

	p := loadCompose(t)
	for name, s := range p.Services {
		if _, ok := s.Environment["ADMIN_TOKEN"]; ok && name != "inventory" {
			t.Errorf("%s gets ADMIN_TOKEN; only inventory-service reads it", name)
		}
	}
	if got := env(service(t, p, "inventory"))["ADMIN_TOKEN"]; got != composeAdminToken {
		t.Errorf("inventory ADMIN_TOKEN = %q, want the exported %q", got, composeAdminToken)
	}
}

// dockerignorePattern is the .dockerignore form of a .gitignore pattern:
// .dockerignore patterns are relative to the context root, so an anchored
// "/bin/" is "bin", and an unanchored "*.test" (any depth in git) is "**/*.test".
func dockerignorePattern(gitignore string) string {
	p := strings.TrimSuffix(gitignore, "/")
	if anchored, ok := strings.CutPrefix(p, "/"); ok {
		return anchored
	}
	if strings.Contains(p, "/") {
		return p // git anchors a pattern with an inner slash too
	}
	return "**/" + p
}

// readLines returns the lines of a file that are neither blank nor comments.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestComposeMatchesRunScript checks that `make run` (deploy/run.sh) gives each
// service the same variables and config file as docker-compose.yml.
func TestComposeMatchesRunScript(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	for _, cs := range composeServices {
		t.Run(cs.name, func(t *testing.T) {
			s := service(t, p, cs.name)
			compose := env(s)
			local := runScriptEnv(t, root, cs.name)
			if diff := cmp.Diff(slices.Sorted(maps.Keys(compose)), slices.Sorted(maps.Keys(local))); diff != "" {
				t.Errorf("variables of %s: docker-compose.yml vs deploy/run.sh (-compose +run.sh):\n%s", cs.name, diff)
			}
			if got, want := local["CONFIG_FILE"], containerFiles(s)[compose["CONFIG_FILE"]]; got != want {
				t.Errorf("deploy/run.sh CONFIG_FILE = %q, docker-compose.yml mounts %q", got, want)
			}
			_, localPort, _ := net.SplitHostPort(local["HTTP_ADDR"])
			_, composePort, _ := net.SplitHostPort(compose["HTTP_ADDR"])
			if localPort != composePort {
				t.Errorf("HTTP_ADDR port: deploy/run.sh %q, docker-compose.yml %q", localPort, composePort)
			}
		})
	}
}

// TestComposeEnvIsRead checks that every variable the compose file sets is
// named in the service's own source (or pkg/config for ROCKETMQ_*), so a
// renamed variable cannot leave the compose file silently ignored.
func TestComposeEnvIsRead(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	pkgConfig := goSources(t, filepath.Join(root, "pkg/config"))
	for _, cs := range composeServices {
		t.Run(cs.name, func(t *testing.T) {
			dir := filepath.Join(root, cs.name+"-service/cmd", cs.name)
			src := goSources(t, dir)
			if src == nil {
				t.Skipf("%s has no Go files yet", dir)
			}
			for k := range env(service(t, p, cs.name)) {
				lit := []byte(strconv.Quote(k))
				if bytes.Contains(src, lit) || (slices.Contains(envFromPkgConfig, k) && bytes.Contains(pkgConfig, lit)) {
					continue
				}
				t.Errorf("compose sets %s but %s (and pkg/config) never names %s", k, dir, lit)
			}
		})
	}
}

// TestComposeConfigAccepted builds each service (or takes it from E2E_BIN_DIR)
// and runs `<svc> -check-config` with exactly the compose service's environment
// and its mounted config file: the compose configuration must pass the
// service's own validation, and a broken name server address must not.
func TestComposeConfigAccepted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the service binaries")
	}
	p := loadCompose(t)
	root := repoRoot(t)
	bin := t.TempDir()

	for _, cs := range composeServices {
		t.Run(cs.name, func(t *testing.T) {
			pkg := "./" + cs.name + "-service/cmd/" + cs.name
			if goSources(t, filepath.Join(root, pkg)) == nil {
				t.Skipf("%s does not exist yet", pkg)
			}
			exe := filepath.Join(bin, cs.name)
			if dir := os.Getenv("E2E_BIN_DIR"); dir != "" {
				exe = filepath.Join(dir, cs.name) // prebuilt (make build), as for TestSystem
			} else {
				build := exec.CommandContext(t.Context(), "go", "build", "-o", exe, pkg)
				build.Dir = root
				build.Env = append(os.Environ(), "CGO_ENABLED=0")
				if out, err := build.CombinedOutput(); err != nil {
					t.Fatalf("go build %s: %v\n%s", pkg, err, out)
				}
			}
			s := service(t, p, cs.name)
			e := env(s)
			e["CONFIG_FILE"] = containerFiles(s)[e["CONFIG_FILE"]]

			out, err := checkConfig(t, exe, e)
			if err != nil {
				t.Fatalf("%s -check-config with the compose environment: %v\n%s", cs.name, err, out)
			}
			if !bytes.Contains(out, []byte("{")) {
				t.Errorf("%s -check-config printed no JSON config:\n%s", cs.name, out)
			}
			// The printed config is masked: no password, no token.
			for _, secret := range secretsOf(e) {
				if bytes.Contains(out, []byte(secret)) {
					t.Errorf("%s -check-config output contains the secret %q:\n%s", cs.name, secret, out)
				}
			}

			// The same for `make run`: deploy/run.sh's environment must pass too.
			local := runScriptEnv(t, root, cs.name)
			if out, err := checkConfig(t, exe, local); err != nil {
				t.Errorf("%s -check-config with the deploy/run.sh environment: %v\n%s", cs.name, err, out)
			}

			bad := cloneMap(e)
			bad["ROCKETMQ_NAMESRV"] = "localhost:9876" // a hostname: client-go would reject it
			out, err = checkConfig(t, exe, bad)
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) {
				t.Fatalf("%s -check-config with ROCKETMQ_NAMESRV=localhost:9876: err = %v, want exit status 1\n%s", cs.name, err, out)
			}
			if !bytes.Contains(out, []byte("nameSrvAddr")) && !bytes.Contains(out, []byte("ROCKETMQ_NAMESRV")) {
				t.Errorf("%s -check-config rejected a hostname name server without naming the key:\n%s", cs.name, out)
			}
		})
	}
}

// workFile is the part of `go work edit -json` the tests read.
type workFile struct {
	Go  string
	Use []struct{ DiskPath string }
}

func goWork(t *testing.T, root string) workFile {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "work", "edit", "-json")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go work edit -json: %v", err)
	}
	var w workFile
	if err := json.Unmarshal(out, &w); err != nil {
		t.Fatalf("go work edit -json: %v", err)
	}
	if w.Go == "" {
		t.Fatal("go.work has no go line")
	}
	return w
}

// workModules lists the module directories of go.work, relative to root.
func workModules(t *testing.T, root string) []string {
	t.Helper()
	w := goWork(t, root)
	var dirs []string
	for _, u := range w.Use {
		dirs = append(dirs, filepath.ToSlash(filepath.Clean(u.DiskPath)))
	}
	if len(dirs) == 0 {
		t.Fatal("go.work uses no module")
	}
	return dirs
}

// runScriptEnv is the environment deploy/run.sh gives service svc, with
// nothing set in the caller's environment (so every default applies).
func runScriptEnv(t *testing.T, root, svc string) map[string]string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "bash", filepath.Join(root, "deploy/run.sh"), "-print-env", svc)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("deploy/run.sh -print-env %s: %v", svc, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("deploy/run.sh -print-env %s: line %q is not NAME=value", svc, line)
		}
		m[k] = v
	}
	return m
}

// checkConfig runs exe -check-config with only env (plus PATH/HOME), so the
// developer's own shell variables cannot make the check pass.
func checkConfig(t *testing.T, exe string, env map[string]string) ([]byte, error) {
	t.Helper()
	// -check-config must not open connections or serve: a binary that ignores
	// the flag and starts the service is killed and fails the test.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-check-config")
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd.CombinedOutput()
}

// secretsOf returns the secret values of a service environment: the MySQL
// password inside the DSN and the admin token.
func secretsOf(e map[string]string) []string {
	var s []string
	if dsn := e["MYSQL_DSN"]; strings.Contains(dsn, "@") {
		userinfo := dsn[:strings.LastIndex(dsn, "@")]
		if _, pw, ok := strings.Cut(userinfo, ":"); ok && pw != "" {
			s = append(s, pw)
		}
	}
	if tok := e["ADMIN_TOKEN"]; tok != "" {
		s = append(s, tok)
	}
	return s
}

func cloneMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// configGroups reads the rocketmq.consumerGroups of a service config file.
func configGroups(t *testing.T, path string) []wantGroup {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		RocketMQ struct {
			NameSrvAddr    string `yaml:"nameSrvAddr"`
			ConsumerGroups []struct {
				GroupID   string `yaml:"groupId"`
				Model     string `yaml:"model"`
				Orderly   bool   `yaml:"orderly"`
				Consumers []struct {
					Topic, Tag, Handler string
				} `yaml:"consumers"`
			} `yaml:"consumerGroups"`
		} `yaml:"rocketmq"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	if _, err := netip.ParseAddrPort(f.RocketMQ.NameSrvAddr); err != nil {
		t.Errorf("%s: rocketmq.nameSrvAddr %q: %v", path, f.RocketMQ.NameSrvAddr, err)
	}
	var gs []wantGroup
	for _, g := range f.RocketMQ.ConsumerGroups {
		model := g.Model
		if model == "" {
			model = "clustering"
		}
		for _, c := range g.Consumers {
			gs = append(gs, wantGroup{g.GroupID, model, g.Orderly, c.Topic, c.Tag, c.Handler})
		}
	}
	return gs
}

// goSources concatenates the non-test Go files of dir; nil if there are none.
func goSources(t *testing.T, dir string) []byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var all []byte
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// readProperties parses a Java-style key = value file.
func readProperties(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}
