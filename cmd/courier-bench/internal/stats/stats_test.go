package stats

import (
	"testing"
	"time"
)

func TestSummarizeNearestRank(t *testing.T) {
	d := make([]time.Duration, 1000)
	for i := range d {
		d[len(d)-1-i] = time.Duration(i+1) * time.Millisecond // 1..1000 ms, reversed
	}
	p := Summarize(d)
	want := Percentiles{N: 1000, P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000}
	if p != want {
		t.Fatalf("Summarize = %+v, want %+v", p, want)
	}
	if (Summarize(nil) != Percentiles{}) {
		t.Fatal("empty sample must give zero percentiles")
	}
	if one := Summarize([]time.Duration{7 * time.Millisecond}); one.P50 != 7 || one.P999 != 7 || one.N != 1 {
		t.Fatalf("single sample: %+v", one)
	}
}

func TestMedianRatioRate(t *testing.T) {
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"odd median", Median([]float64{5, 1, 3}), 3},
		{"even median", Median([]float64{4, 1, 3, 2}), 2.5},
		{"no median", Median(nil), 0},
		{"ratio", Ratio(3, 4), 0.75},
		{"ratio by zero", Ratio(3, 0), 0},
		{"rate", Rate(500, 2*time.Second), 250},
		{"rate of nothing", Rate(5, 0), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}
