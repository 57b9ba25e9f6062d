// Package debugserver is the opt-in debug listener every service shares
// (DEBUG_ADDR; empty = off): net/http/pprof under /debug/pprof/, and
// /debug/memstats, which forces a garbage collection and answers the
// runtime's memory statistics and goroutine count as JSON. The benchmark
// tool (cmd/courier-bench) reads a process's memory per session from it.
//
// It has its own listener, never the service's public port: profiles show
// internals and a forced GC costs a pause, so only an operator who binds it
// (to loopback or a pod-local port) can reach it.
package debugserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"
)

// Stats is the answer of /debug/memstats.
type Stats struct {
	// Goroutines is runtime.NumGoroutine() after the collection.
	Goroutines int `json:"goroutines"`
	// MemStats is read right after a forced runtime.GC(), so HeapAlloc is
	// live heap, not garbage awaiting collection.
	MemStats runtime.MemStats `json:"memstats"`
}

// Server is a running debug listener. A nil *Server (DEBUG_ADDR unset) is
// valid: Addr returns "" and Close does nothing.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Start serves the debug endpoints on addr in the background. An empty addr
// starts nothing and returns nil, nil.
func Start(addr string, log *slog.Logger) (*Server, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on DEBUG_ADDR %s: %w", addr, err)
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: Handler(), ReadHeaderTimeout: 5 * time.Second,
		// Long enough for a 60 s CPU profile (pprof's ?seconds=).
		ReadTimeout: 10 * time.Second, WriteTimeout: 2 * time.Minute, IdleTimeout: time.Minute}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("debug listener started", "addr", ln.Addr().String())
	return s, nil
}

// Addr is the bound address ("" when not started).
func (s *Server) Addr() string {
	if s == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops the listener at once; profiles being taken are cut off.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	return s.srv.Close()
}

// Handler serves /debug/pprof/ and /debug/memstats on a mux of its own (not
// http.DefaultServeMux, which other packages may fill).
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/memstats", memstats)
	return mux
}

func memstats(w http.ResponseWriter, _ *http.Request) {
	runtime.GC()
	var st Stats
	runtime.ReadMemStats(&st.MemStats)
	st.Goroutines = runtime.NumGoroutine()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}
