// Package model sizes and prices Courier on GKE from the per-core figures
// measured by `make bench` and GCP's public prices and quotas: for a load
// (connected users, what they send), how many pods, cores, GiB and dollars,
// and which limit is closest. docs/capacity.md explains every term.
package model

import (
	"fmt"
	"math"
	"sort"
)

// Routing is how deliveries reach the edge pods.
type Routing int

const (
	// Broadcast: every pod's subscription receives every delivery and the
	// pod drops those for users it does not hold (targeted routing off, the
	// chart's default).
	Broadcast Routing = iota
	// Filtered: targeted routing (WORKER_/EDGE_TARGETED_ROUTING): presence
	// names the pods, each pod's subscription filter passes its own. The
	// edges' CPU is spared, but Pub/Sub still bills every subscription for
	// every message (FilteredDeliveriesBilled).
	Filtered
	// PerPodTopics: the worker reads presence and publishes one copy of a
	// delivery to the topic of each pod that holds a recipient; one
	// subscription per topic. Not built.
	PerPodTopics
	// HashShards: the load balancer places each user on shard
	// hash(user) mod pods (one edge pod per shard); the worker publishes one
	// copy per shard of a recipient, online or not, to that shard's topic.
	// No presence. Not built.
	HashShards
)

func (r Routing) String() string {
	switch r {
	case Broadcast:
		return "broadcast (today's default)"
	case Filtered:
		return "targeted routing (filter per pod)"
	case PerPodTopics:
		return "per-pod topics (by presence)"
	case HashShards:
		return "hash shards, topic per shard"
	}
	return fmt.Sprintf("routing(%d)", int(r))
}

// UsesPresence reports whether the worker reads presence/{user} for each
// recipient, and the edges write it on each session's join and leave.
func (r Routing) UsesPresence() bool { return r == Filtered || r == PerPodTopics }

// Shape is the deployment: pod sizes, autoscaling bounds, routing.
type Shape struct {
	Name    string
	Routing Routing
	// SessionsPerPod is the edge autoscaler's target (the chart's
	// courier_edge_sessions targetAverageValue).
	SessionsPerPod float64
	// Headroom is the CPU utilisation pods are sized for.
	Headroom float64
	// Chart bounds (values-prod.yaml minReplicas / maxReplicas) and ws-edge's
	// WS_MAX_SESSIONS.
	MinGateway, MinWorker, MinEdge int
	MaxGateway, MaxWorker, MaxEdge int
	MaxSessionsSetting             float64
	EdgeStreams                    int // StreamingPull streams per edge (fanout NumGoroutines)
	// FixedEdgePods, when set, is the number of edge pods whatever the load:
	// hash shards cannot follow the sessions without moving users between
	// shards, so they are sized for the peak.
	FixedEdgePods int
}

// Today is k8s/courier/values-prod.yaml as it is, with targeted routing
// off (its default).
var Today = Shape{
	Name: "values-prod.yaml", Routing: Broadcast, SessionsPerPod: 5000, Headroom: 0.6,
	MinGateway: 3, MinWorker: 2, MinEdge: 3, MaxGateway: 20, MaxWorker: 20, MaxEdge: 30,
	MaxSessionsSetting: 10000, EdgeStreams: 2,
}

// Large is Today with edge pods ten times larger: 50,000 sessions each
// (WS_MAX_SESSIONS 60,000, edge maxReplicas 1,000), so ten times fewer
// subscriptions on the fan-out topic.
var Large = func() Shape {
	s := Today
	s.Name, s.SessionsPerPod, s.MaxSessionsSetting, s.MaxEdge = "50k sessions per edge pod", 50000, 60000, 1000
	return s
}()

// Pod and node sizes. Gateway and worker pods get one core each and the
// chart's memory limits; edge pods are sized to their sessions and traffic.
const (
	gatewayPodCores   = 1.0
	gatewayPodGiB     = 0.5
	workerPodCores    = 1.0
	workerPodGiB      = 1.0
	kernelPerSocketKi = 4.0 // an idle TCP socket's kernel memory: assumed, not measured
	memoryHeadroom    = 0.8
	// A node is an 8-vCPU, 32-GiB machine (e2-standard-8 or n2-standard-8);
	// what pods can use is less GKE's reservation and its system pods.
	nodeCores       = 8.0
	nodeGiB         = 32.0
	nodeUsableCores = 7.5
	nodeUsableGiB   = 27.5
	minNodes        = 3 // one per zone of a regional cluster
	secondsPerMonth = HoursPerMonth * 3600
	tib             = 1 << 40
	gib             = 1 << 30
)

