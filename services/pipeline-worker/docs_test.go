package main

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// docs/firestore.indexes.json is what production deploys; it must stay
// valid, declare no composite index (the inbox query needs none, see
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
	if f.Indexes == nil || len(f.Indexes) != 0 {
		t.Errorf("indexes = %v, want an empty list", f.Indexes)
	}
	// Fields of pkg/inbox's documents that no query filters or orders on.
	unqueried := map[string][]string{
		"messages": {"payload", "to", "seqs", "delivered", "sent_at", "stored_at"},
		"inbox":    {"payload", "to", "sent_at", "stored_at"},
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
