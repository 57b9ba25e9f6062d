package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/coder/websocket"

	"github.com/courierhq/courier/cmd/courier-bench/internal/procs"
	"github.com/courierhq/courier/cmd/courier-bench/internal/stack"
	"github.com/courierhq/courier/pkg/harness/wsclient"
)

// peerChannel is the one channel every peer session subscribes to.
const peerChannel = "group"

// RunPeer measures a well-known peer, centrifugo (bin), on the group
// fan-out ladder exactly as Run measures ws-edge: it consumes the same
// Pub/Sub emulator through its Google Pub/Sub consumer (publication data
// mode: each Pub/Sub message's data is published to the channel named in
// its centrifugo-channels attribute), and c.Sessions WebSocket clients
// subscribe to that channel. The equivalent of one Courier delivery to all
// sessions' users is one message to the channel.
//
// With history on, the channel keeps a history with recovery forced on
// (the guarantee Courier keeps: a client can resume from its position),
// and every publication carries its offset, which the accounting checks
// rises strictly per session.
func RunPeer(ctx context.Context, bin string, emu *procs.Emulators, logDir string, c Config, history bool, progress func(string)) ([]Step, error) {
	project := fmt.Sprintf("bench-peer-%d", time.Now().UnixNano())
	ps, err := emu.PubSub(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	defer ps.Close()
	topic := "projects/" + project + "/topics/peer"
	if _, err := ps.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		return nil, fmt.Errorf("create the peer's topic: %w", err)
	}
	if _, err := ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + project + "/subscriptions/centrifugo", Topic: topic, AckDeadlineSeconds: 10,
	}); err != nil {
		return nil, fmt.Errorf("create the peer's subscription: %w", err)
	}
	port, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	conf := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": strconv.Itoa(port)},
		"health":      map[string]any{"enabled": true},
		"log":         map[string]any{"level": "warn"},
		// Anonymous clients may subscribe (no tokens, like the edge's dev
		// tokens cost nothing to check); app-level pings out of the way of
		// a run that never idles.
		"client": map[string]any{"insecure": true, "allowed_origins": []string{"*"}, "ping_interval": "600s", "pong_timeout": "8s"},
		"consumers": []any{map[string]any{
			"name": "bench", "enabled": true, "type": "google_pub_sub",
			"google_pub_sub": map[string]any{
				"project_id": project, "subscriptions": []string{"centrifugo"}, "max_outstanding_messages": 1000,
				"publication_data_mode": map[string]any{"enabled": true, "channels_attribute": "centrifugo-channels"},
			},
		}},
	}
	name := "centrifugo"
	if history {
		name = "centrifugo-history"
		conf["channel"] = map[string]any{"without_namespace": map[string]any{
			"history_size": 100_000, "history_ttl": "600s", "force_recovery": true,
		}}
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	confPath := filepath.Join(logDir, name+".json")
	if err := os.WriteFile(confPath, b, 0o644); err != nil {
		return nil, err
	}
	p, err := procs.Start("peer-"+name, bin, emu.Env(), filepath.Join(logDir, "peer-"+name+".log"), "--config", confPath)
	if err != nil {
		return nil, err
	}
	defer p.Stop(10 * time.Second)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := p.WaitReady(ctx, "http://"+addr+"/health", 60*time.Second); err != nil {
		return nil, err
	}

	// The edge's ladder, extension rungs included, so every rung is
	// matched with the edge's.
	rates := extended(c.GroupLadder, c.Extend)
	total := 0
	for _, r := range rates {
		total += int(r * c.StepFor.Seconds())
	}
	bn := newBench(c, &stack.Service{Proc: p, HTTP: addr}, total, c.Sessions)
	bn.meter = emu.Meter
	bn.names = make([]string, c.Sessions)
	bn.tokens = make([]string, c.Sessions)
	bn.dialer = func(ctx context.Context, _ int, _ string) (*websocket.Conn, error) {
		conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/connection/websocket", nil)
		if err != nil {
			return nil, fmt.Errorf("dial the peer: %w", err)
		}
		conn.SetReadLimit(16 << 20)
		for _, cmd := range []string{`{"id":1,"connect":{}}`, `{"id":2,"subscribe":{"channel":"` + peerChannel + `"}}`} {
			if err := conn.Write(ctx, websocket.MessageText, []byte(cmd)); err != nil {
				conn.CloseNow()
				return nil, fmt.Errorf("peer handshake: %w", err)
			}
		}
		return conn, nil
	}
	bn.parse = parsePeer
	bn.build = func(b int, _ []int) (*pubsub.Message, error) {
		return &pubsub.Message{Data: wsclient.Payload(int64(b), c.PayloadSize), Attributes: map[string]string{"centrifugo-channels": peerChannel}}, nil
	}
	defer bn.closeAll()
	if err := bn.open(ctx, 0, c.Sessions, true); err != nil {
		return nil, fmt.Errorf("open %d peer sessions: %w", c.Sessions, err)
	}
	pub := ps.Publisher("peer")
	pub.PublishSettings.DelayThreshold = time.Millisecond
	defer pub.Stop()
	next := 0
	var steps []Step
	for k, rate := range rates {
		if k >= len(c.GroupLadder) && len(steps) > 0 && steps[len(steps)-1].Broken != "" {
			break
		}
		st, err := bn.step(ctx, pub, "group", rate, &next)
		if err != nil {
			return steps, err
		}
		steps = append(steps, st)
		progress(fmt.Sprintf("peer group %.0f deliveries/s: %d frames/s, lost %d, p99 %.0f ms, %.2f cores, %.0f frames per core-second %s",
			rate, int(st.FramesPerS), st.Lost, st.Latency.P99, st.EdgeCores, st.FramesPerCoreSecond, st.Broken))
		if err := st.Check(); err != nil {
			return steps, err
		}
		if st.Lost*2 > st.Expected || ctx.Err() != nil {
			break
		}
	}
	return steps, ctx.Err()
}

var (
	peerPub   = []byte(`"pub":`)
	peerData  = []byte(`"data":{"s":`)
	peerSubOK = []byte(`"id":2,"subscribe":`)
	peerOff   = []byte(`"offset":`)
	peerErr   = []byte(`"error":`)
)

// parsePeer reads centrifugo's JSON protocol: the subscribe reply stands
// for the edge's synced frame, a publication for a message frame.
func parsePeer(part []byte) wsclient.Frame {
	f := wsclient.Frame{Kind: wsclient.Other, Seq: -1, Cursor: -1, Raw: part}
	switch {
	case bytes.Contains(part, peerPub):
		f.Kind = wsclient.Message
		if i := bytes.Index(part, peerData); i >= 0 {
			f.Seq = leadingInt(part[i+len(peerData):])
		}
		// The publication's offset in the channel's history (with
		// history on); after the data, which the benchmark writes itself.
		if i := bytes.LastIndex(part, peerOff); i >= 0 {
			f.Cursor = leadingInt(part[i+len(peerOff):])
		}
	case bytes.Contains(part, peerErr):
		f.Kind = wsclient.Error
	case bytes.Contains(part, peerSubOK):
		f.Kind = wsclient.Synced
	}
	return f
}

// leadingInt parses the digits at the start of b (-1 when there are none).
func leadingInt(b []byte) int64 {
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(b[:j]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}
