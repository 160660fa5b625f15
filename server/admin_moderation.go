package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	"parley/codec"
	"parley/server/hub"
)

// Server-wide moderation on the admin port (docs/OPERATIONS.md
// "Moderation"), for an operator without a client: the same calls as an
// admin's requests, acting as hub.AdminActor. A change must be a POST or
// DELETE; a POST carries JSON (Content-Type application/json), which a
// web page on another origin cannot send without a preflight the port
// never answers.

// maxAdminBody bounds a moderation request's body.
const maxAdminBody = 16 << 10

// BanRequest is the body of POST /moderation/bans: an account or an
// address or CIDR network, a duration in seconds (absent: until lifted)
// and a reason.
type BanRequest struct {
	Account  string `json:"account,omitempty"`
	Address  string `json:"address,omitempty"`
	Duration *int64 `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// RevokeRequest is the body of POST /moderation/revoke: an account's
// tokens issued before IssuedBefore (Unix ms; 0: now), or one token by
// its jti.
type RevokeRequest struct {
	Account      string `json:"account,omitempty"`
	IssuedBefore int64  `json:"issued_before,omitempty"`
	JTI          string `json:"jti,omitempty"`
}

// LockdownState is the body of POST /moderation/lockdown and the answer
// of both its methods.
type LockdownState struct {
	Level string `json:"level"`
}

// BansAnswer answers GET /moderation/bans.
type BansAnswer struct {
	Lockdown string          `json:"lockdown"`
	Bans     []codec.BanInfo `json:"bans"`
}

// AuditAnswer answers GET /moderation/audit.
type AuditAnswer struct {
	Entries []codec.AuditEntry `json:"entries"`
	More    bool               `json:"more"`
}

// AdminError is the body of a refused moderation request.
type AdminError struct {
	Code    codec.Code `json:"code"`
	Message string     `json:"message"`
}

func (a *adminServer) routeModeration(mux *http.ServeMux) {
	h := a.srv.hub
	mux.HandleFunc("GET /moderation/bans", func(w http.ResponseWriter, _ *http.Request) {
		bans, lock := h.ServerBans()
		writeJSON(w, BansAnswer{Lockdown: string(lock), Bans: append([]codec.BanInfo{}, bans...)})
	})
	mux.HandleFunc("POST /moderation/bans", func(w http.ResponseWriter, r *http.Request) {
		var b BanRequest
		if readJSON(w, r, &b) {
			answer(w, h.BanFromServer(hub.AdminActor, b.Account, b.Address, b.Duration, b.Reason))
		}
	})
	mux.HandleFunc("DELETE /moderation/bans", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		answer(w, h.UnbanFromServer(hub.AdminActor, q.Get("account"), q.Get("address")))
	})
	mux.HandleFunc("POST /moderation/revoke", func(w http.ResponseWriter, r *http.Request) {
		var rv RevokeRequest
		if readJSON(w, r, &rv) {
			var before time.Time
			if rv.IssuedBefore > 0 {
				before = time.UnixMilli(rv.IssuedBefore)
			}
			answer(w, h.RevokeTokens(hub.AdminActor, rv.Account, before, rv.JTI))
		}
	})
	mux.HandleFunc("GET /moderation/lockdown", func(w http.ResponseWriter, _ *http.Request) {
		_, lock := h.ServerBans()
		writeJSON(w, LockdownState{Level: string(lock)})
	})
	mux.HandleFunc("POST /moderation/lockdown", func(w http.ResponseWriter, r *http.Request) {
		var l LockdownState
		if readJSON(w, r, &l) {
			answer(w, h.SetLockdown(hub.AdminActor, l.Level))
		}
	})
	mux.HandleFunc("GET /moderation/audit", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, before := codec.AuditPage, uint64(0)
		var err error
		if v := q.Get("limit"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
				fail(w, fmt.Errorf("%w: limit is 1 to 1000", codec.ErrBadRequest))
				return
			}
		}
		if v := q.Get("before"); v != "" {
			if before, err = strconv.ParseUint(v, 10, 64); err != nil {
				fail(w, fmt.Errorf("%w: before is an entry's seq", codec.ErrBadRequest))
				return
			}
		}
		room := q.Get("room")
		if room != "" {
			n, err := codec.ParseRoom(room)
			if err != nil {
				fail(w, err)
				return
			}
			room = n.Display
		}
		entries, more := h.AuditPage(room, before, limit)
		writeJSON(w, AuditAnswer{Entries: append([]codec.AuditEntry{}, entries...), More: more})
	})
}

// readJSON decodes a POST's JSON body into v, or answers the error and
// reports false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		w.Header().Set("Accept", "application/json")
		http.Error(w, "a moderation request's body is JSON (Content-Type: application/json)", http.StatusUnsupportedMediaType)
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, fmt.Errorf("%w: %v", codec.ErrBadRequest, err))
		return false
	}
	return true
}

// answer writes {"ok":true}, or the error.
func answer(w http.ResponseWriter, err error) {
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, map[string]bool{"ok": true})
}

// fail answers an error with its protocol code: 400 for bad input, 403
// for forbidden, 500 for anything else.
func fail(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, codec.CodeOf(err)
	switch {
	case errors.Is(err, codec.ErrForbidden):
		status = http.StatusForbidden
	case code != "":
		status = http.StatusBadRequest
	default:
		code = codec.CodeInternal
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(AdminError{Code: code, Message: err.Error()})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
