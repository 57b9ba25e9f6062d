package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/tests/e2e/harness"
	"github.com/courierhq/courier/tests/e2e/metricnames"
)

// TestMetricNamesExist is the one source of truth for metric names: it runs
// the real gateway, worker and edge, sends a message through every hop (so
// that series created on first use exist), scrapes each /metrics, and
// checks every courier_* metric named by the chart (HPA, monitors, alert
// rules, dashboards), the docs, the READMEs and the chart's tests, with the
// labels used in selectors and by/without clauses.
func TestMetricNamesExist(t *testing.T) {
	uses := repoUses(t, env.Root)
	if len(uses) < 50 {
		t.Fatalf("found only %d uses of metric names: is the file list still right?", len(uses))
	}
	admin := func() string { return fmt.Sprintf("ADMIN_ADDR=127.0.0.1:%d", harness.FreePort(t)) }
	c := env.NewCluster(t, harness.Options{Edges: 1,
		// Targeted routing on both, so the routing counters exist too.
		GatewayEnv: []string{admin()},
		WorkerEnv:  []string{admin(), "WORKER_TARGETED_ROUTING=true"},
		EdgeEnv:    []string{admin(), "EDGE_TARGETED_ROUTING=true"},
	})
	ctx := testenv.Context(t, 2*time.Minute)
	driveEveryHop(t, ctx, c)

	var errs []string
	testenv.WaitFor(t, 30*time.Second, 500*time.Millisecond, func() error {
		fams := metricnames.Families{}
		for _, p := range c.All() {
			if err := scrape(metricsURL(p), fams); err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
		}
		errs = metricnames.Check(uses, fams)
		if len(errs) > 0 {
			return fmt.Errorf("%d metric names or labels that no binary exports:\n%s", len(errs), strings.Join(errs, "\n"))
		}
		return nil
	})
	t.Logf("%d uses of metric names checked against the three binaries", len(uses))
}

// driveEveryHop makes the series that exist only once used: a REST send
// stored, fanned out and written to bob's socket, bob's ack, a gRPC call,
// a refused upgrade and a closed session.
func driveEveryHop(t *testing.T, ctx context.Context, c *harness.Cluster) {
	t.Helper()
	bob := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")
	res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, "hi", "")
	if err != nil || res.Status != 202 {
		t.Fatalf("send: %v %+v", err, res)
	}
	if err := bob.WaitMessages(1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := bob.Conn.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"ack","id":%q}`, res.ID)); err != nil {
		t.Fatal(err)
	}
	if _, resp, err := harness.Dial(ctx, c.Edges[0].Addr, "not-a-token", ""); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("dial with a bad token: %v %v", err, resp)
	}
	conn, err := grpc.NewClient(c.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	md := metadata.Pairs("authorization", "Bearer "+c.Token("bob"))
	if _, err := courierv1.NewMessagesClient(conn).ListInbox(metadata.NewOutgoingContext(ctx, md), &courierv1.ListInboxRequest{Limit: 1}); err != nil {
		t.Fatalf("gRPC ListInbox: %v", err)
	}
	other := mustDial(t, ctx, c.Edges[0].Addr, c.Token("carol"), "")
	other.Close()
}

// metricsURL is where p serves Prometheus metrics: on its admin listener
// (ADMIN_ADDR) when it has one that answers /metrics, else on HTTP_ADDR.
// The one place that knows, so moving /metrics changes nothing else here.
func metricsURL(p *harness.Process) string {
	for _, kv := range p.Env {
		if addr, ok := strings.CutPrefix(kv, "ADMIN_ADDR="); ok && addr != "" {
			u := "http://" + addr + "/metrics"
			if resp, err := http.Get(u); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return u
				}
			}
		}
	}
	return "http://" + p.Addr + "/metrics"
}

func scrape(url string, fams metricnames.Families) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = metricnames.ParseExposition(resp.Body, fams)
	return err
}

// repoUses returns every use of a metric name in the files an operator
// reads or the chart renders.
func repoUses(t *testing.T, root string) []metricnames.Use {
	t.Helper()
	var files []string
	for _, g := range []string{"README.md", "docs/*.md", "docs/runbooks/*.md", "services/*/README.md", "clients/*/README.md",
		"cmd/*/README.md", "k8s/courier/*.yaml", "k8s/courier/README.md", "k8s/courier/templates/*", "k8s/courier/files/*",
		"k8s/courier/dashboards/*.json", "tests/deploy/*.go", "tests/deploy/testdata/promtool/*.yaml", "skaffold.yaml", "k8s/loadgen/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	var uses []metricnames.Use
	dashboards := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		switch {
		case strings.HasSuffix(f, ".md"):
			uses = append(uses, metricnames.ScanMarkdown(rel, string(b))...)
		case strings.HasSuffix(f, ".json") && strings.Contains(rel, "dashboards/"):
			exprs, err := metricnames.DashboardExprs(rel, b)
			if err != nil {
				t.Error(err)
				continue
			}
			if len(exprs) == 0 {
				t.Errorf("%s: a dashboard without a single courier query", rel)
			}
			dashboards++
			uses = append(uses, metricnames.ScanExprs(exprs)...)
		case strings.HasSuffix(f, ".go"):
			uses = append(uses, metricnames.ScanLines(rel, string(b))...)
		default:
			uses = append(uses, metricnames.ScanYAML(rel, string(b))...)
		}
	}
	t.Logf("%d files (%d dashboards) scanned", len(files), dashboards)
	return uses
}
