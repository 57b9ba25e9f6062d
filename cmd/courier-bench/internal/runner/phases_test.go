package runner

import (
	"slices"
	"testing"
)

// The bench is its table: every phase -phases can name runs, in the
// documented order, once, and only the Go benchmarks need their own flag.
func TestPhasesTable(t *testing.T) {
	if got, want := PhaseNames(), []string{"raw", "e2e", "worker", "edge", "go"}; !slices.Equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	for _, p := range phases {
		if p.run == nil || p.title == "" {
			t.Errorf("phase %q has no run or no title", p.name)
		}
		only := &run{o: Options{Phases: map[string]bool{p.name: true}}}
		if want := p.name != "go"; only.enabled(p) != want {
			t.Errorf("-phases %s without -go: enabled %v, want %v", p.name, only.enabled(p), want)
		}
		only.o.GoBench = true
		if !only.enabled(p) {
			t.Errorf("-phases %s -go: not enabled", p.name)
		}
		for _, other := range phases {
			if other.name != p.name && only.enabled(other) {
				t.Errorf("-phases %s also enables %s", p.name, other.name)
			}
		}
	}
}
