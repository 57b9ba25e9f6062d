package main

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// docs/firestore.indexes.json is what production deploys; it must stay
// valid, declare the conversation queries' composite indexes (see
// docs/firestore.md) and exempt only fields that exist and are never queried.
func TestFirestoreIndexesFile(t *testing.T) {
	raw, err := os.ReadFile("../../docs/firestore.indexes.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Indexes        []json.RawMessage `json:"indexes"`
		FieldOverrides []struct {
			CollectionGroup string            `json:"collectionGroup"`
			FieldPath       string            `json:"fieldPath"`
			Indexes         []json.RawMessage `json:"indexes"`
		} `json:"fieldOverrides"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	// The conversation queries (pkg/inbox conversations.go): a page either
	// way and the unread count.
	if len(f.Indexes) != 3 {
		t.Errorf("indexes = %d, want the 3 composite indexes of the conversation queries", len(f.Indexes))
	}
	// Fields of pkg/inbox's documents that no query filters or orders on.
	unqueried := map[string][]string{
		"messages":      {"payload", "to", "seqs", "delivered", "sent_at", "stored_at"},
		"inbox":         {"payload", "to", "sent_at", "stored_at", "expire_at"},
		"conversations": {"updated_at"},
	}
	for _, o := range f.FieldOverrides {
		if !slices.Contains(unqueried[o.CollectionGroup], o.FieldPath) {
			t.Errorf("override of %s.%s: not a known unqueried field", o.CollectionGroup, o.FieldPath)
		}
		if o.Indexes == nil || len(o.Indexes) != 0 {
			t.Errorf("override of %s.%s should disable indexing (indexes: [])", o.CollectionGroup, o.FieldPath)
		}
	}
}
