// Package metricnames is the one check of Courier's metric names: it reads
// the metric families a running binary exposes on /metrics, finds every
// place a chart template, an alert rule, a dashboard or a document names a
// courier_* metric, and reports each name (and each label used with it in a
// selector or a by/without clause) that no binary exports. tests/e2e
// TestMetricNamesExist runs it against the real binaries.
package metricnames

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Family is one metric family as a binary exposes it.
type Family struct {
	Name   string
	Type   string // counter, gauge, histogram, summary, untyped
	Labels map[string]bool
}

// Families are metric families by name.
type Families map[string]*Family

// ParseExposition reads the Prometheus text format into fams (created when
// nil). Histogram and summary series (_bucket, _sum, _count) are folded
// into their family; "le" and "quantile" count as the family's labels.
func ParseExposition(r io.Reader, fams Families) (Families, error) {
	if fams == nil {
		fams = Families{}
	}
	types := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[1] == "TYPE" {
				types[f[2]] = f[3]
				fam(fams, f[2]).Type = f[3]
			}
			continue
		}
		name, labels, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok {
				if t := types[b]; t == "histogram" || t == "summary" {
					base = b
				}
			}
		}
		f := fam(fams, base)
		for _, l := range labels {
			f.Labels[l] = true
		}
	}
	return fams, sc.Err()
}

func fam(fams Families, name string) *Family {
	f := fams[name]
	if f == nil {
		f = &Family{Name: name, Type: "untyped", Labels: map[string]bool{}}
		fams[name] = f
	}
	return f
}

// parseSample returns a sample line's metric name and label names.
func parseSample(line string) (string, []string, error) {
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return "", nil, fmt.Errorf("exposition line without a value: %q", line)
	}
	name := line[:i]
	if line[i] != '{' {
		return name, nil, nil
	}
	var labels []string
	rest := line[i+1:]
	for {
		rest = strings.TrimLeft(rest, ", ")
		if strings.HasPrefix(rest, "}") {
			return name, labels, nil
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
			return "", nil, fmt.Errorf("malformed labels in %q", line)
		}
		labels = append(labels, strings.TrimSpace(rest[:eq]))
		j := eq + 2
		for ; j < len(rest) && rest[j] != '"'; j++ {
			if rest[j] == '\\' {
				j++
			}
		}
		if j >= len(rest) {
			return "", nil, fmt.Errorf("unterminated label value in %q", line)
		}
		rest = rest[j+1:]
	}
}

// Use is one place a courier_* metric is named.
type Use struct {
	Where  string // file:line
	Metric string // as written: a family name, or one with _bucket/_sum/_count
	// Selector holds the label names of the {…} right after the name.
	Selector []string
	// Grouping holds the by/without labels of the expression the name is in
	// (a rule's or panel's expr, a code span of a document); they must exist
	// on one of the expression's courier metrics.
	Grouping []string
	// Peers are the other courier metrics of the same expression.
	Peers []string
}

var (
	nameRe = regexp.MustCompile(`(^|[^A-Za-z0-9_:.\-/])(courier_[a-z0-9_]*[a-z0-9_])`)
	// Names in prose count as metrics when they are in a metric namespace or
	// end like one, so attribute names such as courier_dead_letter_reason
	// (a Pub/Sub attribute) stay out; inside PromQL every name counts.
	metricShaped = regexp.MustCompile(`^courier_(api_gateway|pipeline_worker|ws_edge|dependency)_|_(total|seconds|bytes|sessions|up|ratio|in_flight|receiving|messages|users|count|sum|bucket|info)$`)
	groupRe      = regexp.MustCompile(`\b(by|without)\s*\(([^)]*)\)`)
	labelRe      = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	helmAction   = regexp.MustCompile(`\{\{.*?\}\}`)
)

// TargetLabels are added by the scrape (Prometheus, the operator, GKE's
// managed collection), not by the binaries: selectors and groupings may
// use them.
var TargetLabels = map[string]bool{
	"job": true, "instance": true, "pod": true, "namespace": true, "container": true, "service": true,
	"endpoint": true, "node": true, "cluster": true, "location": true, "project_id": true, "__name__": true,
}

