package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// handLoad is a load simple enough to size with a pencil: 1,000,000 users
// with one session each send 0.6 messages a minute (10,000 messages/s),
// every message to exactly 2 recipients, all online, no acks, no
// reconnects.
func handLoad() Load {
	return Load{Users: 1e6, SessionsPerUser: 1, SendsPerMinute: 0.6, RecipientOnline: 1, PayloadBytes: 200,
		Mix: Mix{{K: 2, W: 1}}}
}

func handShape(r Routing) Shape {
	return Shape{Name: "hand", Routing: r, SessionsPerPod: 10000, Headroom: 0.5,
		MinGateway: 1, MinWorker: 1, MinEdge: 1, MaxGateway: 100, MaxWorker: 100, MaxEdge: 1000,
		MaxSessionsSetting: 10000, EdgeStreams: 2}
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 0.005*math.Abs(want)+1e-9 {
		t.Errorf("%s = %.6g, want %.6g (hand-computed)", what, got, want)
	}
}

func TestComputeMatchesHandArithmetic(t *testing.T) {
	const month = 730 * 3600.0
	tests := []struct {
		name    string
		routing Routing
		// Hand-computed, from the figures in Measured and the prices in GCP:
		gatewayPods, workerPods, edgePods, nodes int
		edgeCores                                float64
		firestoreWrites                          float64 // $ per month
		fanout                                   float64 // $ per month
	}{
		{
			name: "broadcast", routing: Broadcast,
			// gateway: 10,000 ÷ 3,636 ÷ 0.5 = 5.50 cores → 6 pods of 1 core
			// worker: 30,000 documents ÷ 16,552 ÷ 0.5 = 3.62 cores → 4 pods
			// edge: 1,000,000 sessions ÷ 10,000 = 100 pods; CPU (100 × 0.036
			// + (20,000 frames + 2 × 50,000 pings) ÷ 52,632 + 100 pods ×
			// 10,000 deliveries × (1/14,286 − 1/52,632)) ÷ 0.5 = 113.76 cores
			// nodes: 6 + 4 + 113.76 = 123.76 cores ÷ 7.5 → 17
			gatewayPods: 6, workerPods: 4, edgePods: 100, nodes: 17, edgeCores: 113.76,
			// (30,000 documents + 100 heartbeats ÷ 60)/s × 2,628,000 s ÷ 100,000 × $0.09
			firestoreWrites: 70959.94,
			// deliveries of 470 bytes billed 1,000: (10,000 published + 100 ×
			// 10,000 delivered) × 1,000 B/s × 2,628,000 s ÷ 2^40 × $40
			fanout: 96562.14,
		},
		{
			name: "targeted routing", routing: Filtered,
			// worker 3.62 ÷ 0.92 = 3.94 → 4 pods; the edges receive only
			// their own: each message reaches 100 × (1 − 0.99²) = 1.99 pods,
			// so (3.6 + 120,000 ÷ 52,632 + 10,000 × 1.99 × 5.1e-5) ÷ 0.5 = 13.79
			// cores; nodes: 6 + 4 + 13.79 = 23.79 ÷ 7.5 → 4. Pub/Sub still
			// bills all 100 subscriptions.
			gatewayPods: 6, workerPods: 4, edgePods: 100, nodes: 4, edgeCores: 13.79,
			firestoreWrites: 70959.94, fanout: 96562.14,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := Compute(handLoad(), handShape(tt.routing))
			if pl.GatewayPods != tt.gatewayPods || pl.WorkerPods != tt.workerPods || pl.EdgePods != tt.edgePods {
				t.Errorf("pods gateway/worker/edge = %d/%d/%d, want %d/%d/%d", pl.GatewayPods, pl.WorkerPods, pl.EdgePods,
					tt.gatewayPods, tt.workerPods, tt.edgePods)
			}
			if pl.Nodes != tt.nodes {
				t.Errorf("nodes = %d, want %d", pl.Nodes, tt.nodes)
			}
			near(t, "edge cores", pl.EdgeCores, tt.edgeCores)
			near(t, "Firestore writes $/month", pl.Cost.FirestoreWrites, tt.firestoreWrites)
			near(t, "Pub/Sub fan-out $/month", pl.Cost.PubSubFanout, tt.fanout)
			// Envelopes of 344 bytes billed 1,000, published and pulled once.
			near(t, "Pub/Sub ingress $/month", pl.Cost.PubSubIngress, 2*1e4*1000*month/(1<<40)*40)
			// 17 or 4 e2-standard-8 nodes: 8 × $0.021811 + 32 × $0.002923 an hour.
			near(t, "e2 compute $/month", pl.Cost.ComputeE2, float64(tt.nodes)*730*(8*0.021811+32*0.002923))
		})
	}
}

