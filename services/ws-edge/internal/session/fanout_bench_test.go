package session_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/types/known/timestamppb"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/hub"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
	"github.com/courierhq/courier/services/ws-edge/internal/sequencer"
	"github.com/courierhq/courier/services/ws-edge/internal/session"
)

type emptyInbox struct{}

func (emptyInbox) Read(context.Context, inboxreader.Purpose, string, int64, int) (inboxreader.Page, error) {
	return inboxreader.Page{}, nil
}
func (emptyInbox) Head(context.Context, string) (int64, error) { return 0, nil }

type noAcks struct{}

func (noAcks) Add(string, string, func(error)) bool { return true }

// events opens and closes the users' sequencers as the edge does.
type events struct{ s *sequencer.Set }

func (e events) FirstSession(u string) { e.s.Open(u) }
func (e events) LastSession(u string)  { e.s.Close(u) }

// BenchmarkFanout is the fan-out path end to end in one process: one op is
// one group message that the sequencers and the hub hand to N local sessions (one user
// each), each writes its frame to a real WebSocket, and N clients read it.
// Reports frames per second (the clients' reads included: they share the
// machine).
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, batch := range []bool{false, true} {
			b.Run(fmt.Sprintf("sessions=%d/batch=%v", n, batch), func(b *testing.B) { benchFanout(b, n, batch) })
		}
	}
}

func benchFanout(b *testing.B, n int, batch bool) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.Discard()
	var h *hub.Hub[*session.Session]
	seqs := sequencer.New(context.Background(), sequencer.Config{}, nil, func(u string, items []frame.Item) { h.Broadcast(u, items) }, m, log)
	h = hub.New[*session.Session](hub.Config{MaxSessions: n + 10}, events{seqs})
	opts := session.Options{}.WithDefaults()
	deps := &session.Deps{Options: &opts, Reader: emptyInbox{}, Starter: seqs, Acks: noAcks{}, Metrics: m, Log: log}
	var started sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.New(session.Params{User: r.URL.Query().Get("user"), Batch: batch}, deps)
		if err := h.Add(s); err != nil {
			b.Error(err)
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		s.Serve(conn)
		h.Remove(s)
	}))
	defer srv.Close()

	var frames atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var readers sync.WaitGroup
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/?user="+users[i], nil)
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(-1)
		started.Add(1)
		readers.Go(func() {
			defer c.CloseNow()
			synced := false
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				if !synced && strings.Contains(string(data), `"synced"`) {
					synced = true
					started.Done()
					continue
				}
				frames.Add(int64(strings.Count(string(data), `"type":"message"`)))
			}
		})
	}
	started.Wait()
	msg := &courierv1.Message{Id: "m", From: "alice", ToCount: int32(n), Payload: []byte(`{"text":"` + strings.Repeat("x", 200) + `"}`),
		ContentType: "application/json", SentAt: timestamppb.Now()}
	// At most inFlight messages ahead of what the clients have read, well
	// under the sessions' queue (beyond it they would catch up from the
	// inbox, which is empty here): the benchmark measures the steady path.
	const inFlight = 64
	waitFrames := func(want int64) {
		deadline := time.Now().Add(time.Minute)
		for frames.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d frames arrived", frames.Load(), want)
			}
			runtime.Gosched()
		}
	}
	b.ResetTimer()
	seq := int64(0)
	for i := 0; i < b.N; i++ {
		if i >= inFlight {
			waitFrames(int64(i-inFlight) * int64(n))
		}
		seq++
		fm, err := frame.NewMessage(msg)
		if err != nil {
			b.Fatal(err)
		}
		for _, u := range users {
			seqs.Deliver(u, frame.Item{M: fm, Seq: seq})
		}
	}
	want := int64(b.N) * int64(n)
	waitFrames(want)
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "frames/s")
	cancel()
	srv.CloseClientConnections()
}
