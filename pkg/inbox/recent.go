package inbox

import (
	"context"
	"fmt"

	"cloud.google.com/go/firestore"
)

// Party is who took part in one message of a user's inbox: its sender and
// its shown recipients (empty for a send to more than
// MaxListedRecipients users).
type Party struct {
	From string
	To   []string
}

// RecentParties returns who took part in the last limit messages of user's
// inbox, newest first, reading only those fields (never the payloads). It
// answers "whom does user share a conversation with" until conversations
// are stored on their own (pkg/peers).
func (s *Store) RecentParties(ctx context.Context, user string, limit int) ([]Party, error) {
	docs, err := s.fs.Collection(UsersCollection).Doc(user).Collection(InboxCollection).
		Select("from", "to").OrderBy("seq", firestore.Desc).Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("read recent inbox of %s: %w", user, err)
	}
	out := make([]Party, 0, len(docs))
	for _, d := range docs {
		var p struct {
			From string   `firestore:"from"`
			To   []string `firestore:"to"`
		}
		if err := d.DataTo(&p); err != nil {
			return nil, fmt.Errorf("decode inbox entry %s: %w", d.Ref.Path, err)
		}
		out = append(out, Party{From: p.From, To: p.To})
	}
	return out, nil
}

// SentParties returns who took part in up to limit messages user sent (in
// no particular order: the query needs only Firestore's automatic
// single-field index), reading only those fields. A sender's own messages
// are not in their inbox, so without it a user would share a conversation
// with someone only once that someone had written back.
func (s *Store) SentParties(ctx context.Context, user string, limit int) ([]Party, error) {
	docs, err := s.fs.Collection(MessagesCollection).Where("from", "==", user).
		Select("from", "to").Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("read messages sent by %s: %w", user, err)
	}
	out := make([]Party, 0, len(docs))
	for _, d := range docs {
		var p struct {
			From string   `firestore:"from"`
			To   []string `firestore:"to"`
		}
		if err := d.DataTo(&p); err != nil {
			return nil, fmt.Errorf("decode message %s: %w", d.Ref.ID, err)
		}
		if len(p.To) > MaxListedRecipients {
			p.To = nil // a broadcast shares a conversation with nobody
		}
		out = append(out, Party{From: p.From, To: p.To})
	}
	return out, nil
}
