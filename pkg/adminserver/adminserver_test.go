package adminserver

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServesMetricsOnly(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "courier_admin_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	s, err := Start("127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "courier_admin_test_total 3") {
		t.Fatalf("GET /metrics: %d %.200q", resp.StatusCode, body)
	}
	for _, path := range []string{"/", "/healthz", "/debug/pprof/"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the admin listener: %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestStartErrorsNameTheVariable(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, addr := range []string{"", "127.0.0.1:notaport", taken.Addr().String()} {
		_, err := Start(addr, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "ADMIN_ADDR") {
			t.Errorf("Start(%q) = %v, want an error naming ADMIN_ADDR", addr, err)
		}
	}
}
