// Package replay runs a synthetic day against the capacity model: users
// connect along a diurnal curve, each five-minute step draws its messages'
// recipient counts from the power law (seeded, so a day is reproducible),
// the edge autoscaler follows, and one edge pod is drained at the peak hour
// so its sessions all reconnect at once. It reports peak pods, the
// catch-up read burst the drain puts on Firestore, and the day's cost.
package replay

import (
	"math"
	"math/rand/v2"

	"github.com/courierhq/courier/cmd/courier-capacity/internal/model"
)

// Day is one replay's input.
type Day struct {
	Seed    uint64
	Peak    float64 // connected users at the busiest moment of the curve
	Shape   model.Shape
	Samples int // messages drawn per step to estimate the mix
	// DrainHour is when one edge pod is drained (a node upgrade, a rollout).
	DrainHour float64
	// StormWindow is how long the drained pod's sessions take to be back:
	// the JavaScript client reconnects at once on 1001, so it is about a
	// TLS handshake and an upgrade through the load balancer.
	StormWindow float64
	// ShardRestart replaces StormWindow with hash shards: a drained shard's
	// users can only come back on that shard, once its pod is replaced.
	ShardRestart float64
}

// StepMinutes is the replay's resolution.
const StepMinutes = 5

// Standard is the day docs/capacity.md quotes for a peak.
func Standard(peak float64, shape model.Shape) Day {
	return Day{Seed: 1, Peak: peak, Shape: shape, Samples: 2000, DrainHour: 20, StormWindow: 2, ShardRestart: 30}
}

// Result is what the day produced.
type Result struct {
	PeakUsers                                    float64
	PeakGateway, PeakWorker, PeakEdge, PeakNodes int
	PeakCores, PeakGiB                           float64
	MeanUsers                                    float64
	Messages, FirestoreWrites, FirestoreReads    float64 // the whole day
	ScaleInPods                                  int     // edge pods removed by the autoscaler over the day
	ScaleInReconnects                            float64 // sessions those drains moved
	LargestGroup                                 int     // the most recipients any drawn message had

	// The drain at DrainHour.
	DrainSessions  float64 // sessions on the drained pod
	CatchupBurst   float64 // Firestore reads/s while they resume
	PresenceBurst  float64 // Firestore writes/s (leave + join), with presence
	SteadyReads    float64 // Firestore reads/s just before
	PresenceDocHit float64 // writes/s on one user's presence document during the storm

	Cost, Fanout float64 // USD for the day; fan-out's part
}

// Run replays d. The same Day always gives the same Result.
func Run(d Day) Result {
	rng := rand.New(rand.NewPCG(d.Seed, d.Seed^0x9e3779b97f4a7c15))
	steps := 24 * 60 / StepMinutes
	stepSeconds := float64(StepMinutes * 60)
	monthShare := stepSeconds / (model.HoursPerMonth * 3600)
	var r Result
	shape := d.Shape
	window := d.StormWindow
	if shape.Routing == model.HashShards {
		// Sized once for the curve's peak (hour 20), noise aside.
		peak := model.Stated(d.Peak)
		shape.FixedEdgePods = max(shape.MinEdge, int(math.Ceil(peak.Users*peak.SessionsPerUser/shape.SessionsPerPod)))
		window = d.ShardRestart
	}
	prevPods := 0
	prevSessionsPerPod := 0.0
	for i := range steps {
		hour := float64(i*StepMinutes) / 60
		users := d.Peak * Curve(hour) * (1 + 0.02*rng.NormFloat64())
		users = math.Max(users, 0)
		load := model.Stated(users)
		load.Mix = model.Groups.Sample(rng, d.Samples)
		pl := model.Compute(load, shape)

		r.MeanUsers += users / float64(steps)
		r.PeakUsers = math.Max(r.PeakUsers, users)
		r.PeakGateway = max(r.PeakGateway, pl.GatewayPods)
		r.PeakWorker = max(r.PeakWorker, pl.WorkerPods)
		r.PeakEdge = max(r.PeakEdge, pl.EdgePods)
		r.PeakNodes = max(r.PeakNodes, pl.Nodes)
		cores := float64(pl.GatewayPods) + float64(pl.WorkerPods) + pl.EdgeCores
		r.PeakCores = math.Max(r.PeakCores, cores)
		r.PeakGiB = math.Max(r.PeakGiB, pl.MemoryGiB)
		r.LargestGroup = max(r.LargestGroup, load.Mix.Max())
		r.Messages += pl.Messages * stepSeconds
		r.FirestoreWrites += pl.FirestoreWrites * stepSeconds
		r.FirestoreReads += pl.FirestoreReads * stepSeconds
		r.Cost += pl.Cost.Total() * monthShare
		r.Fanout += pl.Cost.PubSubFanout * monthShare

		// The autoscaler removing edge pods drains them: their sessions
		// reconnect elsewhere (one catch-up query each, and with presence a
		// leave and a join).
		if prevPods > 0 && pl.EdgePods < prevPods {
			moved := float64(prevPods-pl.EdgePods) * prevSessionsPerPod
			r.ScaleInPods += prevPods - pl.EdgePods
			r.ScaleInReconnects += moved
			r.FirestoreReads += moved
			extraWrites := 0.0
			if shape.Routing.UsesPresence() {
				extraWrites = 2 * moved
			}
			r.FirestoreWrites += extraWrites
			r.Cost += moved/1e5*model.GCP.FirestoreReads.Value + extraWrites/1e5*model.GCP.FirestoreWrites.Value
		}
		prevPods, prevSessionsPerPod = pl.EdgePods, pl.Sessions/float64(pl.EdgePods)

		if hour <= d.DrainHour && d.DrainHour < hour+float64(StepMinutes)/60 {
			r.DrainSessions = pl.Sessions / float64(pl.EdgePods)
			// What a session missed while away: its user's share of frames
			// over the window; a resume query costs at least one read.
			perSession := pl.Frames / pl.Sessions
			reads := r.DrainSessions * math.Max(1, perSession*window)
			r.CatchupBurst = reads / window
			r.SteadyReads = pl.FirestoreReads
			if shape.Routing.UsesPresence() {
				r.PresenceBurst = 2 * r.DrainSessions / window
				r.PresenceDocHit = 2 / window
			}
		}
	}
	return r
}

// Curve is the connected share of the peak at hour h (0–24, UTC of the
// users): a trough of 10 % at 08:00 and the peak at 20:00.
func Curve(h float64) float64 { return 0.55 + 0.45*math.Cos(2*math.Pi*(h-20)/24) }
