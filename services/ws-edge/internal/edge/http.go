package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/services/ws-edge/internal/hub"
	"github.com/courierhq/courier/services/ws-edge/internal/session"
	"github.com/courierhq/courier/services/ws-edge/internal/webclient"
)

// devTokenTTL is the validity of a development token.
const devTokenTTL = 12 * time.Hour

func (e *Edge) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", e.serveWS)
	if e.cfg.DevSecret != nil {
		mux.HandleFunc("POST /dev/token", e.devToken)
	} else {
		mux.HandleFunc("POST /dev/token", func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "development tokens are disabled (AUTH_HS256_SECRET unset or AUTH_JWKS_URL set)")
		})
	}
	mux.HandleFunc("GET /config.json", e.clientConfig)
	mux.Handle("GET /", webclient.Handler())
	mux.HandleFunc("GET /healthz", health.Live)
	// The pod's own state only (package health says why).
	mux.Handle("GET /readyz", health.Ready(map[string]health.Check{"edge": e.readiness}, time.Second))
	// No /metrics here: this port is behind the ingress; cmd main serves
	// Deps.Registry on the admin listener (ADMIN_ADDR, package adminserver).
	return mux
}

// presenceTimeout bounds one presence record write (targeted routing).
const presenceTimeout = 5 * time.Second

