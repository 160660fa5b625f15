package client

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"

	"parley/codec"
)

// Options configures a Client. Zero values mean the documented defaults.
type Options struct {
	// Nick is the nickname to log in with. Required unless Token is set:
	// a token's login takes its nick from the token (Client.Nick says
	// which).
	Nick string
	// Token, when set, gives the login token (docs/PROTOCOL.md "Tokens
	// and accounts"). It is called before every connection and, while
	// connected, before the session's token expires, to refresh it: so a
	// token that is rotated under the client (a file a sidecar rewrites)
	// is picked up. Default: log in by nick.
	Token func(ctx context.Context) (string, error)
	// TLS, when set, makes the default dial a TLS connection with this
	// configuration (its ServerName defaults to the address's host).
	TLS *tls.Config
	// Reconnect makes the client reconnect after the connection drops for
	// any reason other than quit, bye shutdown or bye disconnected (the
	// application ended the account's sessions), with exponential backoff
	// and jitter, logging in again with the same nick and rejoining its
	// rooms. The login carries the last session's resume token, which takes
	// back the nick the server holds for a while after a drop. A refused
	// login (nick_taken among others) is retried like a failed dial.
	// Default false.
	Reconnect bool
	// ReconnectOnShutdown also reconnects after bye shutdown, for a server
	// that is restarting. Only with Reconnect. Default false.
	ReconnectOnShutdown bool
	// MinBackoff and MaxBackoff bound the wait between reconnect attempts:
	// it doubles from MinBackoff up to MaxBackoff, each wait drawn at random
	// from its upper half. Defaults 250ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one connection attempt, login included. Default 5s.
	DialTimeout time.Duration
	// ReadTimeout drops a connection on which nothing arrived for this long;
	// the server pings every 10s by default, so silence means a dead peer.
	// Default 45s.
	ReadTimeout time.Duration
	// MaxFrame is the largest frame accepted from the server. Default 65536.
	MaxFrame int
	// EventBuffer is the capacity of the Events channel. Default 256.
	EventBuffer int
	// Raw makes every server frame an event, the replies to calls (ack,
	// error, users) included, each with its JSON in Event.Raw.
	Raw bool
	// NoFill leaves gap notices to the application. By default the client
	// answers a gap (the server dropped room messages while this client
	// was behind) by paging the missing messages from the room's history
	// and delivering them as msg events with Filled set, after the gap.
	NoFill bool
	// Dial makes the connection to the server. Default: a TCP dial, with
	// TLS when TLS is set.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Logger receives connection-level diagnostics. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 45 * time.Second
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = codec.DefaultMaxFrame
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 256
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
