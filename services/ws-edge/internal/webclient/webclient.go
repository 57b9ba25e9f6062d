// Package webclient embeds the demo web client: index.html, style.css, and
// app.js, a bundle of the JavaScript client library (clients/js) with the
// demo's own code (clients/js/demo/app.ts). The bundle is committed so that
// `go build` needs no Node; `make webclient` rebuilds it and `make test`
// fails when it is stale. The client logs in with a development token,
// keeps a session that resumes from its cursor (kept in localStorage)
// after every reconnect, and is a small chat: conversations with unread
// badges and who is online, history paged back on scroll, the sender's own
// messages in each of its windows, delivered/read ticks from receipts, and
// "… is typing"; it sends through the gateway.
package webclient

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the client's files at the root.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// Unreachable: "static" is embedded above.
		return http.NotFoundHandler()
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
