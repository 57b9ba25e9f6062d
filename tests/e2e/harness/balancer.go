package harness

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Balancer is a plain round-robin TCP load balancer, what clients see in
// front of the edges in production: each new connection goes to the next
// backend; a backend that refuses the dial (a dead pod) is skipped, as a
// health-checked balancer would; bytes are copied both ways untouched, so
// close codes and a backend's death (the connection cut) reach the client.
type Balancer struct {
	Addr     string
	l        net.Listener
	backends []string
	next     atomic.Uint64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartBalancer listens on a free loopback port; it is closed when the test ends.
func StartBalancer(t testing.TB, backends ...string) *Balancer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Balancer{Addr: l.Addr().String(), l: l, backends: backends, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(b.Close)
	return b
}

func (b *Balancer) serve() {
	defer b.wg.Done()
	for {
		c, err := b.l.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go b.handle(c)
	}
}

func (b *Balancer) handle(client net.Conn) {
	defer b.wg.Done()
	start := b.next.Add(1) - 1
	var up net.Conn
	for i := range b.backends {
		addr := b.backends[(start+uint64(i))%uint64(len(b.backends))]
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			up = c
			break
		}
	}
	if up == nil || !b.track(client, up) {
		client.Close()
		if up != nil {
			up.Close()
		}
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, client)
	go pipe(client, up)
	<-done
	// One side ended: end both, as an L4 balancer does when a backend dies.
	client.Close()
	up.Close()
	<-done
	b.untrack(client, up)
}

func (b *Balancer) track(cs ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		return false // closed
	}
	for _, c := range cs {
		b.conns[c] = struct{}{}
	}
	return true
}

func (b *Balancer) untrack(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		delete(b.conns, c)
	}
}

// Close stops accepting, cuts every connection and waits for the copies.
func (b *Balancer) Close() {
	b.l.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.conns = nil
	b.mu.Unlock()
	b.wg.Wait()
}
