package procs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"

	"github.com/courierhq/courier/pkg/testenv"
)

// ResetFirestore leaves the project without a document, nested ones
// included (an inbox entry lives under its user's document), and leaves
// other projects alone. BENCH_RESET_DOCS sets how many documents are
// written first (default 3,000), to time a reset of a round's worth.
func TestResetFirestoreEmptiesTheProject(t *testing.T) {
	project, other := testenv.Project(t), testenv.Project(t)
	fs, fo := testenv.Firestore(t, project), testenv.Firestore(t, other)
	ctx := testenv.Context(t, 5*time.Minute)
	n := 3000
	if v, err := strconv.Atoi(os.Getenv("BENCH_RESET_DOCS")); err == nil && v > 0 {
		n = v
	}
	bw := fs.BulkWriter(ctx)
	for i := range n {
		user := fmt.Sprintf("u%03d", i%100)
		ref := fs.Collection("inbox").Doc(user).Collection("entries").Doc(fmt.Sprintf("%08d", i))
		if _, err := bw.Set(ref, map[string]any{"seq": i, "payload": "x"}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if _, err := bw.Set(fs.Collection("messages").Doc(fmt.Sprint(i)), map[string]any{"n": i}); err != nil {
				t.Fatal(err)
			}
		}
	}
	bw.End()
	if _, err := fo.Collection("messages").Doc("kept").Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if got := count(t, fs, "entries"); got != n {
		t.Fatalf("%d entries written, want %d", got, n)
	}

	e := &Emulators{FirestoreHost: os.Getenv("FIRESTORE_EMULATOR_HOST")}
	start := time.Now()
	if err := e.ResetFirestore(ctx, project); err != nil {
		t.Fatal(err)
	}
	t.Logf("reset of %d documents took %s", n, time.Since(start).Round(time.Millisecond))
	for _, group := range []string{"entries", "messages", "inbox"} {
		if got := count(t, fs, group); got != 0 {
			t.Errorf("%d %s documents left after the reset", got, group)
		}
	}
	if got := count(t, fo, "messages"); got != 1 {
		t.Errorf("the other project has %d documents, want its 1", got)
	}
}

// count is the number of documents in every collection named group.
func count(t *testing.T, fs *firestore.Client, group string) int {
	t.Helper()
	it := fs.CollectionGroup(group).Documents(testenv.Context(t, time.Minute))
	defer it.Stop()
	n := 0
	for {
		_, err := it.Next()
		if err == iterator.Done {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}

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
	if got := count(t, fs, "messages"); got != 0 {
		t.Errorf("%d documents survived the restart", got)
	}
	if got := count(t, testenv.Firestore(t, warmed), "warm"); got != 0 {
		t.Errorf("%d warm-up documents left", got)
	}
}
