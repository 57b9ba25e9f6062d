package config

import (
	"strings"
	"testing"
	"time"
)

func TestEnvReadsAndNamesBadVariables(t *testing.T) {
	e := FromMap(map[string]string{
		"NAME": "courier", "N": "7", "BADN": "x", "BIG": "99", "D": "2s", "BADD": "soon",
		"B": "true", "L": " a, ,b ",
	})
	if got := e.String("NAME", "d"); got != "courier" {
		t.Errorf("String = %q", got)
	}
	if got := e.String("UNSET", "d"); got != "d" {
		t.Errorf("String default = %q", got)
	}
	if got := e.Int("N", 1, 0, 10); got != 7 {
		t.Errorf("Int = %d", got)
	}
	if got := e.Duration("D", time.Second, 0); got != 2*time.Second {
		t.Errorf("Duration = %s", got)
	}
	if got := e.Bool("B", false); !got {
		t.Errorf("Bool = %v", got)
	}
	if got := e.List("L", nil); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("List = %q", got)
	}
	if e.Err() != nil {
		t.Fatalf("unexpected error: %v", e.Err())
	}

	e.Int("BADN", 1, 0, 10)
	e.Int("BIG", 1, 0, 10)
	e.Duration("BADD", time.Second, 0)
	e.Required("MISSING")
	err := e.Err()
	if err == nil {
		t.Fatal("expected an error")
	}
	for _, name := range []string{"BADN", "BIG", "BADD", "MISSING"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}