// Plan is the model's answer for one load and shape, at that load held
// steady (a month at this rate: an upper bound for a peak; the replay
// prices a day).
type Plan struct {
	Load  Load
	Shape Shape

	Messages, Recipients, Frames, Sessions, Pings float64 // per second (Sessions: count)
	DistinctPods                                  float64 // pods (shards) a message is published to or useful at

	GatewayPods, WorkerPods, EdgePods    int
	GatewayCores, WorkerCores, EdgeCores float64 // requested
	EdgePodCores, EdgePodGiB             float64 // one edge pod's requests
	EdgeDropCores                        float64 // of EdgeCores: receiving deliveries for nobody on the pod
	MemoryGiB                            float64
	Nodes                                int

	FirestoreWrites, FirestoreReads float64 // per second
	PubSubIngress                   float64 // billed bytes/s: publish + pull of envelopes
	PubSubFanoutPublish             float64 // billed bytes/s: the worker's delivery publishes
	PubSubFanoutDelivery            float64 // billed bytes/s: deliveries to edge subscriptions
	EdgeStreamBytes                 float64 // real bytes/s on one edge stream
	PublishQuotaBytes               float64 // bytes/s counted against the regional publish quota
	EgressBytes, LBInboundBytes     float64 // per second
	RampMinutes                     float64 // Firestore 500/50/5 ramp from cold to this write rate

	Cost  Cost
	Use   []LimitUse // sorted, closest first
	First LimitUse   // the closest limit of any kind
	GCP   LimitUse   // the closest GCP limit
}

// Cost is a month at the plan's rate, in USD.
type Cost struct {
	ComputeE2, ComputeN2, ComputeAutopilot float64
	Cluster                                float64
	FirestoreWrites, FirestoreReads        float64
	PubSubIngress, PubSubFanout            float64 // fan-out: publish + delivery
	LoadBalancer, Egress                   float64
}

// Total is the month with e2 nodes.
func (c Cost) Total() float64 {
	return c.ComputeE2 + c.Cluster + c.FirestoreWrites + c.FirestoreReads + c.PubSubIngress +
		c.PubSubFanout + c.LoadBalancer + c.Egress
}

// LimitUse is how much of one limit a plan uses.
type LimitUse struct {
	Name       string
	Kind       string // "gcp" (a published GCP limit or quota), "setting" (Courier's own), "node"
	Used, Max  float64
	Ratio      float64
	Infeasible bool
}

// billed is what Pub/Sub bills for one message of size bytes sent alone in
// its request: the 1,000-byte minimum applies per publish/pull request, and
// the model assumes one message per request (Courier's gateway publishes
// with an ordering key per sender, and a sparse subscription gets one
// message per response): an upper bound, two to three times the real size
// of a small message.
func billed(size float64) float64 { return max(size, GCP.PubSubMinBytes.Value) }

// distinct is the expected number of distinct pods n items land on when each
// lands on one of p pods uniformly at random.
func distinct(p, n float64) float64 {
	if p <= 1 {
		return math.Min(p, n)
	}
	return p * (1 - math.Pow(1-1/p, n))
}

