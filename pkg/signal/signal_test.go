package signal_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/signal"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in, code string
		want           signal.Request
	}{
		{"ws to", `{"type":"signal","to":["bob","alice","bob"],"kind":"typing"}`, "", signal.Request{To: []string{"alice", "bob"}, Kind: "typing"}},
		{"ws conversation with data", `{"type":"signal","conversation":"d.1","kind":"typing","data":{ "a" : 1 }}`, "",
			signal.Request{Conversation: "d.1", Kind: "typing", Data: []byte(`{"a":1}`)}},
		{"rest conversation_id", `{"conversation_id":"c1","kind":"x.y-z_1"}`, "", signal.Request{Conversation: "c1", Kind: "x.y-z_1"}},
		{"null data", `{"to":["bob"],"kind":"typing","data":null}`, "", signal.Request{To: []string{"bob"}, Kind: "typing"}},
		{"too large", `{"to":["bob"],"kind":"typing","data":"` + strings.Repeat("a", 1024) + `"}`, signal.CodeTooLarge, signal.Request{}},
		{"not json", `nope`, signal.CodeBad, signal.Request{}},
		{"other type", `{"type":"ack","to":["bob"],"kind":"typing"}`, signal.CodeBad, signal.Request{}},
		{"no kind", `{"to":["bob"]}`, signal.CodeBad, signal.Request{}},
		{"bad kind", `{"to":["bob"],"kind":"Typing"}`, signal.CodeBad, signal.Request{}},
		{"long kind", `{"to":["bob"],"kind":"` + strings.Repeat("a", 33) + `"}`, signal.CodeBad, signal.Request{}},
		{"no recipients", `{"kind":"typing"}`, signal.CodeBad, signal.Request{}},
		{"both", `{"to":["bob"],"conversation":"c","kind":"typing"}`, signal.CodeBad, signal.Request{}},
		{"conversation differs", `{"conversation":"a","conversation_id":"b","kind":"typing"}`, signal.CodeBad, signal.Request{}},
		{"bad user", `{"to":["a/b"],"kind":"typing"}`, signal.CodeBad, signal.Request{}},
		{"bad conversation", `{"conversation":"a/b","kind":"typing"}`, signal.CodeBad, signal.Request{}},
		{"too many", `{"to":["u` + strings.Repeat(`","u`, 100) + `"],"kind":"t"}`, signal.CodeBad, signal.Request{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := signal.Parse([]byte(tc.in))
			if tc.code != "" {
				var se *signal.Error
				if !errors.As(err, &se) || se.Code != tc.code {
					t.Fatalf("err %v, want code %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.To, ",") != strings.Join(tc.want.To, ",") || got.Conversation != tc.want.Conversation ||
				got.Kind != tc.want.Kind || string(got.Data) != string(tc.want.Data) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

type pubFunc func(users []string, kind string, frame []byte) bool

func (f pubFunc) Publish(_ context.Context, users []string, kind string, frame []byte) bool {
	return f(users, kind, frame)
}

type convs map[string][]string

func (c convs) Members(_ context.Context, user, id string) ([]string, error) {
	m, ok := c[id]
	if !ok || !strings.Contains(","+strings.Join(m, ",")+",", ","+user+",") {
		return nil, signal.ErrNotMember
	}
	return m, nil
}

func TestSendReachesTheConversationButTheSender(t *testing.T) {
	var gotUsers []string
	var gotFrame string
	s := signal.NewSender(pubFunc(func(users []string, kind string, frame []byte) bool {
		gotUsers, gotFrame = users, string(frame)
		return kind == "signal"
	}), convs{"c1": {"alice", "bob", "carol"}})
	r, err := signal.Parse([]byte(`{"type":"signal","conversation":"c1","kind":"typing","data":{"on":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), "alice", r); err != nil {
		t.Fatal(err)
	}
	if strings.Join(gotUsers, ",") != "bob,carol" {
		t.Fatalf("users %v", gotUsers)
	}
	if !strings.HasPrefix(gotFrame, `{"type":"signal","from":"alice","conversation":"c1","kind":"typing","data":{"on":true},"sent_at":"`) {
		t.Fatalf("frame %s", gotFrame)
	}
	var se *signal.Error
	if err := s.Send(context.Background(), "dave", r); !errors.As(err, &se) || se.Code != signal.CodeBad {
		t.Fatalf("a non-member's signal: %v", err)
	}
	full := signal.NewSender(pubFunc(func([]string, string, []byte) bool { return false }), convs{})
	if err := full.Send(context.Background(), "alice", signal.Request{To: []string{"bob"}, Kind: "typing"}); !errors.As(err, &se) || se.Code != signal.CodeUnavailable {
		t.Fatalf("a dropped signal: %v", err)
	}
}

func TestFrameOmitsWhatIsAbsent(t *testing.T) {
	got := string(signal.Frame("alice", signal.Request{To: []string{"bob"}, Kind: "typing"}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	if got != `{"type":"signal","from":"alice","kind":"typing","sent_at":"2026-01-02T03:04:05Z"}` {
		t.Fatal(got)
	}
}
