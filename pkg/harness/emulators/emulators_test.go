package emulators

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

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
	if got := testenv.CountDocuments(t, fs, "entries"); got != n {
		t.Fatalf("%d entries written, want %d", got, n)
	}

	e := &Pair{FirestoreHost: os.Getenv("FIRESTORE_EMULATOR_HOST")}
	start := time.Now()
	if err := e.ResetFirestore(ctx, project); err != nil {
		t.Fatal(err)
	}
	t.Logf("reset of %d documents took %s", n, time.Since(start).Round(time.Millisecond))
	for _, group := range []string{"entries", "messages", "inbox"} {
		if got := testenv.CountDocuments(t, fs, group); got != 0 {
			t.Errorf("%d %s documents left after the reset", got, group)
		}
	}
	if got := testenv.CountDocuments(t, fo, "messages"); got != 1 {
		t.Errorf("the other project has %d documents, want its 1", got)
	}
}

// The pair's clients reach its emulators with the process environment
// naming none (as in the benchmark, which never os.Setenvs the hosts).
func TestClientsNeedNoEnvironment(t *testing.T) {
	ps0, fs0 := os.Getenv("PUBSUB_EMULATOR_HOST"), os.Getenv("FIRESTORE_EMULATOR_HOST")
	testenv.Firestore(t, testenv.Project(t)) // skips or fails without emulators, as every emulator test
	p := &Pair{PubSubHost: ps0, FirestoreHost: fs0}
	t.Setenv("PUBSUB_EMULATOR_HOST", "")
	t.Setenv("FIRESTORE_EMULATOR_HOST", "")
	ctx := testenv.Context(t, time.Minute)
	project := testenv.Project(t)
	fs, err := p.Firestore(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if _, err := fs.Collection("c").Doc("d").Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := testenv.CountDocuments(t, fs, "c"); got != 1 {
		t.Fatalf("%d documents read back, want 1", got)
	}
	ps, err := p.PubSub(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + project + "/topics/courier-test"}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
}
