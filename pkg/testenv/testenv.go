// Package testenv is what tests of every module share: clients of the
// Pub/Sub and Firestore emulators, waiting on conditions (Eventually,
// WaitFor), a log sink for concurrent writers (LogBuffer) and a span
// recorder installed as the global tracer provider (RecordSpans). Only
// tests import it (TestOnlyTestsImportTheKit).
//
// Each emulator test gets its own randomly named project, so tests never
// see each other's topics or documents and need no cleanup between runs.
// Without PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST a test is skipped
// with a message, unless COURIER_REQUIRE_EMULATORS=1 (set by `make test`),
// in which case it fails: the suite never passes by skipping.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/iterator"

	"github.com/courierhq/courier/pkg/topology"
)

func require(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("COURIER_REQUIRE_EMULATORS") == "1" {
			t.Fatalf("%s is not set but COURIER_REQUIRE_EMULATORS=1; run the tests with `make test`", name)
		}
		t.Skipf("%s not set: start the emulators (scripts/emulators.sh start) or run `make test`", name)
	}
	return v
}

// ID returns prefix plus a random hex suffix, for unique resource names.
func ID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Project returns a fresh project id for one test.
func Project(t testing.TB) string {
	t.Helper()
	return ID("test-")
}

// PubSub returns a client of the Pub/Sub emulator for project.
func PubSub(t testing.TB, project string) *pubsub.Client {
	t.Helper()
	require(t, "PUBSUB_EMULATOR_HOST")
	c, err := pubsub.NewClient(context.Background(), project)
	if err != nil {
		t.Fatalf("pubsub client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Topology applies project's topology (topology.Default, changed by adjust
// when it is not nil) on the Pub/Sub emulator and returns a client of the
// emulator for project and the applied configuration.
func Topology(t testing.TB, project string, adjust func(*topology.Config)) (*pubsub.Client, topology.Config) {
	t.Helper()
	client := PubSub(t, project)
	c := topology.Default(project)
	if adjust != nil {
		adjust(&c)
	}
	if _, err := topology.Apply(Context(t, time.Minute), client, c); err != nil {
		t.Fatalf("apply topology: %v", err)
	}
	return client, c
}

// Firestore returns a client of the Firestore emulator for project.
func Firestore(t testing.TB, project string) *firestore.Client {
	t.Helper()
	require(t, "FIRESTORE_EMULATOR_HOST")
	c, err := firestore.NewClient(context.Background(), project)
	if err != nil {
		t.Fatalf("firestore client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Context returns a context cancelled when the test ends or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Eventually polls cond every 20ms until it returns true or d passes, then
// fails the test with msg. For waiting on conditions, never on fixed sleeps.
func Eventually(t testing.TB, d time.Duration, msg string, cond func() bool) {
	t.Helper()
	WaitFor(t, d, 20*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errors.New(msg)
	})
}

// WaitFor polls check every interval until it returns nil or d passes, then
// fails the test with check's last error, which should say what was seen
// ("3 of 5 messages in hand"). The interval suits what check costs: a
// field read can be polled every millisecond, a process's metrics endpoint
// every few hundred.
func WaitFor(t testing.TB, d, interval time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", d, err)
		}
		time.Sleep(interval)
	}
}

// CountDocuments is the number of documents in every collection named
// group (a collection-group query), for tests that check what a reset or
// a cleanup left.
func CountDocuments(t testing.TB, fs *firestore.Client, group string) int {
	t.Helper()
	it := fs.CollectionGroup(group).Documents(Context(t, time.Minute))
	defer it.Stop()
	n := 0
	for {
		_, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}
