package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/courierhq/courier/cmd/courier-bench/internal/e2e"
	"github.com/courierhq/courier/cmd/courier-bench/internal/edge"
	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
)

// Headline is one line of the summary: a number per build.
type Headline struct {
	Name string
	Unit string
	// HigherIsBetter decides nothing; it only labels the ratio column.
	Values map[string]float64 // by build label; absent = not measured
}

// Headlines are the numbers the summary shows for every build: medians
// over the rounds (report.md's comparisons give the spread).
func (r *Results) Headlines() []Headline {
	var hs []Headline
	add := func(name, unit string, f func(b *Build) (float64, bool)) {
		// The median over rounds (each round is one Builds entry).
		h := Headline{Name: name, Unit: unit, Values: map[string]float64{}}
		per := map[string][]float64{}
		for i := range r.Builds {
			if v, ok := f(&r.Builds[i]); ok {
				per[r.Builds[i].Label] = append(per[r.Builds[i].Label], v)
			}
		}
		for l, vs := range per {
			h.Values[l] = Median(vs)
		}
		if len(h.Values) > 0 {
			hs = append(hs, h)
		}
	}
	slow := r.Raw.Slowest()
	add("end to end: highest pairs rung held (p99 ≤ bound, 0 lost), acks off", "msg/s", func(b *Build) (float64, bool) {
		return e2eVal(b, func(e *e2e.Result) float64 { return e.Sustained })
	})
	add("end to end, clients acking: highest pairs rung held", "msg/s", func(b *Build) (float64, bool) {
		return e2eVal(b, func(e *e2e.Result) float64 { return e.SustainedAcks })
	})
	add("end to end, group of all recipients: highest rung held, acks off", "msg/s", func(b *Build) (float64, bool) {
		return e2eVal(b, func(e *e2e.Result) float64 { return e.GroupSustained })
	})
	add("end to end, group of all recipients, clients acking: highest rung held", "msg/s", func(b *Build) (float64, bool) {
		return e2eVal(b, func(e *e2e.Result) float64 { return e.GroupSustainedAcks })
	})
	add(fmt.Sprintf("end to end: p99 at %.0f msg/s", r.steadyRate()), "ms", func(b *Build) (float64, bool) {
		return e2eVal(b, func(e *e2e.Result) float64 { return e.SteadyP99 })
	})
	add("ratio: sustained ÷ slowest raw limit ("+slow.Name+")", "×", func(b *Build) (float64, bool) {
		return b.Ratios.SustainedOverSlowest, b.E2E != nil && slow.MsgS > 0
	})
	add("ratio: steady p99 ÷ (2 Pub/Sub hops + 1 commit) p99", "×", func(b *Build) (float64, bool) {
		return b.Ratios.P99OverHops, b.Ratios.P99OverHops > 0
	})
	add(r.burstName(), "msg/s", func(b *Build) (float64, bool) {
		return e2eVal(b, func(e *e2e.Result) float64 { return e.Burst.Throughput })
	})
	for _, name := range r.workerScenarios() {
		add("worker alone, "+name, "msg/s", func(b *Build) (float64, bool) {
			for _, s := range b.Worker {
				if s.Name == name {
					return s.Throughput, true
				}
			}
			return 0, false
		})
		add("worker alone, "+name+": Firestore RPCs", "per msg", func(b *Build) (float64, bool) {
			for _, s := range b.Worker {
				if s.Name == name {
					return s.RPCsPerMsg, s.Delivered > 0
				}
			}
			return 0, false
		})
	}
	for _, n := range r.idleCounts() {
		add(fmt.Sprintf("edge idle, %d sessions: Go heap+stacks", n), "KiB/session", func(b *Build) (float64, bool) {
			p, ok := idleAt(b, n)
			return p.GoPerSession / 1024, ok
		})
		add(fmt.Sprintf("edge idle, %d sessions: RSS", n), "KiB/session", func(b *Build) (float64, bool) {
			p, ok := idleAt(b, n)
			return p.RSSPerSession / 1024, ok
		})
	}
	add("edge group fan-out: highest rung held (0 lost, no close, p99 ≤ bound)", "deliveries/s", func(b *Build) (float64, bool) {
		if b.Edge == nil {
			return 0, false
		}
		return sustainedSteps(b.Edge.Group), len(b.Edge.Group) > 0
	})
	add("edge group fan-out: frames per edge core-second (best rung)", "frames", func(b *Build) (float64, bool) {
		if b.Edge == nil {
			return 0, false
		}
		best := 0.0
		for _, s := range b.Edge.Group {
			best = max(best, s.FramesPerCoreSecond)
		}
		return best, best > 0
	})
	add("edge one-to-one: highest rung held", "deliveries/s", func(b *Build) (float64, bool) {
		if b.Edge == nil {
			return 0, false
		}
		return sustainedSteps(b.Edge.OneToOne), len(b.Edge.OneToOne) > 0
	})
	return hs
}

