package wire

import (
	"regexp"
	"strings"
)

// messageIDPattern accepts the ids the gateway makes (and any id that is a
// safe Firestore document id: no "/", bounded length).
var messageIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:@+=-]{1,128}$`)

// ValidMessageID reports whether id is a message id Courier accepts: the one
// rule the worker applies to envelopes, the gateway to lookups and the edge to
// acks, so that no service passes on an id another refuses (Firestore
// reserves "." and "..", and ids of the form __x__).
func ValidMessageID(id string) bool {
	return messageIDPattern.MatchString(id) && id != "." && id != ".." &&
		!(strings.HasPrefix(id, "__") && strings.HasSuffix(id, "__"))
}
