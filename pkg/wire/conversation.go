package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/courierhq/courier/pkg/clip"
)

// DerivedConversationPrefix starts every conversation id Courier derives
// from a member set. Senders may not name such an id themselves
// (ValidateConversationID with named set), so a derived conversation only
// ever holds messages among exactly its members.
const DerivedConversationPrefix = "d."

// DeriveConversationID is the conversation of a send that names none:
// "d." + the first 32 lowercase hex digits of sha256 over the sorted,
// distinct members (sender and recipients) joined by "\n". A one-to-one chat
// has one id whichever side sends, and a client can compute it (the JS
// client does, with crypto.subtle; both test the same vector:
// ["alice","bob"] → d.1cb15457d1ddab60e205c0fe3ca2f65d, see
// conversation_test.go).
func DeriveConversationID(members []string) string {
	m := slices.Clone(members)
	slices.Sort(m)
	m = slices.Compact(m)
	sum := sha256.Sum256([]byte(strings.Join(m, "\n")))
	return DerivedConversationPrefix + hex.EncodeToString(sum[:])[:32]
}

// ConversationOf is the conversation of env: the one it names, or the one
// derived from its sender and recipients (envelopes published before
// conversations existed name none).
func ConversationOf(env interface {
	GetConversationId() string
	GetSender() string
	GetRecipients() []string
}) string {
	if c := env.GetConversationId(); c != "" {
		return c
	}
	return DeriveConversationID(append([]string{env.GetSender()}, env.GetRecipients()...))
}

// ErrReservedConversation is returned for a named conversation id in the
// derived ids' namespace.
var ErrReservedConversation = errors.New("conversation ids starting with \"d.\" are reserved for derived conversations")

// ValidateConversationID checks a conversation id: the message id rule
// (1–128 of [A-Za-z0-9._:@+=-], a safe Firestore document id). With named
// set (a sender naming the conversation) the derived prefix is refused too.
func ValidateConversationID(id string, named bool) error {
	if !ValidMessageID(id) {
		return fmt.Errorf("conversation id %q: want 1-128 characters of [A-Za-z0-9._:@+=-]", clip.Text(id, 40))
	}
	if named && strings.HasPrefix(id, DerivedConversationPrefix) {
		return ErrReservedConversation
	}
	return nil
}
