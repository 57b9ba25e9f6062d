package httpapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
)

// The conversation API end to end on Firestore: the list with unread
// counts, history pages both ways, the read marker (forward only), the
// REST ack and the counts on GET /v1/messages/{id}, and a cursor behind
// INBOX_RETENTION answered 410 cursor_expired.
func TestConversationsOverREST(t *testing.T) {
	project := testenv.Project(t)
	fs := testenv.Firestore(t, project)
	store := inbox.New(fs).WithRetention(time.Hour)
	for i := range 5 {
		from, to := "ada", "bo"
		if i == 2 {
			from, to = "bo", "ada"
		}
		inboxtest.MustCommit(t, store, inboxtest.Envelope(fmt.Sprintf("c%d", i), from, to))
	}
	s := newServer(t, options{store: store})
	ada, bo := token(t, "ada"), token(t, "bo")
	dm := wire.DeriveConversationID([]string{"ada", "bo"})

	r := s.do(t, req{path: "/v1/conversations", token: bo})
	convs := r.json(t)["conversations"].([]any)
	if r.status != 200 || len(convs) != 1 {
		t.Fatalf("bo's conversations: %d %s", r.status, r.body)
	}
	c := convs[0].(map[string]any)
	if c["id"] != dm || c["unread_count"].(float64) != 4 || c["last_message"].(map[string]any)["id"] != "c4" {
		t.Fatalf("bo's conversation %v", c)
	}
	// ada's own copy of c4 is marked outgoing.
	r = s.do(t, req{path: "/v1/conversations/" + dm + "/messages?limit=2", token: ada})
	page := r.json(t)
	msgs := page["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["id"] != "c3" || msgs[1].(map[string]any)["outgoing"] != true || page["has_more"] != true {
		t.Fatalf("ada's newest page: %s", r.body)
	}
	r = s.do(t, req{path: "/v1/conversations/" + dm + "/messages?limit=10&before=" + page["prev_cursor"].(string), token: ada})
	if older := r.json(t)["messages"].([]any); len(older) != 3 || older[2].(map[string]any)["id"] != "c2" || r.json(t)["has_more"] != false {
		t.Fatalf("ada's older page: %s", r.body)
	}
	// bo reads up to c3, then tries to move back to c1: stays at c3.
	r = s.do(t, req{path: "/v1/conversations/" + dm + "/messages?limit=10", token: bo})
	boMsgs := r.json(t)["messages"].([]any)
	cursorOf := func(i int) string { return boMsgs[i].(map[string]any)["cursor"].(string) }
	r = s.do(t, req{method: "POST", path: "/v1/conversations/" + dm + "/read", token: bo, body: `{"cursor":"` + cursorOf(3) + `"}`})
	if r.status != 200 || r.json(t)["unread_count"].(float64) != 1 || r.json(t)["read_cursor"] != cursorOf(3) {
		t.Fatalf("mark read: %d %s", r.status, r.body)
	}
	r = s.do(t, req{method: "POST", path: "/v1/conversations/" + dm + "/read", token: bo, body: `{"cursor":"` + cursorOf(1) + `"}`})
	if r.status != 200 || r.json(t)["read_cursor"] != cursorOf(3) {
		t.Fatalf("an older cursor moved the marker: %d %s", r.status, r.body)
	}
	// REST ack by the recipient; the sender's ack is refused.
	if r := s.do(t, req{method: "POST", path: "/v1/messages/c3/ack", token: bo}); r.status != 204 {
		t.Fatalf("ack: %d %s", r.status, r.body)
	}
	wantProblem(t, s.do(t, req{method: "POST", path: "/v1/messages/c3/ack", token: ada}), 404, "not_found")
	r = s.do(t, req{path: "/v1/messages/c3", token: ada})
	if v := r.json(t); v["delivered_count"].(float64) != 1 || v["read_count"].(float64) != 1 {
		t.Fatalf("c3 as its sender sees it: %s", r.body)
	}
	r = s.do(t, req{path: "/v1/messages/c4", token: ada})
	if v := r.json(t); v["delivered_count"].(float64) != 0 || v["read_count"].(float64) != 0 {
		t.Fatalf("c4 as its sender sees it: %s", r.body)
	}
	// A reserved conversation id on send; an outsider's empty page.
	wantProblem(t, s.do(t, req{method: "POST", path: "/v1/messages", token: ada, body: `{"to":["bo"],"payload":1,"conversation_id":"d.x"}`}), 400, "bad_conversation")
	if r := s.do(t, req{path: "/v1/conversations/" + dm + "/messages", token: token(t, "eve")}); r.status != 200 || len(r.json(t)["messages"].([]any)) != 0 {
		t.Fatalf("an outsider's page: %d %s", r.status, r.body)
	}
	// Retention: the TTL policy deleted bo's entry 2; resuming after 1 is 410.
	if _, err := fs.Collection("users").Doc("bo").Collection("inbox").Doc("00000000000000000002").Delete(testenv.Context(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, s.do(t, req{path: "/v1/messages?cursor=" + inbox.EncodeCursor(1), token: bo}), 410, "cursor_expired")
	wantProblem(t, s.do(t, req{path: "/v1/conversations/" + dm + "/messages?before=" + inbox.EncodeCursor(2), token: bo}), 410, "cursor_expired")
}