func (r *Results) burstName() string {
	for _, b := range r.Builds {
		if e := b.E2E; e != nil {
			return fmt.Sprintf("burst: %d msgs, each to 2 of %d, %d clients, end to end", e.Burst.Messages, e.Burst.Recipients, e.Burst.Clients)
		}
	}
	return "burst, end to end"
}

func (r *Results) steadyRate() float64 {
	for _, b := range r.Builds {
		if b.E2E != nil {
			return b.E2E.SteadyRate
		}
	}
	return 200
}

func e2eVal(b *Build, f func(*e2e.Result) float64) (float64, bool) {
	if b.E2E == nil {
		return 0, false
	}
	return f(b.E2E), true
}

func (r *Results) workerScenarios() []string {
	var names []string
	for _, b := range r.Builds {
		for _, s := range b.Worker {
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
	}
	return names
}

func (r *Results) idleCounts() []int {
	var ns []int
	for _, b := range r.Builds {
		if b.Edge != nil {
			for _, p := range b.Edge.Idle {
				if !slices.Contains(ns, p.Sessions) {
					ns = append(ns, p.Sessions)
				}
			}
		}
	}
	slices.Sort(ns)
	return ns
}

func idleAt(b *Build, n int) (edge.IdlePoint, bool) {
	if b.Edge == nil {
		return edge.IdlePoint{}, false
	}
	for _, p := range b.Edge.Idle {
		if p.Sessions == n {
			return p, true
		}
	}
	return edge.IdlePoint{}, false
}

// sustainedSteps is the highest rate of a rung that held (as the end-to-end
// ladder's sustained rate).
func sustainedSteps(steps []edge.Step) float64 {
	best := 0.0
	for _, s := range steps {
		if s.Broken == "" {
			best = max(best, s.Rate)
		}
	}
	return best
}

func (r *Results) labels() []string { return r.uniqueLabels() }

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// Summary writes the summary table (plain text, aligned).
func (r *Results) Summary(w io.Writer) {
	labels := r.labels()
	rows := [][]string{append(append([]string{"metric", "unit"}, labels...), ratioHeader(labels)...)}
	slow := r.Raw.Slowest()
	if slow.MsgS > 0 {
		rows = append(rows, []string{"slowest raw limit: " + slow.Name, "msg/s", num(slow.MsgS)})
	}
	if h := r.Raw.HopsP99(); h > 0 {
		rows = append(rows, []string{"raw p99: 2 Pub/Sub hops + 1 commit", "ms", num(h)})
	}
	for _, h := range r.Headlines() {
		row := []string{h.Name, h.Unit}
		for _, l := range labels {
			if v, ok := h.Values[l]; ok {
				row = append(row, num(v))
			} else {
				row = append(row, "–")
			}
		}
		if len(labels) == 2 {
			n, okN := h.Values["new"]
			o, okO := h.Values["old"]
			if okN && okO && o != 0 {
				row = append(row, fmt.Sprintf("%.2f×", n/o))
			} else {
				row = append(row, "–")
			}
		}
		rows = append(rows, row)
	}
	width := map[int]int{}
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	if p := r.Peer(); p != nil && len(p.Group) > 0 {
		best := 0.0
		for _, s := range p.Group {
			best = max(best, s.FramesPerCoreSecond)
		}
		fmt.Fprintf(w, "peer %s, group fan-out: highest rung held %s deliveries/s, best %s frames per core-second\n", p.Name, num(sustainedSteps(p.Group)), num(best))
	}
	if sat, n := r.SaturatedSteps(); n > 0 {
		fmt.Fprintf(w, "saturated steps (machine busy cores ≥ 90 %%): %d of %d\n", sat, n)
	}
	for _, e := range r.Errors {
		fmt.Fprintln(w, "ERROR:", e)
	}
}

// SaturatedSteps counts the measured steps (end to end, null pipeline,
// edge, peer) where the machine was saturated, of all of them.
func (r *Results) SaturatedSteps() (sat, n int) {
	count := func(u procs.Usage) {
		n++
		if u.Saturated {
			sat++
		}
	}
	for _, b := range r.Builds {
		if b.E2E != nil {
			for _, s := range b.E2E.Steps {
				count(s.Usage)
			}
		}
		if b.Edge != nil {
			for _, s := range append(slices.Clone(b.Edge.Group), b.Edge.OneToOne...) {
				count(s.Usage)
			}
		}
	}
	for _, nr := range r.Null {
		for _, s := range nr.Steps {
			count(s.Usage)
		}
	}
	for _, p := range r.Peers {
		for _, s := range p.Group {
			count(s.Usage)
		}
	}
	return sat, n
}

func ratioHeader(labels []string) []string {
	if len(labels) == 2 {
		return []string{"new/old"}
	}
	return nil
}

type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(t.head, " | "), strings.Repeat("---|", len(t.head)))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	fmt.Fprintln(w)
}

