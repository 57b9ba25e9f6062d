package wire_test

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/auth"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/pkg/wire"
)

// Fuzz targets for what reaches a service from Pub/Sub: anyone who may
// publish to a topic controls these bytes and attributes. scripts/fuzz.sh
// runs each for a few seconds in make test; testdata/fuzz keeps the seeds
// and every crasher found.

var fuzzLimits = wire.Limits{MaxEnvelopeBytes: 64 << 10, MaxPayloadBytes: 16 << 10, MaxRecipients: 100}

func marshal(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDecodeEnvelope: no input panics; every error is an *EnvelopeError
// with a documented reason; what decodes is valid and re-encodes to a
// message that decodes to the same envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	good := marshal(f, envelope())
	f.Add(good, wire.SchemaEnvelope, "m-1")
	f.Add(good, "", "")
	f.Add(good, "courier.v1.Delivery", "m-1")
	f.Add(good, wire.SchemaEnvelope, "m-2")
	f.Add([]byte{}, "", "")
	f.Add([]byte{0xff, 0xff, 0xff}, "", "")
	bad := envelope()
	bad.MessageId, bad.Recipients, bad.Payload = "__x__", []string{"bob", "bob", "a/b"}, []byte(`{"unterminated`)
	f.Add(marshal(f, bad), "", "")
	huge := envelope()
	huge.Payload = []byte(`"` + strings.Repeat("a", 20<<10) + `"`)
	f.Add(marshal(f, huge), "", "")
	f.Fuzz(func(t *testing.T, data []byte, schema, idAttr string) {
		attrs := map[string]string{}
		if schema != "" {
			attrs[wire.AttrSchema] = schema
		}
		if idAttr != "" {
			attrs[wire.AttrMessageID] = idAttr
		}
		env, err := wire.DecodeEnvelope(data, attrs, fuzzLimits)
		if err != nil {
			var e *wire.EnvelopeError
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *EnvelopeError", err, err)
			}
			switch e.Reason {
			case wire.ReasonUndecodable, wire.ReasonInvalid, wire.ReasonTooLarge:
			default:
				t.Fatalf("undocumented reason %q", e.Reason)
			}
			return
		}
		if err := wire.ValidateEnvelope(env, fuzzLimits); err != nil {
			t.Fatalf("decoded an invalid envelope: %v", err)
		}
		msg, err := wire.EncodeEnvelope(env)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := wire.DecodeEnvelope(msg.Data, msg.Attributes, fuzzLimits)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if !proto.Equal(env, again) || msg.OrderingKey != env.GetSender() {
			t.Fatalf("round trip changed the envelope:\n%v\n%v", env, again)
		}
	})
}

// FuzzDecodeDelivery: no input panics; a decoded delivery has a message id
// and survives a round trip; its recipients attribute never hides it from
// a pod that holds one of its recipients (MayConcern).
func FuzzDecodeDelivery(f *testing.F) {
	d := &courierv1.Delivery{
		Message:    &courierv1.Message{Id: "m-1", From: "alice", ToCount: 2, Payload: []byte(`{}`), SentAt: timestamppb.Now()},
		Recipients: []*courierv1.RecipientCursor{{UserId: "bob", Cursor: "c1"}, {UserId: "carol", Cursor: "c2"}},
	}
	f.Add(marshal(f, d))
	f.Add(marshal(f, &courierv1.Delivery{Message: &courierv1.Message{Id: "m"}}))
	f.Add(marshal(f, &courierv1.Delivery{Message: &courierv1.Message{Id: "m"}, Recipients: []*courierv1.RecipientCursor{{UserId: "a,b"}, {UserId: ""}}}))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := wire.DecodeDelivery(data)
		if err != nil {
			return
		}
		if d.GetMessage().GetId() == "" {
			t.Fatal("decoded a delivery without a message id")
		}
		msg, err := wire.EncodeDelivery(d)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := wire.DecodeDelivery(msg.Data)
		if err != nil || !proto.Equal(d, again) {
			t.Fatalf("round trip: %v\n%v\n%v", err, d, again)
		}
		if v, ok := msg.Attributes[wire.AttrRecipients]; ok && (len(v) > wire.MaxAttrValue || !utf8.ValidString(v)) {
			t.Fatalf("recipients attribute Pub/Sub would refuse: %d bytes", len(v))
		}
		for _, r := range d.GetRecipients() {
			u := r.GetUserId()
			if !wire.MayConcern(msg.Attributes, func(x string) bool { return x == u }) {
				t.Fatalf("a pod holding recipient %q would drop the delivery (attribute %q)", u, msg.Attributes[wire.AttrRecipients])
			}
		}
	})
}

