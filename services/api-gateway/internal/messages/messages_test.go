package messages_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
	"github.com/courierhq/courier/services/api-gateway/internal/gatewaytest"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
)

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

func TestSendValidation(t *testing.T) {
	var pub gatewaytest.Recorder
	svc := messages.New(&pub, nil, messages.Limits{MaxRecipients: 3, MaxPayloadBytes: 20})
	many := []string{"a", "b", "c", "d"}
	for _, tc := range []struct {
		name string
		req  messages.SendRequest
		want apierr.Code
	}{
		{"ok", messages.SendRequest{To: []string{"bob"}, Payload: []byte(`{"t":"hi"}`)}, ""},
		{"ok at the recipient cap", messages.SendRequest{To: many[:3], Payload: []byte(`1`)}, ""},
		{"ok payload at the cap after compaction", messages.SendRequest{To: []string{"bob"}, Payload: []byte(`{ "t" : "` + strings.Repeat("x", 12) + `" }`)}, ""},
		{"no recipients", messages.SendRequest{Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"too many recipients", messages.SendRequest{To: many, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"duplicate recipient", messages.SendRequest{To: []string{"bob", "bob"}, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"bad recipient", messages.SendRequest{To: []string{"bob/evil"}, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"reserved recipient", messages.SendRequest{To: []string{"__x__"}, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"empty recipient", messages.SendRequest{To: []string{""}, Payload: []byte(`1`)}, apierr.InvalidRequest},
		{"no payload", messages.SendRequest{To: []string{"bob"}}, apierr.InvalidRequest},
		{"null payload", messages.SendRequest{To: []string{"bob"}, Payload: []byte(` null `)}, apierr.InvalidRequest},
		{"invalid JSON payload", messages.SendRequest{To: []string{"bob"}, Payload: []byte(`{"a":`)}, apierr.InvalidRequest},
		{"two JSON values", messages.SendRequest{To: []string{"bob"}, Payload: []byte(`1 2`)}, apierr.InvalidRequest},
		{"payload too large", messages.SendRequest{To: []string{"bob"}, Payload: []byte(`"` + strings.Repeat("x", 19) + `"`)}, apierr.PayloadTooLarge},
		{"bad content type", messages.SendRequest{To: []string{"bob"}, Payload: []byte(`1`), ContentType: "not a type"}, apierr.InvalidRequest},
		{"bad idempotency key", messages.SendRequest{To: []string{"bob"}, Payload: []byte(`1`), IdempotencyKey: "é"}, apierr.InvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub.Reset()
			_, err := svc.Send(context.Background(), "alice", tc.req)
			if got := codeOf(err); got != tc.want {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.want)
			}
			if (tc.want == "") != (len(pub.Published()) == 1) {
				t.Fatalf("published %d envelopes", len(pub.Published()))
			}
		})
	}
}

func TestSendBuildsEnvelope(t *testing.T) {
	var pub gatewaytest.Recorder
	svc := messages.New(&pub, nil, messages.Limits{})
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	messages.SetNow(svc, func() time.Time { return fixed })
	acc, err := svc.Send(context.Background(), "alice", messages.SendRequest{
		To: []string{"bob", "carol"}, Payload: []byte("{\n  \"text\": \"hi\"\n}"), ContentType: "application/vnd.chat+json",
	})
	if err != nil {
		t.Fatal(err)
	}
	env := pub.Published()[0]
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
	if _, err := svc.Send(context.Background(), "alice", messages.SendRequest{To: []string{"bob"}, Payload: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	published := pub.Published()
	if published[1].ContentType != messages.DefaultContentType {
		t.Errorf("default content type %q", published[1].ContentType)
	}
	if published[1].MessageId == published[0].MessageId {
		t.Error("two sends without a key got the same id")
	}
}

func TestIdempotencyKeyDerivesID(t *testing.T) {
	var pub gatewaytest.Recorder
	svc := messages.New(&pub, nil, messages.Limits{})
	send := func(sender, key string) string {
		t.Helper()
		acc, err := svc.Send(context.Background(), sender, messages.SendRequest{To: []string{"bob"}, Payload: []byte(`1`), IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return acc.ID
	}
	a1, a2 := send("alice", "k1"), send("alice", "k1")
	if a1 != a2 || a1 != messages.DeriveID("alice", "k1") {
		t.Fatalf("same key gave %s and %s", a1, a2)
	}
	if key := pub.Published()[0].IdempotencyKey; key != "k1" {
		t.Errorf("envelope key %q", key)
	}
	if send("alice", "k2") == a1 {
		t.Error("different key, same id")
	}
	if send("mallory", "k1") == a1 {
		t.Error("different sender, same key, same id: one user could shadow another's message")
	}
	// The NUL separator keeps concatenation ambiguities apart.
	if messages.DeriveID("ab", "c") == messages.DeriveID("a", "bc") {
		t.Error("DeriveID(ab,c) == DeriveID(a,bc)")
	}
}

func TestParseIdempotencyKey(t *testing.T) {
	for _, ok := range []string{"k", " spaced key ", strings.Repeat("~", 128), "order-42:retry"} {
		if _, err := messages.ParseIdempotencyKey(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 129), "tab\there", "nl\n", "é", "\x7f"} {
		if _, err := messages.ParseIdempotencyKey(bad); codeOf(err) != apierr.InvalidRequest {
			t.Errorf("%q accepted or wrong code: %v", bad, err)
		}
	}
}

func TestSendPublishFailureIsUnavailable(t *testing.T) {
	svc := messages.New(gatewaytest.Failing(status.Error(codes.NotFound, "topic not found")), nil, messages.Limits{})
	_, err := svc.Send(context.Background(), "alice", messages.SendRequest{To: []string{"bob"}, Payload: []byte(`1`)})
	if codeOf(err) != apierr.Unavailable {
		t.Fatalf("code %q (%v), want unavailable", codeOf(err), err)
	}
}

// TestGetOnlyForSenderAndRecipients reads from the in-memory store, where
// bob and carol acknowledged m1.
func TestGetOnlyForSenderAndRecipients(t *testing.T) {
	store := inboxtest.NewFaulty()
	store.GetFunc = func(ctx context.Context, id string) (inbox.Stored, error) {
		if id == "broken" {
			return inbox.Stored{}, status.Error(codes.Unavailable, "down")
		}
		return store.Memory.Get(ctx, id)
	}
	ctx := context.Background()
	inboxtest.MustCommit(t, store, inboxtest.Envelope("m1", "alice", "bob", "carol"), inboxtest.Envelope("m2", "alice", "bob"))
	if err := inboxtest.MarkDelivered(ctx, store, "m1", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := inboxtest.MarkDelivered(ctx, store, "m1", "carol"); err != nil {
		t.Fatal(err)
	}
	svc := messages.New(nil, store, messages.Limits{})
	// The sender sees every recipient's state; a recipient only its own.
	inboxtest.MustCommit(t, store, inboxtest.Envelope("m3", "alice", "bob", "dave"))
	if err := inboxtest.MarkDelivered(ctx, store, "m3", "bob"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, id, state, to string
		count               int
	}{
		{"alice", "m1", "delivered", "bob,carol", 2},
		{"bob", "m1", "delivered", "bob", 1},
		{"carol", "m1", "delivered", "carol", 1},
		{"alice", "m3", "delivered", "bob", 1},
		{"dave", "m3", "stored", "", 0}, // bob's ack is not dave's to see
	} {
		v, err := svc.Get(ctx, c.user, c.id)
		if err != nil || v.Message.Id != c.id || v.State != c.state || strings.Join(v.DeliveredTo, ",") != c.to || v.DeliveredCount != c.count {
			t.Errorf("%s reads %s: %+v %v, want %s [%s] %d", c.user, c.id, v, err, c.state, c.to, c.count)
		}
	}
	if v, err := svc.Get(ctx, "bob", "m2"); err != nil || v.State != "stored" || len(v.DeliveredTo) != 0 || v.DeliveredCount != 0 {
		t.Errorf("unacknowledged message: %+v %v", v, err)
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

// An inbox page starts after the cursor, holds the default page size when
// the caller gives no limit, and hands back the cursor when it is empty;
// each user reads only their own inbox.
func TestListInbox(t *testing.T) {
	store := inboxtest.NewMemory()
	for i := range 55 {
		inboxtest.MustCommit(t, store, inboxtest.Envelope(fmt.Sprintf("m%d", i+1), "x", "bob"))
	}
	inboxtest.MustCommit(t, store, inboxtest.Envelope("c1", "x", "carol"))
	svc := messages.New(nil, store, messages.Limits{})
	ctx := context.Background()
	p, err := svc.ListInbox(ctx, "bob", inbox.EncodeCursor(3), 0)
	if err != nil || len(p.Entries) != 50 || p.Entries[0].Seq != 4 || p.Entries[0].Message.Id != "m4" {
		t.Fatalf("list after 3 with the default limit: %d entries %v", len(p.Entries), err)
	}
	if p.NextCursor != inbox.EncodeCursor(53) {
		t.Fatalf("next cursor %q, want position 53", p.NextCursor)
	}
	p, err = svc.ListInbox(ctx, "bob", p.NextCursor, 200)
	if err != nil || len(p.Entries) != 2 || p.Entries[1].Message.Id != "m55" || p.NextCursor != inbox.EncodeCursor(55) {
		t.Fatalf("last page: %+v %v", p, err)
	}
	empty, err := svc.ListInbox(ctx, "bob", p.NextCursor, 200)
	if err != nil || len(empty.Entries) != 0 || empty.NextCursor != p.NextCursor {
		t.Fatalf("empty page: %+v %v", empty, err)
	}
	if c, err := svc.ListInbox(ctx, "carol", "", 0); err != nil || len(c.Entries) != 1 || c.Entries[0].Message.Id != "c1" {
		t.Fatalf("carol's inbox: %+v %v", c, err)
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

// A page of large messages is bounded by bytes, not only by count, and says
// that more follows; paging by next_cursor still reads every message once.
func TestListInboxIsBoundedByBytes(t *testing.T) {
	store := inboxtest.NewMemory()
	big := fmt.Sprintf("%q", strings.Repeat("x", 60<<10))
	for i := range 40 {
		env := inboxtest.Envelope(fmt.Sprintf("m%d", i+1), "x", "bob")
		env.Payload = []byte(big)
		inboxtest.MustCommit(t, store, env)
	}
	svc := messages.New(nil, store, messages.Limits{MaxPageBytes: 1 << 20})
	ctx := context.Background()
	cursor, seen := "", 0
	for pages := 0; ; pages++ {
		if pages > 40 {
			t.Fatal("paging does not end")
		}
		p, err := svc.ListInbox(ctx, "bob", cursor, 200)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, e := range p.Entries {
			total += len(e.Message.Payload)
		}
		if total > 1<<20 {
			t.Fatalf("a page of %d entries holds %d payload bytes, bound 1 MiB", len(p.Entries), total)
		}
		seen += len(p.Entries)
		cursor = p.NextCursor
		if !p.HasMore {
			break
		}
		if len(p.Entries) == 0 {
			t.Fatal("an empty page says more follows")
		}
	}
	if seen != 40 {
		t.Fatalf("paged through %d messages, want 40", seen)
	}
}

// What the worker could only dead-letter for size is refused here: a
// payload within its own limit but, copied to every recipient and the
// sender, beyond one Firestore commit; and an envelope above its bound.
func TestSendRefusesWhatTheWorkerWouldDeadLetter(t *testing.T) {
	var pub gatewaytest.Recorder
	to := make([]string, 1000)
	for i := range to {
		to[i] = fmt.Sprintf("u%d", i)
	}
	svc := messages.New(&pub, nil, messages.Limits{MaxRecipients: 1000, MaxPayloadBytes: 64 << 10})
	payload := []byte(fmt.Sprintf("%q", strings.Repeat("x", 10<<10))) // 10 KiB × 1,001 > 9 MiB
	if _, err := svc.Send(context.Background(), "alice", messages.SendRequest{To: to, Payload: payload}); codeOf(err) != apierr.MessageTooLarge {
		t.Fatalf("10 KiB to 1,000 recipients: %v, want %s", err, apierr.MessageTooLarge)
	}
	if got := apierr.HTTPStatus(apierr.MessageTooLarge); got != 413 {
		t.Fatalf("message_too_large is HTTP %d, want 413", got)
	}
	small := []byte(fmt.Sprintf("%q", strings.Repeat("x", 8<<10))) // 8 KiB × 1,001 < 9 MiB
	if _, err := svc.Send(context.Background(), "alice", messages.SendRequest{To: to, Payload: small}); err != nil {
		t.Fatalf("8 KiB to 1,000 recipients: %v", err)
	}
	tight := messages.New(&pub, nil, messages.Limits{MaxPayloadBytes: 64 << 10, MaxEnvelopeBytes: 4 << 10})
	if _, err := tight.Send(context.Background(), "alice", messages.SendRequest{To: []string{"bob"}, Payload: small}); codeOf(err) != apierr.MessageTooLarge {
		t.Fatalf("an envelope above MaxEnvelopeBytes: %v", err)
	}
	if n := len(pub.Published()); n != 1 {
		t.Fatalf("published %d envelopes, want only the one that fits", n)
	}
}

// budget is a fake Budget with a fixed allowance per key.
type budget struct {
	left  map[string]float64
	start float64
}

func (b *budget) AllowN(key string, cost float64) (bool, time.Duration) {
	if _, ok := b.left[key]; !ok {
		b.left[key] = b.start
	}
	if b.left[key] < cost {
		return false, 3 * time.Second
	}
	b.left[key] -= cost
	return true, 0
}

// Sends spend what they cost: bytes stored across all recipients from the
// sender's budget, one message from each recipient's inbound budget.
func TestSendsAreChargedByCost(t *testing.T) {
	var pub gatewaytest.Recorder
	stored := &budget{left: map[string]float64{}, start: 300}
	inbound := &budget{left: map[string]float64{}, start: 3}
	svc := messages.New(&pub, nil, messages.Limits{MaxRecipients: 100, MaxPayloadBytes: 64 << 10}).
		WithBudgets(messages.Budgets{StoredKiB: stored, Inbound: inbound})
	ctx := context.Background()
	if got := messages.StoredKiB(200, 1); got != 1 {
		t.Fatalf("a 200-byte one-to-one message costs %v KiB, want 1", got)
	}
	big := []byte(fmt.Sprintf("%q", strings.Repeat("x", 64<<10-2)))
	// 64 KiB to two recipients stores ~193 KiB: once fits in 300, twice not.
	if _, err := svc.Send(ctx, "mallory", messages.SendRequest{To: []string{"a", "b"}, Payload: big}); err != nil {
		t.Fatalf("first large send: %v", err)
	}
	_, err := svc.Send(ctx, "mallory", messages.SendRequest{To: []string{"c", "d"}, Payload: big})
	var e *apierr.Error
	if !errors.As(err, &e) || e.Code != apierr.RateLimited || e.RetryAfter <= 0 {
		t.Fatalf("second large send: %v, want rate_limited with a retry", err)
	}
	// Small sends from the same sender still pass: the budget is bytes.
	for i := range 50 {
		if _, err := svc.Send(ctx, "mallory", messages.SendRequest{To: []string{fmt.Sprintf("r%d", i)}, Payload: []byte(`1`)}); err != nil {
			t.Fatalf("small send %d: %v", i, err)
		}
	}
	// Many senders to one recipient: its inbound budget (3) runs out.
	for i, from := range []string{"s1", "s2", "s3"} {
		if _, err := svc.Send(ctx, from, messages.SendRequest{To: []string{"victim"}, Payload: []byte(`1`)}); err != nil {
			t.Fatalf("send %d to victim: %v", i, err)
		}
	}
	if _, err := svc.Send(ctx, "s4", messages.SendRequest{To: []string{"friend", "victim"}, Payload: []byte(`1`)}); codeOf(err) != apierr.RecipientRateLimited {
		t.Fatalf("a fourth send to victim: %v, want %s", err, apierr.RecipientRateLimited)
	}
}
