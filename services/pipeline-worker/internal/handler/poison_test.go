package handler

import (
	"context"
	"errors"
	"testing"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/pkg/wire"
)

func TestSendReportsPublishFailure(t *testing.T) {
	var sent *pubsub.Message
	ok := NewDeadLetters(func(_ context.Context, msg *pubsub.Message, id string) error { sent = msg; return nil }, "s")
	if err := ok.Send(context.Background(), &pubsub.Message{ID: "1"}, wire.Letter{Reason: "invalid"}); err != nil || sent == nil {
		t.Fatalf("send: %v", err)
	}
	if sent.Attributes[wire.AttrSourceSubscription] != "s" || sent.Attributes[wire.AttrDeadLetterReason] != "invalid" {
		t.Fatalf("the letter does not name its source and reason: %v", sent.Attributes)
	}
	failing := NewDeadLetters(func(context.Context, *pubsub.Message, string) error { return errors.New("down") }, "s")
	if err := failing.Send(context.Background(), &pubsub.Message{ID: "1"}, wire.Letter{Reason: "invalid"}); err == nil {
		t.Fatal("publish failure not reported")
	}
}