func TestMoreUsersNeverFewerPodsOrDollars(t *testing.T) {
	for _, shape := range []Shape{Today, Large} {
		for _, r := range []Routing{Broadcast, Filtered, PerPodTopics, HashShards} {
			s := shape
			s.Routing = r
			t.Run(s.Name+"/"+r.String(), func(t *testing.T) {
				var prev Plan
				for users := 1e3; users <= 3e7; users *= 1.1 {
					pl := Compute(Stated(users), s)
					if users > 1e3 {
						if pl.GatewayPods < prev.GatewayPods || pl.WorkerPods < prev.WorkerPods ||
							pl.EdgePods < prev.EdgePods || pl.Nodes < prev.Nodes {
							t.Fatalf("%.0f users: pods %d/%d/%d nodes %d, fewer than %d/%d/%d nodes %d at %.0f users",
								users, pl.GatewayPods, pl.WorkerPods, pl.EdgePods, pl.Nodes,
								prev.GatewayPods, prev.WorkerPods, prev.EdgePods, prev.Nodes, prev.Load.Users)
						}
						if pl.Cost.Total() < prev.Cost.Total() {
							t.Fatalf("%.0f users cost $%.0f, less than $%.0f at %.0f users", users, pl.Cost.Total(),
								prev.Cost.Total(), prev.Load.Users)
						}
					}
					prev = pl
				}
			})
		}
	}
}

func TestThousandByteMinimumPerRequest(t *testing.T) {
	for _, tt := range []struct{ size, want float64 }{{1, 1000}, {200, 1000}, {999, 1000}, {1000, 1000}, {1500, 1500}} {
		if got := billed(tt.size); got != tt.want {
			t.Errorf("billed(%v) = %v, want %v", tt.size, got, tt.want)
		}
	}
	// Payloads of 50 and 400 bytes leave every envelope and delivery of a
	// two-recipient message under 1,000 bytes: Pub/Sub bills them alike.
	small, big, huge := handLoad(), handLoad(), handLoad()
	small.PayloadBytes, big.PayloadBytes, huge.PayloadBytes = 50, 400, 4000
	s := handShape(Broadcast)
	a, b, c := Compute(small, s), Compute(big, s), Compute(huge, s)
	if a.Cost.PubSubIngress != b.Cost.PubSubIngress || a.Cost.PubSubFanout != b.Cost.PubSubFanout {
		t.Errorf("50-byte payloads cost $%.0f + $%.0f, 400-byte $%.0f + $%.0f: want equal (both billed at the minimum)",
			a.Cost.PubSubIngress, a.Cost.PubSubFanout, b.Cost.PubSubIngress, b.Cost.PubSubFanout)
	}
	if ratio := c.Cost.PubSubIngress / b.Cost.PubSubIngress; math.Abs(ratio-(4000+120+24)/1000.0) > 1e-9 {
		t.Errorf("4,000-byte payloads: ingress cost ×%.3f of the minimum, want ×%.3f (billed at size)", ratio, 4144/1000.0)
	}
}

