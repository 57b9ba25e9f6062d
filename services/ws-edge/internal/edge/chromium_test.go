package edge_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/harness/browser"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

// fakeGateway stands in for api-gateway (another module) with the three
// REST calls the demo client makes, over the real store: POST /v1/messages
// (the id derived from sender and Idempotency-Key, as the gateway does;
// stored and fanned out as the worker would), GET /v1/messages (inbox
// pages) and GET /v1/messages/{id} (the delivery state). It answers CORS
// preflights like a gateway configured for the edge's origin.
func fakeGateway(t *testing.T, w *world) *httptest.Server {
	verifier, err := auth.NewHS256(testSecret, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	problem := func(rw http.ResponseWriter, status int, code string) {
		rw.Header().Set("Content-Type", "application/problem+json")
		rw.WriteHeader(status)
		_ = json.NewEncoder(rw).Encode(map[string]any{"status": status, "code": code, "detail": code})
	}
	reply := func(rw http.ResponseWriter, status int, v any) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(status)
		_ = json.NewEncoder(rw).Encode(v)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Access-Control-Allow-Origin", "*")
		rw.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
		rw.Header().Set("Access-Control-Allow-Methods", "GET, POST")
		if r.Method == http.MethodOptions {
			rw.WriteHeader(http.StatusNoContent)
			return
		}
		tok, err := auth.BearerToken(r.Header.Get("Authorization"))
		p, verr := verifier.Verify(tok)
		if err != nil || verr != nil {
			problem(rw, http.StatusUnauthorized, "unauthenticated")
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/messages":
			var body struct {
				To      []string        `json:"to"`
				Payload json.RawMessage `json:"payload"`
			}
			key := r.Header.Get("Idempotency-Key")
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || key == "" {
				problem(rw, http.StatusBadRequest, "invalid_request")
				return
			}
			sum := sha256.Sum256([]byte(p.UserID + "\x00" + key))
			id := hex.EncodeToString(sum[:16])
			st, _, err := inboxtest.Commit(r.Context(), w.store, &courierv1.Envelope{
				MessageId: id, Sender: p.UserID, Recipients: body.To, Payload: body.Payload,
				ContentType: "application/json", SentAt: timestamppb.Now(),
			})
			if err != nil {
				problem(rw, http.StatusServiceUnavailable, "unavailable")
				return
			}
			w.publish(t, st)
			reply(rw, http.StatusAccepted, map[string]string{"id": id, "accepted_at": st.Message.SentAt.AsTime().Format(time.RFC3339Nano)})
		case r.Method == http.MethodGet && r.URL.Path == "/v1/messages":
			after, err := inbox.DecodeCursor(r.URL.Query().Get("cursor"))
			limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
			if err != nil || limit < 1 || limit > 200 {
				problem(rw, http.StatusBadRequest, "invalid_request")
				return
			}
			entries, err := w.store.List(r.Context(), p.UserID, after, limit)
			if err != nil {
				problem(rw, http.StatusServiceUnavailable, "unavailable")
				return
			}
			page := map[string]any{"messages": []any{}, "next_cursor": r.URL.Query().Get("cursor")}
			var msgs []any
			for _, e := range entries {
				msgs = append(msgs, struct {
					inbox.WireMessage
					Cursor string `json:"cursor"`
				}{inbox.ToWire(e.Message), e.Cursor()})
				page["next_cursor"] = e.Cursor()
			}
			if msgs != nil {
				page["messages"] = msgs
			}
			reply(rw, http.StatusOK, page)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/messages/"):
			st, err := w.store.Get(r.Context(), strings.TrimPrefix(r.URL.Path, "/v1/messages/"))
			if errors.Is(err, inbox.ErrNotFound) {
				problem(rw, http.StatusNotFound, "not_found")
				return
			} else if err != nil {
				problem(rw, http.StatusServiceUnavailable, "unavailable")
				return
			}
			to, n, err := w.store.DeliveryState(r.Context(), st.Message.GetId(), true)
			if err != nil {
				problem(rw, http.StatusServiceUnavailable, "unavailable")
				return
			}
			state := "stored"
			if n > 0 {
				state = "delivered"
			}
			reply(rw, http.StatusOK, map[string]any{"message": inbox.ToWire(st.Message), "state": state, "delivered_to": to, "delivered_count": n})
		default:
			problem(rw, http.StatusNotFound, "not_found")
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The embedded demo client, in headless Chromium, running the JavaScript
// client library's real code (the committed bundle): log in with a dev
// token; send to yourself through the gateway and see the message arrive,
// acked, with delivered ticks; get a message from a peer live in its own
// conversation; lose the session (1001), reconnect on its own and resume
// from the stored cursor with the message missed meanwhile, visibly; then
// reload the page: the history comes back through the inbox API and the
// session resumes from the cursor kept in localStorage.
func TestDemoClientInChromium(t *testing.T) {
	br := browser.Start(t)
	b := br.NewPage(t, br.NewContext(t), "demo")
	w := newWorld(t)
	gw := fakeGateway(t, w)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) { c.GatewayURL = gw.URL })

	b.Navigate(t, a.srv.URL+"/")
	b.WaitFor(t, 20*time.Second, "client ready with dev login", `document.body.dataset.ready === "1" && !document.getElementById("login").hidden`)
	b.Run(t, `document.getElementById("user").value = "bob"; document.getElementById("login").requestSubmit();`)
	b.WaitFor(t, 20*time.Second, "session live", `document.getElementById("status").dataset.state === "open"`)
	var who, firstSession string
	if err := b.Eval(t, `document.getElementById("whoami").textContent`, &who); err != nil || who != "signed in as bob" {
		t.Fatalf("who am I: %q %v", who, err)
	}
	if err := b.Eval(t, `document.getElementById("status").dataset.session`, &firstSession); err != nil || firstSession == "" {
		t.Fatalf("session id: %q %v", firstSession, err)
	}

	// To myself: the message comes back on the session, is acked by the
	// library, and the sender's view turns to delivered (✓✓).
	b.Run(t, `document.getElementById("peer").value = "bob"; document.getElementById("new-chat").requestSubmit();
		document.getElementById("text").value = "hello from chromium"; document.getElementById("send").requestSubmit();`)
	b.WaitFor(t, 30*time.Second, "own message with delivered ticks",
		`[...document.querySelectorAll("#messages li[data-mine=true]")].some(li => li.textContent.includes("hello from chromium") && li.dataset.tick === "delivered" && li.textContent.includes("✓✓"))`)
	var ownID string
	if err := b.Eval(t, `document.querySelector("#messages li[data-mine=true]").dataset.id`, &ownID); err != nil {
		t.Fatal(err)
	}
	if users, _, err := w.store.DeliveryState(t.Context(), ownID, true); err != nil || len(users) != 1 || users[0] != "bob" {
		t.Fatalf("the page's ack of %s is not stored: %v %v", ownID, err, users)
	}

	// From a peer, live: a conversation of its own, with an unread badge.
	w.publish(t, w.commit(t, "from-alice", "alice", `{"text":"hi bob"}`, "bob"))
	b.WaitFor(t, 20*time.Second, "alice's conversation with one unread", `document.querySelector('#peer-list li[data-peer="alice"] .unread')?.textContent === "1"`)
	b.Run(t, `document.querySelector('#peer-list li[data-peer="alice"]').click();`)
	b.Screenshot(t, "demo-unread")
	b.WaitFor(t, 5*time.Second, "alice's message shown", `!!document.querySelector('#messages li[data-id="from-alice"]') && document.getElementById("conv-title").textContent.includes("alice")`)

	// A message stored but never fanned out: only a resume can bring it.
	w.commit(t, "missed", "alice", `{"text":"while you were away"}`, "bob")
	for _, s := range a.Sessions("bob") {
		s.Close(websocket.StatusGoingAway, "going away")
	}
	b.WaitFor(t, 30*time.Second, "missed message shown after the reconnect", `!!document.querySelector('#messages li[data-id="missed"]')`)
	b.WaitFor(t, 10*time.Second, "the reconnect is shown", `document.getElementById("banner").textContent.includes("1 missed message caught up, nothing lost") && document.getElementById("reconnects").textContent === "1"`)
	b.Screenshot(t, "demo-after-reconnect")

	var got struct {
		IDs     []string `json:"ids"`
		Cursor  string   `json:"cursor"`
		Session string   `json:"session"`
		State   string   `json:"state"`
		Log     string   `json:"log"`
	}
	if err := b.Eval(t, `({
		ids: [...document.querySelectorAll("#messages li")].map(li => li.dataset.id),
		cursor: localStorage.getItem("courier.cursor.bob"),
		session: document.getElementById("status").dataset.session,
		state: document.getElementById("status").dataset.state,
		log: document.getElementById("log").textContent,
	})`, &got); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.IDs, ",") != "from-alice,missed" {
		t.Errorf("alice's conversation = %v", got.IDs)
	}
	if got.Cursor != inbox.EncodeCursor(3) {
		t.Errorf("stored cursor = %q, want %q", got.Cursor, inbox.EncodeCursor(3))
	}
	if got.Session == firstSession || got.State != "open" {
		t.Errorf("after reconnect: session %q (first %q), state %q", got.Session, firstSession, got.State)
	}
	if !strings.Contains(got.Log, "closed 1001 going away") {
		t.Errorf("the log does not show the 1001 close:\n%s", got.Log)
	}
	if n := a.counter(t, "courier_ws_edge_deliveries_written_total", "source", "replay"); n != 1 {
		t.Errorf("replayed frames = %v, want 1", n)
	}

	// Reload: logged in again, history from the inbox API, and a session
	// that resumes from the stored cursor (a resume, with nothing to replay).
	w.commit(t, "while-reloading", "carol", `{"text":"are you there?"}`, "bob")
	b.Navigate(t, a.srv.URL+"/")
	b.WaitFor(t, 20*time.Second, "live again after the reload", `document.getElementById("status").dataset.state === "open"`)
	b.WaitFor(t, 20*time.Second, "history and the message missed during the reload", `["alice", "bob", "carol"].every(p => !!document.querySelector('#peer-list li[data-peer="' + p + '"]'))`)
	if n := a.counter(t, "courier_ws_edge_deliveries_written_total", "source", "replay"); n != 2 {
		t.Errorf("replayed frames after the reload = %v, want 2 (the message sent while reloading)", n)
	}
	testenv.Eventually(t, 10*time.Second, "the page acked what the resume replayed", func() bool {
		users, _, err := w.store.DeliveryState(t.Context(), "while-reloading", true)
		return err == nil && len(users) == 1 && users[0] == "bob"
	})
}