// ScanPromQL returns the uses in one expression (PromQL, or a code span of
// a document when prose is true: then only metric-shaped names count).
func ScanPromQL(where, expr string, prose bool) []Use {
	// Helm actions ({{ $ns }}) are not PromQL: what they render is checked
	// by tests/deploy on the rendered chart.
	expr = helmAction.ReplaceAllString(expr, "")
	var uses []Use
	for _, m := range nameRe.FindAllStringSubmatchIndex(expr, -1) {
		name := expr[m[4]:m[5]]
		end := m[5]
		if end < len(expr) && expr[end] == ':' {
			continue // a recording rule's name, courier_…:…
		}
		if strings.HasSuffix(name, "_") {
			// A prefix ("courier_ws_edge_*"): it must name at least one family
			// when it is in a metric namespace (courier_route_ is a Pub/Sub
			// attribute's).
			if !prose || metricShaped.MatchString(name) {
				uses = append(uses, Use{Where: where, Metric: name})
			}
			continue
		}
		followed := end < len(expr) && (expr[end] == '{' || expr[end] == '[')
		if prose && !followed && !metricShaped.MatchString(name) {
			continue
		}
		u := Use{Where: where, Metric: name}
		if end < len(expr) && expr[end] == '{' {
			if close := strings.IndexByte(expr[end:], '}'); close > 0 {
				u.Selector = selectorLabels(expr[end+1 : end+close])
			}
		}
		uses = append(uses, u)
	}
	var grouping []string
	for _, g := range groupRe.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[2], ",") {
			if l = strings.TrimSpace(l); labelRe.MatchString(l) {
				grouping = append(grouping, l)
			}
		}
	}
	var names []string
	for _, u := range uses {
		names = append(names, u.Metric)
	}
	for i := range uses {
		uses[i].Grouping = grouping
		uses[i].Peers = names
	}
	return uses
}

// selectorLabels returns the label names of matchers such as
// `a="x", b=~"y|z"` (quoted values may hold commas).
func selectorLabels(s string) []string {
	var out []string
	for s = strings.TrimLeft(s, ", \t\n"); s != ""; s = strings.TrimLeft(s, ", \t\n") {
		i := strings.IndexAny(s, "=!")
		if i <= 0 {
			break
		}
		out = append(out, strings.TrimSpace(s[:i]))
		q := strings.IndexAny(s[i:], "\"'`")
		if q < 0 {
			break
		}
		quote := s[i+q]
		j := i + q + 1
		for ; j < len(s) && s[j] != quote; j++ {
			if s[j] == '\\' {
				j++
			}
		}
		if j >= len(s) {
			break
		}
		s = s[j+1:]
	}
	return out
}

var codeSpan = regexp.MustCompile("`([^`\n]+)`")

// ScanMarkdown returns the uses in a document: every fenced block and
// inline code span is one expression; names in prose count too.
func ScanMarkdown(file, text string) []Use {
	var uses []Use
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.HasPrefix(strings.TrimSpace(lines[i]), "```") {
			start := i
			var block []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				block = append(block, lines[i])
			}
			uses = append(uses, ScanPromQL(fmt.Sprintf("%s:%d", file, start+1), strings.Join(block, "\n"), true)...)
			continue
		}
		where := fmt.Sprintf("%s:%d", file, i+1)
		rest := lines[i]
		for _, m := range codeSpan.FindAllStringSubmatch(rest, -1) {
			uses = append(uses, ScanPromQL(where, m[1], true)...)
		}
		uses = append(uses, ScanPromQL(where, codeSpan.ReplaceAllString(rest, " "), true)...)
	}
	return uses
}

// ScanLines returns the uses in a text file read line by line (chart
// templates, values, Go sources): each line is one expression.
func ScanLines(file, text string) []Use {
	var uses []Use
	for i, line := range strings.Split(text, "\n") {
		uses = append(uses, ScanPromQL(fmt.Sprintf("%s:%d", file, i+1), line, true)...)
	}
	return uses
}

// ScanExprs returns the uses in the PromQL expressions given (a rule file's
// or a dashboard's), each checked in full; where names each.
func ScanExprs(exprs map[string]string) []Use {
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var uses []Use
	for _, k := range keys {
		uses = append(uses, ScanPromQL(k, exprs[k], false)...)
	}
	return uses
}