// FuzzMayConcern: MayConcern is the membership of a user in the comma-
// separated recipients attribute, and true without the attribute.
func FuzzMayConcern(f *testing.F) {
	for _, s := range [][2]string{{"bob,carol", "bob"}, {"bob,carol", "carol"}, {"bob,carol", "dave"}, {"", "bob"}, {",,", "bob"}, {"bob,", "bob"}, {"bobby", "bob"}} {
		f.Add(s[0], s[1], true)
	}
	f.Add("", "bob", false)
	f.Fuzz(func(t *testing.T, list, user string, attached bool) {
		attrs := map[string]string{}
		if attached {
			attrs[wire.AttrRecipients] = list
		}
		var asked []string
		got := wire.MayConcern(attrs, func(u string) bool { asked = append(asked, u); return u == user })
		if !attached {
			if !got || len(asked) > 0 {
				t.Fatalf("without the attribute: %v (asked %q)", got, asked)
			}
			return
		}
		want := false
		if auth.ValidateUserID(user) == nil {
			for _, u := range strings.Split(list, ",") {
				want = want || u == user
			}
		} else {
			want = got // an id no pod can hold: only no panic
		}
		if got != want {
			t.Fatalf("MayConcern(%q, %q) = %v, want %v", list, user, got, want)
		}
		for _, u := range asked {
			if strings.Contains(u, ",") {
				t.Fatalf("asked about %q, which contains a comma", u)
			}
		}
	})
}

// FuzzDecodeDeadLetter: no input panics; a letter is either an envelope or
// a decode error; the original attributes come back without the ones dead
// lettering added; and what EncodeDeadLetter writes decodes to the same
// reason, attempt, source, first failure and attributes.
func FuzzDecodeDeadLetter(f *testing.F) {
	good := marshal(f, envelope())
	f.Add(good, "invalid", "payload is not valid JSON", 3, int64(1764583200000000000), "traceparent", "00-abc-def-01", "alice")
	f.Add(good, "", "", 0, int64(0), "CloudPubSubDeadLetterSourceDeliveryCount", "5", "")
	f.Add([]byte{0xff}, "undecodable", strings.Repeat("é", 600), -1, int64(-1), "courier_dead_letter_reason", "x", "k")
	f.Add([]byte{}, "exhausted", "", 1<<40, int64(1), "", "", "")
	f.Fuzz(func(t *testing.T, data []byte, reason, errText string, attempt int, firstNanos int64, key, value, orderingKey string) {
		attrs := map[string]string{wire.AttrMessageID: "m-1"}
		if key != "" {
			attrs[key] = value
		}
		d := wire.DecodeDeadLetter(data, attrs)
		if (d.Envelope == nil) == (d.DecodeError == "") {
			t.Fatalf("envelope %v and decode error %q", d.Envelope, d.DecodeError)
		}
		for k := range d.Attributes {
			if addedByDeadLettering(k) {
				t.Fatalf("attribute %q added by dead lettering is among the original ones", k)
			}
		}
		if d.Reason == "" {
			t.Fatal("no reason")
		}

		// What the worker writes reads back.
		orig := map[string]string{}
		for k, v := range attrs {
			if !strings.HasPrefix(k, "courier_") && !strings.HasPrefix(k, "CloudPubSubDeadLetter") {
				orig[k] = v
			}
		}
		orig[wire.AttrMessageID] = "m-1"
		var first time.Time
		if firstNanos != 0 {
			first = time.Unix(0, firstNanos)
		}
		var lerr error
		if errText != "" {
			lerr = errors.New(errText)
		}
		if reason == "" {
			reason = "invalid"
		}
		dl := wire.EncodeDeadLetter(&pubsub.Message{Data: data, Attributes: maps.Clone(orig), OrderingKey: orderingKey},
			wire.Letter{Reason: reason, Err: lerr, Subscription: "sub", Attempt: attempt, FirstFailure: first})
		if v := dl.Attributes[wire.AttrDeadLetterError]; len(v) > wire.MaxAttrValue || (utf8.ValidString(errText) && !utf8.ValidString(v)) {
			t.Fatalf("error attribute of %d bytes / invalid UTF-8", len(v))
		}
		back := wire.DecodeDeadLetter(dl.Data, dl.Attributes)
		if back.Reason != reason || back.Attempts != attempt || back.Source != "sub" || back.OrderingKey != orderingKey {
			t.Fatalf("read back %+v", back)
		}
		if (back.FirstFailure == nil) != first.IsZero() || (back.FirstFailure != nil && !back.FirstFailure.Equal(first)) {
			t.Fatalf("first failure %v, want %v", back.FirstFailure, first)
		}
		if !maps.Equal(back.Attributes, orig) {
			t.Fatalf("attributes %v, want %v", back.Attributes, orig)
		}
		replay := wire.EncodeReplay("dl-1", dl.Data, back)
		for k := range replay.Attributes {
			if k != wire.AttrReplayOf && addedByDeadLettering(k) {
				t.Fatalf("replay carries %q", k)
			}
		}
	})
}

func addedByDeadLettering(k string) bool {
	switch k {
	case wire.AttrDeadLetterReason, wire.AttrDeadLetterError, wire.AttrSourceSubscription, wire.AttrDeliveryAttempt,
		wire.AttrFirstFailureTime, wire.AttrOrderingKey, wire.AttrReplayOf:
		return true
	}
	return strings.HasPrefix(k, "CloudPubSubDeadLetter")
}
