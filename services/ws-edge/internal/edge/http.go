package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/services/ws-edge/internal/hub"
	"github.com/courierhq/courier/services/ws-edge/internal/session"
	"github.com/courierhq/courier/services/ws-edge/internal/webclient"
	"github.com/courierhq/courier/services/ws-edge/internal/wsauth"
)

// devTokenTTL is the validity of a development token.
const devTokenTTL = 12 * time.Hour

func (e *Edge) mux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", e.serveWS)
	if e.cfg.DevSecret != nil {
		mux.HandleFunc("POST /dev/token", e.devToken)
	} else {
		mux.HandleFunc("POST /dev/token", func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "development tokens are disabled (they need DEV_TOKENS=true with AUTH_HS256_SECRET and no AUTH_JWKS_URL; development only)")
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

// clearDeadlines clears the read and write deadlines the HTTP server set
// for this request (its ReadTimeout and WriteTimeout are for plain
// requests): a hijacked connection keeps them and would die mid-session.
// The session bounds its own reads and writes (WS_AUTH_TIMEOUT,
// WS_WRITE_TIMEOUT, pings). It returns the writer to upgrade with.
func clearDeadlines(w http.ResponseWriter) http.ResponseWriter {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	return smallBuffers{w}
}

// presenceTimeout bounds one presence record write (targeted routing).
const presenceTimeout = 5 * time.Second

// serveWS authenticates, checks the origin and the limits, then runs the
// session until it closes. A credential in the request (the Authorization
// header, or the token query parameter, the documented fallback) is checked
// before the upgrade, so refusals are plain HTTP answers. Without one the
// client authenticates in its first frame (package wsauth): the upgrade is
// cheap and bounded (WS_MAX_UNAUTHENTICATED at once, WS_AUTH_TIMEOUT each,
// nothing registered and nothing read from the store until the token is
// good), and refusals are closes with 1008 and a reason.
func (e *Edge) serveWS(w http.ResponseWriter, r *http.Request) {
	if e.draining.Load() {
		e.reject(w, http.StatusServiceUnavailable, "draining", "this pod is shutting down; reconnect")
		return
	}
	q := r.URL.Query()
	tok, hasCredential := q.Get("token"), q.Has("token")
	var err error
	if h := r.Header.Get("Authorization"); h != "" {
		hasCredential = true
		tok, err = auth.BearerToken(h)
	}
	var p auth.Principal
	if hasCredential {
		if err == nil {
			p, err = e.deps.Verifier.Verify(tok)
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="courier"`)
			e.m.Rejected.WithLabelValues("unauthorized").Inc()
			writeError(w, http.StatusUnauthorized, "unauthorized", `a valid token is required (Authorization header, an {"type":"auth"} first frame, or the token query parameter)`)
			return
		}
	}
	if err := checkOrigin(r, e.cfg.AllowedOrigins); err != nil {
		e.reject(w, http.StatusForbidden, "origin", err.Error())
		return
	}
	params := session.Params{Pod: e.cfg.Pod, Batch: q.Get("batch") == "1"}
	if c := q.Get("cursor"); c != "" {
		after, err := inbox.DecodeCursor(c)
		if err != nil {
			e.reject(w, http.StatusBadRequest, "bad_cursor", "cursor: "+err.Error())
			return
		}
		params.Resume, params.After = true, after
	}
	if !hasCredential {
		e.serveFirstFrameAuth(w, r, params)
		return
	}
	params.User, params.Expires = p.UserID, p.ExpiresAt
	s := session.New(params, e.sessions)
	// Registered before the upgrade (and before any replay read) so that no
	// delivery published from now on can miss this session.
	ref := e.admit(s)
	if ref != nil {
		if ref.retryAfter != "" {
			w.Header().Set("Retry-After", ref.retryAfter)
		}
		e.reject(w, ref.status, ref.reason, ref.msg)
		return
	}
	conn, err := websocket.Accept(clearDeadlines(w), r, &websocket.AcceptOptions{OriginPatterns: e.cfg.AllowedOrigins})
	if err != nil {
		// Accept has answered the client.
		e.hub.Remove(s)
		s.Abort()
		return
	}
	e.m.Connects.Inc()
	e.m.Sessions.Inc()
	// The handler returns now and the session runs on a goroutine of its
	// own: neither the request (its headers, its context) nor the HTTP
	// server's deep stack stay alive for the hours a session may last.
	go e.runSession(s, conn)
}

// serveFirstFrameAuth upgrades a request that carries no credential and
// waits, on a goroutine of its own, for the client's auth frame.
func (e *Edge) serveFirstFrameAuth(w http.ResponseWriter, r *http.Request, params session.Params) {
	select {
	case e.unauthenticated <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		e.reject(w, http.StatusServiceUnavailable, "auth_backlog", "too many connections are waiting for their auth frame; retry")
		return
	}
	conn, err := websocket.Accept(clearDeadlines(w), r, &websocket.AcceptOptions{OriginPatterns: e.cfg.AllowedOrigins})
	if err != nil {
		<-e.unauthenticated
		return
	}
	go func() {
		p, err := wsauth.Await(conn, e.deps.Verifier, e.cfg.AuthTimeout)
		<-e.unauthenticated
		if err != nil {
			reason := "unauthorized"
			if ref := (*wsauth.Refused)(nil); errors.As(err, &ref) && ref.Reason == wsauth.ReasonTimeout {
				reason = "auth_timeout"
			}
			e.m.Rejected.WithLabelValues(reason).Inc()
			e.log.Debug("websocket auth refused", "err", err)
			return
		}
		params.User, params.Expires = p.UserID, p.ExpiresAt
		s := session.New(params, e.sessions)
		ref := e.admit(s)
		if ref != nil {
			e.m.Rejected.WithLabelValues(ref.reason).Inc()
			_ = conn.Close(ref.close, ref.msg)
			return
		}
		e.m.Connects.Inc()
		e.m.Sessions.Inc()
		e.runSession(s, conn)
	}()
}

// refusal is a session the pod will not take, as an HTTP answer (before
// the upgrade) and as a close (after a first-frame auth).
type refusal struct {
	status     int
	reason     string // metric label
	msg        string // at most 123 bytes: it is also a close reason
	close      websocket.StatusCode
	retryAfter string
}

// admit registers s with the hub and, with targeted routing, waits until
// the record that this pod holds its user is committed (the hub's
// first-session event started it; the last-session event removes it).
func (e *Edge) admit(s *session.Session) *refusal {
	if e.draining.Load() {
		return &refusal{http.StatusServiceUnavailable, "draining", "this pod is shutting down; reconnect", websocket.StatusGoingAway, ""}
	}
	if ok, retry := e.connects.AllowN(s.UserID(), 1); !ok {
		return &refusal{http.StatusTooManyRequests, "connect_rate", "this user opens sessions too fast; retry later",
			websocket.StatusTryAgainLater, strconv.Itoa(max(1, int(math.Ceil(retry.Seconds()))))}
	}
	if err := e.hub.Add(s); err != nil {
		switch {
		case errors.Is(err, hub.ErrUserLimit):
			return &refusal{http.StatusTooManyRequests, "user_limit", "too many sessions for this user", websocket.StatusTryAgainLater, ""}
		case errors.Is(err, hub.ErrPodLimit):
			return &refusal{http.StatusServiceUnavailable, "pod_limit", "this pod is full; retry", websocket.StatusTryAgainLater, "5"}
		default:
			return &refusal{http.StatusServiceUnavailable, "draining", "this pod is shutting down; reconnect", websocket.StatusGoingAway, ""}
		}
	}
	if e.presence != nil {
		// Targeted routing: the record that this pod holds the user is
		// committed before the session reads its inbox (package presence
		// explains why that order loses nothing).
		ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
		err := e.presence.Joined(ctx, s.UserID())
		cancel()
		if err != nil {
			e.hub.Remove(s)
			s.Abort()
			e.log.Warn("recording presence failed; refusing the session", "user", s.UserID(), "err", err)
			return &refusal{http.StatusServiceUnavailable, "presence", "this pod cannot record the session right now; retry", websocket.StatusTryAgainLater, "1"}
		}
	}
	return nil
}

// runSession serves s until it closes, then forgets it.
func (e *Edge) runSession(s *session.Session, conn *websocket.Conn) {
	s.Serve(conn)
	if e.online != nil {
		e.online.forget(s)
	}
	e.hub.Remove(s)
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
	// reader already (a first frame sent as soon as the 101 arrived, or
	// pipelined with the request).
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	if err := brw.Writer.Flush(); err != nil {
		return nil, nil, err
	}
	if len(buffered) == 0 {
		return conn, bufio.NewReadWriter(bufio.NewReaderSize(conn, readBufferSize), bufio.NewWriterSize(conn, writeBufferSize)), nil
	}
	// They must sit in the new reader's buffer, not behind it: Accept keeps
	// only what the reader has buffered and resets it onto the bare
	// connection (a reader over a MultiReader lost them, and the first
	// frame arrived without its first bytes).
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), conn), max(readBufferSize, len(buffered)))
	if _, err := br.Peek(len(buffered)); err != nil {
		return nil, nil, err
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, writeBufferSize)), nil
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

// devToken mints a development token; it exists only with DEV_TOKENS=true,
// the HS256 dev secret and no JWKS URL.
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