func ms(v float64) string { return num(v) }

func refusedText(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d×%s", m[k], k))
	}
	return strings.Join(parts, " ")
}

func closesText(m map[string]int) string {
	if len(m) == 0 {
		return "–"
	}
	return refusedText(m)
}

func cpuText(m map[string]float64) string {
	if len(m) == 0 {
		return "–"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// Markdown writes report.md; charts are file names in the same directory.
func (r *Results) Markdown(w io.Writer, charts []string) {
	fmt.Fprintf(w, "# Courier benchmark, %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	m := r.Machine
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %d GiB, Linux %s, %s; %s. Command: `%s`. Commit %s", m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel, m.Go, m.Emulators, r.Command, r.Commit)
	if r.Baseline != "" {
		fmt.Fprintf(w, ", baseline %s (\"old\")", r.Baseline)
	}
	mode := "full"
	if r.Quick {
		mode = "quick (every phase small: a smoke run, not numbers to quote)"
	}
	fmt.Fprintf(w, ". Mode: %s. Took %.0f s. Load average (1 min) %.1f at the start, %.1f at the end", mode, r.Seconds, m.LoadStart, m.LoadEnd)
	if m.LoadStart > float64(m.CPUs) {
		fmt.Fprint(w, " — **the machine was busy before the run began: other work shares these numbers**")
	}
	fmt.Fprint(w, ".\n\n")
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "**Phases that failed:**")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "- %s\n", e)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "## Summary\n\n```")
	r.Summary(w)
	fmt.Fprintln(w, "```")
	fmt.Fprintln(w)
	for _, c := range charts {
		fmt.Fprintf(w, "![%s](%s)\n\n", strings.TrimSuffix(c, ".png"), c)
	}
	r.Comparisons(w)
	fmt.Fprintln(w, "# Every step, every round")
	fmt.Fprintln(w)
	r.rawMarkdown(w)
	r.e2eMarkdown(w)
	r.workerMarkdown(w)
	r.edgeMarkdown(w)
	r.goMarkdown(w)
	for _, p := range r.Peers {
		fmt.Fprintf(w, "## Peer: %s, history %s, round %d\n\n%s\n\n", p.Name, onOff(p.History), p.Repeat+1, p.Status)
		if len(p.Group) > 0 {
			edgeSteps(w, p.Group)
		}
	}
}

func (r *Results) rawMarkdown(w io.Writer) {
	fmt.Fprintln(w, "## 1. Raw limits of the emulators")
	fmt.Fprintln(w)
	t := table{head: []string{"Pub/Sub settings", "burst", "publish → receive", "steady rate", "one hop p50", "p99", "lost", "duplicates"}}
	for _, p := range r.Raw.PubSub {
		t.add(p.Settings, fmt.Sprint(p.Burst), num(p.Throughput)+" msg/s", num(p.SteadyRate)+" msg/s", ms(p.Latency.P50)+" ms", ms(p.Latency.P99)+" ms", fmt.Sprint(p.Lost), fmt.Sprint(p.Duplicates))
	}
	t.write(w)
	if f := r.Raw.Firestore; f != nil {
		t := table{head: []string{"Firestore commits", "writers", "messages/s", "documents/s", "latency p50", "p99", "errors"}}
		t.add("1 commit of 3 docs per message (closed loop)", fmt.Sprint(f.Writers), num(f.PerMessage), num(3*f.PerMessage), "–", "–", fmt.Sprint(f.Errors))
		t.add(fmt.Sprintf("1 commit of 3 docs per message at %.0f msg/s (open loop)", f.SteadyRate), "–", num(f.SteadyRate), num(3*f.SteadyRate), ms(f.PerMessageLatency.P50)+" ms", ms(f.PerMessageLatency.P99)+" ms", "")
		t.add(fmt.Sprintf("batched, %d docs per commit", f.BatchDocs), fmt.Sprint(f.BatchWriters), num(f.Batched), num(f.BatchedDocs), ms(f.BatchedLatency.P50)+" ms", ms(f.BatchedLatency.P99)+" ms", "")
		t.write(w)
	}
}

