package testenv_test

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/testenv"
)

func TestLogBufferLines(t *testing.T) {
	var l testenv.LogBuffer
	fmt.Fprintln(&l, `{"msg":"http request","status":200}`)
	fmt.Fprintln(&l, `not json`)
	fmt.Fprintln(&l, `{"msg":"other"}`)
	fmt.Fprint(&l, `{"msg":"http request","status":404}`)
	got := l.Lines("http request")
	if len(got) != 2 || got[0]["status"] != float64(200) || got[1]["status"] != float64(404) {
		t.Fatalf("lines %v", got)
	}
	if !strings.HasPrefix(l.String(), `{"msg":"http request","status":200}`+"\n") {
		t.Fatalf("string %q", l.String())
	}
}

// fatalTB records Fatalf instead of ending the goroutine.
type fatalTB struct {
	testing.TB
	msg string
}

type fatal struct{}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatal{})
}

func waitFor(d time.Duration, check func() error) (msg string) {
	tb := &fatalTB{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatal); !ok {
				panic(r)
			}
			msg = tb.msg
		}
	}()
	testenv.WaitFor(tb, d, time.Millisecond, check)
	return ""
}

// WaitFor returns once check holds, and otherwise fails with check's last
// word once the time is up.
func TestWaitFor(t *testing.T) {
	n := 0
	if msg := waitFor(10*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); msg != "" || n != 3 {
		t.Fatalf("a condition met on the third poll: failed %q after %d polls", msg, n)
	}
	n = 0
	msg := waitFor(30*time.Millisecond, func() error { n++; return fmt.Errorf("%d seen", n) })
	if !strings.Contains(msg, "not within 30ms: ") || !strings.HasSuffix(msg, fmt.Sprintf("%d seen", n)) || n < 2 {
		t.Fatalf("timeout message %q after %d polls", msg, n)
	}
}

// The test kits (pkg/testenv, and every package named *test such as
// pkg/inbox/inboxtest) hold fakes and helpers for tests: no production
// code may import them, or a fake could end up serving traffic.
func TestOnlyTestsImportTheKit(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	isKit := func(importPath string) bool {
		if !strings.HasPrefix(importPath, "github.com/courierhq/courier/") {
			return false
		}
		base := path.Base(importPath)
		return base == "testenv" || strings.HasSuffix(base, "test")
	}
	files := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		dir := filepath.Base(filepath.Dir(p))
		if dir == "testenv" || strings.HasSuffix(dir, "test") {
			return nil // a kit may use another kit
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if isKit(ip) {
				rel, _ := filepath.Rel(root, p)
				t.Errorf("%s imports the test kit %s", rel, ip)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read only %d Go files under %s: is the walk broken?", files, root)
	}
}
