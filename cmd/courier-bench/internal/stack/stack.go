// Package stack runs Courier's binaries for a benchmark: one project per
// run on the shared emulators (topology applied by pkg/topology, as
// `courierctl provision` does), each service on free loopback ports with
// its debug listener on, its log in the run directory, and waits until each
// is ready. The binaries may come from this tree or from a baseline build:
// only their command-line contract (environment, /readyz, /metrics on
// ADMIN_ADDR or, before it existed, on HTTP_ADDR) is relied on.
package stack

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/cmd/courier-bench/internal/promtext"
	"github.com/courierhq/courier/pkg/topology"
)

// Build is one set of service binaries.
type Build struct {
	Label   string // "new" (this tree) or "old" (the baseline)
	Rev     string // git revision, for the report
	Gateway string
	Worker  string
	Edge    string
}

// Env is what every service of one run shares.
type Env struct {
	Emulators *procs.Emulators
	Project   string
	Secret    string // AUTH_HS256_SECRET
	LogDir    string
}

// Service is one started binary.
type Service struct {
	*procs.Proc
	HTTP  string // host:port of HTTP_ADDR
	Debug string // host:port of DEBUG_ADDR
	// Admin is host:port of ADMIN_ADDR: builds that serve /metrics on a
	// separate admin listener use it; older ones ignore the variable and
	// serve /metrics on HTTP_ADDR.
	Admin string

	metricsOnce sync.Once
	metricsURL  string
}

// MetricsURL is the service's Prometheus endpoint: the admin listener's
// when it answers /metrics, else the HTTP listener's. Decided once, on
// first use (the service is ready by then), so every scrape of the run
// reads the same place.
func (s *Service) MetricsURL() string {
	s.metricsOnce.Do(func() {
		s.metricsURL = "http://" + s.HTTP + "/metrics"
		if s.Admin == "" {
			return
		}
		u := "http://" + s.Admin + "/metrics"
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(u)
		if err != nil {
			return
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			s.metricsURL = u
		}
	})
	return s.metricsURL
}

// Scrape reads the service's metrics.
func (s *Service) Scrape(ctx context.Context) (promtext.Snapshot, error) {
	return procs.Scrape(ctx, s.MetricsURL())
}

// Provision applies Courier's topology to env's project.
func Provision(ctx context.Context, ps *pubsub.Client, project string) error {
	if _, err := topology.Apply(ctx, ps, topology.Default(project)); err != nil {
		return fmt.Errorf("provision project %s: %w", project, err)
	}
	return nil
}

func (e Env) common() []string {
	return append(e.Emulators.Env(),
		"GOOGLE_CLOUD_PROJECT="+e.Project,
		"AUTH_HS256_SECRET="+e.Secret,
		"LOG_LEVEL=warn",
		// Spans are made (for log ids) but never exported.
		"OTEL_EXPORTER_OTLP_ENDPOINT=",
	)
}

func start(ctx context.Context, name, bin string, e Env, extra []string) (*Service, error) {
	httpAddr, err := procs.FreeAddr()
	if err != nil {
		return nil, err
	}
	debugAddr, err := procs.FreeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := procs.FreeAddr()
	if err != nil {
		return nil, err
	}
	env := append(e.common(), "HTTP_ADDR="+httpAddr, "DEBUG_ADDR="+debugAddr, "ADMIN_ADDR="+adminAddr)
	env = append(env, extra...)
	p, err := procs.Start(name, bin, env, filepath.Join(e.LogDir, name+".log"))
	if err != nil {
		return nil, err
	}
	s := &Service{Proc: p, HTTP: httpAddr, Debug: debugAddr, Admin: adminAddr}
	if err := p.WaitReady(ctx, "http://"+httpAddr+"/readyz", 60*time.Second); err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	return s, nil
}

// StartGateway starts an api-gateway with rate limits out of the way.
func StartGateway(ctx context.Context, b Build, e Env, extra ...string) (*Service, error) {
	grpcAddr, err := procs.FreeAddr()
	if err != nil {
		return nil, err
	}
	env := append([]string{"GRPC_ADDR=" + grpcAddr, "RATE_LIMIT_PER_SECOND=1000000", "RATE_LIMIT_BURST=1000000",
		// The load is many users' worth from few senders and recipients.
		"RATE_LIMIT_STORED_KIB_PER_SECOND=100000000", "RATE_LIMIT_STORED_KIB_BURST=100000000",
		"RATE_LIMIT_INBOUND_PER_SECOND=1000000", "RATE_LIMIT_INBOUND_BURST=1000000"}, extra...)
	return start(ctx, b.Label+"-gateway", b.Gateway, e, env)
}

// StartWorker starts a pipeline-worker.
func StartWorker(ctx context.Context, b Build, e Env, name string, extra ...string) (*Service, error) {
	return start(ctx, b.Label+"-"+name, b.Worker, e, extra)
}

// StartEdge starts a ws-edge named pod, admitting up to maxSessions.
func StartEdge(ctx context.Context, b Build, e Env, pod string, maxSessions int, extra ...string) (*Service, error) {
	// The bench's clients open sessions as fast as it can; the connect
	// limit has tests of its own. (A baseline build ignores the variables.)
	env := append([]string{"POD_NAME=" + pod, fmt.Sprintf("WS_MAX_SESSIONS=%d", maxSessions),
		"WS_CONNECT_RATE=1000000", "WS_CONNECT_BURST=1000000"}, extra...)
	return start(ctx, b.Label+"-"+pod, b.Edge, e, env)
}

// StopAll stops services in order (each with a grace period).
func StopAll(ss ...*Service) {
	for _, s := range ss {
		if s != nil {
			s.Stop(15 * time.Second)
		}
	}
}
