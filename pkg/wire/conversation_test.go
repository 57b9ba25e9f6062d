package wire

import (
	"errors"
	"testing"
)

// TestDeriveConversationIDVector is the vector the JS client's test checks
// too (clients/js): keep them equal.
func TestDeriveConversationIDVector(t *testing.T) {
	got := DeriveConversationID([]string{"alice", "bob"})
	t.Logf("members [alice bob] → %s", got)
	if want := "d.1cb15457d1ddab60e205c0fe3ca2f65d"; got != want {
		t.Fatalf("DeriveConversationID(alice, bob) = %q, want %q", got, want)
	}
	for _, members := range [][]string{{"bob", "alice"}, {"alice", "bob", "alice"}, {"bob", "bob", "alice"}} {
		if g := DeriveConversationID(members); g != got {
			t.Errorf("DeriveConversationID(%v) = %q, want %q (order and repeats do not matter)", members, g, got)
		}
	}
	if g := DeriveConversationID([]string{"alice", "bob", "carol"}); g == got {
		t.Errorf("a third member must change the id")
	}
}

func TestValidateConversationID(t *testing.T) {
	for _, tc := range []struct {
		id       string
		named    bool
		wantErr  bool
		reserved bool
	}{
		{"team-1", true, false, false},
		{"a:b@c+d=e.f_g", true, false, false},
		{"d.abc", true, true, true},
		{"d.abc", false, false, false},
		{"", true, true, false},
		{"a/b", true, true, false},
		{"__x__", true, true, false},
		{string(make([]byte, 129)), true, true, false},
	} {
		err := ValidateConversationID(tc.id, tc.named)
		if (err != nil) != tc.wantErr {
			t.Errorf("ValidateConversationID(%q, %v) = %v, want error %v", tc.id, tc.named, err, tc.wantErr)
		}
		if errors.Is(err, ErrReservedConversation) != tc.reserved {
			t.Errorf("ValidateConversationID(%q, %v) = %v, reserved want %v", tc.id, tc.named, err, tc.reserved)
		}
	}
}
