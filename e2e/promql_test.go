package e2e

import (
	"fmt"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

// selector is one vector selector of a PromQL expression: the metric name
// (or a regular expression on __name__) and the other label matchers.
type selector struct {
	name      string // "" when nameRegex selects the name
	nameRegex string
	matchers  []matcher
}

type matcher struct{ label, op, value string }

// PromQL words that are not metric names when they appear bare.
var (
	promqlAggregations = map[string]bool{
		"sum": true, "avg": true, "min": true, "max": true, "count": true, "group": true,
		"stddev": true, "stdvar": true, "topk": true, "bottomk": true, "quantile": true,
		"count_values": true, "limitk": true, "limit_ratio": true,
	}
	promqlLabelLists = map[string]bool{ // followed by a (label, ...) list
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	}
	promqlKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
		"inf": true, "nan": true,
	}
)

// promqlSelectors returns the vector selectors of a valid PromQL expression.
// It is a lexer, not a parser: the expressions are checked for syntax by
// promtool; this finds which metrics they read. A name followed by "(" is a
// function, aggregation and grouping keywords are skipped with their label
// lists, and strings, durations and numbers are never names.
func promqlSelectors(expr string) ([]selector, error) {
	var out []selector
	i := 0
	skipSpace := func() {
		for i < len(expr) && unicode.IsSpace(rune(expr[i])) {
			i++
		}
	}
	peek := func() byte {
		skipSpace()
		if i < len(expr) {
			return expr[i]
		}
		return 0
	}
	readString := func() (string, error) {
		q := expr[i]
		start := i
		i++
		var b strings.Builder
		for i < len(expr) && expr[i] != q {
			if expr[i] == '\\' && q != '`' && i+1 < len(expr) {
				i++
			}
			b.WriteByte(expr[i])
			i++
		}
		if i >= len(expr) {
			return "", fmt.Errorf("unterminated string at %d", start)
		}
		i++
		return b.String(), nil
	}
	readIdent := func() string {
		start := i
		for i < len(expr) && (isIdentByte(expr[i]) || (i > start && expr[i] >= '0' && expr[i] <= '9')) {
			i++
		}
		return expr[start:i]
	}
	// readMatchers reads {label op "value", ...}, i at the "{".
	readMatchers := func() ([]matcher, error) {
		i++
		var ms []matcher
		for {
			switch c := peek(); {
			case c == '}':
				i++
				return ms, nil
			case c == ',':
				i++
				continue
			case !isIdentByte(c):
				return nil, fmt.Errorf("label name expected at %d in %q", i, expr)
			}
			label := readIdent()
			skipSpace()
			op := ""
			for _, o := range []string{"=~", "!~", "!=", "="} {
				if strings.HasPrefix(expr[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				return nil, fmt.Errorf("matcher operator expected after %s at %d", label, i)
			}
			i += len(op)
			if c := peek(); c != '"' && c != '\'' && c != '`' {
				return nil, fmt.Errorf("string expected after %s%s at %d", label, op, i)
			}
			v, err := readString()
			if err != nil {
				return nil, err
			}
			ms = append(ms, matcher{label, op, v})
		}
	}
	add := func(name string, ms []matcher) error {
		s := selector{name: name}
		for _, m := range ms {
			if m.label != "__name__" {
				s.matchers = append(s.matchers, m)
				continue
			}
			switch {
			case s.name != "" || s.nameRegex != "":
				return fmt.Errorf("selector with two names in %q", expr)
			case m.op == "=":
				s.name = m.value
			case m.op == "=~":
				s.nameRegex = m.value
			default:
				return fmt.Errorf("negative __name__ matcher in %q: cannot tell which metrics it reads", expr)
			}
		}
		if s.name == "" && s.nameRegex == "" {
			return fmt.Errorf("selector without a metric name in %q", expr)
		}
		out = append(out, s)
		return nil
	}

	for skipSpace(); i < len(expr); skipSpace() {
		c := expr[i]
		switch {
		case c == '#': // comment to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			if _, err := readString(); err != nil {
				return nil, err
			}
		case c == '[': // range, subquery: durations only
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated [ at %d", i)
			}
			i += end + 1
		case c == '{': // a selector of its name by matchers only
			ms, err := readMatchers()
			if err != nil {
				return nil, err
			}
			if err := add("", ms); err != nil {
				return nil, err
			}
		case c >= '0' && c <= '9' || c == '.': // number or duration (1e-3, 10m, 0x1f)
			for i < len(expr) && (isIdentByte(expr[i]) || expr[i] >= '0' && expr[i] <= '9' || expr[i] == '.' ||
				(expr[i] == '-' || expr[i] == '+') && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isIdentByte(c):
			word := readIdent()
			lower := strings.ToLower(word)
			next := peek()
			switch {
			case promqlLabelLists[lower]:
				if next == '(' {
					end := strings.IndexByte(expr[i:], ')')
					if end < 0 {
						return nil, fmt.Errorf("unterminated label list after %s", word)
					}
					i += end + 1
				}
			case promqlAggregations[lower], promqlKeywords[lower], next == '(':
				// an aggregation, operator, function or literal
			default:
				var ms []matcher
				if next == '{' {
					var err error
					if ms, err = readMatchers(); err != nil {
						return nil, err
					}
				}
				if err := add(word, ms); err != nil {
					return nil, err
				}
			}
		default: // operators, parentheses, commas, @
			i++
		}
	}
	return out, nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func TestPromQLSelectors(t *testing.T) {
	sel := func(name string, ms ...matcher) selector { return selector{name: name, matchers: ms} }
	for _, tc := range []struct {
		expr string
		want []selector
	}{
		{`up{job=~"order|payment"} == 0`, []selector{sel("up", matcher{"job", "=~", "order|payment"})}},
		{`sum by (group) (rate(x_total{result="dlq"}[5m])) > 0`, []selector{sel("x_total", matcher{"result", "=", "dlq"})}},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket{route="/api/v1/orders"}[1m])))`,
			[]selector{sel("h_bucket", matcher{"route", "=", "/api/v1/orders"})}},
		{"max by (group) ({__name__=~\".+_consumer_lag\"})\n  > 60 * (sum by(group)(rate({__name__=~'.+_total', result!=\"ok\"}[5m])) or 0 * a)\nand on (group) delta(b[10m] offset 1h) >= 0",
			[]selector{{nameRegex: ".+_consumer_lag"}, {nameRegex: ".+_total", matchers: []matcher{{"result", "!=", "ok"}}}, sel("a"), sel("b")}},
		{`x unless x offset 10m`, []selector{sel("x"), sel("x")}},
		{`sum without (instance) (m) / ignoring (job) group_left n`, []selector{sel("m"), sel("n")}},
		{`label_replace(m, "dst", "{{x}} $1", "src", "(.*)")`, []selector{sel("m")}},
		{`vector(200) + scalar(m @ 1609746000) * 1e-3 + Inf`, []selector{sel("m")}},
		{`avg_over_time(m[10m:1m]) # m{a="b"} in a comment`, []selector{sel("m")}},
		{`sum(m{a="x\"y", b='z'})`, []selector{sel("m", matcher{"a", "=", `x"y`}, matcher{"b", "=", "z"})}},
		{`m:recorded:rate5m > bool 0`, []selector{sel("m:recorded:rate5m")}},
	} {
		got, err := promqlSelectors(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(selector{}, matcher{})); diff != "" {
			t.Errorf("%q selectors (-want +got):\n%s", tc.expr, diff)
		}
	}
	for _, bad := range []string{`m{a="b"`, `m{a "b"}`, `{job="x"}`, `{__name__!="x"}`, `rate(m[5m)`} {
		if got, err := promqlSelectors(bad); err == nil {
			t.Errorf("%q: got %v, want an error", bad, got)
		}
	}
}
