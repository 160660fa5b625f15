// Package web is the chat page parley serve offers at / on --ws-addr:
// plain HTML, CSS and JavaScript, embedded in the binary, with no build
// step and nothing fetched from elsewhere at run time.
package web

import (
	"embed"
	"encoding/json"
	"net/http"
)

//go:embed index.html app.js style.css favicon.svg
var files embed.FS

// Handler serves the page. Its Content-Security-Policy lets it load only
// its own files and open WebSockets to its own host, and no inline script
// runs: messages are shown as text, never as HTML.
func Handler() http.Handler {
	fs := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		if r.URL.Path == "/favicon.ico" { // what browsers ask for without a link
			r.URL.Path = "/favicon.svg"
		}
		fs.ServeHTTP(w, r)
	})
}

// ServerInfo is what the page needs to know before logging in, served as
// JSON at /info.
type ServerInfo struct {
	// Auth is the server's --auth: "off" (nick logins), "optional" (a
	// token, or a nick as a guest) or "required" (a token).
	Auth string `json:"auth"`
	// MaxBody is the largest message body, in bytes.
	MaxBody int `json:"max_body"`
	// NickHold is how long a dropped session's nick is kept for its
	// resume, in milliseconds.
	NickHold int64 `json:"nick_hold_ms"`
}

// Info serves info as JSON.
func Info(info ServerInfo) http.Handler {
	body, _ := json.Marshal(info)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// allowed sets the page's security headers and refuses methods other
// than GET and HEAD.
func allowed(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	return true
}
