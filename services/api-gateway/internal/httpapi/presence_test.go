package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/online"
	"github.com/courierhq/courier/pkg/peers"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

type presenceStack struct {
	*online.Reader
	*peers.Directory
}

// GET /v1/presence on the Firestore emulator: a user the caller shares a
// conversation with reads as they are (online on a pod that beats; last
// seen once gone); anyone else reads offline and never seen, exactly like
// a user who does not exist; bounds answered with codes.
func TestPresenceOnlyForUsersSharingAConversation(t *testing.T) {
	fs := testenv.Firestore(t, testenv.Project(t))
	ctx := testenv.Context(t, time.Minute)
	store := inbox.New(fs)
	if _, _, err := inboxtest.Commit(ctx, store, &courierv1.Envelope{MessageId: "m1", Sender: "alice", Recipients: []string{"bob"},
		Payload: []byte(`{}`), ContentType: "application/json", SentAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := edges.New(fs).Beat(ctx, "edge-a", "sub", time.Now()); err != nil {
		t.Fatal(err)
	}
	table := presence.NewTable(fs)
	if err := table.Join(ctx, "alice", "edge-a"); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, options{presence: presenceStack{online.NewReader(fs, online.Options{}), peers.New(store, peers.Options{})}})

	get := func(user, users string) map[string]any {
		t.Helper()
		r := s.do(t, req{path: "/v1/presence?users=" + users, token: token(t, user)})
		if r.status != http.StatusOK {
			t.Fatalf("GET presence as %s: %d %s", user, r.status, r.body)
		}
		out := map[string]any{}
		for _, it := range r.json(t)["presence"].([]any) {
			m := it.(map[string]any)
			out[m["user"].(string)] = fmt.Sprint(m["online"], " ", m["last_seen"] != nil)
		}
		return out
	}
	if got := get("bob", "alice,carol"); got["alice"] != "true true" || got["carol"] != "false false" {
		t.Fatalf("bob sees %v", got)
	}
	if got := get("carol", "alice"); got["alice"] != "false false" {
		t.Fatalf("carol, who shares nothing with alice, sees %v", got)
	}
	if err := table.Leave(ctx, "alice", "edge-a"); err != nil {
		t.Fatal(err)
	}
	if got := get("bob", "alice"); got["alice"] != "false true" {
		t.Fatalf("bob sees alice gone as %v, want offline with a last seen", got)
	}

	many := ""
	for i := range 101 {
		many += fmt.Sprintf("u%d,", i)
	}
	wantProblem(t, s.do(t, req{path: "/v1/presence?users=" + strings.TrimSuffix(many, ","), token: token(t, "bob")}), http.StatusBadRequest, "too_many_users")
	wantProblem(t, s.do(t, req{path: "/v1/presence?users=a/b", token: token(t, "bob")}), http.StatusBadRequest, "invalid_request")
	wantProblem(t, s.do(t, req{path: "/v1/presence", token: token(t, "bob")}), http.StatusBadRequest, "invalid_request")
	wantProblem(t, s.do(t, req{path: "/v1/presence?users=alice"}), http.StatusUnauthorized, "unauthenticated")
}
