package replay

import (
	"math"
	"reflect"
	"testing"

	"github.com/courierhq/courier/cmd/courier-capacity/internal/model"
)

func TestSameSeedSameDay(t *testing.T) {
	for _, shape := range []model.Shape{model.Today, model.Large} {
		d := Standard(1e6, shape)
		a, b := Run(d), Run(d)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: two runs of seed %d differ:\n%+v\n%+v", shape.Name, d.Seed, a, b)
		}
		d.Seed = 2
		if c := Run(d); c.Cost == a.Cost || c.PeakUsers == a.PeakUsers {
			t.Errorf("%s: seed 2 gave the same day as seed 1 (cost $%.2f, peak %.0f users)", shape.Name, c.Cost, c.PeakUsers)
		}
	}
}

func TestCurve(t *testing.T) {
	for _, tt := range []struct{ h, want float64 }{{20, 1}, {8, 0.1}, {14, 0.55}, {2, 0.55}} {
		if got := Curve(tt.h); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Curve(%v) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

func TestDrainStorm(t *testing.T) {
	// Today's pods hold 5,000 sessions at the peak: draining one sends them
	// all back within the 2-second window, one catch-up query each.
	r := Run(Standard(1e6, model.Today))
	if r.DrainSessions < 4500 || r.DrainSessions > 5000 {
		t.Errorf("drained pod held %.0f sessions, want ~5,000 (the autoscaler's target)", r.DrainSessions)
	}
	if want := r.DrainSessions / 2; math.Abs(r.CatchupBurst-want) > 1e-6 {
		t.Errorf("catch-up burst %.1f reads/s, want %.1f (one read per session over 2 s)", r.CatchupBurst, want)
	}
	if r.PresenceBurst != 0 {
		t.Errorf("presence writes %.1f/s without targeted routing", r.PresenceBurst)
	}
	// With presence, each resumed session writes a leave and a join.
	s := model.Large
	s.Routing = model.PerPodTopics
	p := Run(Standard(1e6, s))
	if want := 2 * p.DrainSessions / 2; math.Abs(p.PresenceBurst-want) > 1e-6 || p.PresenceDocHit != 1 {
		t.Errorf("presence burst %.1f writes/s, %v per document; want %.1f and 1", p.PresenceBurst, p.PresenceDocHit, want)
	}
	// Hash shards are sized once for the peak: the autoscaler never drains
	// one, and a drained shard's users wait for its pod (30 s).
	h := model.Large
	h.Routing = model.HashShards
	q := Run(Standard(1e6, h))
	if q.ScaleInPods != 0 {
		t.Errorf("hash shards scaled in %d pods", q.ScaleInPods)
	}
	if want := q.DrainSessions / 30; math.Abs(q.CatchupBurst-want) > 1e-6 {
		t.Errorf("hash shard catch-up %.1f reads/s, want %.1f (over the 30 s restart)", q.CatchupBurst, want)
	}
}

func TestAutoscalerFollowsTheCurve(t *testing.T) {
	r := Run(Standard(1e6, model.Today))
	// 1M users × 1.2 sessions ÷ 5,000 at the peak; the evening decline
	// removes most of them again, each removal a drain.
	if r.PeakEdge < 240 || r.PeakEdge > 260 {
		t.Errorf("peak edge pods %d, want ~250", r.PeakEdge)
	}
	if r.ScaleInPods < r.PeakEdge/2 {
		t.Errorf("scale-in drained %d pods over the day, want most of the %d (the trough is 10 %% of the peak)",
			r.ScaleInPods, r.PeakEdge)
	}
	if mean := r.MeanUsers / r.PeakUsers; mean < 0.5 || mean > 0.6 {
		t.Errorf("mean connected share %.2f of the peak, want ~0.55", mean)
	}
}
