// Package report prints the capacity tables `make capacity` shows and
// docs/capacity.md quotes: the inputs (measured figures, prices, load), the
// model at 10 thousand, 1 million and 10 million connected users, the
// fan-out term against the number of edge pods, the routing options, and
// the replayed day.
package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/courierhq/courier/cmd/courier-capacity/internal/model"
	"github.com/courierhq/courier/cmd/courier-capacity/internal/replay"
)

// Sizes are the connected-user counts the tables are for.
var Sizes = []float64{10e3, 1e6, 10e6}

// Write prints every table to w.
func Write(w io.Writer) error {
	p := &printer{w: w}
	p.inputs()
	p.capacity()
	p.fanout()
	p.options()
	p.day()
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, a ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, a...)
	}
}

// table prints rows aligned in columns, the first row a header.
func (p *printer) table(rows [][]string) {
	if p.err != nil {
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range rows {
		if _, err := fmt.Fprintln(tw, strings.Join(r, "\t")+"\t"); err != nil {
			p.err = err
			return
		}
	}
	p.err = tw.Flush()
	p.f("\n")
}

func (p *printer) inputs() {
	m := model.Measured
	p.f("Courier capacity model (cmd/courier-capacity; docs/capacity.md explains every number)\n\n")
	p.f("Measured per-core figures (2-core shared machine, emulators, not GCP):\n")
	for _, r := range m.Rows() {
		p.f("  %-32s %10s %-22s %s\n", r.Name, num(r.Value), r.Unit, r.Source)
	}
	g := model.GCP
	p.f("\nGCP list prices, us-central1, as of %s (free tiers and discounts ignored):\n", model.PricesAsOf)
	for _, r := range []struct {
		name string
		pr   model.Price
	}{
		{"Pub/Sub throughput", g.PubSubPerTiB}, {"Pub/Sub minimum per request", g.PubSubMinBytes},
		{"Firestore writes", g.FirestoreWrites}, {"Firestore reads", g.FirestoreReads},
		{"e2 vCPU", g.E2CorePerHour}, {"e2 memory", g.E2GiBPerHour},
		{"n2 vCPU", g.N2CorePerHour}, {"n2 memory", g.N2GiBPerHour},
		{"Autopilot vCPU", g.AutopilotCore}, {"Autopilot memory", g.AutopilotGiB},
		{"GKE cluster", g.GKEClusterHour}, {"LB forwarding rule", g.LBRuleHour},
		{"LB inbound data", g.LBInboundPerGiB}, {"egress 0-1 TiB", g.EgressPerGiB0},
		{"egress 1-10 TiB", g.EgressPerGiB1}, {"egress >10 TiB", g.EgressPerGiB10},
	} {
		p.f("  %-28s %10s %-22s %s\n", r.name, strconv.FormatFloat(r.pr.Value, 'g', -1, 64), r.pr.Unit, r.pr.Page)
	}
	q := model.Limits
	p.f("\nLimits and quotas:\n")
	for _, r := range []struct {
		name string
		pr   model.Price
	}{
		{"subscriptions per topic", q.SubscriptionsPerTopic}, {"topics per project", q.TopicsPerProject},
		{"StreamingPull per stream", q.StreamBytesPerSecond}, {"publish per region", q.PublishBytesPerSecond},
		{"Firestore per document", q.FirestoreDocWrites}, {"Firestore ramp", q.FirestoreRampStart},
	} {
		p.f("  %-28s %10s %-44s %s\n", r.name, num(r.pr.Value), r.pr.Unit, r.pr.Page)
	}
	l := model.Stated(1)
	p.f("\nStated load per connected user at the peak: %.1f sessions; sends %.1f messages/min (%s-byte payload);\n"+
		"  recipients per message from P(k) ∝ k^-%.1f on 1..%d (mean %.2f, %.0f %% one-to-one); %.0f %% of recipients online;\n"+
		"  every frame acked (the JavaScript client's default); a ping every %.0f s; %.0f reconnects per session-hour.\n\n",
		l.SessionsPerUser, l.SendsPerMinute, num(l.PayloadBytes), model.Groups.Alpha, model.Groups.Max,
		l.Mix.Mean(), 100*l.Mix[0].W, 100*l.RecipientOnline, model.PingInterval, l.ReconnectsPerHour)
}

func (p *printer) capacity() {
	p.f("1. Capacity and cost at the peak, held for a month (an upper bound: the replayed day, table 4, prices a real day)\n")
	p.f("   shape: %s — edge autoscaled at %s sessions per pod, routing: %s, pods sized for %.0f %% CPU\n\n",
		model.Today.Name, num(model.Today.SessionsPerPod), model.Today.Routing, 100*model.Today.Headroom)
	var plans []model.Plan
	head := []string{"connected users"}
	for _, u := range Sizes {
		plans = append(plans, model.Compute(model.Stated(u), model.Today))
		head = append(head, num(u))
	}
	rows := [][]string{head}
	add := func(name string, f func(pl model.Plan) string) {
		r := []string{name}
		for _, pl := range plans {
			r = append(r, f(pl))
		}
		rows = append(rows, r)
	}
	add("messages/s", func(pl model.Plan) string { return num(pl.Messages) })
	add("inbox entries/s", func(pl model.Plan) string { return num(pl.Recipients) })
	add("frames/s (+ pings/s)", func(pl model.Plan) string { return num(pl.Frames) + " + " + num(pl.Pings) })
	add("pods: gateway / worker / edge", func(pl model.Plan) string {
		return fmt.Sprintf("%d / %d / %d", pl.GatewayPods, pl.WorkerPods, pl.EdgePods)
	})
	add("cores: gateway / worker / edge", func(pl model.Plan) string {
		return fmt.Sprintf("%s / %s / %s", num(float64(pl.GatewayPods)), num(float64(pl.WorkerPods)), num(pl.EdgeCores))
	})
	add("  edge cores dropping others' deliveries", func(pl model.Plan) string { return num(pl.EdgeDropCores) })
	add("edge pod: cores / GiB", func(pl model.Plan) string { return num(pl.EdgePodCores) + " / " + num(pl.EdgePodGiB) })
	add("memory GiB", func(pl model.Plan) string { return num(pl.MemoryGiB) })
	add("nodes (8 vCPU, 32 GiB)", func(pl model.Plan) string { return num(float64(pl.Nodes)) })
	add("Firestore writes/s", func(pl model.Plan) string { return num(pl.FirestoreWrites) })
	add("Firestore reads/s", func(pl model.Plan) string { return num(pl.FirestoreReads) })
	add("Firestore ramp from cold (500/50/5), min", func(pl model.Plan) string { return num(pl.RampMinutes) })
	add("Pub/Sub billed MB/s: ingress", func(pl model.Plan) string { return num(pl.PubSubIngress / 1e6) })
	add("  fan-out publish", func(pl model.Plan) string { return num(pl.PubSubFanoutPublish / 1e6) })
	add("  fan-out delivery (pods × messages)", func(pl model.Plan) string { return num(pl.PubSubFanoutDelivery / 1e6) })
	add("edge stream MB/s (limit 10 per stream)", func(pl model.Plan) string { return num(pl.EdgeStreamBytes / 1e6) })
	add("$/month compute, e2 nodes", func(pl model.Plan) string { return usd(pl.Cost.ComputeE2) })
	add("  (n2 nodes / Autopilot instead)", func(pl model.Plan) string {
		return usd(pl.Cost.ComputeN2) + " / " + usd(pl.Cost.ComputeAutopilot)
	})
	add("$/month GKE cluster", func(pl model.Plan) string { return usd(pl.Cost.Cluster) })
	add("$/month Firestore writes", func(pl model.Plan) string { return usd(pl.Cost.FirestoreWrites) })
	add("$/month Firestore reads", func(pl model.Plan) string { return usd(pl.Cost.FirestoreReads) })
	add("$/month Pub/Sub ingress", func(pl model.Plan) string { return usd(pl.Cost.PubSubIngress) })
	add("$/month Pub/Sub fan-out", func(pl model.Plan) string { return usd(pl.Cost.PubSubFanout) })
	add("$/month load balancer", func(pl model.Plan) string { return usd(pl.Cost.LoadBalancer) })
	add("$/month Internet egress", func(pl model.Plan) string { return usd(pl.Cost.Egress) })
	add("$/month total (e2)", func(pl model.Plan) string { return usd(pl.Cost.Total()) })
	p.table(rows)
	for i, pl := range plans {
		p.f("   %s users, the limits closest to being hit:\n", num(Sizes[i]))
		for _, u := range pl.Use[:3] {
			p.f("     %-8s %s\n", u.Kind, limit(u))
		}
		if pl.GCP.Ratio < pl.Use[2].Ratio {
			p.f("     %-8s %s\n", pl.GCP.Kind, limit(pl.GCP))
		}
	}
	p.f("\n")
}

func limit(u model.LimitUse) string {
	s := fmt.Sprintf("%s (%s of %s, %.0f %%)", u.Name, num(u.Used), num(u.Max), 100*u.Ratio)
	if u.Infeasible {
		s += " EXCEEDED"
	}
	return s
}

// withPods is s with the edge autoscaler's target set so that users need
// pods edge pods.
func withPods(s model.Shape, users, pods float64) model.Shape {
	l := model.Stated(users)
	s.SessionsPerPod = l.Users * l.SessionsPerUser / pods
	s.MaxSessionsSetting = math.Max(s.MaxSessionsSetting, s.SessionsPerPod)
	s.MaxEdge = max(s.MaxEdge, int(pods))
	return s
}

func (p *printer) fanout() {
	p.f("2. The fan-out term: one subscription per edge pod, every message billed on every subscription (filtered or not)\n\n")
	for _, users := range Sizes[1:] {
		rows := [][]string{{"edge pods", "sessions/pod", "fan-out TiB/month", "fan-out $/month", "Firestore $/month", "everything else $/month", "fan-out share", "edge pod fits a node"}}
		for _, pods := range []float64{3, 10, 30, 100, 300, 1000, 2400, 10000} {
			s := withPods(model.Today, users, pods)
			s.Routing = model.Filtered
			pl := model.Compute(model.Stated(users), s)
			tibMonth := (pl.PubSubFanoutPublish + pl.PubSubFanoutDelivery) * model.HoursPerMonth * 3600 / (1 << 40)
			fs := pl.Cost.FirestoreWrites + pl.Cost.FirestoreReads
			rows = append(rows, []string{num(float64(pl.EdgePods)), num(s.SessionsPerPod), num(tibMonth),
				usd(pl.Cost.PubSubFanout), usd(fs), usd(pl.Cost.Total() - pl.Cost.PubSubFanout - fs),
				fmt.Sprintf("%.0f %%", 100*pl.Cost.PubSubFanout/pl.Cost.Total()), fits(pl)})
		}
		p.f("   %s connected users (targeted routing on: the edges' CPU is spared, the bill is not)\n", num(users))
		p.table(rows)
		fsPods := crossover(users, func(pl model.Plan) float64 { return pl.Cost.FirestoreWrites + pl.Cost.FirestoreReads })
		allPods := crossover(users, func(pl model.Plan) float64 { return pl.Cost.Total() - pl.Cost.PubSubFanout })
		p.f("   fan-out costs more than Firestore from %s edge pods, more than everything else together from %s;\n", num(fsPods), num(allPods))
		l := model.Stated(users)
		p.f("   at today's %s sessions per pod, %s edge pods hold %s connected users\n\n",
			num(model.Today.SessionsPerPod), num(fsPods), num(fsPods*model.Today.SessionsPerPod/l.SessionsPerUser))
	}
}

// fits says whether one edge pod's requests fit on a node.
func fits(pl model.Plan) string {
	for _, u := range pl.Use {
		if u.Kind == "node" && u.Infeasible {
			return "no"
		}
	}
	return "yes"
}

// crossover finds the number of edge pods from which the fan-out costs more
// than other(plan), by bisection on a continuous pod count.
func crossover(users float64, other func(model.Plan) float64) float64 {
	diff := func(pods float64) float64 {
		s := withPods(model.Today, users, pods)
		s.Routing = model.Filtered
		pl := model.Compute(model.Stated(users), s)
		return pl.Cost.PubSubFanout - other(pl)
	}
	lo, hi := 3.0, 1e6
	if diff(lo) > 0 {
		return lo
	}
	for hi-lo > 0.5 {
		mid := (lo + hi) / 2
		if diff(mid) > 0 {
			hi = mid
		} else {
			lo = mid
		}
	}
	return math.Ceil(hi)
}

func (p *printer) options() {
	p.f("3. Keeping the fan-out flat: each routing at today's pod size and at 50,000 sessions per pod\n\n")
	for _, users := range Sizes[1:] {
		rows := [][]string{{"routing", "sessions/pod", "edge pods", "edge cores", "of which dropping", "targets/message",
			"fan-out $/month", "Firestore $/month", "total $/month", "first GCP limit"}}
		for _, shape := range []model.Shape{model.Today, model.Large} {
			for _, r := range []model.Routing{model.Broadcast, model.Filtered, model.PerPodTopics, model.HashShards} {
				s := shape
				s.Routing = r
				pl := model.Compute(model.Stated(users), s)
				targets := "all " + num(float64(pl.EdgePods))
				if r == model.PerPodTopics || r == model.HashShards {
					targets = num(pl.DistinctPods)
				}
				rows = append(rows, []string{r.String(), num(s.SessionsPerPod), num(float64(pl.EdgePods)), num(pl.EdgeCores),
					num(pl.EdgeDropCores), targets, usd(pl.Cost.PubSubFanout),
					usd(pl.Cost.FirestoreWrites + pl.Cost.FirestoreReads), usd(pl.Cost.Total()),
					fmt.Sprintf("%s %.0f %%", pl.GCP.Name, 100*pl.GCP.Ratio)})
			}
		}
		p.f("   %s connected users\n", num(users))
		p.table(rows)
	}
}

func (p *printer) day() {
	p.f("4. A replayed day (seed 1): diurnal curve (10 %% of the peak at 08:00, 100 %% at 20:00, ±2 %% noise), %d-minute steps,\n", replay.StepMinutes)
	p.f("   each step's recipient counts drawn from the power law, the edge autoscaler following, one edge pod drained at 20:00\n\n")
	for _, shape := range []model.Shape{model.Today, withRouting(model.Large, model.PerPodTopics), withRouting(model.Large, model.HashShards)} {
		var rs []replay.Result
		head := []string{"peak connected users"}
		for _, users := range Sizes {
			r := replay.Run(replay.Standard(users, shape))
			rs = append(rs, r)
			head = append(head, num(r.PeakUsers))
		}
		rows := [][]string{head}
		add := func(name string, f func(r replay.Result) string) {
			row := []string{name}
			for _, r := range rs {
				row = append(row, f(r))
			}
			rows = append(rows, row)
		}
		add("peak pods: gateway / worker / edge", func(r replay.Result) string {
			return fmt.Sprintf("%d / %d / %d", r.PeakGateway, r.PeakWorker, r.PeakEdge)
		})
		add("peak cores / GiB / nodes", func(r replay.Result) string {
			return num(r.PeakCores) + " / " + num(r.PeakGiB) + " / " + num(float64(r.PeakNodes))
		})
		add("messages (largest group drawn)", func(r replay.Result) string {
			return num(r.Messages) + " (" + num(float64(r.LargestGroup)) + ")"
		})
		add("Firestore writes / reads", func(r replay.Result) string {
			return num(r.FirestoreWrites) + " / " + num(r.FirestoreReads)
		})
		add("scale-in: edge pods drained / sessions moved", func(r replay.Result) string {
			return num(float64(r.ScaleInPods)) + " / " + num(r.ScaleInReconnects)
		})
		add("20:00 drain: sessions reconnecting", func(r replay.Result) string { return num(r.DrainSessions) })
		add("  catch-up reads/s (steady reads/s)", func(r replay.Result) string {
			return num(r.CatchupBurst) + " (" + num(r.SteadyReads) + ")"
		})
		add("  presence writes/s (per user document)", func(r replay.Result) string {
			return num(r.PresenceBurst) + " (" + num(r.PresenceDocHit) + ")"
		})
		add("cost of the day (× 30)", func(r replay.Result) string { return usd(r.Cost) + " (" + usd(30*r.Cost) + ")" })
		add("  fan-out's share", func(r replay.Result) string { return fmt.Sprintf("%.0f %%", 100*r.Fanout/r.Cost) })
		p.f("   %s, %s\n", shape.Name, shape.Routing)
		p.table(rows)
	}
}

func withRouting(s model.Shape, r model.Routing) model.Shape {
	s.Routing = r
	return s
}

// num prints a quantity readably: three significant digits, thousands
// grouped, large values with k/M/G.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1e9:
		return fmt.Sprintf("%.3g", v/1e9) + "G"
	case a >= 1e6:
		return fmt.Sprintf("%.3g", v/1e6) + "M"
	case a >= 1e4:
		return group(math.Round(v))
	case a >= 100:
		return group(math.Round(v))
	case v == math.Trunc(v):
		return group(v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func usd(v float64) string { return "$" + group(math.Round(v)) }

// group writes an integer with thousands separators.
func group(v float64) string {
	s := fmt.Sprintf("%.0f", math.Abs(v))
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
