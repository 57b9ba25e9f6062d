package inbox_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/courierhq/courier/pkg/inbox"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user-%04d", i)
	}
	return out
}

func TestShownRecipientRule(t *testing.T) {
	for _, tc := range []struct {
		name      string
		m         *courierv1.Message
		wantTo    int
		wantCount int32
	}{
		{"one", &courierv1.Message{To: users(1)}, 1, 1},
		{"at the limit", &courierv1.Message{To: users(inbox.MaxListedRecipients)}, inbox.MaxListedRecipients, inbox.MaxListedRecipients},
		{"one over", &courierv1.Message{To: users(inbox.MaxListedRecipients + 1)}, 0, inbox.MaxListedRecipients + 1},
		{"a thousand", &courierv1.Message{To: users(1000)}, 0, 1000},
		{"already shown", &courierv1.Message{ToCount: 1000}, 0, 1000},
		{"stored small entry", &courierv1.Message{To: users(3), ToCount: 3}, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.m.To)
			got := inbox.Shown(tc.m)
			if len(got.To) != tc.wantTo || got.ToCount != tc.wantCount {
				t.Fatalf("to %d count %d, want %d and %d", len(got.To), got.ToCount, tc.wantTo, tc.wantCount)
			}
			if !slices.Equal(tc.m.To, before) {
				t.Fatal("Shown changed its argument")
			}
		})
	}
}

// A frame of a large send stays small whatever the number of recipients.
func TestWireSizeBoundedByRule(t *testing.T) {
	size := func(n int) int {
		b, err := json.Marshal(inbox.ToWire(&courierv1.Message{Id: "m", From: "alice", To: users(n), Payload: []byte(`{}`)}))
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	if small, big := size(inbox.MaxListedRecipients+1), size(100000); big-small > 8 {
		t.Fatalf("wire size grows with recipients: %d bytes at %d, %d at 100000", small, inbox.MaxListedRecipients+1, big)
	}
	var w map[string]any
	b, _ := json.Marshal(inbox.ToWire(&courierv1.Message{Id: "m", To: users(2), Payload: []byte(`1`)}))
	_ = json.Unmarshal(b, &w)
	if w["to_count"] != 2.0 || len(w["to"].([]any)) != 2 {
		t.Fatalf("small send: %s", b)
	}
}
