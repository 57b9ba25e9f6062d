// Package webclient embeds the demo web client: plain HTML and JavaScript,
// no build step. It logs in with a development token, keeps a WebSocket to
// this edge (resuming from its last cursor after every reconnect, with
// jittered exponential backoff), acks what it shows, and sends through the
// gateway.
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
