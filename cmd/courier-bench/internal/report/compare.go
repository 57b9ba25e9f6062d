package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/courierhq/courier/cmd/courier-bench/internal/e2e"
	"github.com/courierhq/courier/cmd/courier-bench/internal/edge"
	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
)

// The comparisons: every rung that ran for every system compared, with
// the median over rounds and the spread (min–max), the rounds counted and
// how many of them ran on a saturated machine. Nothing is picked as "the
// best": a rung is compared only at the same offered rate.

// obs is one round's value of one system at one rung.
type obs struct {
	v         float64
	held      bool
	saturated bool
	usage     procs.Usage
}

// series is a system's samples at one rung.
type series []obs

func (s series) values() []float64 {
	out := make([]float64, len(s))
	for i, x := range s {
		out[i] = x.v
	}
	return out
}

// Median of vs (0 when empty).
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cell is "median (min–max)" over the rounds, "–" when none.
func (s series) cell() string {
	if len(s) == 0 {
		return "–"
	}
	vs := s.values()
	if len(vs) == 1 {
		return num(vs[0])
	}
	return fmt.Sprintf("%s (%s–%s)", num(Median(vs)), num(slices.Min(vs)), num(slices.Max(vs)))
}

func (s series) median() float64 { return Median(s.values()) }

func (s series) heldText() string {
	h := 0
	for _, x := range s {
		if x.held {
			h++
		}
	}
	return fmt.Sprintf("%d/%d", h, len(s))
}

func satCount(ss ...series) (sat, n int) {
	for _, s := range ss {
		for _, x := range s {
			n++
			if x.saturated {
				sat++
			}
		}
	}
	return sat, n
}

func ratio(a, b series) string {
	if len(a) == 0 || len(b) == 0 || b.median() == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a.median()/b.median())
}

// rungKey identifies a rung.
type rungKey struct {
	mode string
	acks bool
	rate float64
}

func sortedKeys[V any](m map[rungKey]V) []rungKey {
	ks := make([]rungKey, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b rungKey) int {
		if a.mode != b.mode {
			return strings.Compare(a.mode, b.mode)
		}
		if a.acks != b.acks {
			if !a.acks {
				return -1
			}
			return 1
		}
		switch {
		case a.rate < b.rate:
			return -1
		case a.rate > b.rate:
			return 1
		}
		return 0
	})
	return ks
}

// e2eSeries collects, per rung, each build's rounds: f picks the value.
func (r *Results) e2eSeries(f func(e2e.StepResult) float64) map[rungKey]map[string]series {
	out := map[rungKey]map[string]series{}
	for _, b := range r.Builds {
		if b.E2E == nil {
			continue
		}
		for _, s := range b.E2E.Steps {
			if s.Warmup {
				continue
			}
			k := rungKey{s.Mode, s.Acks, s.Rate}
			if out[k] == nil {
				out[k] = map[string]series{}
			}
			out[k][b.Label] = append(out[k][b.Label], obs{v: f(s), held: s.Broken == "", saturated: s.Usage.Saturated, usage: s.Usage})
		}
	}
	return out
}

func (r *Results) nullSeries(f func(float64, float64) float64) map[float64]series {
	out := map[float64]series{}
	for _, n := range r.Null {
		for _, s := range n.Steps {
			out[s.Rate] = append(out[s.Rate], obs{v: f(s.Achieved, s.Latency.P99), held: s.Broken == "", saturated: s.Usage.Saturated, usage: s.Usage})
		}
	}
	return out
}

// edgeSeries collects the edge ladders per rung for every build and the
// peer (as "peer" and "peer+history").
func (r *Results) edgeSeries(f func(edge.Step) float64) map[rungKey]map[string]series {
	out := map[rungKey]map[string]series{}
	add := func(sys string, steps []edge.Step) {
		for _, s := range steps {
			k := rungKey{mode: s.Kind, rate: s.Rate}
			if out[k] == nil {
				out[k] = map[string]series{}
			}
			out[k][sys] = append(out[k][sys], obs{v: f(s), held: s.Broken == "", saturated: s.Usage.Saturated, usage: s.Usage})
		}
	}
	for _, b := range r.Builds {
		if b.Edge != nil {
			add(b.Label, b.Edge.Group)
			add(b.Label, b.Edge.OneToOne)
		}
	}
	for _, p := range r.Peers {
		sys := "peer"
		if p.History {
			sys = "peer+history"
		}
		add(sys, p.Group)
	}
	return out
}

func (r *Results) rounds() int {
	n := 0
	for _, b := range r.Builds {
		n = max(n, b.Repeat+1)
	}
	return n
}

func (r *Results) uniqueLabels() []string {
	var ls []string
	for _, b := range r.Builds {
		if !slices.Contains(ls, b.Label) {
			ls = append(ls, b.Label)
		}
	}
	return ls
}

