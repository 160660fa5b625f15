package codec

import (
	"errors"
	"fmt"
)

// Code is a protocol error code, carried in the `code` field of an `error`
// frame. The set of codes is part of the wire contract (docs/PROTOCOL.md).
type Code string

// Error codes of the wire contract.
const (
	CodeBadFrame        Code = "bad_frame"         // zero length, not a JSON object, or invalid UTF-8; the connection closes
	CodeFrameTooLarge   Code = "frame_too_large"   // declared length above the maximum frame size; the connection closes
	CodeBadJSON         Code = "bad_json"          // the frame body is not valid JSON
	CodeUnknownType     Code = "unknown_type"      // `type` names no message the receiver knows
	CodeBadRequest      Code = "bad_request"       // a field is missing or of the wrong kind
	CodeNotLoggedIn     Code = "not_logged_in"     // a request other than login, ping, pong or quit before login
	CodeAlreadyLoggedIn Code = "already_logged_in" // a second login on one connection
	CodeBadNick         Code = "bad_nick"          // the nick breaks the naming rule
	CodeNickTaken       Code = "nick_taken"        // the nick is online already (compared case-insensitively)
	CodeBadRoom         Code = "bad_room"          // the room name breaks the naming rule
	CodeNotInRoom       Code = "not_in_room"       // say or leave on a room the session is not in
	CodeNoSuchUser      Code = "no_such_user"      // dm to a nick that is not online
	CodeBodyTooLarge    Code = "body_too_large"    // body over the maximum body size
	CodeTooManyRooms    Code = "too_many_rooms"    // join beyond the per-session room limit
	CodeRateLimited     Code = "rate_limited"      // the frame was dropped by flood control
	CodeInternal        Code = "internal_error"    // the server failed while handling the frame; the connection closes
	CodeUnavailable     Code = "unavailable"       // a cluster node cannot reach the bus or the node it needs; retry later
	CodeBadToken        Code = "bad_token"         // the token is missing where required, or not valid
	CodeTokenExpired    Code = "token_expired"     // the token's exp has passed
	CodeTooManySessions Code = "too_many_sessions" // the account has as many sessions as the server allows
	CodeNotStored       Code = "not_stored"        // a say was delivered to the room but not written to disk (--data-dir)
	CodeForbidden       Code = "forbidden"         // the session's account lacks the role the request needs (nick logins and guests hold none)
	CodeBanned          Code = "banned"            // join or say in a room that bans the account
	CodeMuted           Code = "muted"             // say in a room that mutes the account
	CodeInviteOnly      Code = "invite_only"       // join of a private room without an invitation
	CodeNotFound        Code = "not_found"         // edit, delete, react or reply_to on a seq the room's history does not hold, or holds deleted
	CodeRejected        Code = "rejected"          // the application's pre-send hook refused the message; reason is its own code
)

// Error is a protocol error: a Code and a message for people. The exported
// Err* values are sentinels; functions in this module wrap them with %w, so
// callers test with errors.Is and read the code with CodeOf.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Msg }

// Is reports whether target is an *Error with the same code, so that an
// error received from a peer matches the sentinel of its code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors, one per code.
var (
	ErrBadFrame        = &Error{CodeBadFrame, "malformed frame"}
	ErrFrameTooLarge   = &Error{CodeFrameTooLarge, "frame too large"}
	ErrBadJSON         = &Error{CodeBadJSON, "invalid JSON"}
	ErrUnknownType     = &Error{CodeUnknownType, "unknown message type"}
	ErrBadRequest      = &Error{CodeBadRequest, "missing or malformed field"}
	ErrNotLoggedIn     = &Error{CodeNotLoggedIn, "log in first"}
	ErrAlreadyLoggedIn = &Error{CodeAlreadyLoggedIn, "already logged in"}
	ErrBadNick         = &Error{CodeBadNick, "invalid nick"}
	ErrNickTaken       = &Error{CodeNickTaken, "nick is taken"}
	ErrBadRoom         = &Error{CodeBadRoom, "invalid room name"}
	ErrNotInRoom       = &Error{CodeNotInRoom, "not in that room"}
	ErrNoSuchUser      = &Error{CodeNoSuchUser, "no such user online"}
	ErrBodyTooLarge    = &Error{CodeBodyTooLarge, "body too large"}
	ErrTooManyRooms    = &Error{CodeTooManyRooms, "too many rooms"}
	ErrRateLimited     = &Error{CodeRateLimited, "rate limited"}
	ErrInternal        = &Error{CodeInternal, "internal server error"}
	ErrUnavailable     = &Error{CodeUnavailable, "cluster unavailable"}
	ErrBadToken        = &Error{CodeBadToken, "the token is not valid"}
	ErrTokenExpired    = &Error{CodeTokenExpired, "the token has expired"}
	ErrTooManySessions = &Error{CodeTooManySessions, "too many sessions for this account"}
	ErrNotStored       = &Error{CodeNotStored, "not stored"}
	ErrForbidden       = &Error{CodeForbidden, "not allowed"}
	ErrBanned          = &Error{CodeBanned, "banned from the room"}
	ErrMuted           = &Error{CodeMuted, "muted in the room"}
	ErrInviteOnly      = &Error{CodeInviteOnly, "the room is invite-only"}
	ErrNotFound        = &Error{CodeNotFound, "no such message"}
	ErrRejected        = &Error{CodeRejected, "refused by the application"}
)

