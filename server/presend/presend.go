// Package presend is the application's pre-send hook over HTTP
// (docs/API.md "Pre-send hook"): each say and dm is POSTed to the
// application, which allows it, rejects it or replaces its body, within
// a timeout. It implements hub.PreSend; the hub holds only the sender's
// session while a call is out.
package presend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"parley/api"
	"parley/codec"
)

// Failure policies, for an application that is slow, down or answers
// nonsense.
const (
	FailOpen   = "open"   // the message goes through as sent
	FailClosed = "closed" // the sender gets unavailable
)

// Config is the hook's. Zero values take the defaults below.
type Config struct {
	URL string
	// Secret, when set, signs each request (api.SignatureHeader).
	Secret []byte
	// Timeout bounds a decision, from the say's arrival; default 1.5 s.
	Timeout time.Duration
	// Failure is FailOpen (the default) or FailClosed.
	Failure string
	// MaxInFlight bounds the calls out at once (and the connections to
	// the application); default 256. A call waiting for a slot counts
	// against its timeout.
	MaxInFlight int
	Logger      *slog.Logger
}

// Hook calls the application.
type Hook struct {
	cfg       Config
	client    *http.Client
	slots     chan struct{}
	latency   prometheus.Histogram
	decisions *prometheus.CounterVec
	warned    atomic.Int64 // when a failure was last logged, Unix ns
}

// New returns the hook for cfg.
func New(cfg Config) (*Hook, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 1500 * time.Millisecond
	}
	if cfg.Failure == "" {
		cfg.Failure = FailOpen
	}
	if cfg.Failure != FailOpen && cfg.Failure != FailClosed {
		return nil, fmt.Errorf("presend: the failure policy is open or closed, not %q", cfg.Failure)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost, transport.MaxConnsPerHost = cfg.MaxInFlight, cfg.MaxInFlight
	return &Hook{
		cfg: cfg, client: &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, slots: make(chan struct{}, cfg.MaxInFlight),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "parley_hook_seconds",
			Help:    "Pre-send hook calls, from the message's arrival to the decision.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2.5, 5}}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_hook_decisions_total",
			Help: "Pre-send hook decisions: allow, reject, replace, or failed_open and failed_closed when the application did not answer in time or answered nonsense."}, []string{"decision"}),
	}, nil
}

// Collectors are the hook's metrics, for the admin port.
func (h *Hook) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.latency, h.decisions}
}

// Check asks the application about req on a goroutine of its own and
// answers through done.
func (h *Hook) Check(req api.HookRequest, done func(api.HookVerdict, error)) {
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
		defer cancel()
		v, err := h.call(ctx, &req)
		h.latency.Observe(time.Since(start).Seconds())
		if err != nil {
			v, err = h.failed(req, err)
		} else {
			h.decisions.WithLabelValues(v.Action).Inc()
		}
		done(v, err)
	}()
}

// failed applies the failure policy.
func (h *Hook) failed(req api.HookRequest, cause error) (api.HookVerdict, error) {
	// Logged at most once per 10 s: a hook that is down fails every call.
	if now, last := time.Now().UnixNano(), h.warned.Load(); now-last >= int64(10*time.Second) && h.warned.CompareAndSwap(last, now) {
		h.cfg.Logger.Warn("pre-send hook failed (parley_hook_decisions_total counts each)", "policy", h.cfg.Failure, "type", req.Type, "err", cause)
	}
	if h.cfg.Failure == FailOpen {
		h.decisions.WithLabelValues("failed_open").Inc()
		return api.HookVerdict{Action: api.HookAllow}, nil
	}
	h.decisions.WithLabelValues("failed_closed").Inc()
	return api.HookVerdict{}, fmt.Errorf("%w: the application did not decide on the message in time; send it again", codec.ErrUnavailable)
}

// maxAnswer bounds the application's answer.
const maxAnswer = 64 << 10

var reasonCode = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// call POSTs req and reads the verdict.
func (h *Hook) call(ctx context.Context, req *api.HookRequest) (api.HookVerdict, error) {
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	case <-ctx.Done():
		return api.HookVerdict{}, fmt.Errorf("no free slot among %d calls: %w", h.cfg.MaxInFlight, ctx.Err())
	}
	body, err := json.Marshal(req)
	if err != nil {
		return api.HookVerdict{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return api.HookVerdict{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "parley-hook")
	if len(h.cfg.Secret) > 0 {
		hr.Header.Set(api.SignatureHeader, api.Sign(h.cfg.Secret, time.Now(), body))
	}
	resp, err := h.client.Do(hr)
	if err != nil {
		return api.HookVerdict{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	switch {
	case err != nil:
		return api.HookVerdict{}, err
	case resp.StatusCode != http.StatusOK:
		return api.HookVerdict{}, fmt.Errorf("the application answered %s", resp.Status)
	case len(data) > maxAnswer:
		return api.HookVerdict{}, fmt.Errorf("the application's answer is over %d bytes", maxAnswer)
	}
	var v api.HookVerdict
	if err := json.Unmarshal(data, &v); err != nil {
		return api.HookVerdict{}, fmt.Errorf("the application's answer is not a verdict: %w", err)
	}
	switch v.Action {
	case api.HookAllow, api.HookReplace:
	case api.HookReject:
		if !reasonCode.MatchString(v.Code) {
			v.Code = "rejected"
		}
		if len(v.Message) > codec.MaxReason {
			v.Message = strings.ToValidUTF8(v.Message[:codec.MaxReason], "")
		}
		if _, bad := codec.BodyControl(v.Message); bad {
			v.Message = "the application refused the message"
		}
	default:
		return api.HookVerdict{}, fmt.Errorf("the application's action %q is not allow, reject or replace", v.Action)
	}
	return v, nil
}
