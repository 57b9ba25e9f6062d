package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/testenv"
)

// browser drives headless Chromium over the Chrome DevTools Protocol: just
// enough of it (one page, Runtime.evaluate) for the demo client test,
// spoken over the WebSocket library the edge already uses.
type browser struct {
	conn    *websocket.Conn
	session string
	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan cdpReply
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("COURIER_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium not found but COURIER_REQUIRE_CHROMIUM=1 (apt-get install -y chromium)")
	}
	t.Skip("chromium not found: apt-get install -y chromium (or set CHROMIUM) to run the demo client test")
	return ""
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--remote-debugging-port=0", "about:blank")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		// Chromium forks helpers: stop its whole process group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				var keep []string
				for _, l := range strings.Split(string(b), "\n") {
					if !strings.Contains(l, "dbus") { // headless without a session bus: noise
						keep = append(keep, l)
					}
				}
				t.Logf("chromium log (tail):\n%s", tail(strings.Join(keep, "\n"), 3000))
			}
		}
	})
	var port, wsPath string
	testenv.Eventually(t, 30*time.Second, "chromium writes DevToolsActivePort", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "profile", "DevToolsActivePort"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if err != nil || len(lines) < 2 {
			return false
		}
		port, wsPath = lines[0], lines[1]
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+port+wsPath, nil)
	if err != nil {
		t.Fatalf("connect to chromium: %v", err)
	}
	conn.SetReadLimit(-1)
	t.Cleanup(func() { _ = conn.CloseNow() })
	b := &browser{conn: conn, waiting: map[int64]chan cdpReply{}}
	go b.readLoop()

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.call(t, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.call(t, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	return b
}

func (b *browser) readLoop() {
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			return
		}
		var msg struct {
			ID int64 `json:"id"`
			cdpReply
		}
		if json.Unmarshal(data, &msg) != nil || msg.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.waiting[msg.ID]
		delete(b.waiting, msg.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- msg.cdpReply
		}
	}
}

// call sends one CDP command (to the page when session is set) and decodes
// its result into out.
func (b *browser) call(t *testing.T, session, method string, params any, out any) {
	t.Helper()
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpReply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	req := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		req["sessionId"] = session
	}
	data, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.conn.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatalf("cdp %s: %v", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			t.Fatalf("cdp %s: %s", method, r.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				t.Fatalf("cdp %s result: %v", method, err)
			}
		}
	case <-ctx.Done():
		t.Fatalf("cdp %s: no answer", method)
	}
}

func (b *browser) navigate(t *testing.T, url string) {
	t.Helper()
	b.call(t, b.session, "Page.navigate", map[string]any{"url": url}, nil)
}

// eval runs a JavaScript expression in the page (awaiting a promise) and
// decodes its JSON-able value into out.
func (b *browser) eval(t *testing.T, expr string, out any) error {
	t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	b.call(t, b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if res.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s", res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// screenshot saves a PNG of the page to the file named by the environment
// variable DEMO_SCREENSHOT_DIR (+ name), when it is set: a way to look at
// the demo client as a person would.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("DEMO_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	var shot struct {
		Data []byte `json:"data"`
	}
	b.call(t, b.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), shot.Data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// run executes JavaScript statements in the page.
func (b *browser) run(t *testing.T, js string) {
	t.Helper()
	if err := b.eval(t, "(() => { "+js+" ; return true; })()", nil); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls a boolean expression until it holds; on timeout it shows
// the page's text.
func (b *browser) waitFor(t *testing.T, d time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var ok bool
		err := b.eval(t, expr, &ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var page string
			_ = b.eval(t, "document.body.innerText + document.getElementById(\"log\").textContent", &page)
			t.Fatalf("%s: not within %s (last error: %v); page text:\n%s", what, d, err, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
