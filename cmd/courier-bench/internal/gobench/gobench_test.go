package gobench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTakesMediansPerUnit(t *testing.T) {
	out := `goos: linux
pkg: example.com/m/hub
BenchmarkLookup-2   	 4000000	       300 ns/op	      31 B/op	       3 allocs/op
BenchmarkLookup-2   	 4000000	       250 ns/op	      31 B/op	       3 allocs/op
BenchmarkLookup-2   	 4000000	       260 ns/op	      33 B/op	       3 allocs/op
pkg: example.com/m/pipeline
BenchmarkPipeline/routing=false-2         	       1	2000000000 ns/op	       249.0 msg/s
some log line
PASS
`
	res := Parse("m", strings.NewReader(out))
	if len(res) != 2 {
		t.Fatalf("got %d results, want 2: %+v", len(res), res)
	}
	l := res[0]
	if l.Name != "BenchmarkLookup" || l.Package != "example.com/m/hub" || l.Runs != 3 {
		t.Fatalf("first result %+v", l)
	}
	if l.Medians["ns/op"] != 260 || l.Medians["B/op"] != 31 || l.Medians["allocs/op"] != 3 {
		t.Fatalf("medians %v", l.Medians)
	}
	if p := res[1]; p.Name != "BenchmarkPipeline/routing=false" || p.Medians["msg/s"] != 249 {
		t.Fatalf("custom unit: %+v", p)
	}
}

func TestPackagesFindsOnlyBenchmarkDeclarations(t *testing.T) {
	dir := t.TempDir()
	write := func(path, body string) {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a/a_test.go", "package a\nfunc BenchmarkX(b *testing.B) {}\n")
	write("b/b_test.go", "package b\n// BenchmarkY is only mentioned\nfunc TestY(t *testing.T) {}\n")
	write("c/d/d_test.go", "package d\nfunc Benchmark(b *testing.B) {}\n")
	write("testdata/x_test.go", "package x\nfunc BenchmarkZ(b *testing.B) {}\n")
	write("e/e_test.go", "package e\nimport \"github.com/courierhq/courier/pkg/testenv\"\nfunc BenchmarkE(b *testing.B) {}\n")
	micro, emu, err := Packages(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(micro, " ") != "./a ./c/d" || strings.Join(emu, " ") != "./e" {
		t.Fatalf("Packages = %v, %v; want [./a ./c/d], [./e]", micro, emu)
	}
}
