package harness

import "github.com/courierhq/courier/pkg/harness/emulators"

// Emulators are a private Pub/Sub + Firestore emulator pair
// (pkg/harness/emulators, shared with the benchmark), so fault tests can
// restart or freeze them without touching anyone else's.
type Emulators = emulators.Pair

// StartEmulators starts the pair on free ports, recording them in dir.
func StartEmulators(repoRoot, dir string) (*Emulators, error) {
	return emulators.Start(repoRoot, dir, 0, 0)
}
