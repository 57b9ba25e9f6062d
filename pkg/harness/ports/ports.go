// Package ports hands out free loopback ports to the processes a test or a
// benchmark starts (emulators, services), from 20000–31999: below the
// kernel's ephemeral range, so a port handed out is not taken by an
// outgoing connection meanwhile.
package ports

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// handedOut remembers every port Free gave: a port given to a process that
// has not bound it yet is free to the kernel, and a second pick of it (one
// in ~12,000 per pair, so likely over a run's hundreds of ports) made two
// processes of one cluster collide.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Free returns a loopback port nothing listens on and that this process
// has not handed out before.
func Free() (int, error) {
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		handedOut.Lock()
		taken := handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if taken {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in 20000-31999")
}

// FreeAddr is Free as "127.0.0.1:port".
func FreeAddr() (string, error) {
	p, err := Free()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}
