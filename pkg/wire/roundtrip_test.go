package wire_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/pkg/wire"
)

func envelope() *courierv1.Envelope {
	return &courierv1.Envelope{
		MessageId: "m-1", Sender: "alice", Recipients: []string{"bob", "carol"}, Payload: []byte(`{"text":"hi"}`),
		ContentType: "application/json", SentAt: timestamppb.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)),
		IdempotencyKey: "k1",
	}
}

// What the gateway writes, the worker reads back whole.
func TestEnvelopeRoundTrip(t *testing.T) {
	env := envelope()
	msg, err := wire.EncodeEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	if msg.OrderingKey != "alice" || msg.Attributes[wire.AttrSchema] != wire.SchemaEnvelope || msg.Attributes[wire.AttrMessageID] != "m-1" {
		t.Fatalf("message %+v", msg)
	}
	got, err := wire.DecodeEnvelope(msg.Data, msg.Attributes, wire.Limits{MaxEnvelopeBytes: 4096, MaxPayloadBytes: 1024, MaxRecipients: 10})
	if err != nil || !proto.Equal(got, env) {
		t.Fatalf("decoded %v, %v", got, err)
	}
	// A message whose id attribute was tampered with is invalid for good.
	msg.Attributes[wire.AttrMessageID] = "m-2"
	var e *wire.EnvelopeError
	if _, err := wire.DecodeEnvelope(msg.Data, msg.Attributes, wire.Limits{}); !errors.As(err, &e) || e.Reason != wire.ReasonInvalid {
		t.Fatalf("tampered id: %v", err)
	}
}

// What the worker writes, an edge reads back whole; the recipients
// attribute lets an edge skip it, and is left out when too long.
func TestDeliveryRoundTrip(t *testing.T) {
	d := &courierv1.Delivery{
		Message:    &courierv1.Message{Id: "m-1", From: "alice", ToCount: 2, Payload: []byte(`{}`), SentAt: timestamppb.Now()},
		Recipients: []*courierv1.RecipientCursor{{UserId: "bob", Cursor: "c1"}, {UserId: "carol", Cursor: "c2"}},
	}
	msg, err := wire.EncodeDelivery(d)
	if err != nil {
		t.Fatal(err)
	}
	if msg.OrderingKey != "" || msg.Attributes[wire.AttrRecipients] != "bob,carol" || msg.Attributes[wire.AttrSchema] != wire.SchemaDelivery || msg.Attributes[wire.AttrSender] != "alice" {
		t.Fatalf("message %+v", msg)
	}
	got, err := wire.DecodeDelivery(msg.Data)
	if err != nil || !proto.Equal(got, d) {
		t.Fatalf("decoded %v, %v", got, err)
	}
	for user, want := range map[string]bool{"bob": true, "dave": false} {
		if got := wire.MayConcern(msg.Attributes, func(u string) bool { return u == user }); got != want {
			t.Errorf("MayConcern for %s = %v", user, got)
		}
	}
	for i := range 200 {
		d.Recipients = append(d.Recipients, &courierv1.RecipientCursor{UserId: strings.Repeat("u", 10) + string(rune('a'+i%26)), Cursor: "c"})
	}
	msg, _ = wire.EncodeDelivery(d)
	if _, ok := msg.Attributes[wire.AttrRecipients]; ok || !wire.MayConcern(msg.Attributes, func(string) bool { return false }) {
		t.Fatal("a long recipient list was attached, or its absence ruled the delivery out")
	}
	if _, err := wire.DecodeDelivery([]byte("\xff\xff")); err == nil {
		t.Fatal("garbage decoded")
	}
	if _, err := wire.DecodeDelivery(nil); err == nil {
		t.Fatal("a delivery without a message decoded")
	}
}

// What the worker dead-letters, courierctl reads back with its reason and
// the original intact, and a replay is the original ingress message again.
func TestDeadLetterRoundTripAndReplay(t *testing.T) {
	orig, err := wire.EncodeEnvelope(envelope())
	if err != nil {
		t.Fatal(err)
	}
	orig.Attributes["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	first := time.Date(2026, 12, 1, 10, 0, 1, 0, time.UTC)
	letter := wire.EncodeDeadLetter(orig, wire.Letter{Reason: wire.ReasonInvalid, Err: errors.New("no recipients"),
		Subscription: "courier-ingress-worker", Attempt: 2, FirstFailure: first})
	if letter.OrderingKey != "" {
		t.Fatal("a dead letter keeps its ordering key (the dead-letter subscription is not ordered)")
	}
	d := wire.DecodeDeadLetter(letter.Data, letter.Attributes)
	if d.MessageID != "m-1" || d.Reason != wire.ReasonInvalid || d.Error != "no recipients" || d.Attempts != 2 ||
		d.Source != "courier-ingress-worker" || d.OrderingKey != "alice" || d.FirstFailure == nil || !d.FirstFailure.Equal(first) {
		t.Fatalf("read back %+v", d)
	}
	if !proto.Equal(d.Envelope, envelope()) || d.DecodeError != "" {
		t.Fatalf("envelope %v (%s)", d.Envelope, d.DecodeError)
	}
	for k := range d.Attributes {
		if strings.HasPrefix(k, "courier_dead_letter") || k == wire.AttrSourceSubscription {
			t.Errorf("dead-letter attribute %s among the original's", k)
		}
	}
	replay := wire.EncodeReplay("dl-42", letter.Data, d)
	if replay.OrderingKey != "alice" || replay.Attributes[wire.AttrReplayOf] != "dl-42" || replay.Attributes["traceparent"] != "" {
		t.Fatalf("replay %+v", replay)
	}
	back, err := wire.DecodeEnvelope(replay.Data, replay.Attributes, wire.Limits{})
	if err != nil || !proto.Equal(back, envelope()) {
		t.Fatalf("the replay does not decode as the original: %v %v", back, err)
	}
	keys := func(m map[string]string) []string {
		var out []string
		for k := range m {
			if k != "traceparent" && k != wire.AttrReplayOf {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(keys(replay.Attributes), keys(orig.Attributes)) {
		t.Fatalf("replay attributes %v, original %v", replay.Attributes, orig.Attributes)
	}
}

// A message Pub/Sub forwarded by its own policy has no Courier reason.
func TestDeadLetterForwardedByPubSub(t *testing.T) {
	d := wire.DecodeDeadLetter([]byte("not an envelope"), map[string]string{
		wire.AttrPubSubDeliveryCount: "5", wire.AttrPubSubSourceSubscription: "projects/p/subscriptions/s",
		wire.AttrSender: "alice",
	})
	if d.Reason != wire.ReasonPubSub || d.Attempts != 5 || d.Source != "projects/p/subscriptions/s" || d.Envelope != nil || d.DecodeError == "" {
		t.Fatalf("%+v", d)
	}
	if replay := wire.EncodeReplay("x", []byte("data"), d); replay.OrderingKey != "alice" {
		t.Fatalf("a letter without its ordering key replays under the sender's: %q", replay.OrderingKey)
	}
}
