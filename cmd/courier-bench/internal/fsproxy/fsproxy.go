// Package fsproxy is a gRPC pass-through proxy placed in front of the
// Firestore emulator to count the round trips a process makes, by method,
// without relying on that process's own code: the worker under test is
// simply pointed at the proxy (FIRESTORE_EMULATOR_HOST), so an old build and
// a new one are counted the same way.
//
// Every call, unary or streaming, is forwarded as raw bytes
// (grpc.UnknownServiceHandler with a codec that does not decode), metadata
// included, and counted once per RPC; streams are also counted by the
// messages the client sent on them.
package fsproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
)

// rawCodec passes message bytes through untouched.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("fsproxy: cannot marshal %T", v)
	}
	return f.b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("fsproxy: cannot unmarshal into %T", v)
	}
	f.b = append(f.b[:0], data...)
	return nil
}

// Name is "proto" so the content-subtype on the wire stays what both ends
// expect.
func (rawCodec) Name() string { return "proto" }

type frame struct{ b []byte }

var _ encoding.Codec = rawCodec{}

// Proxy forwards to one upstream and counts.
type Proxy struct {
	ln       net.Listener
	srv      *grpc.Server
	upstream *grpc.ClientConn
	mu       sync.Mutex
	calls    map[string]int64
	sent     map[string]int64
}

// Start listens on a free loopback port and forwards to upstream (host:port).
func Start(upstream string) (*Proxy, error) {
	conn, err := grpc.NewClient(upstream, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("fsproxy: dial %s: %w", upstream, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("fsproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, upstream: conn, calls: map[string]int64{}, sent: map[string]int64{}}
	p.srv = grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(p.handle),
		grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops the proxy.
func (p *Proxy) Close() {
	p.srv.Stop()
	p.upstream.Close()
}

// Counts returns the RPCs seen so far by full method name.
func (p *Proxy) Counts() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.calls))
	for k, v := range p.calls {
		out[k] = v
	}
	return out
}

// Reset zeroes the counts.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls, p.sent = map[string]int64{}, map[string]int64{}
}

// Total sums counts.
func Total(counts map[string]int64) int64 {
	var n int64
	for _, v := range counts {
		n += v
	}
	return n
}

// Methods returns the method names of counts, sorted.
func Methods(counts map[string]int64) []string {
	out := make([]string, 0, len(counts))
	for k := range counts {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (p *Proxy) count(method string) {
	p.mu.Lock()
	p.calls[method]++
	p.mu.Unlock()
}

// handle forwards one server stream (every RPC is a stream to gRPC) to the
// upstream and back.
func (p *Proxy) handle(_ any, in grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(in)
	if !ok {
		return errors.New("fsproxy: no method")
	}
	p.count(method)
	ctx, cancel := context.WithCancel(in.Context())
	defer cancel()
	md, _ := metadata.FromIncomingContext(in.Context())
	ctx = metadata.NewOutgoingContext(ctx, md.Copy())
	out, err := p.upstream.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}
	// client → upstream
	upErr := make(chan error, 1)
	go func() {
		for {
			f := &frame{}
			if err := in.RecvMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					upErr <- out.CloseSend()
					return
				}
				upErr <- err
				return
			}
			if err := out.SendMsg(f); err != nil {
				upErr <- err
				return
			}
		}
	}()
	// upstream → client, headers first
	first := true
	for {
		f := &frame{}
		err := out.RecvMsg(f)
		if first {
			if h, herr := out.Header(); herr == nil {
				_ = in.SendHeader(h)
			}
			first = false
		}
		if err != nil {
			in.SetTrailer(out.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err // the upstream's status, passed on as is
		}
		if err := in.SendMsg(f); err != nil {
			return err
		}
		select {
		case err := <-upErr:
			if err != nil {
				return err
			}
			upErr = nil
		default:
		}
	}
}