var sentinels = map[Code]*Error{}

func init() {
	for _, e := range []*Error{
		ErrBadFrame, ErrFrameTooLarge, ErrBadJSON, ErrUnknownType, ErrBadRequest,
		ErrNotLoggedIn, ErrAlreadyLoggedIn, ErrBadNick, ErrNickTaken, ErrBadRoom,
		ErrNotInRoom, ErrNoSuchUser, ErrBodyTooLarge, ErrTooManyRooms, ErrRateLimited,
		ErrInternal, ErrUnavailable, ErrBadToken, ErrTokenExpired, ErrTooManySessions, ErrNotStored,
		ErrForbidden, ErrBanned, ErrMuted, ErrInviteOnly, ErrNotFound, ErrRejected,
	} {
		sentinels[e.Code] = e
		codeOrder = append(codeOrder, e.Code)
	}
}

// Codes returns every error code of the contract, in a fixed order.
func Codes() []Code { return append([]Code(nil), codeOrder...) }

var codeOrder []Code

// Sentinel returns the sentinel error for code, or nil for a code this
// version does not know.
func Sentinel(code Code) *Error { return sentinels[code] }

// CodeOf returns the protocol code of err, or "" when err carries none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Fatal reports whether an error with this code ends the connection: after a
// framing error the byte stream can no longer be trusted.
func (c Code) Fatal() bool {
	return c == CodeBadFrame || c == CodeFrameTooLarge || c == CodeInternal
}

// Rejection is the error of a message the application's pre-send hook
// refused: code rejected, with the application's own Reason code and
// words.
type Rejection struct {
	Reason  string
	Message string
}

func (e *Rejection) Error() string { return string(CodeRejected) + ": " + e.Message }

// Unwrap makes a Rejection match ErrRejected.
func (e *Rejection) Unwrap() error { return ErrRejected }

// NotOnline words the error about a nick's presence, the same everywhere:
// `sentinel: "nick" is not online` (no_such_user) or `... is online
// already` (nick_taken).
func NotOnline(sentinel *Error, nick string) error {
	what := "is not online"
	if sentinel == ErrNickTaken {
		what = "is online already"
	}
	return fmt.Errorf("%w: %q %s", sentinel, nick, what)
}

// errorf wraps a sentinel with detail for people.
func errorf(sentinel *Error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}

// Reason says why a session ended: the `reason` of `bye` and of `left`.
type Reason string

// Reasons of the wire contract.
const (
	ReasonLeave         Reason = "leave"          // left: the user left the room
	ReasonQuit          Reason = "quit"           // the user sent quit
	ReasonTimeout       Reason = "timeout"        // no frame within the idle timeout
	ReasonLoginTimeout  Reason = "login_timeout"  // bye: no login within the login timeout
	ReasonDisconnect    Reason = "disconnect"     // left: the connection dropped
	ReasonSlowConsumer  Reason = "slow_consumer"  // outbound bytes over the limit
	ReasonShutdown      Reason = "shutdown"       // the server is stopping
	ReasonProtocolError Reason = "protocol_error" // bye: a framing error
	ReasonServerFull    Reason = "server_full"    // bye: over the connection limit
	ReasonInternalError Reason = "internal_error" // bye: the server failed on this session's frame
	ReasonFlood         Reason = "flood"          // bye: the client kept exceeding the frame rate limit
	ReasonTokenExpired  Reason = "token_expired"  // bye: the session's token expired and was not refreshed
	ReasonConnRate      Reason = "conn_rate"      // bye: the client's address opens connections faster than allowed
	ReasonKick          Reason = "kick"           // left: an operator removed the member; it may join again
	ReasonBan           Reason = "ban"            // left: an operator banned the member's account from the room
	ReasonBanned        Reason = "banned"         // bye: an admin banned the session's account or address from the server
	ReasonTokenRevoked  Reason = "token_revoked"  // bye: an admin revoked the session's token
	ReasonDisconnected  Reason = "disconnected"   // bye: the application ended the account's sessions (server API)
)
