package wire

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
)

func TestMessageCarriesOriginalAndReason(t *testing.T) {
	orig := &pubsub.Message{
		ID: "42", Data: []byte("data"), OrderingKey: "alice",
		Attributes: map[string]string{
			AttrMessageID: "m1", AttrSender: "alice",
			"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		},
	}
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := EncodeDeadLetter(orig, Letter{Reason: "invalid", Err: errors.New("no recipients"), Subscription: "courier-ingress-worker", Attempt: 3, FirstFailure: first})
	want := map[string]string{
		AttrMessageID:          "m1",
		AttrSender:             "alice",
		"traceparent":          orig.Attributes["traceparent"],
		AttrDeadLetterReason:   "invalid",
		AttrDeadLetterError:    "no recipients",
		AttrSourceSubscription: "courier-ingress-worker",
		AttrDeliveryAttempt:    "3",
		AttrFirstFailureTime:   "2026-01-02T03:04:05Z",
		AttrOrderingKey:        "alice",
	}
	for k, v := range want {
		if got.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, got.Attributes[k], v)
		}
	}
	if len(got.Attributes) != len(want) {
		t.Errorf("attributes = %v", got.Attributes)
	}
	if string(got.Data) != "data" || got.OrderingKey != "" {
		t.Errorf("data %q ordering key %q", got.Data, got.OrderingKey)
	}
	if _, ok := orig.Attributes[AttrDeadLetterReason]; ok {
		t.Error("the original message's attributes were modified")
	}
}

func TestErrorIsTruncatedToAttributeLimit(t *testing.T) {
	long := strings.Repeat("é", 2000)
	got := EncodeDeadLetter(&pubsub.Message{}, Letter{Reason: "x", Err: errors.New(long), Subscription: "s"}).Attributes[AttrDeadLetterError]
	if len(got) > MaxAttrValue || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("truncated error: %d bytes, valid=%v", len(got), utf8.ValidString(got))
	}
}
