package grpcapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/courierhq/courier/pkg/online"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// source: bob is online and shares a conversation with the caller; dave
// exists, is online, but shares nothing.
type source struct{}

func (source) States(_ context.Context, users []string) (map[string]online.State, error) {
	out := map[string]online.State{}
	for _, u := range users {
		if u == "bob" || u == "dave" {
			out[u] = online.State{Online: true, LastSeen: time.Now()}
		}
	}
	return out, nil
}

func (source) Shares(_ context.Context, _ string, others []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, o := range others {
		out[o] = o == "bob"
	}
	return out, nil
}

// GetPresence answers as GET /v1/presence: visible users as they are,
// others offline and never seen, bounds with their codes; without a
// source it is Unimplemented.
func TestGetPresence(t *testing.T) {
	c := serve(t, options{presence: source{}})
	resp, err := c.GetPresence(as(t, "alice"), &courierv1.GetPresenceRequest{Users: []string{"bob", "dave", "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(len(resp.GetPresence()))
	for _, p := range resp.GetPresence() {
		got += fmt.Sprintf(" %s:%v:%v", p.GetUser(), p.GetOnline(), p.GetLastSeen() != nil)
	}
	if got != "2 bob:true:true dave:false:false" {
		t.Fatalf("presence %s", got)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	_, err = c.GetPresence(as(t, "alice"), &courierv1.GetPresenceRequest{Users: many})
	wantStatus(t, err, codes.InvalidArgument, "too_many_users")
	_, err = c.GetPresence(as(t, "alice"), &courierv1.GetPresenceRequest{Users: []string{"a/b"}})
	wantStatus(t, err, codes.InvalidArgument, "invalid_request")

	_, err = serve(t, options{}).GetPresence(as(t, "alice"), &courierv1.GetPresenceRequest{Users: []string{"bob"}})
	wantStatus(t, err, codes.Unimplemented, "")
}
