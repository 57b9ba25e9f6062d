package procs

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Saturated is the busy fraction of all cores from which a step measures
// the machine rather than the system under test.
const Saturated = 0.9

// Usage is where the CPU went during one step, besides the measured
// services (reported per service by the phases themselves).
type Usage struct {
	// LoadClient is this process (the benchmark's clients) in cores.
	LoadClient float64 `json:"load_client_cores"`
	// PubSub and Firestore are the emulators' JVMs in cores (their whole
	// process groups).
	PubSub    float64 `json:"pubsub_emulator_cores"`
	Firestore float64 `json:"firestore_emulator_cores"`
	// Busy is the machine's busy cores (every process, /proc/stat), and
	// BusyFraction that over all cores; Saturated is BusyFraction ≥ 0.9.
	Busy         float64 `json:"machine_busy_cores"`
	BusyFraction float64 `json:"machine_busy_fraction"`
	Saturated    bool    `json:"saturated,omitempty"`
}

// Mark is a reading at the start of a step.
type Mark struct {
	at                  time.Time
	self, ps, fs        float64
	busyTicks, allTicks float64
	psGroup, fsGroup    int
}

// Meter reads Usage. The zero Meter measures only the load client and
// the machine.
type Meter struct {
	PubSubGroup, FirestoreGroup int // process groups of the emulators (0 = unknown)
}

// Start takes the step's first reading.
func (m Meter) Start() Mark {
	k := Mark{at: time.Now(), psGroup: m.PubSubGroup, fsGroup: m.FirestoreGroup}
	k.self, _ = CPUSeconds(os.Getpid())
	k.ps, k.fs = GroupCPUSeconds(m.PubSubGroup), GroupCPUSeconds(m.FirestoreGroup)
	k.busyTicks, k.allTicks = machineTicks()
	return k
}

// Stop reads the usage since k.
func (k Mark) Stop() Usage {
	d := time.Since(k.at).Seconds()
	if d <= 0 {
		return Usage{}
	}
	self, _ := CPUSeconds(os.Getpid())
	u := Usage{LoadClient: (self - k.self) / d,
		PubSub: (GroupCPUSeconds(k.psGroup) - k.ps) / d, Firestore: (GroupCPUSeconds(k.fsGroup) - k.fs) / d}
	busy, all := machineTicks()
	if all > k.allTicks {
		u.BusyFraction = (busy - k.busyTicks) / (all - k.allTicks)
		u.Busy = u.BusyFraction * float64(runtime.NumCPU())
		u.Saturated = u.BusyFraction >= Saturated
	}
	return u
}

// machineTicks reads the busy and total ticks of all CPUs (/proc/stat's
// "cpu" line; idle and iowait are not busy).
func machineTicks() (busy, all float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return parseCPULine(string(line))
}

func parseCPULine(line string) (busy, all float64) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest time is already in user
			break
		}
		v, _ := strconv.ParseFloat(s, 64)
		all += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, all
}

// GroupCPUSeconds is the CPU time of every live process in process group
// pgid (0 → 0): the emulators' launchers start their JVMs as children.
func GroupCPUSeconds(pgid int) float64 {
	if pgid <= 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	total := 0.0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		if s, err := parseStatCPU(b); err == nil {
			total += s
		}
	}
	return total
}