func (r *Results) e2eMarkdown(w io.Writer) {
	fmt.Fprintln(w, "## 2. End to end (REST POST → WebSocket frame, open loop)")
	fmt.Fprintln(w)
	for _, b := range r.Builds {
		e := b.E2E
		if e == nil {
			continue
		}
		fmt.Fprintf(w, "**%s** (%s), round %d: %d recipient sessions on 2 edges; latency from each POST's scheduled time to the frame, per recipient; p99 bound %.0f ms; lost = not received within %.0f s after the rung's last POST (burst: %.0f s).\n\n", b.Label, b.Rev, b.Repeat+1, e.Sessions, e.P99Bound, e.Drain, e.BurstDrain)
		t := table{head: []string{"ladder", "acks", "offered msg/s", "accepted", "refused", "delivered", "lost", "dup", "wrong user", "out of order", "p50 ms", "p90", "p99", "p99.9", "delivered msg/s", "CPU cores", "client / emulators / machine busy", "verdict"}}
		for _, s := range e.Steps {
			label := num(s.Rate)
			if s.Warmup {
				label += " (warm-up)"
			}
			verdict := "ok"
			if s.Broken != "" {
				verdict = s.Broken
			}
			if s.Warmup {
				verdict = "not counted"
			}
			t.add(fmt.Sprintf("%s (%d)", s.Mode, s.Recipients), onOff(s.Acks), label, fmt.Sprint(s.Accepted), refusedText(s.Refused), fmt.Sprint(s.Delivered), fmt.Sprint(s.Lost), fmt.Sprint(s.Duplicated),
				fmt.Sprint(s.Unexpected), fmt.Sprint(s.OutOfOrder),
				ms(s.Latency.P50), ms(s.Latency.P90), ms(s.Latency.P99), ms(s.Latency.P999), num(s.Achieved), cpuText(s.CPU), usageCell(s.Usage), verdict)
		}
		t.write(w)
		fmt.Fprintf(w, "Highest pairs rung held: %s msg/s acks off, %s acks on; group: %s / %s. Ratios: sustained ÷ slowest raw limit (%s) = **%.2f**; p99 at %.0f msg/s (%s ms) ÷ raw (2 hops + 1 commit) p99 (%s ms) = **%.2f**.\n\n",
			num(e.Sustained), num(e.SustainedAcks), num(e.GroupSustained), num(e.GroupSustainedAcks), b.Ratios.SlowestLimit, b.Ratios.SustainedOverSlowest, e.SteadyRate, ms(e.SteadyP99), ms(r.Raw.HopsP99()), b.Ratios.P99OverHops)
		bu := e.Burst
		fmt.Fprintf(w, "Burst: %d messages from %d senders, each to 2 of %d connected recipients, posted by %d concurrent clients: accepted %d, delivered %d, lost %d, duplicated %d; **%s msg/s** end to end (first POST → last frame, %.1f s); latency p50 %s ms, p99 %s ms. Closes seen by the clients: %s.\n\n",
			bu.Messages, bu.Senders, bu.Recipients, bu.Clients, bu.Accepted, bu.Delivered, bu.Lost, bu.Duplicated, num(bu.Throughput), bu.Seconds, ms(bu.Latency.P50), ms(bu.Latency.P99), closesText(e.Closes))
	}
}

func (r *Results) workerMarkdown(w io.Writer) {
	fmt.Fprintln(w, "## 3. Worker alone (envelopes published straight to the ingress topic)")
	fmt.Fprintln(w)
	t := table{head: []string{"build", "scenario", "messages", "delivered", "pending", "seconds", "msg/s", "Firestore RPCs/msg", "commits/msg", "worker metric round trips/msg", "RPCs by method", "worker CPU cores"}}
	for _, b := range r.Builds {
		for _, s := range b.Worker {
			metric := "–"
			if s.RoundTripsMetric >= 0 {
				metric = num(s.RoundTripsMetric)
			}
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(s.RPCs)) {
				parts = append(parts, fmt.Sprintf("%s %d", k, s.RPCs[k]))
			}
			t.add(b.Label, fmt.Sprintf("%s (%d senders, %d recipient(s) of %d)", s.Name, s.Senders, s.Recipients, s.Users), fmt.Sprint(s.Messages), fmt.Sprint(s.Delivered), fmt.Sprint(s.Pending),
				num(s.Seconds), num(s.Throughput), num(s.RPCsPerMsg), num(s.CommitsPerMsg), metric, strings.Join(parts, ", "), num(s.WorkerCPU))
		}
	}
	t.write(w)
}

