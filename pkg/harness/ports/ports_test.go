package ports

import (
	"net"
	"strconv"
	"testing"
)

// Ports handed out are distinct, in range and bindable.
func TestFreeIsDistinctAndBindable(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		p, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || p < 20000 || p > 31999 {
			t.Fatalf("port %d handed out twice or out of range", p)
		}
		seen[p] = true
	}
	a, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("bind %s: %v", a, err)
	}
	l.Close()
	if _, err := strconv.Atoi(a[len("127.0.0.1:"):]); err != nil {
		t.Fatal(a)
	}
}
