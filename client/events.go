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
	// ErrDisconnected: there was no connection to send the request on,
	// or it dropped before the answer came; with Reconnect the client is
	// reconnecting. A request that reached the connection before the drop
	// fails with ErrNotConfirmed, which is also ErrDisconnected.
	ErrDisconnected = errors.New("client: disconnected")
	// ErrNotConfirmed: the request was written, and the connection
	// dropped before its answer came. The server may have carried it out:
	// a say may have been delivered (give it an id to recognise it when
	// it comes back in a resume's replay).
	ErrNotConfirmed error = notConfirmed{}
)

type notConfirmed struct{}

func (notConfirmed) Error() string        { return "client: disconnected before the answer came" }
func (notConfirmed) Is(target error) bool { return target == ErrDisconnected }

// Permanent reports whether a login refusal would refuse the next
// attempts alike, so that reconnecting is pointless: a token or nick the
// server rejects, or an account already at its session limit. An expired
// token is not: the token source may give a fresh one.
func Permanent(err error) bool {
	return errors.Is(err, codec.ErrBadToken) || errors.Is(err, codec.ErrBadNick) ||
		errors.Is(err, codec.ErrTooManySessions)
}
