package edge

import (
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/harness/wsclient"
)

// oneToOne builds a bench of 3 users with 6 one-to-one deliveries
// (delivery b to user b%3, at that user's next position) and a tracked,
// open session per user that starts at position 0.
func oneToOne(t *testing.T) (*bench, []*client, []bool, []int, []bool) {
	t.Helper()
	bn := newBench(Config{}, nil, 6, 3)
	bn.strict, bn.lossFails = true, true
	bn.names = []string{"a", "b", "c"}
	rcpt := make([]int, 6)
	for b := range 6 {
		rcpt[b] = b % 3
		bn.rcpt[b] = int32(b % 3)
		if _, err := bn.delivery(b, []int{b % 3}); err != nil {
			t.Fatal(err)
		}
	}
	cls := make([]*client, 3)
	for u := range cls {
		cls[u] = &client{u: u, counts: make([]uint8, 6)}
		bn.cls[u] = cls[u]
	}
	published := []bool{true, true, true, true, true, true}
	return bn, cls, published, rcpt, []bool{true, true, true}
}

// frame is delivery b as user u's session sees it at cursor pos.
func frame(b, pos int64) wsclient.Frame {
	return wsclient.Frame{Kind: wsclient.Message, Seq: b, Cursor: pos}
}

// feedAll delivers every frame correctly (delivery b is position b/3+1
// of user b%3), except those skip names.
func feedAll(bn *bench, cls []*client, skip map[int]bool) {
	for b := range 6 {
		if !skip[b] {
			bn.message(cls[b%3], time.Now(), frame(int64(b), int64(b/3+1)))
		}
	}
}

func tallied(bn *bench, published []bool, rcpt []int, open []bool) Step {
	st := Step{Kind: "one-to-one", Rate: 1, Expected: 6, LossFails: true}
	bn.tally(&st, 0, 6, published, rcpt, open)
	return st
}

func TestEdgeAccountingCleanStepPasses(t *testing.T) {
	bn, cls, pub, rcpt, open := oneToOne(t)
	feedAll(bn, cls, nil)
	st := tallied(bn, pub, rcpt, open)
	if err := st.Check(); err != nil || st.Frames != 6 || st.Lost != 0 {
		t.Fatalf("a clean step: %+v, %v", st, err)
	}
}

// Each way a frame can be wrong fails the step, and names why.
func TestEdgeAccountingFailsEachFault(t *testing.T) {
	cases := map[string]func(bn *bench, cls []*client){
		// Delivery 0 is user a's; user b gets it as well as a does.
		"not addressed": func(bn *bench, cls []*client) {
			feedAll(bn, cls, nil)
			bn.message(cls[1], time.Now(), frame(0, 3))
		},
		// Delivered to the wrong user instead of the right one: not
		// counted as delivered, so the loss shows too.
		"lost": func(bn *bench, cls []*client) {
			feedAll(bn, cls, map[int]bool{4: true})
		},
		"duplicate": func(bn *bench, cls []*client) {
			feedAll(bn, cls, nil)
			bn.message(cls[2], time.Now(), frame(5, 2))
		},
		// User a gets position 2 (delivery 3) before position 1
		// (delivery 0).
		"out of order": func(bn *bench, cls []*client) {
			feedAll(bn, cls, map[int]bool{0: true, 3: true})
			bn.message(cls[0], time.Now(), frame(3, 2))
			bn.message(cls[0], time.Now(), frame(0, 1))
		},
		// The right delivery at the wrong position.
		"cursor": func(bn *bench, cls []*client) {
			feedAll(bn, cls, map[int]bool{1: true})
			bn.message(cls[1], time.Now(), frame(1, 7))
		},
		// A frame for no delivery of this run.
		"unknown": func(bn *bench, cls []*client) {
			feedAll(bn, cls, nil)
			bn.message(cls[0], time.Now(), frame(99, 3))
		},
	}
	want := map[string]string{"not addressed": "not addressed", "lost": "lost", "duplicate": "duplicate",
		"out of order": "out of order", "cursor": "cursor other than", "unknown": "not addressed"}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			bn, cls, pub, rcpt, open := oneToOne(t)
			fault(bn, cls)
			st := tallied(bn, pub, rcpt, open)
			err := st.Check()
			if err == nil {
				t.Fatalf("step %+v passed", st)
			}
			if !strings.Contains(err.Error(), want[name]) {
				t.Fatalf("error %q does not name %q", err, want[name])
			}
		})
	}
}

// A frame delivered to the wrong user instead of its recipient is not a
// delivery: the recipient's pair counts as lost, the frame as unexpected.
func TestEdgeWrongUserHidesNoLoss(t *testing.T) {
	bn, cls, pub, rcpt, open := oneToOne(t)
	feedAll(bn, cls, map[int]bool{2: true})
	bn.message(cls[0], time.Now(), frame(2, 1)) // user c's delivery at user a
	st := tallied(bn, pub, rcpt, open)
	if st.Lost != 1 || st.Unexpected != 1 || st.Frames != 5 || st.Check() == nil {
		t.Fatalf("step %+v: want 1 lost, 1 unexpected, 5 frames and a failure", st)
	}
}

// Loss the phase itself explains (originals past the reorder window in an
// empty inbox; sessions the server closed) does not fail the step, nor
// does the peer's, which promises no delivery without history.
func TestEdgeExplainedLossPasses(t *testing.T) {
	st := Step{Kind: "group", Expected: 10, Frames: 7, Lost: 3, LostToWindow: 2, LostClosed: 1, LossFails: true}
	if err := st.Check(); err != nil {
		t.Fatalf("explained loss failed: %v", err)
	}
	st.LostToWindow = 1
	if st.Check() == nil {
		t.Fatal("one unexplained lost frame passed")
	}
	st.LossFails = false
	if err := st.Check(); err != nil {
		t.Fatalf("the peer's loss failed: %v", err)
	}
}