// serveWS authenticates, checks the origin and the limits, all before the
// upgrade so that refusals are plain HTTP answers a client can act on, then
// runs the session until it closes.
func (e *Edge) serveWS(w http.ResponseWriter, r *http.Request) {
	if e.draining.Load() {
		e.reject(w, http.StatusServiceUnavailable, "draining", "this pod is shutting down; reconnect")
		return
	}
	tok := r.URL.Query().Get("token")
	var err error
	if h := r.Header.Get("Authorization"); h != "" {
		tok, err = auth.BearerToken(h)
	}
	var p auth.Principal
	if err == nil {
		p, err = e.deps.Verifier.Verify(tok)
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="courier"`)
		e.m.Rejected.WithLabelValues("unauthorized").Inc()
		writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required (Authorization header or token query parameter)")
		return
	}
	if err := checkOrigin(r, e.cfg.AllowedOrigins); err != nil {
		e.reject(w, http.StatusForbidden, "origin", err.Error())
		return
	}
	params := session.Params{User: p.UserID, Pod: e.cfg.Pod, Expires: p.ExpiresAt, Batch: r.URL.Query().Get("batch") == "1"}
	if c := r.URL.Query().Get("cursor"); c != "" {
		after, err := inbox.DecodeCursor(c)
		if err != nil {
			e.reject(w, http.StatusBadRequest, "bad_cursor", "cursor: "+err.Error())
			return
		}
		params.Resume, params.After = true, after
	}
	s := session.New(params, e.sessions)
	// Registered before the upgrade (and before any replay read) so that no
	// delivery published from now on can miss this session.
	if err := e.hub.Add(s); err != nil {
		switch {
		case errors.Is(err, hub.ErrUserLimit):
			e.reject(w, http.StatusTooManyRequests, "user_limit", "too many sessions for this user")
		case errors.Is(err, hub.ErrPodLimit):
			w.Header().Set("Retry-After", "5")
			e.reject(w, http.StatusServiceUnavailable, "pod_limit", "this pod is full; retry")
		default:
			e.reject(w, http.StatusServiceUnavailable, "draining", "this pod is shutting down; reconnect")
		}
		return
	}
	leave := func() {}
	if e.userRoutes != nil {
		// Targeted routing: the record that this pod holds the user is
		// committed before the session reads its inbox (package routing
		// explains why that order loses nothing).
		ctx, cancel := context.WithTimeout(r.Context(), presenceTimeout)
		err := e.userRoutes.Open(ctx, p.UserID)
		cancel()
		if err != nil {
			e.hub.Remove(s)
			s.Abort()
			e.log.Warn("recording presence failed; refusing the session", "user", p.UserID, "err", err)
			w.Header().Set("Retry-After", "1")
			e.reject(w, http.StatusServiceUnavailable, "presence", "this pod cannot record the session right now; retry")
			return
		}
		leave = func() {
			ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
			defer cancel()
			if err := e.userRoutes.Close(ctx, p.UserID); err != nil {
				e.log.Warn("removing presence failed (deliveries may still be routed here, which costs but loses nothing)", "user", p.UserID, "err", err)
			}
		}
	}
	conn, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{OriginPatterns: e.cfg.AllowedOrigins})
	if err != nil {
		// Accept has answered the client.
		e.hub.Remove(s)
		s.Abort()
		leave()
		return
	}
	e.m.Connects.Inc()
	e.m.Sessions.Inc()
	// The handler returns now and the session runs on a goroutine of its
	// own: neither the request (its headers, its context) nor the HTTP
	// server's deep stack stay alive for the hours a session may last.
	go e.runSession(s, conn, leave)
}

// runSession serves s until it closes, then forgets it.
func (e *Edge) runSession(s *session.Session, conn *websocket.Conn, leave func()) {
	s.Serve(conn)
	e.hub.Remove(s)
	leave()
	e.m.Sessions.Dec()
	code, reason := s.CloseStatus()
	e.m.Disconnect(int(code))
	e.log.Debug("session ended", "session_id", s.ID(), "user", s.UserID(), "code", int(code), "reason", reason)
}

// Buffer sizes of a session's connection. net/http hands a hijacked
// connection over with 4 KiB read and write buffers, kept for the life of
// the WebSocket; clients send a few small frames (acks), and a write
// larger than the buffer bypasses it, so small buffers cost nothing but
// save 6 KiB per idle session.
const (
	readBufferSize  = 512
	writeBufferSize = 2048
)

// smallBuffers swaps the hijacked connection's buffers for small ones.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the client sent right after its handshake may sit in the old
	// reader already.
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	var r io.Reader = conn
	if len(buffered) > 0 {
		r = io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), conn)
	}
	if err := brw.Writer.Flush(); err != nil {
		return nil, nil, err
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(r, readBufferSize), bufio.NewWriterSize(conn, writeBufferSize)), nil
}

func (e *Edge) reject(w http.ResponseWriter, status int, reason, msg string) {
	e.m.Rejected.WithLabelValues(reason).Inc()
	code := map[int]string{
		http.StatusBadRequest: "bad_request", http.StatusForbidden: "forbidden",
		http.StatusTooManyRequests: "too_many_sessions", http.StatusServiceUnavailable: "unavailable",
	}[status]
	writeError(w, status, code, msg)
}

// checkOrigin applies the same rule as coder/websocket's Accept (which
// checks again), so a refusal is a JSON 403 like every other error: no
// Origin (not a browser) or the request's own host pass; otherwise one of
// the patterns must match.
func checkOrigin(r *http.Request, patterns []string) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return errors.New("malformed Origin header")
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return nil
		}
	}
	return errors.New("origin " + origin + " is not allowed (WS_ALLOWED_ORIGINS)")
}

type devTokenRequest struct {
	User string `json:"user"`
}

type devTokenResponse struct {
	Token     string    `json:"token"`
	User      string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
}

// devToken mints a development token; it exists only with the HS256 dev
// secret and no JWKS URL.
func (e *Edge) devToken(w http.ResponseWriter, r *http.Request) {
	var req devTokenRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", `body must be {"user": "<user id>"}`)
		return
	}
	if err := auth.ValidateUserID(req.User); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	tok, err := auth.Mint(e.cfg.DevSecret, req.User, devTokenTTL)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "could not mint a token")
		return
	}
	writeJSON(w, http.StatusOK, devTokenResponse{Token: tok, User: req.User, ExpiresAt: time.Now().Add(devTokenTTL).UTC()})
}

type clientConfig struct {
	GatewayURL string `json:"gateway_url"`
	Pod        string `json:"pod"`
	DevLogin   bool   `json:"dev_login"`
}

func (e *Edge) clientConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, clientConfig{GatewayURL: e.cfg.GatewayURL, Pod: e.cfg.Pod, DevLogin: e.cfg.DevSecret != nil})
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
