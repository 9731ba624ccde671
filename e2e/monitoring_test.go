package e2e

// The monitoring of docker-compose.yml: Prometheus (deploy/prometheus) and
// Grafana (deploy/grafana). compose_test.go checks how the compose file mounts
// them; this file checks what they query against what the services export.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"seckill/e2e/internal/stack"
)

// TestMonitoringQueriesExported starts the system, runs a small sale through
// it and scrapes every service's /metrics until each metric that an alert
// rule or a dashboard panel reads is there, with the labels it is filtered
// on: a metric renamed or relabelled in a service fails it, where a list kept
// in the test would not. A labelled family appears only once something
// counted in it, so the sale takes an order, refuses one (per-user limit) and
// one malformed request, and the wait covers the consumers' lag refresh (5 s)
// and the outbox monitor's sampling. Label values are not checked: most
// (result="dlq", status 5xx) only appear when things go wrong.
func TestMonitoringQueriesExported(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system")
	}
	queries := monitoringQueries(t)
	bin := stack.Build(t)
	s := stack.Start(t, bin, stack.Options{})
	ctx := t.Context()

	product := "mon-" + randHex()
	auth := http.Header{"Authorization": {"Bearer " + s.AdminToken}}
	sale := map[string]any{"name": "monitoring sale", "price_cents": salePrice, "stock": 5, "per_user_limit": 1}
	for _, req := range []struct {
		svc    *stack.Service
		method string
		path   string
		header http.Header
		body   any
		want   int
	}{
		{s.Inventory, http.MethodPut, "/api/v1/products/" + product, auth, sale, http.StatusOK},
		{s.Order, http.MethodPost, "/api/v1/orders", http.Header{"Idempotency-Key": {"mon-1"}},
			map[string]any{"user_id": "mon-u1", "product_id": product, "quantity": 1}, http.StatusAccepted},
		{s.Order, http.MethodPost, "/api/v1/orders", http.Header{"Idempotency-Key": {"mon-2"}},
			map[string]any{"user_id": "mon-u1", "product_id": product, "quantity": 1}, http.StatusConflict},
		{s.Order, http.MethodPost, "/api/v1/orders", nil, map[string]any{"user_id": "mon-u2"}, http.StatusBadRequest},
	} {
		resp, err := req.svc.Do(ctx, req.method, req.path, req.header, req.body)
		if err != nil || resp.Status != req.want && !(req.want == http.StatusOK && resp.Status/100 == 2) {
			t.Fatalf("%s %s%s = %v %v, want %d", req.method, req.svc.Name, req.path, resp, err, req.want)
		}
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		exported := scrapeServices(ctx, t, s)
		missing := unexported(queries, exported)
		if len(missing) == 0 {
			t.Logf("%d queries read %d metrics the services export", len(queries), len(exported))
			return
		}
		if time.Now().After(deadline) {
			for _, m := range missing {
				t.Error(m)
			}
			return
		}
		time.Sleep(time.Second)
	}
}

// TestMonitoringDashboardPromQL checks every dashboard query (its Grafana
// variables filled in) with promtool, Prometheus's own parser: `make test`
// checks the rule files the same way, and nothing else reads the dashboard.
func TestMonitoringDashboardPromQL(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (Debian: apt-get install prometheus): %v", err)
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, q := range monitoringQueries(t) {
		if !strings.HasPrefix(q.where, "dashboard") {
			continue
		}
		n++
		b, _ := json.Marshal(q.expr) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query:%d # %s\n        expr: %s\n", n, q.where, b)
	}
	if n == 0 {
		t.Fatal("no dashboard query found")
	}
	file := filepath.Join(t.TempDir(), "dashboard.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules on the %d dashboard queries: %v\n%s\n%s", n, err, out, rules.String())
	}
}

// query is one PromQL expression of the monitoring and where it is used.
type query struct {
	where, expr string
	selectors   []selector
}

// monitoringQueries returns every expression of the alert rules (annotation
// templates' query calls included) and of the Grafana dashboards.
func monitoringQueries(t *testing.T) []query {
	t.Helper()
	root := repoRoot(t)
	var qs []query
	addQuery := func(where, expr string, constantOK bool) {
		sels, err := promqlSelectors(expr)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if len(sels) == 0 && !constantOK {
			t.Fatalf("%s: %q reads no metric", where, expr)
		}
		qs = append(qs, query{where, expr, sels})
	}

	ruleFiles, _ := filepath.Glob(filepath.Join(root, "deploy/prometheus/rules/*.yml"))
	if len(ruleFiles) == 0 {
		t.Fatal("no rule file in deploy/prometheus/rules")
	}
	templateQuery := regexp.MustCompile(`\bquery\s+"((?:[^"\\]|\\.)*)"`)
	for _, path := range ruleFiles {
		var f struct {
			Groups []struct {
				Rules []struct {
					Alert, Record, Expr string
					Annotations         map[string]string
				}
			}
		}
		readYAML(t, path, &f)
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					t.Fatalf("%s: recording rule %s: the metric check does not know recorded names yet", filepath.Base(path), r.Record)
				}
				where := fmt.Sprintf("%s alert %s", filepath.Base(path), r.Alert)
				addQuery(where, r.Expr, false)
				for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
					for _, m := range templateQuery.FindAllStringSubmatch(r.Annotations[k], -1) {
						addQuery(where+" annotation "+k, strings.ReplaceAll(m[1], `\"`, `"`), false)
					}
				}
			}
		}
	}

	dashboards, _ := filepath.Glob(filepath.Join(root, "deploy/grafana/dashboards/*.json"))
	if len(dashboards) == 0 {
		t.Fatal("no dashboard in deploy/grafana/dashboards")
	}
	for _, path := range dashboards {
		d := readDashboard(t, path)
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = fmt.Sprint(v.Current.Value)
		}
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				where := fmt.Sprintf("dashboard %s panel %q query %s", filepath.Base(path), p.Title, tg.RefID)
				expr, err := grafanaExpand(tg.Expr, vars)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				addQuery(where, expr, true) // e.g. vector($consume_rate), a constant line
			}
		}
	}
	return qs
}

