package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/testenv"
)

func TestLoadSettings(t *testing.T) {
	s, err := loadSettings(config.FromMap(map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.HTTPAddr != ":8080" || s.GRPCAddr != ":9090" || s.AdminAddr != ":9464" || s.Limits.MaxRecipients != 100 || s.Limits.MaxPayloadBytes != 65536 ||
		s.MaxBodyBytes != 262144 || s.RequestTimeout != 10*time.Second || s.ShutdownTimeout != 20*time.Second ||
		s.RatePerSecond != 20 || s.RateBurst != 40 || len(s.CORSOrigins) != 0 || s.Topology.IngressTopic != "courier-ingress" {
		t.Errorf("defaults: %+v", s)
	}
	s, err = loadSettings(config.FromMap(map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef",
		"CORS_ALLOWED_ORIGINS": "http://localhost:8081, http://127.0.0.1:8081", "PUBSUB_INGRESS_TOPIC": "in"}))
	if err != nil || len(s.CORSOrigins) != 2 || s.CORSOrigins[1] != "http://127.0.0.1:8081" || s.Topology.IngressTopic != "in" {
		t.Errorf("overrides: %+v %v", s, err)
	}

	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"no auth":        {map[string]string{}, []string{"AUTH_JWKS_URL", "AUTH_HS256_SECRET"}},
		"malformed":      {map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef", "MAX_RECIPIENTS": "many", "REQUEST_TIMEOUT": "soon"}, []string{"MAX_RECIPIENTS", "REQUEST_TIMEOUT"}},
		"body below cap": {map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef", "MAX_BODY_BYTES": "2048", "MAX_PAYLOAD_BYTES": "4096"}, []string{"MAX_BODY_BYTES"}},
		"all at once":    {map[string]string{"RATE_LIMIT_BURST": "0"}, []string{"AUTH_JWKS_URL", "RATE_LIMIT_BURST"}},
		"jwks alone":     {map[string]string{"AUTH_JWKS_URL": "https://idp.test/jwks"}, []string{"AUTH_ISSUER", "AUTH_AUDIENCE"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadSettings(config.FromMap(tc.env))
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not name %s", err, w)
				}
			}
		})
	}
}

// TestRunShutsDownGracefully runs the whole binary's wiring on the
// emulators, starts a request whose body is still arriving, cancels the
// run (SIGTERM), and checks that the request still completes with 202 and
// its message reaches the topic (the publisher is flushed after the
// servers drained), that new connections are refused, and that run
// returns cleanly.
func TestRunShutsDownGracefully(t *testing.T) {
	project := testenv.Project(t)
	client, topo := testenv.Topology(t, project, nil)
	tctx := testenv.Context(t, 2*time.Minute)
	const secret = "run-test-secret-0123456789"
	env := config.FromMap(map[string]string{
		"GOOGLE_CLOUD_PROJECT": project, "AUTH_HS256_SECRET": secret,
		"HTTP_ADDR": "127.0.0.1:0", "GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "LOG_LEVEL": "warn", "SHUTDOWN_TIMEOUT": "20s",
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [3]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, env, func(h, g net.Addr, a string) { addrs <- [3]string{h.String(), g.String(), a} })
	}()
	var httpAddr, grpcAddr, adminAddr string
	select {
	case a := <-addrs:
		httpAddr, grpcAddr, adminAddr = a[0], a[1], a[2]
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	base, admin := "http://"+httpAddr, "http://"+adminAddr

	if r, err := http.Get(base + "/readyz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", r, err)
	}
	waitMetric(t, admin, `courier_dependency_up{dependency="pubsub"} 1`)
	waitMetric(t, admin, `courier_dependency_up{dependency="firestore"} 1`)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if h, err := healthpb.NewHealthClient(conn).Check(tctx, &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health: %v %v", h, err)
	}

	// A request whose body is only half sent when the signal comes.
	tok, _ := auth.Mint([]byte(secret), "alice", time.Hour)
	body := `{"to":["bob"],"payload":{"text":"in flight"}}`
	raw, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fmt.Fprintf(raw, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		tok, len(body), body[:10])
	testenv.Eventually(t, 10*time.Second, "the request is being served", func() bool {
		return inFlight(t, admin) == 1
	})
	cancel()
	// New connections are refused once shutdown began.
	testenv.Eventually(t, 10*time.Second, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", httpAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if _, err := io.WriteString(raw, body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil {
		t.Fatalf("in-flight request lost: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("in-flight request: %d %s", resp.StatusCode, b)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}

	rctx, rcancel := context.WithTimeout(tctx, 30*time.Second)
	defer rcancel()
	var got *pubsub.Message
	_ = client.Subscriber(topo.IngressSubscription).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		got = m
		rcancel()
	})
	if got == nil || !strings.Contains(string(b), got.Attributes["courier_message_id"]) {
		t.Fatalf("the in-flight message is not on the topic: %v (response %s)", got, b)
	}
}

func inFlight(t *testing.T, base string) int {
	r, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var n float64
		if _, err := fmt.Sscanf(sc.Text(), "courier_api_gateway_http_requests_in_flight %g", &n); err == nil {
			return int(n)
		}
	}
	return -1
}

// Readiness is the pod's own state: a gateway whose ingress topic is
// missing (a dependency) stays ready, and says so in its metrics instead,
// where the alerts look (docs/deploy.md). Made unready, every gateway of
// the fleet would be dropped from the load balancer at once.
func TestReadinessIgnoresDependencies(t *testing.T) {
	project := testenv.Project(t) // no topology applied: no ingress topic
	env := config.FromMap(map[string]string{
		"GOOGLE_CLOUD_PROJECT": project, "AUTH_HS256_SECRET": "run-test-secret-0123456789",
		"HTTP_ADDR": "127.0.0.1:0", "GRPC_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error", "SHUTDOWN_TIMEOUT": "5s",
	})
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, env, func(h, _ net.Addr, a string) { addrs <- [2]string{h.String(), a} }) }()
	var base, admin string
	select {
	case a := <-addrs:
		base, admin = "http://"+a[0], "http://"+a[1]
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	waitMetric(t, admin, `courier_dependency_up{dependency="pubsub"} 0`)
	// The metrics are on the admin listener only: the public port, behind
	// the ingress, answers 404.
	if r, err := http.Get(base + "/metrics"); err != nil || r.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /metrics on the public port: %v %v, want 404", r, err)
	}
	if r, err := http.Get(base + "/readyz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("readyz with the ingress topic missing: %v %v", r, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// waitMetric waits until the admin listener's /metrics holds line.
func waitMetric(t *testing.T, base, line string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "metric "+line, func() bool {
		r, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return strings.Contains(string(b), line)
	})
}
