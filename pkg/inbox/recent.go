package inbox

import (
	"context"
	"fmt"
	"slices"

	"cloud.google.com/go/firestore"
)

// Party is who took part in one message of a user's inbox: its sender and
// its shown recipients (empty for a send to more than
// MaxListedRecipients users), and its conversation ("" on messages stored
// before conversations: the derived one of From and To).
type Party struct {
	From           string
	To             []string
	ConversationID string
}

type partyDoc struct {
	From           string   `firestore:"from"`
	To             []string `firestore:"to"`
	ConversationID string   `firestore:"conversation_id"`
}

// RecentParties returns who took part in the last limit messages of user's
// inbox, newest first, reading only those fields (never the payloads):
// pkg/peers' view of a user's recent conversations, whatever their ids.
func (s *Store) RecentParties(ctx context.Context, user string, limit int) ([]Party, error) {
	docs, err := s.fs.Collection(UsersCollection).Doc(user).Collection(InboxCollection).
		Select("from", "to", "conversation_id").OrderBy("seq", firestore.Desc).Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("read recent inbox of %s: %w", user, err)
	}
	out := make([]Party, 0, len(docs))
	for _, d := range docs {
		var p partyDoc
		if err := d.DataTo(&p); err != nil {
			return nil, fmt.Errorf("decode inbox entry %s: %w", d.Ref.Path, err)
		}
		out = append(out, Party(p))
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
		Select("from", "to", "conversation_id").Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("read messages sent by %s: %w", user, err)
	}
	out := make([]Party, 0, len(docs))
	for _, d := range docs {
		var p partyDoc
		if err := d.DataTo(&p); err != nil {
			return nil, fmt.Errorf("decode message %s: %w", d.Ref.ID, err)
		}
		if len(p.To) > MaxListedRecipients {
			p.To = nil // a broadcast shares a conversation with nobody
		}
		out = append(out, Party(p))
	}
	return out, nil
}

// ConversationsExist reports, for each of ids, whether user has the
// conversation's summary (users/{uid}/conversations/{id}): the worker
// writes it with the conversation's first message, so it says "user is in
// this conversation" however old the conversation is. One batched read.
func (s *Store) ConversationsExist(ctx context.Context, user string, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	refs := make([]*firestore.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = s.summaryRef(user, id)
	}
	snaps, err := s.fs.GetAll(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("read conversation summaries of %s: %w", user, err)
	}
	for i, snap := range snaps {
		out[ids[i]] = snap.Exists()
	}
	return out, nil
}

// ConversationMembers returns the members of conv (sorted, distinct) as
// its newest entry in user's inbox names them: the sender and the
// recipients, read from the stored message when the entry does not list
// them (a send over MaxListedRecipients). nil when user's inbox holds no
// entry of conv: user is not in it (or everything of it expired).
func (s *Store) ConversationMembers(ctx context.Context, user, conv string) ([]string, error) {
	docs, err := s.conversationQuery(user, conv).Select("message_id", "from", "to", "to_count").
		OrderBy("seq", firestore.Desc).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("read the newest entry of %s in the inbox of %s: %w", conv, user, err)
	}
	if len(docs) == 0 {
		return nil, nil
	}
	var e struct {
		MessageID string   `firestore:"message_id"`
		From      string   `firestore:"from"`
		To        []string `firestore:"to"`
		ToCount   int      `firestore:"to_count"`
	}
	if err := docs[0].DataTo(&e); err != nil {
		return nil, fmt.Errorf("decode inbox entry %s: %w", docs[0].Ref.Path, err)
	}
	to := e.To
	if e.ToCount > len(e.To) {
		snap, err := s.fs.Collection(MessagesCollection).Doc(e.MessageID).Get(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the recipients of message %s: %w", e.MessageID, err)
		}
		var m struct {
			To []string `firestore:"to"`
		}
		if err := snap.DataTo(&m); err != nil {
			return nil, fmt.Errorf("decode message %s: %w", e.MessageID, err)
		}
		to = m.To
	}
	members := append([]string{e.From}, to...)
	slices.Sort(members)
	return slices.Compact(members), nil
}
