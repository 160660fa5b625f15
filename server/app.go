package server

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"parley/api"
	"parley/server/httpapi"
	"parley/server/hub"
	"parley/server/presend"
	"parley/server/store"
	"parley/server/webhook"
)

// The application's way in (docs/API.md): the server API on its own
// port, the pre-send hook and the webhooks, made here from the Config
// and handed to the hub as its PreSend and EventSink.

// appParts are what the server made for the application.
type appParts struct {
	api     *httpapi.API  // nil without APIAddr
	sink    *webhook.Sink // nil without WebhookURLs
	metrics []prometheus.Collector
}

// validateApp checks the server API's, the hook's and the webhooks'
// settings.
func (c Config) validateApp() error {
	switch {
	case c.APIAddr != "" && len(c.APIKeys)+len(c.APIReadKeys) == 0:
		return errors.New("server: --api-addr needs --api-key (or --api-read-key): the API takes no request without a key")
	case c.APIAddr == "" && len(c.APIKeys)+len(c.APIReadKeys) > 0:
		return errors.New("server: --api-key serves --api-addr: give it")
	case c.HookFailure != "" && c.HookFailure != presend.FailOpen && c.HookFailure != presend.FailClosed:
		return fmt.Errorf("server: --hook-failure is open or closed, not %q", c.HookFailure)
	case len(c.WebhookURLs) > 0 && c.WebhookSecret == "":
		return errors.New("server: --webhook-url needs --webhook-secret: every delivery is signed")
	case c.HookTimeout < 0, c.APIRate < 0, c.WebhookQueue < 0:
		return errors.New("server: the hook's timeout, the API's rate and the webhook queue must not be negative")
	}
	for _, u := range append([]string{c.HookURL}, c.WebhookURLs...) {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("server: %q is not an http or https URL", u)
		}
	}
	return webhook.CheckEvents(c.WebhookEvents)
}

// apiKeys reads the API's key files.
func (c Config) apiKeys() ([]httpapi.Key, error) {
	var specs []httpapi.KeySpec
	for _, k := range c.APIKeys {
		specs = append(specs, httpapi.KeySpec{Spec: k})
	}
	for _, k := range c.APIReadKeys {
		specs = append(specs, httpapi.KeySpec{Spec: k, ReadOnly: true})
	}
	keys, err := httpapi.LoadKeys(specs)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return keys, nil
}

// setupApp makes the hook and the webhooks for the hub.
func (s *Server) setupApp(hc *hub.Config, st *store.Store) error {
	c := s.cfg
	if c.HookURL != "" {
		var secret []byte
		if c.WebhookSecret != "" {
			var err error
			if secret, err = readSecret(c.WebhookSecret); err != nil {
				return err
			}
		}
		h, err := presend.New(presend.Config{URL: c.HookURL, Secret: secret, Timeout: c.HookTimeout, Failure: c.HookFailure, Logger: c.Logger})
		if err != nil {
			return err
		}
		hc.Hook = h
		s.app.metrics = append(s.app.metrics, h.Collectors()...)
	}
	if len(c.WebhookURLs) > 0 {
		secret, err := readSecret(c.WebhookSecret)
		if err != nil {
			return err
		}
		wc := webhook.Config{URLs: c.WebhookURLs, Secret: secret, Events: c.WebhookEvents, Rooms: c.WebhookRooms,
			MaxQueue: c.WebhookQueue, Node: c.NodeID, Backoff: c.webhookBackoff, Logger: c.Logger}
		switch {
		case st != nil:
			wc.Queues = func(name string, _ int) (webhook.Queue, error) { return st.EventQueue(name) }
		case s.nats != nil:
			wc.Queues = func(name string, max int) (webhook.Queue, error) { return s.nats.EventQueue(name, max) }
		}
		sink, err := webhook.New(wc)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		s.app.sink, hc.Events = sink, sink
		s.app.metrics = append(s.app.metrics, sink.Collectors()...)
	}
	return nil
}

// setupAPI makes the server API on the hub.
func (s *Server) setupAPI() error {
	if s.cfg.APIAddr == "" {
		return nil
	}
	keys, err := s.cfg.apiKeys()
	if err != nil {
		return err
	}
	s.app.api = httpapi.New(httpapi.Config{App: s.hub, Keys: keys, Stats: s.apiStats, Actor: hub.AppActor,
		Rate: s.cfg.APIRate, Logger: s.cfg.Logger})
	s.app.metrics = append(s.app.metrics, s.app.api.Collectors()...)
	return nil
}

// readSecret reads the webhook secret's file.
func readSecret(file string) ([]byte, error) {
	secret, err := httpapi.ReadSecret(file)
	if err != nil {
		return nil, fmt.Errorf("server: webhook secret: %w", err)
	}
	return secret, nil
}

// apiStats is the API's stats: this node's counts.
func (s *Server) apiStats() api.Stats {
	st := s.hub.Stats()
	out := api.Stats{Conns: st.Conns, Online: st.Online, Rooms: st.Rooms, HeldNicks: st.HeldNicks,
		UsersOnline: st.Nicks, UptimeSec: int64(time.Since(s.started).Seconds())}
	if st.Cluster != nil {
		out.Node, out.Nodes, out.UsersOnline = st.Cluster.Node, st.Cluster.Peers+1, st.Cluster.Users
	}
	return out
}

// closeApp undoes setupApp when New fails after it.
func (s *Server) closeApp(st *store.Store) {
	if s.app.sink != nil {
		s.app.sink.Close()
	}
	if st != nil {
		_ = st.Close()
	}
}
