package messages

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// fakePublisher and fakeStore are structs of funcs, per house style.
type fakePublisher struct {
	publish func(ctx context.Context, env *courierv1.Envelope) error
}

func (f fakePublisher) Publish(ctx context.Context, env *courierv1.Envelope) error {
	return f.publish(ctx, env)
}

type fakeStore struct {
	list func(ctx context.Context, user string, after int64, limit int) ([]inbox.Entry, error)
	get  func(ctx context.Context, id string) (inbox.Stored, error)
}

func (f fakeStore) List(ctx context.Context, user string, after int64, limit int) ([]inbox.Entry, error) {
	return f.list(ctx, user, after, limit)
}
func (f fakeStore) Get(ctx context.Context, id string) (inbox.Stored, error) { return f.get(ctx, id) }

func codeOf(err error) apierr.Code {
	if err == nil {
		return ""
	}
	var e *apierr.Error
	if !errors.As(err, &e) {
		return "<not an apierr>"
	}
	return e.Code
}

func recordingPublisher(got *[]*courierv1.Envelope) fakePublisher {
	return fakePublisher{publish: func(_ context.Context, env *courierv1.Envelope) error {
		*got = append(*got, env)
		return nil
	}}
}

func TestSendValidation(t *testing.T) {
	var published []*courierv1.Envelope
	svc := New(recordingPublisher(&published), nil, Limits{MaxRecipients: 3, MaxPayloadBytes: 20})
	many := []string{"a", "b", "c", "d"}
	for _, tc := range []struct {
		name string
		req  SendRequest
		want apierr.Code
	}{
		{"ok", SendRequest{To: []string{"bob"}, Payload: []byte(`{"t":"hi"}`)}, ""},
		{"ok at the recipient cap", SendRequest{To: many[:3], Payload: []byte(`1`)}, ""},
		{"ok payload at the cap after compaction", SendRequest{To: []string{"bob"}, Payload: []byte(`{ "t" : "` + strings.Repeat("x", 12) + `" }`)}, ""},
		{"no recipients", SendRequest{Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"too many recipients", SendRequest{To: many, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"duplicate recipient", SendRequest{To: []string{"bob", "bob"}, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"bad recipient", SendRequest{To: []string{"bob/evil"}, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"reserved recipient", SendRequest{To: []string{"__x__"}, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"empty recipient", SendRequest{To: []string{""}, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"no payload", SendRequest{To: []string{"bob"}}, apierr.InvalidRequest},
		{"null payload", SendRequest{To: []string{"bob"}, Payload: []byte(` null `)}, apierr.InvalidRequest},
		{"invalid JSON payload", SendRequest{To: []string{"bob"}, Payload: []byte(`{"a":`)}, apierr.InvalidRequest},
		{"two JSON values", SendRequest{To: []string{"bob"}, Payload: []byte(`1 2`)}, apierr.InvalidRequest},
		{"payload too large", SendRequest{To: []string{"bob"}, Payload: []byte(`"` + strings.Repeat("x", 19) + `"`)}, apierr.PayloadTooLarge},
		{"bad content type", SendRequest{To: []string{"bob"}, Payload: []byte(`1`), ContentType: "not a type"}, apierr.InvalidRequest},
		{"bad idempotency key", SendRequest{To: []string{"bob"}, Payload: []byte(`1`), IdempotencyKey: "é"}, apierr.InvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			published = nil
			_, err := svc.Send(context.Background(), "alice", tc.req)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.want)
			}
			if (tc.want == "") != (len(published) == 1) {
				t.Fatalf("published %d envelopes", len(published))
			}
		})
	}
}

func TestSendBuildsEnvelope(t *testing.T) {
	var published []*courierv1.Envelope
	svc := New(recordingPublisher(&published), nil, Limits{})
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	svc.now = func() time.Time { return fixed }
	acc, err := svc.Send(context.Background(), "alice", SendRequest{
		To: []string{"bob", "carol"}, Payload: []byte("{\n  \"text\": \"hi\"\n}"), ContentType: "application/vnd.chat+json",
	})
	if err != nil {
		t.Fatal(err)
	}
	env := published[0]
	if env.MessageId != acc.ID || len(acc.ID) != 32 {
		t.Errorf("id %q / envelope %q", acc.ID, env.MessageId)
	}
	if env.Sender != "alice" || strings.Join(env.Recipients, ",") != "bob,carol" {
		t.Errorf("sender/recipients: %v %v", env.Sender, env.Recipients)
	}
	if string(env.Payload) != `{"text":"hi"}` {
		t.Errorf("payload not compacted: %s", env.Payload)
	}
	if env.ContentType != "application/vnd.chat+json" {
		t.Errorf("content type %q", env.ContentType)
	}
	want := fixed.Truncate(time.Microsecond)
	if !env.SentAt.AsTime().Equal(want) || !acc.AcceptedAt.Equal(want) {
		t.Errorf("sent_at %v accepted_at %v, want %v", env.SentAt.AsTime(), acc.AcceptedAt, want)
	}
	// Default content type.
	if _, err := svc.Send(context.Background(), "alice", SendRequest{To: []string{"bob"}, Payload: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	if published[1].ContentType != DefaultContentType {
		t.Errorf("default content type %q", published[1].ContentType)
	}
	if published[1].MessageId == published[0].MessageId {
		t.Error("two sends without a key got the same id")
	}
}

func TestIdempotencyKeyDerivesID(t *testing.T) {
	var published []*courierv1.Envelope
	svc := New(recordingPublisher(&published), nil, Limits{})
	send := func(sender, key string) string {
		t.Helper()
		acc, err := svc.Send(context.Background(), sender, SendRequest{To: []string{"bob"}, Payload: []byte(`1`), IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return acc.ID
	}
	a1, a2 := send("alice", "k1"), send("alice", "k1")
	if a1 != a2 || a1 != DeriveID("alice", "k1") {
		t.Fatalf("same key gave %s and %s", a1, a2)
	}
	if published[0].IdempotencyKey != "k1" {
		t.Errorf("envelope key %q", published[0].IdempotencyKey)
	}
	if send("alice", "k2") == a1 {
		t.Error("different key, same id")
	}
	if send("mallory", "k1") == a1 {
		t.Error("different sender, same key, same id: one user could shadow another's message")
	}
	// The NUL separator keeps concatenation ambiguities apart.
	if DeriveID("ab", "c") == DeriveID("a", "bc") {
		t.Error("DeriveID(ab,c) == DeriveID(a,bc)")
	}
}

func TestParseIdempotencyKey(t *testing.T) {
	for _, ok := range []string{"k", " spaced key ", strings.Repeat("~", 128), "order-42:retry"} {
		if _, err := ParseIdempotencyKey(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 129), "tab\there", "nl\n", "é", "\x7f"} {
		if _, err := ParseIdempotencyKey(bad); codeOf(err) != apierr.InvalidRequest {
			t.Errorf("%q accepted or wrong code: %v", bad, err)
		}
	}
}

func TestSendPublishFailureIsUnavailable(t *testing.T) {
	svc := New(fakePublisher{publish: func(context.Context, *courierv1.Envelope) error {
		return status.Error(codes.NotFound, "topic not found")
	}}, nil, Limits{})
	_, err := svc.Send(context.Background(), "alice", SendRequest{To: []string{"bob"}, Payload: []byte(`1`)})
	if codeOf(err) != apierr.Unavailable {
		t.Fatalf("code %q (%v), want unavailable", codeOf(err), err)
	}
}

func stored(id, from string, to ...string) inbox.Stored {
	return inbox.Stored{Message: &courierv1.Message{Id: id, From: from, To: to, Payload: []byte(`1`), SentAt: timestamppb.Now()}}
}

func TestGetOnlyForSenderAndRecipients(t *testing.T) {
	st := stored("m1", "alice", "bob", "carol")
	st.Delivered = map[string]time.Time{"carol": time.Now(), "bob": time.Now()}
	svc := New(nil, fakeStore{get: func(_ context.Context, id string) (inbox.Stored, error) {
		switch id {
		case "m1":
			return st, nil
		case "broken":
			return inbox.Stored{}, status.Error(codes.Unavailable, "down")
		}
		return inbox.Stored{}, inbox.ErrNotFound
	}}, Limits{})
	ctx := context.Background()
	for _, u := range []string{"alice", "bob", "carol"} {
		v, err := svc.Get(ctx, u, "m1")
		if err != nil || v.Message.Id != "m1" || v.State != "delivered" || strings.Join(v.DeliveredTo, ",") != "bob,carol" {
			t.Errorf("%s: %+v %v", u, v, err)
		}
	}
	_, errOther := svc.Get(ctx, "mallory", "m1")
	_, errMissing := svc.Get(ctx, "mallory", "nope")
	_, errMalformed := svc.Get(ctx, "alice", "../users/bob")
	for name, err := range map[string]error{"other's": errOther, "missing": errMissing, "malformed": errMalformed} {
		if codeOf(err) != apierr.NotFound {
			t.Errorf("%s message: %v, want not_found", name, err)
		}
	}
	// Someone else's message and a missing one must be indistinguishable.
	if strings.Replace(errOther.Error(), "m1", "X", 1) != strings.Replace(errMissing.Error(), "nope", "X", 1) {
		t.Errorf("answers differ: %q vs %q", errOther, errMissing)
	}
	if _, err := svc.Get(ctx, "alice", "broken"); codeOf(err) != apierr.Unavailable {
		t.Errorf("store down: %v", err)
	}
}

func TestListInbox(t *testing.T) {
	var gotUser string
	var gotAfter int64
	var gotLimit int
	entries := []inbox.Entry{
		{Seq: 4, Message: stored("m4", "x", "bob").Message},
		{Seq: 5, Message: stored("m5", "x", "bob").Message},
	}
	svc := New(nil, fakeStore{list: func(_ context.Context, user string, after int64, limit int) ([]inbox.Entry, error) {
		gotUser, gotAfter, gotLimit = user, after, limit
		if after >= 5 {
			return nil, nil
		}
		return entries, nil
	}}, Limits{})
	ctx := context.Background()
	p, err := svc.ListInbox(ctx, "bob", inbox.EncodeCursor(3), 0)
	if err != nil || gotUser != "bob" || gotAfter != 3 || gotLimit != 50 {
		t.Fatalf("list: %v user=%s after=%d limit=%d", err, gotUser, gotAfter, gotLimit)
	}
	if p.NextCursor != inbox.EncodeCursor(5) || len(p.Entries) != 2 {
		t.Fatalf("page: %+v", p)
	}
	empty, err := svc.ListInbox(ctx, "bob", p.NextCursor, 200)
	if err != nil || len(empty.Entries) != 0 || empty.NextCursor != p.NextCursor {
		t.Fatalf("empty page: %+v %v", empty, err)
	}
	for _, bad := range []struct {
		cursor string
		limit  int
	}{{"garbage!", 10}, {"", -1}, {"", 201}} {
		if _, err := svc.ListInbox(ctx, "bob", bad.cursor, bad.limit); codeOf(err) != apierr.InvalidRequest {
			t.Errorf("cursor %q limit %d: %v", bad.cursor, bad.limit, err)
		}
	}
}

// DeliveryState answers from the acks the fake's messages carry.
func (f fakeStore) DeliveryState(_ context.Context, _ string, listUsers bool, legacy map[string]time.Time) ([]string, int, error) {
	if !listUsers {
		return nil, len(legacy), nil
	}
	return slices.Sorted(maps.Keys(legacy)), len(legacy), nil
}
