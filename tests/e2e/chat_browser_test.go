package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestChatInChromium runs the demo chat (ws-edge's embedded client, the
// JavaScript library's real code) in headless Chromium against the real
// gateway, worker and edge on the emulators: alice in two windows of one
// browser (one user, two sessions, shared storage) and bob in a browser
// context of his own. Each subtest proves one thing a person sees; they run
// in order on the same pages.
func TestChatInChromium(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 1, GatewayEnv: []string{"CORS_ALLOWED_ORIGINS=*"}})
	testChat(t, "http://"+c.Edges[0].Addr+"/", c.GatewayURL(), c.Token)
}

// testChat drives the demo served at origin, whose gateway is gatewayURL.
func testChat(t *testing.T, origin, gatewayURL string, token func(user string) string) {
	b := harness.StartBrowser(t)
	aliceCtx, bobCtx := b.NewContext(t), b.NewContext(t)
	a1 := b.NewPage(t, aliceCtx, "alice window 1")
	a2 := b.NewPage(t, aliceCtx, "alice window 2")
	bob := b.NewPage(t, bobCtx, "bob")

	login(t, a1, origin, "alice")
	// The second window shares the first's storage: it signs in as alice
	// by itself, with a session of its own.
	a2.Navigate(t, origin)
	a2.WaitFor(t, 30*time.Second, "second session live", `document.getElementById("status").dataset.state === "open" && document.getElementById("whoami").textContent === "signed in as alice"`)
	login(t, bob, origin, "bob")

	// The conversation, in the list of each side.
	withBob := `document.querySelector('#peer-list li[data-peer="bob"]')`
	withAlice := `document.querySelector('#peer-list li[data-peer="alice"]')`

	a1.Run(t, `document.getElementById("peer").value = "bob"; document.getElementById("new-chat").requestSubmit();
		document.getElementById("text").value = "hello bob"; document.getElementById("send").requestSubmit();`)
	a1.WaitFor(t, 10*time.Second, "the conversation with bob is open", `!!`+withBob+` && `+withBob+`.classList.contains("current")`)
	mine := func(text string) string {
		return fmt.Sprintf(`[...document.querySelectorAll("#messages li[data-mine=true]")].find(li => li.querySelector(".text").textContent === %q)`, text)
	}

	t.Run("the conversation id is the one the gateway derives", func(t *testing.T) {
		want := wire.DeriveConversationID([]string{"alice", "bob"})
		var ids struct{ Alice, Bob string }
		bob.WaitFor(t, 20*time.Second, "bob has the conversation", `!!`+withAlice)
		if err := a1.Eval(t, withBob+`.dataset.conv`, &ids.Alice); err != nil {
			t.Fatal(err)
		}
		if err := bob.Eval(t, withAlice+`.dataset.conv`, &ids.Bob); err != nil {
			t.Fatal(err)
		}
		if ids.Alice != want || ids.Bob != want {
			t.Fatalf("conversation ids: alice's page %q, bob's page %q; want the derived %q on both", ids.Alice, ids.Bob, want)
		}
	})

	t.Run("a message reaches the recipient, unread", func(t *testing.T) {
		a1.WaitFor(t, 20*time.Second, "own message shown, stored", `!!`+mine("hello bob")+` && ["accepted", "delivered", "read"].includes(`+mine("hello bob")+`.dataset.tick)`)
		bob.WaitFor(t, 20*time.Second, "bob's conversation with alice, one unread", withAlice+`?.querySelector(".unread")?.textContent === "1"`)
	})

	t.Run("a message reaches the sender's other window", func(t *testing.T) {
		// alice's other window: the server's copy for the sender arrives live.
		a2.WaitFor(t, 20*time.Second, "the conversation in the other window", `!!`+withBob)
		a2.Run(t, withBob+`.click()`)
		a2.WaitFor(t, 20*time.Second, "alice's message on alice's side in the other window", `!!`+mine("hello bob"))
	})

	t.Run("ticks move to delivered", func(t *testing.T) {
		// bob's session acked it (the library does): the edge publishes a
		// delivered receipt for the WebSocket ack; delivered, not read yet.
		a1.WaitFor(t, 20*time.Second, "delivered ✓✓", mine("hello bob")+`?.dataset.tick === "delivered" && `+mine("hello bob")+`.querySelector(".tick").textContent === "✓✓"`)
	})

	t.Run("ticks move to read", func(t *testing.T) {
		bob.Run(t, withAlice+`.click()`)
		bob.WaitFor(t, 10*time.Second, "bob reads it", `[...document.querySelectorAll("#messages li[data-mine=false] .text")].some(e => e.textContent === "hello bob") && !`+withAlice+`.querySelector(".unread")`)
		a1.WaitFor(t, 20*time.Second, "read (blue ✓✓) in the sending window", mine("hello bob")+`?.dataset.tick === "read"`)
		a2.WaitFor(t, 20*time.Second, "read in the other window too", mine("hello bob")+`?.dataset.tick === "read"`)
		a1.Screenshot(t, "chat-read")
		// The gateway agrees: the message view counts one delivered, one read.
		var id string
		if err := a1.Eval(t, mine("hello bob")+`.dataset.id`, &id); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		status, body, err := harness.Get(ctx, gatewayURL+"/v1/messages/"+id, token("alice"))
		var view struct {
			Delivered int `json:"delivered_count"`
			Read      int `json:"read_count"`
		}
		if err != nil || status != http.StatusOK || json.Unmarshal(body, &view) != nil || view.Delivered != 1 || view.Read != 1 {
			t.Fatalf("GET /v1/messages/%s = %d %s (%v), want delivered_count 1 and read_count 1", id, status, body, err)
		}
	})

	t.Run("who is online", func(t *testing.T) {
		// bob got a message from alice: they share a conversation, so bob may
		// watch her (the edge answers others as offline, never seen).
		bob.WaitFor(t, 20*time.Second, "alice shows online", withAlice+`?.querySelector(".presence").dataset.online === "true" && document.getElementById("online").textContent.includes("alice")`)
		// Both of her windows leave: offline, after the server's debounce
		// (a reconnect within it is not a flap).
		a1.Run(t, `courierDemo.client.disconnect()`)
		a2.Run(t, `courierDemo.client.disconnect()`)
		left := time.Now()
		bob.WaitFor(t, 30*time.Second, "alice shows offline after she left", withAlice+`?.querySelector(".presence").dataset.online === "false" && !document.getElementById("online").textContent.includes("alice")`)
		if d := time.Since(left); d < 2*time.Second {
			t.Errorf("alice went offline %s after leaving: not debounced", d.Round(100*time.Millisecond))
		}
		a1.Run(t, `courierDemo.client.connect()`)
		a2.Run(t, `courierDemo.client.connect()`)
		bob.WaitFor(t, 20*time.Second, "alice online again", withAlice+`?.querySelector(".presence").dataset.online === "true"`)
		a1.WaitFor(t, 20*time.Second, "alice live again", `document.getElementById("status").dataset.state === "open"`)
		a2.WaitFor(t, 20*time.Second, "alice's other window live again", `document.getElementById("status").dataset.state === "open"`)
	})

	t.Run("typing shows and expires", func(t *testing.T) {
		// One keystroke, then nothing: bob's client sends one typing signal
		// and no "stopped"; alice's windows show it, then expire it on their own.
		bob.Run(t, withAlice+`.click()`)
		bob.WaitFor(t, 10*time.Second, "bob's conversation with alice open", withAlice+`.classList.contains("current")`)
		bob.Run(t, `const i = document.getElementById("text"); i.value = "hel"; i.dispatchEvent(new Event("input"));`)
		a1.WaitFor(t, 10*time.Second, "bob is typing", `document.getElementById("typing").textContent === "bob is typing…" && !!`+withBob+`.querySelector(".typing")`)
		shown := time.Now()
		a1.Screenshot(t, "chat-typing")
		var own string
		if err := bob.Eval(t, `document.getElementById("typing").textContent`, &own); err != nil || own != "" {
			t.Errorf("bob's own window shows %q (%v), want nothing", own, err)
		}
		a1.WaitFor(t, 15*time.Second, "typing expired", `document.getElementById("typing").textContent === "" && !`+withBob+`.querySelector(".typing")`)
		if d := time.Since(shown); d < 4*time.Second || d > 9*time.Second {
			t.Errorf("typing showed for %s; receivers expire it 6 s after the last signal", d.Round(100*time.Millisecond))
		}
		// Typing again, then sending: the message ends it at once.
		bob.Run(t, `const i = document.getElementById("text"); i.value = "see you"; i.dispatchEvent(new Event("input"));`)
		a1.WaitFor(t, 10*time.Second, "bob is typing again", `document.getElementById("typing").textContent === "bob is typing…"`)
		bob.Run(t, `document.getElementById("send").requestSubmit()`)
		a1.WaitFor(t, 3*time.Second, "the message ends the typing", `document.getElementById("typing").textContent === "" && [...document.querySelectorAll("#messages li[data-mine=false] .text")].some(e => e.textContent === "see you")`)
	})

	t.Run("a signal through the gateway when the session is closed", func(t *testing.T) {
		// The library's signal(): over the session when open, else POST /v1/signals.
		a1.Run(t, `window.signals = []; courierDemo.client.on("signal", (s) => window.signals.push(s));`)
		if err := bob.Eval(t, `(async () => { courierDemo.client.disconnect(); await courierDemo.client.signal({ to: ["alice"], kind: "wave", data: { hi: 1 } }); courierDemo.client.connect(); return true; })()`, nil); err != nil {
			t.Fatalf("signal over REST: %v", err)
		}
		a1.WaitFor(t, 10*time.Second, "the wave", `window.signals.some(s => s.from === "bob" && s.kind === "wave" && s.data.hi === 1)`)
		bob.WaitFor(t, 20*time.Second, "bob live again", `document.getElementById("status").dataset.state === "open"`)
	})

	t.Run("scrolling back loads older history", func(t *testing.T) {
		// 45 sends one after another: seconds alone, longer on a loaded machine.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		const n = 45
		for i := range n {
			if _, err := harness.Send(ctx, gatewayURL, token("bob"), []string{"alice"}, map[string]string{"text": fmt.Sprintf("old %02d", i)}, fmt.Sprintf("hist-%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		a1.WaitFor(t, 30*time.Second, "the last one arrived live", `[...document.querySelectorAll("#messages .text")].some(e => e.textContent === "old 44")`)
		// A fresh page: the conversation comes from history, newest page first.
		a1.Navigate(t, origin)
		a1.WaitFor(t, 30*time.Second, "live again after the reload", `document.getElementById("status").dataset.state === "open" && !!`+withBob)
		a1.Run(t, withBob+`.click()`)
		a1.WaitFor(t, 20*time.Second, "the newest page", `document.getElementById("messages").dataset.loaded === "true"`)
		texts := func() []string {
			var out []string
			if err := a1.Eval(t, `[...document.querySelectorAll("#messages li .text")].map(e => e.textContent)`, &out); err != nil {
				t.Fatal(err)
			}
			return out
		}
		first := texts()
		if len(first) != 20 || first[0] != "old 25" {
			t.Fatalf("the newest page shows %d messages from %q, want the 20 newest (old 25 … old 44): %q", len(first), first[0], first)
		}
		for pages := 1; ; pages++ {
			before := len(texts())
			a1.Run(t, `const m = document.getElementById("messages"); m.scrollTop = 0; m.dispatchEvent(new Event("scroll"));`)
			a1.WaitFor(t, 20*time.Second, "an older page", fmt.Sprintf(`document.getElementById("messages").dataset.loaded === "true" && (document.querySelectorAll("#messages li").length > %d || document.getElementById("messages").dataset.hasMore === "false")`, before))
			got := texts()
			if got[0] == "hello bob" {
				// Everything, oldest first, each once: the first message, what
				// the subtests before sent, then the 45.
				var want []string
				for i := range n {
					want = append(want, fmt.Sprintf("old %02d", i))
				}
				if len(got) < n+1 || strings.Join(got[len(got)-n:], "|") != strings.Join(want, "|") || len(got) > n+3 {
					t.Fatalf("after %d older pages the conversation reads:\n%s\nwant hello bob, at most 2 more, then old 00 … old 44", pages, strings.Join(got, "|"))
				}
				if pages != 2 {
					t.Errorf("took %d older pages, want 2 (20 per page)", pages)
				}
				a1.Screenshot(t, "chat-history")
				return
			}
			if len(got) <= before || pages > 5 {
				t.Fatalf("scrolling back did not load older messages (page %d: %d → %d)", pages, before, len(got))
			}
		}
	})
}

// login signs a page in with a development token (DEV_TOKENS=true) and
// waits for its session.
func login(t *testing.T, p *harness.Page, origin, user string) {
	t.Helper()
	p.Navigate(t, origin)
	p.WaitFor(t, 30*time.Second, "client ready with dev login", `document.body.dataset.ready === "1" && !document.getElementById("login").hidden`)
	p.Run(t, fmt.Sprintf(`document.getElementById("user").value = %q; document.getElementById("login").requestSubmit();`, user))
	p.WaitFor(t, 30*time.Second, "session live", `document.getElementById("status").dataset.state === "open"`)
}
