package deadletter

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/pkg/pubsubx"
)

func TestMessageCarriesOriginalAndReason(t *testing.T) {
	w := New(nil, "courier-ingress-worker")
	orig := &pubsub.Message{
		ID: "42", Data: []byte("data"), OrderingKey: "alice",
		Attributes: map[string]string{
			pubsubx.AttrMessageID: "m1", pubsubx.AttrSender: "alice",
			"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		},
	}
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := w.Message(orig, Letter{Reason: "invalid", Err: errors.New("no recipients"), Attempt: 3, FirstFailure: first})
	want := map[string]string{
		pubsubx.AttrMessageID:          "m1",
		pubsubx.AttrSender:             "alice",
		"traceparent":                  orig.Attributes["traceparent"],
		pubsubx.AttrDeadLetterReason:   "invalid",
		pubsubx.AttrDeadLetterError:    "no recipients",
		pubsubx.AttrSourceSubscription: "courier-ingress-worker",
		pubsubx.AttrDeliveryAttempt:    "3",
		pubsubx.AttrFirstFailureTime:   "2026-01-02T03:04:05Z",
		pubsubx.AttrOrderingKey:        "alice",
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
	if _, ok := orig.Attributes[pubsubx.AttrDeadLetterReason]; ok {
		t.Error("the original message's attributes were modified")
	}
}

func TestErrorIsTruncatedToAttributeLimit(t *testing.T) {
	w := New(nil, "s")
	long := strings.Repeat("é", 2000)
	got := w.Message(&pubsub.Message{}, Letter{Reason: "x", Err: errors.New(long)}).Attributes[pubsubx.AttrDeadLetterError]
	if len(got) > maxAttrValue || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("truncated error: %d bytes, valid=%v", len(got), utf8.ValidString(got))
	}
}

func TestSendReportsPublishFailure(t *testing.T) {
	var sent *pubsub.Message
	ok := New(func(_ context.Context, msg *pubsub.Message, id string) error { sent = msg; return nil }, "s")
	if err := ok.Send(context.Background(), &pubsub.Message{ID: "1"}, Letter{Reason: "invalid"}); err != nil || sent == nil {
		t.Fatalf("send: %v", err)
	}
	failing := New(func(context.Context, *pubsub.Message, string) error { return errors.New("down") }, "s")
	if err := failing.Send(context.Background(), &pubsub.Message{ID: "1"}, Letter{Reason: "invalid"}); err == nil {
		t.Fatal("publish failure not reported")
	}
}
