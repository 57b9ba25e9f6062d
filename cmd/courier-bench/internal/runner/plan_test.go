package runner

import (
	"testing"
	"time"
)

// The budgets: quick (the smoke run of `make test`) under two minutes;
// the estimate is generous (a quiet machine runs the quick plan in about
// 80 s), so quick is held to three minutes of it. The full plan keeps what
// makes its numbers claims: 30-second steps, three rounds.
func TestPlansFitTheirBudgets(t *testing.T) {
	if d := Quick(time.Second).Estimate(1, true, false); d > 3*time.Minute {
		t.Errorf("quick plan estimated at %s", d)
	}
	full := Full(time.Second)
	if full.E2E.StepFor < 30*time.Second || full.Edge.StepFor < 30*time.Second || full.Null.StepFor < 30*time.Second || full.Repeats < 3 {
		t.Errorf("full plan: steps %s/%s/%s, %d rounds; want ≥ 30 s and ≥ 3", full.E2E.StepFor, full.Edge.StepFor, full.Null.StepFor, full.Repeats)
	}
	if full.E2E.Steady != 200 || full.E2E.Burst != 2000 || full.E2E.BurstSenders != 200 || full.E2E.Recipients != 40 || full.E2E.BurstClients != 32 {
		t.Errorf("the burst and steady rate the issues are judged on changed: %+v", full.E2E)
	}
	if full.Edge.Sessions != 1000 || full.Edge.Idle[len(full.Edge.Idle)-1] != 10000 {
		t.Errorf("edge plan: %d fan-out sessions, idle points %v", full.Edge.Sessions, full.Edge.Idle)
	}
}

func TestOrderAlternates(t *testing.T) {
	if o := order(2, 0); o[0] != 0 || o[1] != 1 {
		t.Errorf("phase 0 order %v", o)
	}
	if o := order(2, 1); o[0] != 1 || o[1] != 0 {
		t.Errorf("phase 1 order %v", o)
	}
}
