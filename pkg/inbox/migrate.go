package inbox

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// legacyAcksField is the map messages/{id}.delivered (recipient → time)
// in which acks were kept before messages/{id}/deliveries. Nothing reads
// or writes it any more; MigrateLegacyAcks moves what is left of it.
const legacyAcksField = "delivered"

// migrateChunk bounds the ack documents one migration transaction reads
// and writes, well within a Firestore commit's limits.
const migrateChunk = 250

// Migration is what MigrateLegacyAcks did.
type Migration struct {
	Messages int // messages that had the old map and lost it
	Written  int // deliveries documents created from it
	Kept     int // acks already in deliveries (left as they were)
}

// migrateScanPage is how many messages one read of the scan returns (a
// variable so a test can make the scan take several pages).
var migrateScanPage = 500

// MigrateLegacyAcks moves every ack kept the old way to the current
// layout: for each message with a "delivered" map it creates
// messages/{id}/deliveries/{user} {delivered_at: the map's time} for each
// user without one (a newer ack is kept), then deletes the map. It is
// idempotent: a run interrupted anywhere is finished by the next, and a
// run with nothing left to move writes nothing. progress, when not nil, is
// called after each migrated message.
//
// It scans every message by document id, reading only the map: the field
// is exempt from indexing (docs/firestore.indexes.json), so no query can
// find the messages that have it. One read per stored message, once.
func (s *Store) MigrateLegacyAcks(ctx context.Context, progress func(id string, written, kept int)) (Migration, error) {
	var m Migration
	q := s.fs.Collection(MessagesCollection).Select(legacyAcksField).OrderBy(firestore.DocumentID, firestore.Asc).Limit(migrateScanPage)
	page := q
	for {
		snaps, err := page.Documents(ctx).GetAll()
		if err != nil {
			return m, fmt.Errorf("scan messages for legacy acks: %w", err)
		}
		for _, snap := range snaps {
			if _, ok := snap.Data()[legacyAcksField]; !ok {
				continue
			}
			written, kept, err := s.migrateMessage(ctx, snap)
			if err != nil {
				return m, err
			}
			m.Messages++
			m.Written += written
			m.Kept += kept
			if progress != nil {
				progress(snap.Ref.ID, written, kept)
			}
		}
		if len(snaps) < migrateScanPage {
			return m, nil
		}
		page = q.StartAfter(snaps[len(snaps)-1].Ref.ID)
	}
}

func (s *Store) migrateMessage(ctx context.Context, snap *firestore.DocumentSnapshot) (written, kept int, err error) {
	var doc struct {
		Delivered map[string]time.Time `firestore:"delivered"`
	}
	if err := snap.DataTo(&doc); err != nil {
		return 0, 0, fmt.Errorf("decode legacy acks of message %s: %w", snap.Ref.ID, err)
	}
	users := slices.Sorted(maps.Keys(doc.Delivered))
	for chunk := range slices.Chunk(users, migrateChunk) {
		var w int
		err := s.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			w = 0
			refs := make([]*firestore.DocumentRef, len(chunk))
			for i, u := range chunk {
				refs[i] = snap.Ref.Collection(DeliveriesCollection).Doc(u)
			}
			acks, err := tx.GetAll(refs)
			if err != nil {
				return err
			}
			for i, a := range acks {
				if a.Exists() {
					continue
				}
				if err := tx.Create(refs[i], deliveryDoc{DeliveredAt: doc.Delivered[chunk[i]].UTC()}); err != nil {
					return err
				}
				w++
			}
			return nil
		})
		if err != nil {
			return written, kept, fmt.Errorf("migrate legacy acks of message %s: %w", snap.Ref.ID, err)
		}
		written += w
		kept += len(chunk) - w
	}
	// Only once every ack has its document does the map go, so an
	// interrupted run loses nothing. Update needs the message to exist: one
	// deleted meanwhile stays deleted, and has nothing left to migrate.
	_, err = snap.Ref.Update(ctx, []firestore.Update{{Path: legacyAcksField, Value: firestore.Delete}})
	if err != nil && status.Code(err) != codes.NotFound {
		return written, kept, fmt.Errorf("drop legacy acks map of message %s: %w", snap.Ref.ID, err)
	}
	return written, kept, nil
}
