package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/coder/websocket"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// heapBound is what one user's resume attack may add to an edge's live Go
// heap: its page slots (WS_USER_READ_PAGES 4 × WS_PAGE_BYTES 1 MiB), their
// encoded frames, and the sessions' own buffers, with room to spare. Before
// pages were bounded by bytes and held under a budget, the attack below
// pinned 16 × 32 MB of pages (over 500 MB).
const heapBound = 64 << 20

// TestOneUserCannotTakeAnEdgesMemory: mallory fills her own inbox with 500
// messages of 64 KiB (32 MB), then opens 16 sessions on one edge, each
// resuming from a different cursor, and never reads. The edge's live heap
// (read after a forced GC through its debug listener) stays within
// heapBound of what it was before, and bob's session on the same edge keeps
// receiving alice's messages, every one, in order.
func TestOneUserCannotTakeAnEdgesMemory(t *testing.T) {
	debugAddr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	c := env.NewCluster(t, harness.Options{Edges: 1, EdgeEnv: []string{
		"DEBUG_ADDR=" + debugAddr,
		// Worst case: the slow sessions are not dropped while measured.
		"WS_WRITE_TIMEOUT=2m", "WS_PAGE_WRITE_TIMEOUT=2m",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	edge := c.Edges[0]

	fillInbox(t, ctx, c.Project, "mallory", 500, 64<<10)
	bob := mustDial(t, ctx, edge.Addr, c.Token("bob"), "")
	before := liveHeap(t, ctx, debugAddr)

	for i := range 16 {
		cursor := inbox.EncodeCursor(int64(i * 20))
		conn, resp, err := websocket.Dial(ctx, "ws://"+edge.Addr+"/v1/ws?cursor="+cursor,
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + c.Token("mallory")}}})
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("mallory's session %d: %v (HTTP %d)", i, err, status)
		}
		defer conn.CloseNow() // never read: the edge's writes back up
	}

	// The attack has landed once the edge has read pages for four of the
	// sessions (a user's page slots); the heap is sampled all along.
	peak := before
	deadline := time.Now().Add(2 * time.Minute)
	for metricSum(edge.AdminAddr, `courier_ws_edge_inbox_reads_total{purpose="resume"`) < 4 {
		if time.Now().After(deadline) {
			t.Fatal("mallory's sessions did not read their inbox within 2 minutes: the attack did not run")
		}
		peak = max(peak, liveHeap(t, ctx, debugAddr))
	}

	// While the attack holds, alice writes to bob.
	var ids []string
	for i := range 40 {
		res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, fmt.Sprintf("m%d", i), "")
		if err != nil || res.Status != 202 {
			t.Fatalf("send %d: %v %+v", i, err, res)
		}
		ids = append(ids, res.ID)
		if i%4 == 0 {
			peak = max(peak, liveHeap(t, ctx, debugAddr))
		}
	}
	if err := bob.WaitMessages(len(ids), 2*time.Minute); err != nil {
		t.Fatalf("bob: %v", err)
	}
	assertExactly(t, "bob", bob.Messages(), ids)
	for range 4 {
		peak = max(peak, liveHeap(t, ctx, debugAddr))
	}
	t.Logf("edge live heap: %d MiB before, %d MiB at peak during the attack", before>>20, peak>>20)
	if peak > before+heapBound {
		t.Fatalf("edge live heap grew by %d MiB under one user's resumes, bound %d MiB", (peak-before)>>20, heapBound>>20)
	}
}

// fillInbox commits n messages of size bytes to user's own inbox, straight
// into the cluster's Firestore (the worker's committer), which is quicker
// than pushing 32 MB through the gateway and changes nothing for the edge.
func fillInbox(t *testing.T, ctx context.Context, project, user string, n, size int) {
	t.Helper()
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	committer := inbox.New(fs).NewCommitter(inbox.CommitterOptions{})
	payload := []byte(fmt.Sprintf("%q", strings.Repeat("x", size-2)))
	for start := 0; start < n; start += 20 {
		var envs []*courierv1.Envelope
		for i := start; i < min(start+20, n); i++ {
			envs = append(envs, &courierv1.Envelope{MessageId: fmt.Sprintf("%s-big-%03d", user, i), Sender: user, Recipients: []string{user},
				Payload: payload, ContentType: "application/json", SentAt: timestamppb.Now()})
		}
		for _, r := range committer.Commit(ctx, envs) {
			if r.Err != nil {
				t.Fatalf("fill the inbox of %s: %v", user, r.Err)
			}
		}
	}
}

// liveHeap is the edge's heap after a forced GC (pkg/debugserver).
func liveHeap(t *testing.T, ctx context.Context, debugAddr string) uint64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+debugAddr+"/debug/memstats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("memstats: %v", err)
	}
	defer resp.Body.Close()
	var s struct {
		MemStats struct{ HeapAlloc uint64 } `json:"memstats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("memstats: %v", err)
	}
	return s.MemStats.HeapAlloc
}
