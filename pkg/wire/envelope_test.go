package wire

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

var limits = Limits{MaxEnvelopeBytes: 4096, MaxPayloadBytes: 1024, MaxRecipients: 3}

func valid() *courierv1.Envelope {
	return &courierv1.Envelope{
		MessageId: "m-1", Sender: "alice", Recipients: []string{"bob", "carol"},
		Payload: []byte(`{"text":"hi"}`), ContentType: "application/json", SentAt: timestamppb.Now(),
	}
}

func encode(t *testing.T, env *courierv1.Envelope) []byte {
	t.Helper()
	b, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*courierv1.Envelope)
		data   []byte
		attrs  map[string]string
		reason string // "" means accepted
		errHas string
	}{
		{name: "valid", mutate: func(*courierv1.Envelope) {}},
		{name: "valid with matching attributes", mutate: func(*courierv1.Envelope) {},
			attrs: map[string]string{AttrSchema: SchemaEnvelope, AttrMessageID: "m-1"}},
		{name: "not protobuf", data: []byte{0xff, 0xff, 0xff}, reason: ReasonUndecodable},
		{name: "wrong schema", mutate: func(*courierv1.Envelope) {},
			attrs: map[string]string{AttrSchema: "courier.v1.Delivery"}, reason: ReasonUndecodable},
		{name: "empty data", data: []byte{}, reason: ReasonInvalid, errHas: "message id missing"},
		{name: "id attribute mismatch", mutate: func(*courierv1.Envelope) {},
			attrs: map[string]string{AttrMessageID: "other"}, reason: ReasonInvalid, errHas: "differs"},
		{name: "bad id", mutate: func(e *courierv1.Envelope) { e.MessageId = "a/b" }, reason: ReasonInvalid, errHas: "not a valid id"},
		{name: "reserved id", mutate: func(e *courierv1.Envelope) { e.MessageId = "__x__" }, reason: ReasonInvalid},
		{name: "bad sender", mutate: func(e *courierv1.Envelope) { e.Sender = "" }, reason: ReasonInvalid, errHas: "sender"},
		{name: "no recipients", mutate: func(e *courierv1.Envelope) { e.Recipients = nil }, reason: ReasonInvalid, errHas: "no recipients"},
		{name: "too many recipients", mutate: func(e *courierv1.Envelope) { e.Recipients = []string{"a", "b", "c", "d"} },
			reason: ReasonInvalid, errHas: "limit 3"},
		{name: "duplicate recipient", mutate: func(e *courierv1.Envelope) { e.Recipients = []string{"bob", "bob"} },
			reason: ReasonInvalid, errHas: "twice"},
		{name: "bad recipient", mutate: func(e *courierv1.Envelope) { e.Recipients = []string{"bob", "x/y"} },
			reason: ReasonInvalid, errHas: "recipient"},
		{name: "no sent_at", mutate: func(e *courierv1.Envelope) { e.SentAt = nil }, reason: ReasonInvalid, errHas: "sent_at"},
		{name: "bad sent_at", mutate: func(e *courierv1.Envelope) { e.SentAt = &timestamppb.Timestamp{Nanos: -1} },
			reason: ReasonInvalid, errHas: "sent_at"},
		{name: "no payload", mutate: func(e *courierv1.Envelope) { e.Payload = nil }, reason: ReasonInvalid, errHas: "payload missing"},
		{name: "payload not JSON", mutate: func(e *courierv1.Envelope) { e.Payload = []byte(`{"a":`) },
			reason: ReasonInvalid, errHas: "JSON"},
		{name: "payload too large", mutate: func(e *courierv1.Envelope) { e.Payload = []byte(`"` + strings.Repeat("x", 1100) + `"`) },
			reason: ReasonTooLarge},
		{name: "envelope too large", data: make([]byte, 5000), reason: ReasonTooLarge},
		{name: "several problems joined", mutate: func(e *courierv1.Envelope) { e.Sender = ""; e.SentAt = nil },
			reason: ReasonInvalid, errHas: "sent_at missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if data == nil {
				env := valid()
				tc.mutate(env)
				data = encode(t, env)
			}
			env, err := DecodeEnvelope(data, tc.attrs, limits)
			if tc.reason == "" {
				if err != nil || env.MessageId != "m-1" {
					t.Fatalf("rejected a valid envelope: %v", err)
				}
				return
			}
			var e *EnvelopeError
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *EnvelopeError", err)
			}
			if e.DeadLetterReason() != tc.reason {
				t.Errorf("reason = %q, want %q (%v)", e.Reason, tc.reason, err)
			}
			if tc.errHas != "" && !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %q does not mention %q", err, tc.errHas)
			}
		})
	}
}

func TestCommitSizeBound(t *testing.T) {
	env := valid()
	env.Payload = []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	env.Recipients = []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}
	err := ValidateEnvelope(env, Limits{})
	var e *EnvelopeError
	if !errors.As(err, &e) || e.Reason != ReasonTooLarge {
		t.Fatalf("1 MiB to 9 recipients: %v", err)
	}
}

func TestSchemaName(t *testing.T) {
	if SchemaEnvelope != "courier.v1.Envelope" {
		t.Fatalf("SchemaEnvelope = %q", SchemaEnvelope)
	}
}
