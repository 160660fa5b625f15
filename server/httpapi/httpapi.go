// Package httpapi is Parley's server API (docs/API.md): JSON over HTTP
// on its own listener, for the application that owns the users. Every
// method is POST /api/<method>, authenticated by an API key; GET
// /openapi.json serves the contract (parley/api's openapi.json). The
// methods call the hub's session-less entry points (hub/app.go) through
// App, and answer in the protocol's error codes with an HTTP status.
package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"

	"parley/api"
	"parley/codec"
	"parley/server/moderation"
)

// App is the chat as the API acts on it: *hub.Hub. Methods with done
// answer through it exactly once, on any goroutine.
type App interface {
	Publish(p api.Publish, done func(seq uint64, err error))
	AppDM(d api.DM, done func(api.DMSent, error))
	Disconnect(account, message string) (int, error)
	Presence(account string) (api.Present, error)
	RoomInfo(name string, done func(api.RoomInfo, error))
	RoomList() []api.RoomInfo
	RoomMembers(name, after string, limit int, done func(api.Members, error))
	History(q api.History, done func(api.Page, error))
	CreateRoom(a moderation.Actor, c api.RoomCreate) error
	SetRoom(a moderation.Actor, c api.RoomSet) error
	Moderate(a moderation.Actor, m api.Moderate) error
}

// Config is the API's. Zero values take the defaults below.
type Config struct {
	App   App
	Keys  []Key
	Stats func() api.Stats
	// Actor is who the API acts as with a key, in the rooms' rules and
	// the audit log (hub.AppActor).
	Actor func(keyID string) moderation.Actor
	// Rate and Burst bound each key's requests per second; a batch
	// counts each of its requests. Default 200 and 400.
	Rate  float64
	Burst int
	// MaxBody bounds a request's body; default 1 MiB.
	MaxBody int64
	// MaxConns bounds the API's open connections; default 256: past it
	// a new connection waits in the listen backlog.
	MaxConns int
	// Timeout bounds a request's wait for the chat (a publish waits for
	// its store); default 10 s: past it the answer is unavailable, and
	// the request may still complete.
	Timeout time.Duration
	Logger  *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Rate <= 0 {
		c.Rate = 200
	}
	if c.Burst <= 0 {
		c.Burst = max(int(2*c.Rate), 2)
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 256
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// API is the server API's HTTP handler.
type API struct {
	cfg      Config
	keys     keyRing
	mu       sync.Mutex
	limiters map[string]*rate.Limiter // by key ID
	requests *prometheus.CounterVec
	mux      *http.ServeMux
}

// New returns the API for cfg.
func New(cfg Config) *API {
	a := &API{cfg: cfg.withDefaults(), limiters: map[string]*rate.Limiter{}, mux: http.NewServeMux()}
	a.keys.set(cfg.Keys)
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_api_requests_total", Help: "Server API requests, by method and HTTP status.",
	}, []string{"method", "status"})
	a.mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(api.OpenAPI)
	})
	a.mux.HandleFunc("POST /api/{method}", a.serveMethod)
	return a
}

// SetKeys puts keys in force (a reload on SIGHUP).
func (a *API) SetKeys(keys []Key) { a.keys.set(keys) }

// Collectors are the API's metrics, for the admin port.
func (a *API) Collectors() []prometheus.Collector { return []prometheus.Collector{a.requests} }

// Serve serves the API on ln until it closes: HTTP/1.1, or HTTPS with
// tlsConfig, at most MaxConns connections at once.
func (a *API) Serve(ln net.Listener, tlsConfig *tls.Config) *http.Server {
	ln = netutil.LimitListener(ln, a.cfg.MaxConns)
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: a.cfg.Timeout + 10*time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(a.cfg.Logger.Handler(), slog.LevelWarn)}
	go func() {
		var err error
		if tlsConfig != nil {
			srv.TLSConfig = tlsConfig
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.cfg.Logger.Error("server API failed", "err", err.Error())
		}
	}()
	return srv
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// serveMethod authenticates a request, charges its key, and runs its
// method (or its batch).
func (a *API) serveMethod(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("method")
	m, known := methods[name]
	if !known && name != api.MethodBatch {
		name = "unknown"
	}
	status, body := a.handle(r, name, m)
	a.requests.WithLabelValues(name, strconv.Itoa(status)).Inc()
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// handle answers a request for the method called name (m; "unknown"
// for none, batch for a batch).
func (a *API) handle(r *http.Request, name string, m method) (int, []byte) {
	key, err := a.keys.match(r)
	if err != nil {
		return errorReply(http.StatusUnauthorized, codec.CodeBadToken, err.Error())
	}
	if name == "unknown" {
		return errorReply(http.StatusNotFound, codec.CodeUnknownType, fmt.Sprintf("no method %q (GET /openapi.json lists them)", r.PathValue("method")))
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return errorReply(http.StatusUnsupportedMediaType, codec.CodeBadRequest, "the body is JSON: send Content-Type: application/json")
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, a.cfg.MaxBody)); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errorReply(http.StatusRequestEntityTooLarge, codec.CodeBodyTooLarge, fmt.Sprintf("a request's body is at most %d bytes", a.cfg.MaxBody))
		}
		return errorReply(http.StatusBadRequest, codec.CodeBadRequest, "the body could not be read: "+err.Error())
	}
	if name == api.MethodBatch {
		return a.batch(r.Context(), key, buf.Bytes())
	}
	if !a.charge(key, 1) {
		return errorReply(http.StatusTooManyRequests, codec.CodeRateLimited, fmt.Sprintf("key %q is over %g requests a second", key.ID, a.cfg.Rate))
	}
	out, err := a.call(r.Context(), key, name, m, buf.Bytes())
	if err != nil {
		return failure(err)
	}
	return http.StatusOK, mustJSON(out)
}

