package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/pkg/periodic"
)

// Probe checks the service's dependencies every interval and exports the
// results: courier_dependency_up{dependency} (1 when its last check passed,
// 0 otherwise) and courier_dependency_check_seconds{dependency}. Alerts,
// not readiness, act on them. A dependency that goes down or comes back is
// logged once per change.
type Probe struct {
	checks   map[string]Check
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	up       *prometheus.GaugeVec
	took     *prometheus.HistogramVec
	last     map[string]bool
}

// NewProbe registers the probe's metrics on reg.
func NewProbe(reg prometheus.Registerer, checks map[string]Check, interval, timeout time.Duration, log *slog.Logger) (*Probe, error) {
	p := &Probe{
		checks: checks, interval: interval, timeout: timeout, log: log, last: map[string]bool{},
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "courier_dependency_up", Help: "1 when the last check of the dependency passed, 0 otherwise.",
		}, []string{"dependency"}),
		took: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "courier_dependency_check_seconds", Help: "How long a dependency check took.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"dependency"}),
	}
	if err := errors.Join(reg.Register(p.up), reg.Register(p.took)); err != nil {
		return nil, fmt.Errorf("register dependency metrics: %w", err)
	}
	return p, nil
}

// Run checks at once, then every interval, until ctx ends.
func (p *Probe) Run(ctx context.Context) error {
	p.CheckAll(ctx)
	periodic.Run(ctx, p.interval, p.CheckAll)
	return nil
}

// CheckAll runs every check once, concurrently, and records the results.
func (p *Probe) CheckAll(ctx context.Context) {
	type result struct {
		name string
		err  error
		took time.Duration
	}
	results := make(chan result, len(p.checks))
	for name, check := range p.checks {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, p.timeout)
			defer cancel()
			start := time.Now()
			err := check(cctx)
			results <- result{name, err, time.Since(start)}
		}()
	}
	for range p.checks {
		r := <-results
		if ctx.Err() != nil {
			continue // stopping: a cancelled check says nothing about the dependency
		}
		p.took.WithLabelValues(r.name).Observe(r.took.Seconds())
		up := r.err == nil
		v := 0.0
		if up {
			v = 1
		}
		p.up.WithLabelValues(r.name).Set(v)
		if was, seen := p.last[r.name]; !seen || was != up {
			if up {
				p.log.Info("dependency up", "dependency", r.name)
			} else {
				p.log.Warn("dependency down", "dependency", r.name, "err", r.err)
			}
		}
		p.last[r.name] = up
	}
}
