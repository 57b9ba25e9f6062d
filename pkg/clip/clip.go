// Package clip shortens text that came from outside (ids, header values,
// error texts) before it is echoed in an error message, a log line or a
// Pub/Sub attribute, so a hostile or huge value cannot bloat what carries it.
package clip

import "unicode/utf8"

// Text returns s when it is at most n bytes long; otherwise its longest
// prefix that, with a final "…", fits in n bytes, cut on a rune boundary.
func Text(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	if n < len(ellipsis) {
		return ""
	}
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
