package promtext

import (
	"math"
	"strings"
	"testing"
)

const before = `# HELP h x
h_bucket{le="0.01"} 10
h_bucket{le="0.1"} 10
h_bucket{le="1"} 10
h_bucket{le="+Inf"} 10
h_sum 0.05
h_count 10
c_total{reason="a"} 1
c_total{reason="b"} 2
`

const after = `h_bucket{le="0.01"} 10
h_bucket{le="0.1"} 100
h_bucket{le="1"} 110
h_bucket{le="+Inf"} 110
h_sum 9.05
h_count 110
c_total{reason="a"} 5
c_total{reason="b"} 2
`

// A step's quantiles come from the difference of two scrapes: the 100
// observations made between them, 90 in (0.01, 0.1] and 10 in (0.1, 1].
func TestBetweenReadsTheStepsOwnDistribution(t *testing.T) {
	b, err := Parse(strings.NewReader(before))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Parse(strings.NewReader(after))
	if err != nil {
		t.Fatal(err)
	}
	if d := Delta(b, a, "c_total"); d != 4 {
		t.Fatalf("counter delta %v, want 4 (summed over labels)", d)
	}
	d, ok := Between(b, a, "h")
	if !ok || d.Count != 100 {
		t.Fatalf("Between = %+v, %v; want 100 observations", d, ok)
	}
	// p50: rank 50 in (0.01, 0.1] holding ranks 1..90 → 0.01 + 0.09*50/90.
	if want := 1000 * (0.01 + 0.09*50/90); math.Abs(d.P50-want) > 1e-9 {
		t.Fatalf("p50 %v ms, want %v", d.P50, want)
	}
	// p99: rank 99 in (0.1, 1] holding ranks 91..100 → 0.1 + 0.9*9/10.
	if want := 1000 * (0.1 + 0.9*9/10); math.Abs(d.P99-want) > 1e-9 {
		t.Fatalf("p99 %v ms, want %v", d.P99, want)
	}
	if math.Abs(d.MeanMS-90) > 1e-9 {
		t.Fatalf("mean %v ms, want 90", d.MeanMS)
	}
	if _, ok := Between(b, a, "absent"); ok {
		t.Fatal("an absent histogram reads as present")
	}
}
