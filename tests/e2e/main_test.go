// Package e2e runs the real Courier binaries against private emulators and
// drives them only through their public interfaces: HTTP, WebSocket, gRPC,
// and Pub/Sub for injecting poison. docs/reliability.md maps each guarantee
// to the test here that proves it.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/courierhq/courier/tests/e2e/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := exec.LookPath("gcloud"); err != nil {
		if os.Getenv("COURIER_REQUIRE_EMULATORS") == "1" {
			fmt.Fprintln(os.Stderr, "e2e: gcloud not found but COURIER_REQUIRE_EMULATORS=1")
			return 1
		}
		fmt.Fprintln(os.Stderr, "e2e: skipped: gcloud (with the Pub/Sub and Firestore emulators) not found; run `make test`")
		return 0
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "courier-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := filepath.Join(tmp, "bin")
	if err := harness.Build(ctx, root, bin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	emu, err := harness.StartEmulators(root, filepath.Join(tmp, "emulators"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() {
		// Thaw first: a test that failed mid-freeze must not leave a stopped JVM.
		_ = emu.Freeze("pubsub", false)
		_ = emu.Freeze("firestore", false)
		if err := emu.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
	}()
	// The tests' own Pub/Sub clients (poison injection, dead-letter reads)
	// talk to the same private emulators.
	os.Setenv("PUBSUB_EMULATOR_HOST", emu.PubSubHost)
	os.Setenv("FIRESTORE_EMULATOR_HOST", emu.FirestoreHost)
	env = &harness.Env{Root: root, BinDir: bin, Emu: emu}
	return m.Run()
}