// Compute sizes and prices one load on one shape.
func Compute(l Load, s Shape) Plan {
	pc := Measured
	pl := Plan{Load: l, Shape: s}
	k := l.Mix.Mean()
	pl.Messages = l.Users * l.SendsPerMinute / 60
	pl.Recipients = pl.Messages * k
	pl.Sessions = l.Users * l.SessionsPerUser
	pl.Frames = pl.Recipients * l.RecipientOnline * l.SessionsPerUser
	pl.Pings = pl.Sessions / PingInterval
	acks := 0.0
	if l.AckEveryFrame {
		acks = pl.Frames
	}
	reconnects := pl.Sessions * l.ReconnectsPerHour / 3600

	// Edge pods: as many as the session target asks, each sized to its
	// share of frames, pings, acks and received deliveries.
	p := max(float64(s.MinEdge), math.Ceil(pl.Sessions/s.SessionsPerPod))
	if s.FixedEdgePods > 0 {
		p = float64(s.FixedEdgePods)
	}
	pl.EdgePods = int(p)
	onlineSessions := func(k float64) float64 { return k * l.RecipientOnline * l.SessionsPerUser }
	usefulPods := l.Mix.Expect(func(k float64) float64 { return distinct(p, onlineSessions(k)) })
	shardPods := l.Mix.Expect(func(k float64) float64 { return distinct(p, k) })
	received := 0.0 // deliveries/s summed over all pods
	switch s.Routing {
	case Broadcast:
		received = p * pl.Messages
		pl.DistinctPods = usefulPods
	case Filtered, PerPodTopics:
		received = pl.Messages * usefulPods
		pl.DistinctPods = usefulPods
	case HashShards:
		received = pl.Messages * shardPods
		pl.DistinctPods = shardPods
	}
	frameWork := pl.Frames + acks + 2*pl.Pings
	edgeNeed := p*pc.EdgeBaseCores.Value + frameWork*pc.frameCoreSeconds() + received*pc.deliveryCoreSeconds()
	pl.EdgeDropCores = (received - pl.Messages*usefulPods) * pc.deliveryCoreSeconds() / s.Headroom
	pl.EdgePodCores = edgeNeed / p / s.Headroom
	pl.EdgeCores = pl.EdgePodCores * p
	perPodSessions := pl.Sessions / p
	pl.EdgePodGiB = (pc.EdgeBaseRSS.Value*1024 + perPodSessions*(pc.EdgeSessionRSS.Value+kernelPerSocketKi)) / (1024 * 1024) / memoryHeadroom

	// Gateway: one request per send. Worker: documents committed.
	pl.GatewayCores = pl.Messages / pc.GatewayRequests.Value / s.Headroom
	pl.GatewayPods = max(s.MinGateway, int(math.Ceil(pl.GatewayCores/gatewayPodCores)))
	docs := pl.Messages * (1 + k)
	workerRate := pc.WorkerDocuments.Value
	if s.Routing.UsesPresence() {
		workerRate *= pc.RoutingWorkerFactor.Value
	}
	pl.WorkerCores = docs / workerRate / s.Headroom
	pl.WorkerPods = max(s.MinWorker, int(math.Ceil(pl.WorkerCores/workerPodCores)))

	reqCores := float64(pl.GatewayPods)*gatewayPodCores + float64(pl.WorkerPods)*workerPodCores + pl.EdgeCores
	pl.MemoryGiB = float64(pl.GatewayPods)*gatewayPodGiB + float64(pl.WorkerPods)*workerPodGiB + p*pl.EdgePodGiB
	pl.Nodes = max(minNodes, int(math.Ceil(reqCores/nodeUsableCores)), int(math.Ceil(pl.MemoryGiB/nodeUsableGiB)))

	// Firestore.
	pl.FirestoreWrites = docs + acks + p/60 // heartbeats: edges/{pod} once a minute
	pl.FirestoreReads = acks + reconnects   // an ack reads its message; a resume is one query (≥ 1 read)
	if s.Routing.UsesPresence() {
		pl.FirestoreWrites += 2 * reconnects // join on the new pod, leave on the old
		pl.FirestoreReads += pl.Recipients   // the worker reads each recipient's presence
	}
	if pl.FirestoreWrites > Limits.FirestoreRampStart.Value {
		pl.RampMinutes = 5 * math.Log(pl.FirestoreWrites/Limits.FirestoreRampStart.Value) / math.Log(1.5)
	}

	// Pub/Sub: the envelope is published once and pulled once; deliveries
	// are published once per target (pods or shards) and delivered to every
	// subscription that sees them, filtered ones included.
	env := l.Mix.Expect(func(k float64) float64 { return billed(envelopeBytes(l.PayloadBytes, k)) })
	pl.PubSubIngress = 2 * pl.Messages * env
	del := func(k float64) float64 { return billed(deliveryBytes(l.PayloadBytes, k)) }
	realDel := func(k float64) float64 { return deliveryBytes(l.PayloadBytes, k) }
	switch s.Routing {
	case Broadcast, Filtered:
		pl.PubSubFanoutPublish = pl.Messages * l.Mix.Expect(del)
		if FilteredDeliveriesBilled || s.Routing == Broadcast {
			pl.PubSubFanoutDelivery = p * pl.PubSubFanoutPublish
		}
	case PerPodTopics:
		// One copy per target pod, each carrying only that pod's recipients.
		pl.PubSubFanoutPublish = pl.Messages * l.Mix.Expect(func(k float64) float64 {
			d := distinct(p, onlineSessions(k))
			return d * del(k*l.RecipientOnline/d)
		})
		pl.PubSubFanoutDelivery = pl.PubSubFanoutPublish
	case HashShards:
		pl.PubSubFanoutPublish = pl.Messages * l.Mix.Expect(func(k float64) float64 {
			d := distinct(p, k)
			return d * del(k/d)
		})
		pl.PubSubFanoutDelivery = pl.PubSubFanoutPublish
	}
	if s.Routing == Broadcast {
		pl.EdgeStreamBytes = pl.Messages * l.Mix.Expect(realDel) / float64(s.EdgeStreams)
	} else {
		frac := func(k float64) float64 { return distinct(p, onlineSessions(k)) / p * realDel(k) }
		if s.Routing == HashShards {
			frac = func(k float64) float64 { return distinct(p, k) / p * realDel(k) }
		}
		pl.EdgeStreamBytes = pl.Messages * l.Mix.Expect(frac) / float64(s.EdgeStreams)
	}
	pl.PublishQuotaBytes = pl.PubSubIngress/2 + pl.PubSubFanoutPublish

	// Network: frames and pings go out to the Internet through the load
	// balancer; sends, acks and pongs come in through it.
	frameBytes := l.PayloadBytes + frameFields + frameOverhead
	pl.EgressBytes = pl.Frames*frameBytes + pl.Pings*pingBytes
	pl.LBInboundBytes = pl.Messages*(l.PayloadBytes+frameFields+frameOverhead) + acks*ackBytes + pl.Pings*pingBytes

	pl.Cost = price(pl, reqCores)
	pl.Use = limits(pl)
	pl.First = pl.Use[0]
	for _, u := range pl.Use {
		if u.Kind == "gcp" {
			pl.GCP = u
			break
		}
	}
	return pl
}

