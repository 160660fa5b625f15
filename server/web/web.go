// Package web is the chat page parley serve offers at / on --ws-addr:
// plain HTML, CSS and JavaScript, embedded in the binary, with no build
// step and nothing fetched from elsewhere at run time.
package web

import (
	"embed"
	"net/http"
)

//go:embed index.html app.js style.css
var files embed.FS

// Handler serves the page. Its Content-Security-Policy lets it load only
// its own files and open WebSockets to its own host, and no inline script
// runs: messages are shown as text, never as HTML.
func Handler() http.Handler {
	fs := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		fs.ServeHTTP(w, r)
	})
}