// DashboardExprs returns every "expr" of a Grafana dashboard (panels,
// nested rows, templating queries), keyed by file and panel title.
func DashboardExprs(file string, data []byte) (map[string]string, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: not JSON: %w", file, err)
	}
	out := map[string]string{}
	var walk func(v any, title string)
	walk = func(v any, title string) {
		switch x := v.(type) {
		case map[string]any:
			if t, ok := x["title"].(string); ok {
				title = t
			}
			for k, c := range x {
				if s, ok := c.(string); ok && (k == "expr" || k == "query") && strings.Contains(s, "courier") {
					out[fmt.Sprintf("%s %q #%d", file, title, len(out)+1)] = s
				}
				walk(c, title)
			}
		case []any:
			for _, c := range x {
				walk(c, title)
			}
		}
	}
	walk(v, "")
	return out, nil
}

// Check returns one message per use that names no exported family, a
// series suffix its family does not have, or a label the family lacks.
func Check(uses []Use, fams Families) []string {
	var errs []string
	for _, u := range uses {
		if strings.HasSuffix(u.Metric, "_") {
			found := false
			for n := range fams {
				found = found || strings.HasPrefix(n, u.Metric)
			}
			if !found {
				errs = append(errs, fmt.Sprintf("%s: no metric starts with %s", u.Where, u.Metric))
			}
			continue
		}
		f, msg := lookup(u.Metric, fams)
		if f == nil {
			errs = append(errs, fmt.Sprintf("%s: %s", u.Where, msg))
			continue
		}
		for _, l := range u.Selector {
			if !f.Labels[l] && !TargetLabels[l] && !(l == "le" && strings.HasSuffix(u.Metric, "_bucket")) {
				errs = append(errs, fmt.Sprintf("%s: %s has no label %q (it has %s)", u.Where, u.Metric, l, labelList(f)))
			}
		}
		for _, l := range u.Grouping {
			if TargetLabels[l] || hasLabel(l, u.Peers, fams) {
				continue
			}
			errs = append(errs, fmt.Sprintf("%s: grouping by %q, a label none of %s has", u.Where, l, strings.Join(u.Peers, ", ")))
		}
	}
	return dedupe(errs)
}

func lookup(name string, fams Families) (*Family, string) {
	if f := fams[name]; f != nil {
		return f, ""
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suf); ok {
			if f := fams[b]; f != nil {
				if f.Type == "histogram" || (f.Type == "summary" && suf != "_bucket") {
					return f, ""
				}
				return nil, fmt.Sprintf("%s: %s is a %s, it has no %s series", name, b, f.Type, suf)
			}
		}
	}
	return nil, fmt.Sprintf("no binary exports %s%s", name, suggest(name, fams))
}

func hasLabel(l string, metrics []string, fams Families) bool {
	for _, m := range metrics {
		if f, _ := lookup(m, fams); f != nil && (f.Labels[l] || (l == "le" && f.Type == "histogram")) {
			return true
		}
	}
	return false
}

// suggest names the exported family that ends like name, if one does
// (courier_edge_sessions → courier_ws_edge_sessions).
func suggest(name string, fams Families) string {
	tail := strings.TrimPrefix(name, "courier_")
	var best []string
	for n := range fams {
		if strings.HasSuffix(n, "_"+tail) || strings.HasSuffix(n, tail[strings.IndexByte(tail, '_')+1:]) && strings.Count(tail, "_") > 1 {
			best = append(best, n)
		}
	}
	sort.Strings(best)
	if len(best) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(best, " or ") + "?)"
}

func labelList(f *Family) string {
	var ls []string
	for l := range f.Labels {
		ls = append(ls, l)
	}
	sort.Strings(ls)
	if len(ls) == 0 {
		return "no labels"
	}
	return strings.Join(ls, ", ")
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

var exprKey = regexp.MustCompile(`^(\s*)(-\s+)?expr:\s*(.*)$`)

// ScanYAML returns the uses in a YAML file or chart template: a rule's
// `expr:` (with its continuation lines, for `|` and `>` blocks) is one
// expression; every other line is one by itself.
func ScanYAML(file, text string) []Use {
	var uses []Use
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		m := exprKey.FindStringSubmatch(lines[i])
		if m == nil {
			uses = append(uses, ScanPromQL(fmt.Sprintf("%s:%d", file, i+1), lines[i], true)...)
			continue
		}
		start, indent := i, len(m[1])+len(m[2])
		expr := []string{strings.TrimLeft(m[3], "|>-+ ")}
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			expr = append(expr, next)
			i++
		}
		uses = append(uses, ScanPromQL(fmt.Sprintf("%s:%d", file, start+1), strings.Join(expr, "\n"), false)...)
	}
	return uses
}
