package runner

import (
	"testing"
	"time"
)

// The budgets: quick under two minutes, the full run with a
// baseline under fifteen. The estimate is generous (a quiet machine runs
// the quick plan in about 70 s), so quick is held to three minutes of it.
func TestPlansFitTheirBudgets(t *testing.T) {
	if d := Quick(time.Second).Estimate(1, true); d > 3*time.Minute {
		t.Errorf("quick plan estimated at %s", d)
	}
	if d := Full(time.Second).Estimate(2, true); d > 15*time.Minute {
		t.Errorf("full plan with a baseline estimated at %s, over 15 minutes", d)
	}
	full := Full(time.Second)
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
