package health_test

import (
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/topology"
)

// The dependency checks the probes run, against the emulators: a topic that
// exists passes, a missing one fails; Firestore answers.
func TestDependencyChecksAgainstEmulators(t *testing.T) {
	project := testenv.Project(t)
	ps := testenv.PubSub(t, project)
	ctx := testenv.Context(t, time.Minute)
	topo := topology.Default(project)
	if err := health.PubSubTopic(ps, topo.TopicPath(topo.IngressTopic))(ctx); err == nil {
		t.Fatal("a missing topic passed")
	}
	if _, err := topology.Apply(ctx, ps, topo); err != nil {
		t.Fatal(err)
	}
	if err := health.PubSubTopic(ps, topo.TopicPath(topo.IngressTopic))(ctx); err != nil {
		t.Fatalf("existing topic: %v", err)
	}
	if err := health.Firestore(testenv.Firestore(t, project))(ctx); err != nil {
		t.Fatalf("firestore: %v", err)
	}
}
