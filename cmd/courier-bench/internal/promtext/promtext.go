// Package promtext reads a Prometheus text exposition into a snapshot the
// benchmark can subtract: each metric's sum over its label sets, and each
// histogram's cumulative buckets, so a step's own distribution is the
// difference of two scrapes and its quantiles are read from the buckets
// (linear within a bucket, as Prometheus' histogram_quantile does).
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Snapshot is one scrape.
type Snapshot struct {
	// Sums is every sample summed over its label sets, by metric name
	// (a histogram's _bucket, _sum and _count are metrics of their own).
	Sums map[string]float64
	// Buckets is every histogram's cumulative count per upper bound (the
	// "le" label), summed over its other labels, by histogram name.
	Buckets map[string]map[float64]float64
}

// Parse reads an exposition.
func Parse(r io.Reader) (Snapshot, error) {
	s := Snapshot{Sums: map[string]float64{}, Buckets: map[string]map[float64]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		rest, labels := line[len(name):], ""
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			labels, rest = rest[1:j], rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.Sums[name] += v
		if h, ok := strings.CutSuffix(name, "_bucket"); ok {
			if le, ok := label(labels, "le"); ok {
				bound, err := strconv.ParseFloat(le, 64)
				if err != nil {
					continue
				}
				if s.Buckets[h] == nil {
					s.Buckets[h] = map[float64]float64{}
				}
				s.Buckets[h][bound] += v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("read metrics: %w", err)
	}
	return s, nil
}

func label(labels, key string) (string, bool) {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && k == key {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// Delta is after − before for one metric's sum (0 when absent from either).
func Delta(before, after Snapshot, name string) float64 {
	a, ok := after.Sums[name]
	if !ok {
		return 0
	}
	return a - before.Sums[name]
}

// Has reports whether the scrape holds the metric (a build may predate it).
func (s Snapshot) Has(name string) bool {
	_, ok := s.Sums[name]
	if !ok {
		_, ok = s.Buckets[name]
	}
	return ok
}

// Dist is a histogram's distribution between two scrapes.
type Dist struct {
	Count float64 `json:"count"`
	// Quantiles in milliseconds, read from the buckets; +Inf (reported as
	// the highest finite bound) when past the last one.
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	// MeanMS is _sum/_count.
	MeanMS float64 `json:"mean_ms"`
}

// Between is histogram name's distribution of the observations made
// between before and after (ok false when the histogram is absent).
func Between(before, after Snapshot, name string) (Dist, bool) {
	ab, ok := after.Buckets[name]
	if !ok {
		return Dist{}, false
	}
	bb := before.Buckets[name]
	bounds := make([]float64, 0, len(ab))
	for b := range ab {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	cum := make([]float64, len(bounds))
	for i, b := range bounds {
		cum[i] = ab[b] - bb[b]
	}
	d := Dist{}
	if len(cum) > 0 {
		d.Count = cum[len(cum)-1]
	}
	if d.Count <= 0 {
		return d, true
	}
	d.MeanMS = 1000 * (Delta(before, after, name+"_sum")) / d.Count
	q := func(p float64) float64 {
		rank := p * d.Count
		lower, prev := 0.0, 0.0
		for i, b := range bounds {
			if cum[i] >= rank {
				if math.IsInf(b, 1) {
					return 1000 * lower
				}
				in := cum[i] - prev
				if in <= 0 {
					return 1000 * b
				}
				return 1000 * (lower + (b-lower)*(rank-prev)/in)
			}
			lower, prev = b, cum[i]
			if math.IsInf(b, 1) {
				break
			}
		}
		return 1000 * lower
	}
	d.P50, d.P90, d.P99 = q(.5), q(.9), q(.99)
	return d, true
}