func TestFanoutTermGrowsWithPods(t *testing.T) {
	l := Stated(1e6)
	fanout := func(r Routing, pods float64) Plan {
		s := Today
		s.Routing = r
		s.SessionsPerPod = l.Users * l.SessionsPerUser / pods
		return Compute(l, s)
	}
	for _, r := range []Routing{Broadcast, Filtered} {
		prev := 0.0
		for _, pods := range []float64{3, 10, 100, 1000, 10000} {
			pl := fanout(r, pods)
			near(t, r.String()+" delivery = pods × publish", pl.PubSubFanoutDelivery, float64(pl.EdgePods)*pl.PubSubFanoutPublish)
			if pl.Cost.PubSubFanout <= prev {
				t.Errorf("%s at %v pods: fan-out $%.0f, not above $%.0f at fewer pods", r, pods, pl.Cost.PubSubFanout, prev)
			}
			prev = pl.Cost.PubSubFanout
		}
	}
	// Broadcast costs the edges CPU for every delivery they drop; targeted
	// routing none.
	if b, f := fanout(Broadcast, 1000), fanout(Filtered, 1000); b.EdgeDropCores <= 0 || f.EdgeDropCores != 0 {
		t.Errorf("drop cores: broadcast %v (want > 0), filtered %v (want 0)", b.EdgeDropCores, f.EdgeDropCores)
	}
	// Publishing only where recipients are keeps it flat: from 100 to
	// 10,000 pods a message's copies grow only as its recipients spread
	// over more pods (bounded by their number), not 100-fold.
	for _, r := range []Routing{PerPodTopics, HashShards} {
		lo, hi := fanout(r, 100), fanout(r, 10000)
		if g := hi.Cost.PubSubFanout / lo.Cost.PubSubFanout; g > 1.2 {
			t.Errorf("%s: fan-out ×%.2f from 100 to 10,000 pods, want flat (≤ ×1.2)", r, g)
		}
		if hi.Cost.PubSubFanout > fanout(Filtered, 10000).Cost.PubSubFanout/100 {
			t.Errorf("%s at 10,000 pods: $%.0f, not a hundredth of the filtered subscriptions' $%.0f", r,
				hi.Cost.PubSubFanout, fanout(Filtered, 10000).Cost.PubSubFanout)
		}
	}
}

func TestLimitHitFirst(t *testing.T) {
	tests := []struct {
		users      float64
		shape      Shape
		first, gcp string
		exceeded   bool
	}{
		{1e4, Today, "WS_MAX_SESSIONS per edge pod", "Pub/Sub StreamingPull 10 MB/s per stream (edge)", false},
		// values-prod.yaml stops the edges at 30 pods of 5,000 sessions.
		{1e6, Today, "chart edge maxReplicas", "Pub/Sub StreamingPull 10 MB/s per stream (edge)", true},
		// Every pod's stream carries every delivery: 33,333/s × ~500 B over 2 streams.
		{1e7, Today, "chart edge maxReplicas", "Pub/Sub StreamingPull 10 MB/s per stream (edge)", true},
	}
	for _, tt := range tests {
		pl := Compute(Stated(tt.users), tt.shape)
		if pl.First.Name != tt.first || pl.GCP.Name != tt.gcp || pl.First.Infeasible != tt.exceeded {
			t.Errorf("%.0f users: first %q (exceeded %v), first GCP %q; want %q (exceeded %v), %q",
				tt.users, pl.First.Name, pl.First.Infeasible, pl.GCP.Name, tt.first, tt.exceeded, tt.gcp)
		}
	}
}

func TestPowerLaw(t *testing.T) {
	exact := Groups.Mix()
	sum := exact.Expect(func(float64) float64 { return 1 })
	if math.Abs(sum-1) > 1e-9 {
		t.Fatalf("shares sum to %v", sum)
	}
	if m := exact.Mean(); m < 2.5 || m > 3.5 {
		t.Errorf("mean recipients %v, want about 3 (the stated mix)", m)
	}
	a := Groups.Sample(rand.New(rand.NewPCG(7, 7)), 200000)
	b := Groups.Sample(rand.New(rand.NewPCG(7, 7)), 200000)
	if len(a) != len(b) {
		t.Fatalf("same seed, different samples")
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different samples at %d: %v vs %v", i, a[i], b[i])
		}
	}
	if rel := math.Abs(a.Mean()-exact.Mean()) / exact.Mean(); rel > 0.1 {
		t.Errorf("sampled mean %v, exact %v", a.Mean(), exact.Mean())
	}
	if math.Abs(a[0].W-exact[0].W) > 0.01 {
		t.Errorf("sampled one-to-one share %v, exact %v", a[0].W, exact[0].W)
	}
}

func TestEgressTiers(t *testing.T) {
	for _, tt := range []struct{ gib, want float64 }{
		{0, 0},
		{100, 100 * 0.12},
		{5 * 1024, 1024*0.12 + 4*1024*0.11},
		{20 * 1024, 1024*0.12 + 9*1024*0.11 + 10*1024*0.08},
	} {
		near(t, "egress", GCP.egressCost(tt.gib), tt.want)
	}
}