func edgeSteps(w io.Writer, steps []edge.Step) {
	t := table{head: []string{"deliveries/s", "recipients", "expected frames", "frames", "lost (window / closed)", "dup", "wrong user", "wrong cursor", "out of order", "frames/s", "p50 ms", "p99 ms", "server cores", "frames per core-s", "closes", "catch-ups", "client / emulators / machine busy", "verdict"}}
	for _, s := range steps {
		verdict := "ok"
		if s.Broken != "" {
			verdict = s.Broken
		}
		t.add(num(s.Rate), fmt.Sprint(s.Recipients), fmt.Sprint(s.Expected), fmt.Sprint(s.Frames), fmt.Sprintf("%d (%d / %d)", s.Lost, s.LostToWindow, s.LostClosed), fmt.Sprint(s.Duplicates),
			fmt.Sprint(s.Unexpected), fmt.Sprint(s.BadCursor), fmt.Sprint(s.OutOfOrder), num(s.FramesPerS),
			ms(s.Latency.P50), ms(s.Latency.P99), num(s.EdgeCores), num(s.FramesPerCoreSecond), closesText(s.Closes), num(s.CatchUps), usageCell(s.Usage), verdict)
	}
	t.write(w)
}

func (r *Results) edgeMarkdown(w io.Writer) {
	fmt.Fprintln(w, "## 4. ws-edge alone (deliveries published straight to the fan-out topic)")
	fmt.Fprintln(w)
	t := table{head: []string{"build", "sessions", "Go heap+stacks/session", "heap/session", "stacks/session", "RSS/session", "goroutines/session", "heap total", "RSS total", "read from"}}
	for _, b := range r.Builds {
		if b.Edge == nil {
			continue
		}
		for _, p := range b.Edge.Idle {
			t.add(b.Label, fmt.Sprint(p.Sessions), kib(p.GoPerSession), kib(p.HeapPerSession), kib(p.StackPerSession), kib(p.RSSPerSession), num(p.GoroutinesPerSession),
				mib(p.HeapBytes), mib(p.RSSBytes), p.Source)
		}
	}
	t.write(w)
	for _, b := range r.Builds {
		if b.Edge == nil {
			continue
		}
		fmt.Fprintf(w, "**%s** (%s), round %d, group fan-out (each delivery to every session's user):\n\n", b.Label, b.Rev, b.Repeat+1)
		edgeSteps(w, b.Edge.Group)
		fmt.Fprintf(w, "**%s**, one-to-one (each delivery to one user):\n\n", b.Label)
		edgeSteps(w, b.Edge.OneToOne)
	}
}

func kib(v float64) string { return num(v/1024) + " KiB" }
func mib(v float64) string { return num(v/(1<<20)) + " MiB" }

func (r *Results) goMarkdown(w io.Writer) {
	fmt.Fprintln(w, "## 5. Go benchmarks (medians)")
	fmt.Fprintln(w)
	t := table{head: []string{"package", "benchmark", "runs", "ns/op", "B/op", "allocs/op", "other"}}
	for _, g := range r.Go {
		var other []string
		for _, k := range slices.Sorted(maps.Keys(g.Medians)) {
			if k != "ns/op" && k != "B/op" && k != "allocs/op" {
				other = append(other, num(g.Medians[k])+" "+k)
			}
		}
		t.add(g.Package, g.Name, fmt.Sprint(g.Runs), num(g.Medians["ns/op"]), num(g.Medians["B/op"]), num(g.Medians["allocs/op"]), strings.Join(other, ", "))
	}
	t.write(w)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// usageCell is the load client's and the emulators' CPU in cores and the
// machine's busy share, flagged when saturated.
func usageCell(u procs.Usage) string {
	c := fmt.Sprintf("%.2f / %.2f / %.0f%%", u.LoadClient, u.PubSub+u.Firestore, 100*u.BusyFraction)
	if u.Saturated {
		c += " **saturated**"
	}
	return c
}