func usageText(ss ...series) string {
	var lc, emu []float64
	for _, s := range ss {
		for _, x := range s {
			lc = append(lc, x.usage.LoadClient)
			emu = append(emu, x.usage.PubSub+x.usage.Firestore)
		}
	}
	if len(lc) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f / %.2f", Median(lc), Median(emu))
}

func satText(ss ...series) string {
	sat, n := satCount(ss...)
	if sat == 0 {
		return fmt.Sprintf("0/%d", n)
	}
	return fmt.Sprintf("**%d/%d**", sat, n)
}

// Comparisons writes the matched, repeated comparisons.
func (r *Results) Comparisons(w io.Writer) {
	labels := r.uniqueLabels()
	fmt.Fprintf(w, "## Matched comparisons (%d round(s), builds alternating)\n\n", r.rounds())
	fmt.Fprintln(w, "Every cell is the median over the rounds with the spread (min–max). Only rungs at the same offered rate are compared; every rung that ran is listed. \"held\" counts rounds where the rung held (nothing lost or refused, p99 ≤ bound); \"saturated\" counts steps (all systems of the row) where the machine's busy cores were ≥ 90 % — there the number measures the machine, not the system. \"client / emulators\" is the median CPU in cores of the load client (this process) and of both emulators' JVMs.")
	fmt.Fprintln(w)

	rate := r.e2eSeries(func(s e2e.StepResult) float64 { return s.Achieved })
	p99 := r.e2eSeries(func(s e2e.StepResult) float64 { return s.Latency.P99 })
	if len(rate) > 0 {
		fmt.Fprintln(w, "### End to end: delivered msg/s and p99 (ms), each build")
		fmt.Fprintln(w)
		head := []string{"ladder", "acks", "offered msg/s"}
		for _, l := range labels {
			head = append(head, l+" msg/s", l+" p99 ms", l+" held")
		}
		if len(labels) == 2 {
			head = append(head, "new/old msg/s", "new/old p99")
		}
		head = append(head, "saturated", "client / emulators")
		t := table{head: head}
		for _, k := range sortedKeys(rate) {
			row := []string{k.mode, onOff(k.acks), num(k.rate)}
			var all []series
			for _, l := range labels {
				row = append(row, rate[k][l].cell(), p99[k][l].cell(), rate[k][l].heldText())
				all = append(all, rate[k][l])
			}
			if len(labels) == 2 {
				row = append(row, ratio(rate[k]["new"], rate[k]["old"]), ratio(p99[k]["new"], p99[k]["old"]))
			}
			row = append(row, satText(all...), usageText(all...))
			t.add(row...)
		}
		t.write(w)
	}
	nrate := r.nullSeries(func(a, _ float64) float64 { return a })
	np99 := r.nullSeries(func(_, p float64) float64 { return p })
	if len(nrate) > 0 && len(rate) > 0 {
		fmt.Fprintln(w, "### End to end ÷ null pipeline (the ceiling on the same emulators, same run: publish → pull → one batched commit → publish → two pulls, no Courier code)")
		fmt.Fprintln(w)
		head := []string{"offered msg/s", "null msg/s", "null p99 ms", "null held"}
		for _, l := range labels {
			head = append(head, l+" ÷ null msg/s (acks off)", l+" ÷ null p99 (acks off)", l+" ÷ null p99 (acks on)")
		}
		head = append(head, "saturated (null)", "client / emulators (null)")
		t := table{head: head}
		rates := make([]float64, 0, len(nrate))
		for k := range nrate {
			rates = append(rates, k)
		}
		slices.Sort(rates)
		for _, x := range rates {
			row := []string{num(x), nrate[x].cell(), np99[x].cell(), nrate[x].heldText()}
			for _, l := range labels {
				off, on := rungKey{"pairs", false, x}, rungKey{"pairs", true, x}
				row = append(row, ratio(rate[off][l], nrate[x]), ratio(p99[off][l], np99[x]), ratio(p99[on][l], np99[x]))
			}
			row = append(row, satText(nrate[x]), usageText(nrate[x]))
			t.add(row...)
		}
		t.write(w)
	}

	fps := r.edgeSeries(func(s edge.Step) float64 { return s.FramesPerS })
	ep99 := r.edgeSeries(func(s edge.Step) float64 { return s.Latency.P99 })
	fpc := r.edgeSeries(func(s edge.Step) float64 { return s.FramesPerCoreSecond })
	if len(fps) > 0 {
		systems := slices.Clone(labels)
		for _, p := range []string{"peer", "peer+history"} {
			for _, m := range fps {
				if _, ok := m[p]; ok && !slices.Contains(systems, p) {
					systems = append(systems, p)
				}
			}
		}
		fmt.Fprintln(w, "### Edge alone (and the peer): frames/s, p99 (ms), frames per server core-second")
		fmt.Fprintln(w)
		head := []string{"ladder", "deliveries/s"}
		for _, s := range systems {
			head = append(head, s+" frames/s", s+" p99 ms", s+" frames/core-s", s+" held")
		}
		head = append(head, "saturated", "client / emulators")
		t := table{head: head}
		for _, k := range sortedKeys(fps) {
			row := []string{k.mode, num(k.rate)}
			var all []series
			for _, s := range systems {
				row = append(row, fps[k][s].cell(), ep99[k][s].cell(), fpc[k][s].cell(), fps[k][s].heldText())
				all = append(all, fps[k][s])
			}
			row = append(row, satText(all...), usageText(all...))
			t.add(row...)
		}
		t.write(w)
		r.partsMarkdown(w, labels)
	}
	r.idleComparison(w, labels)
}