var grafanaVar = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// grafanaExpand fills in Grafana's interval variables and the dashboard's own.
func grafanaExpand(expr string, vars map[string]string) (string, error) {
	var err error
	out := grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		m := grafanaVar.FindStringSubmatch(v)
		name := m[1] + m[2]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		}
		if val, ok := vars[name]; ok {
			return val
		}
		err = fmt.Errorf("unknown variable $%s in %q", name, expr)
		return v
	})
	return out, err
}

// exportedMetrics maps each series name the services export to its label names.
type exportedMetrics map[string]map[string]bool

// prometheusLabels are added by Prometheus to every scraped series.
var prometheusLabels = []string{"job", "instance"}

// scrapeServices reads every service's /metrics (in the text format, as
// Prometheus does) into series names and their labels.
func scrapeServices(ctx context.Context, t *testing.T, s *stack.Stack) exportedMetrics {
	t.Helper()
	out := exportedMetrics{}
	add := func(name string, labels []*dto.LabelPair, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range labels {
			out[name][l.GetName()] = true
		}
		for _, l := range extra {
			out[name][l] = true
		}
	}
	for _, svc := range s.Services() {
		resp, err := svc.Do(ctx, http.MethodGet, "/metrics", nil, nil)
		if err != nil || resp.Status != http.StatusOK {
			t.Fatalf("GET %s/metrics = %v %v", svc.Name, resp, err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(bytes.NewReader(resp.Body))
		if err != nil {
			t.Fatalf("parse %s/metrics: %v", svc.Name, err)
		}
		for name, f := range families {
			for _, m := range f.GetMetric() {
				switch f.GetType() {
				case dto.MetricType_HISTOGRAM:
					add(name+"_bucket", m.GetLabel(), "le")
					add(name+"_sum", m.GetLabel())
					add(name+"_count", m.GetLabel())
				case dto.MetricType_SUMMARY:
					add(name, m.GetLabel(), "quantile")
					add(name+"_sum", m.GetLabel())
					add(name+"_count", m.GetLabel())
				default:
					add(name, m.GetLabel())
				}
			}
		}
	}
	// Prometheus's own series for every target.
	add("up", nil)
	return out
}

// unexported describes each selector of qs that no exported series satisfies:
// no metric of that name (or none matching the name's regular expression), or
// one without a label the selector filters on.
func unexported(qs []query, exported exportedMetrics) []string {
	var problems []string
	for _, q := range qs {
		for _, sel := range q.selectors {
			var names []string
			if sel.name != "" {
				if _, ok := exported[sel.name]; ok {
					names = []string{sel.name}
				}
			} else {
				re, err := regexp.Compile("^(?:" + sel.nameRegex + ")$")
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: name regexp %q: %v", q.where, sel.nameRegex, err))
					continue
				}
				for name := range exported {
					if re.MatchString(name) {
						names = append(names, name)
					}
				}
				sort.Strings(names)
			}
			if len(names) == 0 {
				problems = append(problems, fmt.Sprintf("%s: no service exports %s%s", q.where, sel.name, sel.nameRegex))
				continue
			}
			for _, m := range sel.matchers {
				if slices.Contains(prometheusLabels, m.label) {
					continue
				}
				for _, name := range names {
					if !exported[name][m.label] {
						problems = append(problems, fmt.Sprintf("%s: %s has no label %s (it has %v)", q.where, name, m.label, slices.Sorted(maps.Keys(exported[name]))))
					}
				}
			}
		}
	}
	return problems
}

// prometheusConfig is the part of prometheus.yml the tests read.
type prometheusConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func readPrometheusConfig(t *testing.T, path string) prometheusConfig {
	t.Helper()
	var c prometheusConfig
	readYAML(t, path, &c)
	return c
}

// dashboard is the part of a Grafana dashboard JSON the tests read.
type dashboard struct {
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name    string `json:"name"`
			Current struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func readDashboard(t *testing.T, path string) dashboard {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("parse %s: %v", filepath.Base(path), err)
	}
	return d
}

// allPanels returns the dashboard's panels, those of collapsed rows included.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}