// call runs one method for key.
func (a *API) call(ctx context.Context, key Key, name string, m method, params []byte) (any, error) {
	if key.ReadOnly && !api.ReadOnly[name] {
		return nil, fmt.Errorf("%w: key %q is read-only; %s writes", codec.ErrForbidden, key.ID, name)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	return m(ctx, a, key, params)
}

// charge takes n of key's requests, or reports that it is over its rate.
func (a *API) charge(key Key, n int) bool {
	a.mu.Lock()
	l := a.limiters[key.ID]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(a.cfg.Rate), a.cfg.Burst)
		a.limiters[key.ID] = l
	}
	a.mu.Unlock()
	return l.AllowN(time.Now(), n)
}

// batch runs a batch's requests in order, each as if alone.
func (a *API) batch(ctx context.Context, key Key, body []byte) (int, []byte) {
	var b api.Batch
	if err := decode(body, &b); err != nil {
		return failure(err)
	}
	switch {
	case len(b.Requests) == 0:
		return errorReply(http.StatusBadRequest, codec.CodeBadRequest, "a batch holds at least one request")
	case len(b.Requests) > api.MaxBatch:
		return errorReply(http.StatusBadRequest, codec.CodeBadRequest, fmt.Sprintf("a batch holds at most %d requests", api.MaxBatch))
	}
	if !a.charge(key, len(b.Requests)) {
		return errorReply(http.StatusTooManyRequests, codec.CodeRateLimited, fmt.Sprintf("key %q is over %g requests a second (a batch counts each)", key.ID, a.cfg.Rate))
	}
	out := api.Batched{Replies: make([]api.BatchReply, len(b.Requests))}
	for i, req := range b.Requests {
		m, ok := methods[req.Method]
		var res any
		var err error
		if ok {
			res, err = a.call(ctx, key, req.Method, m, req.Params)
		} else {
			err = fmt.Errorf("%w: no method %q in a batch", codec.ErrUnknownType, req.Method)
		}
		a.requests.WithLabelValues("batch:"+batchLabel(req.Method, ok), statusLabel(err)).Inc()
		if err != nil {
			_, e := status(err)
			out.Replies[i].Error = e
			continue
		}
		out.Replies[i].Result = mustJSON(res)
	}
	return http.StatusOK, mustJSON(out)
}

func batchLabel(method string, known bool) string {
	if !known {
		return "unknown"
	}
	return method
}

func statusLabel(err error) string {
	if err == nil {
		return "200"
	}
	code, _ := status(err)
	return strconv.Itoa(code)
}

// decode reads a request's JSON strictly: unknown fields are an error,
// so that a misspelt field is not silently ignored.
func decode(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", codec.ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: one JSON object per request", codec.ErrBadRequest)
	}
	return nil
}

// status maps an error to its HTTP status and body.
func status(err error) (int, *api.Error) {
	code := codec.CodeOf(err)
	st := http.StatusBadRequest
	switch code {
	case "":
		code, st = codec.CodeInternal, http.StatusInternalServerError
	case codec.CodeForbidden:
		st = http.StatusForbidden
	case codec.CodeNotFound, codec.CodeNoSuchUser, codec.CodeUnknownType:
		st = http.StatusNotFound
	case codec.CodeRateLimited:
		st = http.StatusTooManyRequests
	case codec.CodeUnavailable:
		st = http.StatusServiceUnavailable
	case codec.CodeNotStored, codec.CodeInternal:
		st = http.StatusInternalServerError
	case codec.CodeBodyTooLarge:
		st = http.StatusRequestEntityTooLarge
	case codec.CodeTooManyRooms:
		st = http.StatusConflict
	}
	msg := err.Error()
	if s := codec.Sentinel(code); s != nil {
		msg = trimPrefix(trimPrefix(msg, string(code)+": "), s.Msg+": ")
	}
	return st, &api.Error{Code: string(code), Message: msg}
}

func trimPrefix(s, p string) string {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func failure(err error) (int, []byte) {
	st, e := status(err)
	return st, mustJSON(e)
}

func errorReply(st int, code codec.Code, msg string) (int, []byte) {
	return st, mustJSON(&api.Error{Code: string(code), Message: msg})
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"code":"internal_error","message":"the answer could not be encoded"}`)
	}
	return data
}
