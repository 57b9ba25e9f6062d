package procs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/testenv"
)

// RenewFirestore restarts the bench's own Firestore emulator on the same
// port: the documents are gone, the warm-up ran on the new process, and
// the CPU meter follows the new process group.
func TestRenewFirestoreRestartsOnTheSamePort(t *testing.T) {
	if os.Getenv("FIRESTORE_EMULATOR_HOST") == "" && os.Getenv("COURIER_REQUIRE_EMULATORS") != "1" {
		t.Skip("no emulators here (FIRESTORE_EMULATOR_HOST unset): run `make test`")
	}
	repo, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	e, err := StartEmulators(repo, t.TempDir(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Setenv("FIRESTORE_EMULATOR_HOST", e.FirestoreHost)
	ctx := testenv.Context(t, 3*time.Minute)
	project := testenv.Project(t)
	fs := testenv.Firestore(t, project)
	if _, err := fs.Collection("messages").Doc("m1").Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	group := e.Meter.FirestoreGroup
	warmed := ""
	if err := e.RenewFirestore(ctx, func(ctx context.Context, p string) error {
		warmed = p
		c := testenv.Firestore(t, p)
		_, err := c.Collection("warm").Doc("w").Set(ctx, map[string]any{"n": 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if warmed == "" {
		t.Error("the warm-up did not run")
	}
	if e.Meter.FirestoreGroup == group || e.Meter.FirestoreGroup == 0 {
		t.Errorf("meter group %d after the restart (was %d)", e.Meter.FirestoreGroup, group)
	}
	fs = testenv.Firestore(t, project)
	if got := testenv.CountDocuments(t, fs, "messages"); got != 0 {
		t.Errorf("%d documents survived the restart", got)
	}
	if got := testenv.CountDocuments(t, testenv.Firestore(t, warmed), "warm"); got != 0 {
		t.Errorf("%d warm-up documents left", got)
	}
}
