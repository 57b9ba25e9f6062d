package inbox

import "testing"

// The cache keeps the most recently used users up to its size, forgets
// dropped ones, and a nil cache (size 0) knows nothing.
func TestHeadCacheIsBoundedLRU(t *testing.T) {
	c := newHeadCache(2)
	c.set("a", 1)
	c.set("b", 2)
	if h, ok := c.get("a"); !ok || h != 1 { // a is now the most recent
		t.Fatalf("a = %d, %v", h, ok)
	}
	c.set("c", 3) // evicts b, the least recently used
	if _, ok := c.get("b"); ok {
		t.Fatal("b survived eviction")
	}
	if h, ok := c.get("a"); !ok || h != 1 {
		t.Fatalf("a evicted instead of b: %d %v", h, ok)
	}
	c.set("a", 7)
	if h, _ := c.get("a"); h != 7 || c.len() != 2 {
		t.Fatalf("a = %d, len %d", h, c.len())
	}
	c.drop("a")
	if _, ok := c.get("a"); ok || c.len() != 1 {
		t.Fatalf("a after drop: len %d", c.len())
	}
	none := newHeadCache(0)
	none.set("a", 1)
	if _, ok := none.get("a"); ok || none.len() != 0 {
		t.Fatal("a disabled cache remembered a head")
	}
}