// partsMarkdown attributes each build's edge p99 to its parts.
func (r *Results) partsMarkdown(w io.Writer, labels []string) {
	parts := []string{"pubsub_hop", "reorder_wait", "queue_wait", "socket_write"}
	for _, l := range labels {
		got := map[rungKey]map[string]series{}
		any := false
		for _, b := range r.Builds {
			if b.Label != l || b.Edge == nil {
				continue
			}
			for _, s := range append(slices.Clone(b.Edge.Group), b.Edge.OneToOne...) {
				k := rungKey{mode: s.Kind, rate: s.Rate}
				if got[k] == nil {
					got[k] = map[string]series{}
				}
				for _, p := range parts {
					if d, ok := s.Parts[p]; ok {
						any = true
						got[k][p] = append(got[k][p], obs{v: d.P99})
						got[k][p+"/p50"] = append(got[k][p+"/p50"], obs{v: d.P50})
					}
				}
				got[k]["frame"] = append(got[k]["frame"], obs{v: s.Latency.P99})
			}
		}
		if !any {
			continue
		}
		fmt.Fprintf(w, "**%s**: the edge's latency in parts (its own histograms, p50 / p99 in ms, medians over rounds; bucket-interpolated): Pub/Sub hop = publish time → the edge's handler; reorder wait = handler → handed to the session; queue wait = handed → its socket write starts; socket write = one write. The client's frame p99 (from the publish's due time) beside them.\n\n", l)
		head := []string{"ladder", "deliveries/s", "frame p99"}
		for _, p := range parts {
			head = append(head, strings.ReplaceAll(p, "_", " "))
		}
		t := table{head: head}
		for _, k := range sortedKeys(got) {
			row := []string{k.mode, num(k.rate), num(got[k]["frame"].median())}
			for _, p := range parts {
				if len(got[k][p]) == 0 {
					row = append(row, "–")
					continue
				}
				row = append(row, num(got[k][p+"/p50"].median())+" / "+num(got[k][p].median()))
			}
			t.add(row...)
		}
		t.write(w)
	}
}

// idleComparison puts both builds' idle memory side by side, measured the
// same way (forced GC through DEBUG_ADDR's /debug/memstats when both have
// it), RSS beside it.
func (r *Results) idleComparison(w io.Writer, labels []string) {
	gom, rss := map[int]map[string]series{}, map[int]map[string]series{}
	src := map[string][]string{}
	for _, b := range r.Builds {
		if b.Edge == nil {
			continue
		}
		for _, p := range b.Edge.Idle {
			if gom[p.Sessions] == nil {
				gom[p.Sessions], rss[p.Sessions] = map[string]series{}, map[string]series{}
			}
			gom[p.Sessions][b.Label] = append(gom[p.Sessions][b.Label], obs{v: p.GoPerSession / 1024})
			rss[p.Sessions][b.Label] = append(rss[p.Sessions][b.Label], obs{v: p.RSSPerSession / 1024})
			if !slices.Contains(src[b.Label], p.Source) {
				src[b.Label] = append(src[b.Label], p.Source)
			}
		}
	}
	if len(gom) == 0 {
		return
	}
	fmt.Fprintln(w, "### Edge idle memory per session (KiB), the same method for every build")
	fmt.Fprintln(w)
	var how []string
	for _, l := range labels {
		how = append(how, fmt.Sprintf("%s: %s", l, strings.Join(src[l], ", ")))
	}
	fmt.Fprintf(w, "Read from: %s (\"debug\" = Go heap + stacks after a forced GC through DEBUG_ADDR's /debug/memstats; \"metrics\" = the Prometheus Go collector, no forced GC). RSS from /proc beside it.\n\n", strings.Join(how, "; "))
	head := []string{"sessions"}
	for _, l := range labels {
		head = append(head, l+" Go heap+stacks", l+" RSS")
	}
	if len(labels) == 2 {
		head = append(head, "new/old Go", "new/old RSS")
	}
	t := table{head: head}
	ns := make([]int, 0, len(gom))
	for n := range gom {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	for _, n := range ns {
		row := []string{fmt.Sprint(n)}
		for _, l := range labels {
			row = append(row, gom[n][l].cell(), rss[n][l].cell())
		}
		if len(labels) == 2 {
			row = append(row, ratio(gom[n]["new"], gom[n]["old"]), ratio(rss[n]["new"], rss[n]["old"]))
		}
		t.add(row...)
	}
	t.write(w)
}
