package client

import (
	"errors"
	"time"

	"parley/codec"
)

// Event types the client adds to the server's frame types.
const (
	// EventReconnecting: the connection dropped (Err says why) and the
	// client waits Delay before attempt number Attempt.
	EventReconnecting = "reconnecting"
	// EventReconnected: logged in again, and the joins that restore the
	// rooms sent (the server applies them in order, before any later
	// request of this client).
	EventReconnected = "reconnected"
	// EventDisconnected: the connection is gone for good (Err says why);
	// the Events channel closes after it.
	EventDisconnected = "disconnected"
)

// Event is a frame from the server (Type is its type) or one of the
// client's own connection events.
type Event struct {
	codec.Event
	// Raw is the frame's JSON, with Options.Raw.
	Raw []byte
	// Filled marks a message the client fetched from history: a room
	// message filling a gap (after the gap event, not in its place), or a
	// direct message its account received while this client was
	// reconnecting (after the reconnected event).
	Filled bool
	// Sent marks a direct message this client's account sent from another
	// of its sessions (From is this client's nick, To the recipient).
	Sent bool
	// Err, Attempt and Delay describe reconnecting and disconnected events.
	Err     error
	Attempt int
	Delay   time.Duration
}

// Errors of the client itself. Errors the server answers with are
// *codec.Error values: test them with errors.Is against codec's sentinels
// (codec.ErrNickTaken, codec.ErrNotInRoom, ...).
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrDisconnected: the connection dropped before the answer came; with
	// Reconnect the client is reconnecting.
	ErrDisconnected = errors.New("client: disconnected")
)
