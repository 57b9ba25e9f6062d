package harness

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/topology"
)

// Env is what every test shares: the built binaries and the emulators.
type Env struct {
	Root   string // repository root
	BinDir string
	Emu    *Emulators
}

// Secret is the HS256 secret of every e2e cluster.
var Secret = []byte("e2e-secret-0123456789abcdef-courier")

// Options shape one cluster.
type Options struct {
	Edges int
	// OTLPEndpoint, when set, makes every service export spans there.
	OTLPEndpoint string
	// Extra environment for every process ("K=V").
	ExtraEnv []string
	// WorkerEnv, GatewayEnv and EdgeEnv are added to that kind only.
	WorkerEnv, GatewayEnv, EdgeEnv []string
}

// Cluster is one Courier system in its own emulator project.
type Cluster struct {
	env      *Env
	t        testing.TB
	Project  string
	Topo     topology.Config
	common   []string
	Gateway  *Process
	GRPCAddr string
	Worker   *Process
	Workers  []*Process // more workers, from AddWorker
	Edges    []*Process
	logDir   string
}

// NewCluster provisions a fresh project and starts a gateway, a worker and
// opts.Edges edges, all ready. Everything is stopped when the test ends, and
// the logs are printed if it failed.
func (e *Env) NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	project := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	c := &Cluster{env: e, t: t, Project: project, Topo: topology.Default(project), logDir: t.TempDir()}
	c.common = append([]string{
		"GOOGLE_CLOUD_PROJECT=" + project,
		"PUBSUB_EMULATOR_HOST=" + e.Emu.PubSubHost,
		"FIRESTORE_EMULATOR_HOST=" + e.Emu.FirestoreHost,
		"AUTH_HS256_SECRET=" + string(Secret),
		"DEV_TOKENS=true", // the demo client (TestChromiumDemo) logs in with POST /dev/token
		"LOG_LEVEL=info",
		"SHUTDOWN_TIMEOUT=15s",
		"INGRESS_MIN_BACKOFF=200ms",
		"INGRESS_MAX_BACKOFF=2s",
		"EDGE_HEARTBEAT_INTERVAL=1s",
	}, opts.ExtraEnv...)
	if opts.OTLPEndpoint != "" {
		c.common = append(c.common, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+opts.OTLPEndpoint, "OTEL_BSP_SCHEDULE_DELAY=200")
	}
	if err := c.Courierctl("provision"); err != nil {
		t.Fatal(err)
	}
	c.GRPCAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	c.Gateway = c.newProcess("api-gateway", "api-gateway", append([]string{"GRPC_ADDR=" + c.GRPCAddr, "RATE_LIMIT_PER_SECOND=10000", "RATE_LIMIT_BURST=10000",
		// The tests drive bursts far above one person's sends; the cost
		// budgets have tests of their own.
		"RATE_LIMIT_STORED_KIB_PER_SECOND=100000000", "RATE_LIMIT_STORED_KIB_BURST=100000000",
		"RATE_LIMIT_INBOUND_PER_SECOND=1000000", "RATE_LIMIT_INBOUND_BURST=1000000"}, opts.GatewayEnv...))
	c.Worker = c.newProcess("pipeline-worker", "pipeline-worker", opts.WorkerEnv)
	for i := range opts.Edges {
		pod := fmt.Sprintf("edge-%c", 'a'+i)
		// GATEWAY_URL: where the demo client the edge serves sends (the
		// browser tests; the gateway allows it with CORS_ALLOWED_ORIGINS).
		c.Edges = append(c.Edges, c.newProcess("ws-edge-"+pod, "ws-edge", append([]string{"POD_NAME=" + pod, "WS_ALLOWED_ORIGINS=*", "GATEWAY_URL=" + c.GatewayURL()}, opts.EdgeEnv...)))
	}
	t.Cleanup(func() {
		for _, p := range c.All() {
			if p.Running() {
				p.Kill(t)
			}
		}
		if t.Failed() {
			for _, p := range c.All() {
				t.Logf("----- log of %s (tail)\n%s", p.Name, p.Tail(60))
			}
		}
	})
	for _, p := range c.All() {
		p.Start(t)
	}
	for _, p := range c.All() {
		p.WaitReady(t, 60*time.Second)
	}
	return c
}

func (c *Cluster) newProcess(name, bin string, extra []string) *Process {
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(c.t))
	admin := fmt.Sprintf("127.0.0.1:%d", FreePort(c.t))
	env := append(append([]string{}, c.common...), "HTTP_ADDR="+addr, "ADMIN_ADDR="+admin, "OTEL_SERVICE_NAME="+bin)
	env = append(env, extra...)
	return &Process{Name: name, Addr: addr, AdminAddr: admin, Env: env, bin: filepath.Join(c.env.BinDir, bin), logPath: filepath.Join(c.logDir, name+".log")}
}

// All returns every service process.
func (c *Cluster) All() []*Process {
	ps := []*Process{c.Gateway, c.Worker}
	ps = append(ps, c.Workers...)
	return append(ps, c.Edges...)
}

// AddWorker starts one more pipeline-worker (with extra env "K=V") on the
// cluster's ingress subscription and waits until it is ready. It is
// stopped with the rest of the cluster.
func (c *Cluster) AddWorker(t testing.TB, extra ...string) *Process {
	t.Helper()
	p := c.newProcess(fmt.Sprintf("pipeline-worker-%d", len(c.Workers)+2), "pipeline-worker", extra)
	c.Workers = append(c.Workers, p)
	p.Start(t)
	p.WaitReady(t, 60*time.Second)
	return p
}

// Courierctl runs courierctl with the cluster's environment.
func (c *Cluster) Courierctl(args ...string) error {
	_, err := c.CourierctlOutput(args...)
	return err
}

// CourierctlOutput runs courierctl and returns its standard output.
func (c *Cluster) CourierctlOutput(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.env.BinDir, "courierctl"), args...)
	cmd.Env = append(cmd.Environ(), c.common...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("courierctl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// Token mints a token for user.
func (c *Cluster) Token(user string) string {
	tok, err := auth.Mint(Secret, user, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// GatewayURL is the gateway's base URL.
func (c *Cluster) GatewayURL() string { return "http://" + c.Gateway.Addr }
