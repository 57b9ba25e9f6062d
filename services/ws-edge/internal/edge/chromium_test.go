package edge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

// fakeGateway stands in for api-gateway's POST /v1/messages (another
// module): it authenticates, stores the message and fans it out as the
// worker would, and answers CORS preflights like a gateway configured for
// the edge's origin.
func fakeGateway(t *testing.T, w *world) *httptest.Server {
	verifier, err := auth.NewHS256(testSecret, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Access-Control-Allow-Origin", "*")
		rw.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		rw.Header().Set("Access-Control-Allow-Methods", "POST")
		if r.Method == http.MethodOptions {
			rw.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
			http.NotFound(rw, r)
			return
		}
		tok, err := auth.BearerToken(r.Header.Get("Authorization"))
		p, verr := verifier.Verify(tok)
		if err != nil || verr != nil {
			http.Error(rw, `{"code":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var body struct {
			To      []string        `json:"to"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(rw, `{"code":"bad_request"}`, http.StatusBadRequest)
			return
		}
		id := fmt.Sprintf("web-%d", n.Add(1))
		st, _, err := w.store.Commit(r.Context(), &courierv1.Envelope{
			MessageId: id, Sender: p.UserID, Recipients: body.To, Payload: body.Payload,
			ContentType: "application/json", SentAt: timestamppb.Now(),
		})
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		w.publish(t, st)
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusAccepted)
		_, _ = fmt.Fprintf(rw, `{"id":%q}`, id)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The embedded demo client, in headless Chromium: log in with a dev token,
// send through the gateway and see the message arrive live (and acked),
// then lose the session, reconnect on its own and resume from its cursor
// with the message it missed.
func TestDemoClientInChromium(t *testing.T) {
	b := startBrowser(t)
	w := newWorld(t)
	gw := fakeGateway(t, w)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) { c.GatewayURL = gw.URL })

	b.navigate(t, a.srv.URL+"/")
	b.waitFor(t, 20*time.Second, "client ready with dev login", `document.body.dataset.ready === "1" && !document.getElementById("login").hidden`)
	if err := b.eval(t, `(() => {
		document.getElementById("user").value = "bob";
		document.getElementById("login").requestSubmit();
		return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, 20*time.Second, "session live", `document.getElementById("status").dataset.state === "live"`)
	var firstSession string
	if err := b.eval(t, `document.getElementById("status").dataset.session`, &firstSession); err != nil || firstSession == "" {
		t.Fatalf("session id: %q %v", firstSession, err)
	}

	if err := b.eval(t, `(() => {
		document.getElementById("to").value = "bob";
		document.getElementById("text").value = "hello from chromium";
		document.getElementById("send").requestSubmit();
		return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, 20*time.Second, "sent message shown", `[...document.querySelectorAll("#messages li")].some(li => li.dataset.id === "web-1" && li.textContent.includes("hello from chromium"))`)
	testenv.Eventually(t, 10*time.Second, "the page acked web-1", func() bool {
		users, _, err := w.store.DeliveryState(t.Context(), "web-1", true, nil)
		return err == nil && len(users) == 1 && users[0] == "bob"
	})

	// A message stored but never fanned out: only a resume can bring it.
	w.commit(t, "missed", "alice", `{"text":"while you were away"}`, "bob")
	for _, s := range a.Sessions("bob") {
		s.Close(websocket.StatusGoingAway, "going away")
	}
	b.waitFor(t, 30*time.Second, "missed message shown after the reconnect", `!!document.querySelector('#messages li[data-id="missed"]')`)

	var got struct {
		IDs     []string `json:"ids"`
		Cursor  string   `json:"cursor"`
		Session string   `json:"session"`
		State   string   `json:"state"`
	}
	if err := b.eval(t, `({
		ids: [...document.querySelectorAll("#messages li")].map(li => li.dataset.id),
		cursor: localStorage.getItem("courier.cursor.bob"),
		session: document.getElementById("status").dataset.session,
		state: document.getElementById("status").dataset.state,
	})`, &got); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.IDs, ",") != "web-1,missed" {
		t.Errorf("messages shown = %v", got.IDs)
	}
	if got.Cursor != inbox.EncodeCursor(2) {
		t.Errorf("stored cursor = %q, want %q", got.Cursor, inbox.EncodeCursor(2))
	}
	if got.Session == firstSession || got.State != "live" {
		t.Errorf("after reconnect: session %q (first %q), state %q", got.Session, firstSession, got.State)
	}
	if n := a.counter(t, "courier_ws_edge_deliveries_written_total", "source", "replay"); n != 1 {
		t.Errorf("replayed frames = %v, want 1", n)
	}
}