func price(pl Plan, reqCores float64) Cost {
	g := GCP
	month := func(perSecond, unit, price float64) float64 { return perSecond * secondsPerMonth / unit * price }
	nodes := float64(pl.Nodes) * HoursPerMonth
	return Cost{
		ComputeE2:        nodes * (nodeCores*g.E2CorePerHour.Value + nodeGiB*g.E2GiBPerHour.Value),
		ComputeN2:        nodes * (nodeCores*g.N2CorePerHour.Value + nodeGiB*g.N2GiBPerHour.Value),
		ComputeAutopilot: HoursPerMonth * (reqCores*g.AutopilotCore.Value + pl.MemoryGiB*g.AutopilotGiB.Value),
		Cluster:          HoursPerMonth * g.GKEClusterHour.Value,
		FirestoreWrites:  month(pl.FirestoreWrites, 1e5, g.FirestoreWrites.Value),
		FirestoreReads:   month(pl.FirestoreReads, 1e5, g.FirestoreReads.Value),
		PubSubIngress:    month(pl.PubSubIngress, tib, g.PubSubPerTiB.Value),
		PubSubFanout:     month(pl.PubSubFanoutPublish+pl.PubSubFanoutDelivery, tib, g.PubSubPerTiB.Value),
		LoadBalancer:     HoursPerMonth*g.LBRuleHour.Value + month(pl.LBInboundBytes, gib, g.LBInboundPerGiB.Value),
		Egress:           g.egressCost(pl.EgressBytes * secondsPerMonth / gib),
	}
}

// limits lists every limit with how much of it the plan uses, closest first.
func limits(pl Plan) []LimitUse {
	s := pl.Shape
	p := float64(pl.EdgePods)
	subs, topics := p, 3.0
	if s.Routing == PerPodTopics || s.Routing == HashShards {
		subs, topics = 1, 3+p
	}
	presenceWrites := 0.0
	if s.Routing.UsesPresence() {
		presenceWrites = 2 * pl.Load.SessionsPerUser * pl.Load.ReconnectsPerHour / 3600
	}
	use := []LimitUse{
		{Name: "Pub/Sub subscriptions per topic", Kind: "gcp", Used: subs, Max: Limits.SubscriptionsPerTopic.Value},
		{Name: "Pub/Sub topics per project", Kind: "gcp", Used: topics, Max: Limits.TopicsPerProject.Value},
		{Name: "Pub/Sub StreamingPull 10 MB/s per stream (edge)", Kind: "gcp", Used: pl.EdgeStreamBytes, Max: Limits.StreamBytesPerSecond.Value},
		{Name: "Pub/Sub publish quota per region", Kind: "gcp", Used: pl.PublishQuotaBytes, Max: Limits.PublishBytesPerSecond.Value},
		{Name: "Firestore 1 write/s per document (presence/{user})", Kind: "gcp", Used: presenceWrites, Max: Limits.FirestoreDocWrites.Value},
		{Name: "edge pod CPU within one node", Kind: "node", Used: pl.EdgePodCores, Max: nodeUsableCores},
		{Name: "edge pod memory within one node", Kind: "node", Used: pl.EdgePodGiB, Max: nodeUsableGiB},
		{Name: "chart edge maxReplicas", Kind: "setting", Used: p, Max: float64(s.MaxEdge)},
		{Name: "chart gateway maxReplicas", Kind: "setting", Used: float64(pl.GatewayPods), Max: float64(s.MaxGateway)},
		{Name: "chart worker maxReplicas", Kind: "setting", Used: float64(pl.WorkerPods), Max: float64(s.MaxWorker)},
		{Name: "WS_MAX_SESSIONS per edge pod", Kind: "setting", Used: pl.Sessions / p, Max: s.MaxSessionsSetting},
	}
	for i := range use {
		use[i].Ratio = use[i].Used / use[i].Max
		use[i].Infeasible = use[i].Ratio > 1
	}
	sort.SliceStable(use, func(i, j int) bool { return use[i].Ratio > use[j].Ratio })
	return use
}
