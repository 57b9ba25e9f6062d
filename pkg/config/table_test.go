package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/config"
)

type knobs struct {
	N     int
	D     time.Duration
	S     string
	B     bool
	Hosts []string
}

var rows = []config.Setting[knobs]{
	config.IntSetting("N", 4, 1, 64, "count", func(k *knobs, v int) { k.N = v }),
	config.DurationSetting("D", 2*time.Minute, time.Second, "wait", func(k *knobs) *time.Duration { return &k.D }),
	config.StringSetting("S", "", "name", func(k *knobs) *string { return &k.S }),
	config.BoolSetting("B", true, "flag", func(k *knobs) *bool { return &k.B }),
	{Name: "HOSTS", Default: "unset = none", Doc: "list", Read: func(e *config.Env, k *knobs) { k.Hosts = e.List("HOSTS", nil) }},
}

// The rows render the README table, read with their defaults and bounds,
// and report every bad variable by name.
func TestTable(t *testing.T) {
	want := "| Variable | Default | Bounds | Meaning |\n|---|---|---|---|\n" +
		"| `N` | `4` | 1–64 | count |\n" +
		"| `D` | `2m` | ≥ 1s | wait |\n" +
		"| `S` | unset |  | name |\n" +
		"| `B` | `true` |  | flag |\n" +
		"| `HOSTS` | unset = none |  | list |\n"
	if got := config.Markdown(rows); got != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", got, want)
	}
	var k knobs
	e := config.FromMap(map[string]string{"S": "x", "HOSTS": "a,b"})
	config.ReadTable(e, rows, &k)
	if err := e.Err(); err != nil || k.N != 4 || k.D != 2*time.Minute || k.S != "x" || !k.B || len(k.Hosts) != 2 {
		t.Fatalf("defaults: %+v %v", k, err)
	}
	e = config.FromMap(map[string]string{"N": "65", "D": "1ms"})
	config.ReadTable(e, rows, &k)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "N:") || !strings.Contains(err.Error(), "D:") {
		t.Fatalf("out of bounds accepted or unnamed: %v", err)
	}
	for i, v := range []string{"4", "2m", "", "true", ""} {
		if got := rows[i].Value(); got != v {
			t.Errorf("%s.Value() = %q, want %q", rows[i].Name, got, v)
		}
	}
}
