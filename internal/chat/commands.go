// Package chat is the user interface of `parley chat`: a full-screen
// terminal UI for people and a line mode for pipes and scripts. Both share
// the command language and the event format defined here.
package chat

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"parley/client"
	"parley/codec"
)

// Chatter is what the UI needs of a client; *client.Client implements it.
type Chatter interface {
	Nick() string
	Rooms() []string
	Ready(ctx context.Context) error
	SayID(ctx context.Context, room, id, body string) (uint64, error)
	DMSeq(ctx context.Context, to, body string) (uint64, error)
	Join(ctx context.Context, room string) error
	Leave(ctx context.Context, room string) error
	Who(ctx context.Context, room string) ([]string, int, error)
	Count(ctx context.Context, room string) (int, error)
	History(ctx context.Context, room string, before uint64, limit int) ([]codec.Event, bool, error)
	Quit(ctx context.Context) error

	// Rooms people run (govern.go).
	WhoRoles(ctx context.Context, room string) ([]string, map[string]string, int, error)
	Moderate(ctx context.Context, typ, room string, t client.Target, d time.Duration, reason string) error
	SetTopic(ctx context.Context, room, topic string) error
	SetPrivate(ctx context.Context, room string, private bool) error
	ListRooms(ctx context.Context, offset, limit int) ([]codec.RoomInfo, int, bool, error)
	Audit(ctx context.Context, room string, before uint64, limit int) ([]codec.AuditEntry, bool, error)
	Typing(ctx context.Context, room string) error

	// Conversation features (converse.go).
	Reply(ctx context.Context, room string, replyTo uint64, body string) (uint64, error)
	Edit(ctx context.Context, room string, seq uint64, body string) (uint64, error)
	Delete(ctx context.Context, room string, seq uint64) (uint64, error)
	React(ctx context.Context, room string, seq uint64, emoji string, remove bool) (uint64, error)
	Mark(ctx context.Context, room string, seq uint64) (uint64, error)
	MarkDMs(ctx context.Context, seq uint64) (uint64, error)
	EditDM(ctx context.Context, seq uint64, body string) (uint64, error)
	DeleteDM(ctx context.Context, seq uint64) (uint64, error)
}

// Kind is what a line asks for.
type Kind int

// Kinds of commands.
const (
	CmdSay   Kind = iota // a plain line: say it in the current room
	CmdJoin              // /join room
	CmdLeave             // /leave [room]
	CmdRoom              // /room room: switch the room you talk in
	CmdDM                // /dm nick text
	CmdWho               // /who [room]
	CmdHelp              // /help
	CmdQuit              // /quit, or a bare quit or exit line

	CmdModerate // /kick, /ban, /unban, /mute, /unmute, /op, /deop, /invite, /uninvite
	CmdTopic    // /topic text
	CmdPrivate  // /private on|off
	CmdRooms    // /rooms [from]
	CmdAudit    // /audit [room]

	CmdEdit   // /edit [#seq] text
	CmdDelete // /delete [#seq]
	CmdReply  // /reply #seq text
	CmdReact  // /react [#seq] emoji, /unreact [#seq] emoji
)

// Command is one parsed input line.
type Command struct {
	Kind Kind
	Room string
	Nick string
	Text string // what to say; a moderation's reason; a topic

	Action   string        // a moderation's request type
	Duration time.Duration // a ban's, mute's or invitation's; 0: until lifted
	On       bool          // /private on
	From     int           // /rooms: the offset to list from
	Seq      uint64        // the message an edit, delete, reply or reaction names; 0: the UI's choice
	DM       bool          // /edit dm, /delete dm: a direct message
}

// Help lists the commands, one per line.
var Help = []string{
	"/join room      join a room (created if needed) and talk there",
	"/leave [room]   leave a room (the current one by default)",
	"/room room      switch to a room you are in",
	"/dm nick text   send a direct message",
	"/me action      say an action: /me waves shows as * you waves",
	"/who [room]     list the members of a room, or everyone online with /who *",
	"/help           this list",
	"/quit           leave the chat (also: a bare quit or exit line)",
	"anything else is said in the current room",
}

// Keys lists the keys of the full-screen chat, one per line.
var Keys = []string{
	"Enter           send the line",
	"Up / Down       recall the lines you typed",
	"Tab             complete a nick, a /command or a room; again for the next",
	"PgUp / PgDn     scroll; PgUp at the top loads older messages",
	"End             back to the newest message (when scrolled up)",
	"Ctrl+A / Ctrl+E start / end of the line; Ctrl+U, Ctrl+K cut",
	"Ctrl+C, Ctrl+D  quit",
}

// Commands are the command names Tab completes.
var Commands = []string{"/audit", "/ban", "/delete", "/deop", "/dm", "/edit", "/help", "/invite", "/join", "/kick", "/leave", "/me", "/mute", "/op",
	"/private", "/quit", "/react", "/reply", "/room", "/rooms", "/topic", "/unban", "/uninvite", "/unmute", "/unreact", "/who"}

func init() {
	Help = append(Help, ConverseHelp...)
	Help = append(Help, "in the current room, for its owner and operators (who marks them):")
	Help = append(Help, GovernHelp...)
}

// QueueWait bounds how long a message waits for the connection to come
// back before it is given up as not sent.
const QueueWait = 2 * time.Minute

// callTimeout bounds one request once it is sent.
const callTimeout = 10 * time.Second

// RoomName is room as the server names it (Café is café), or room
// itself when it is not a valid name (the server will say why).
func RoomName(room string) string {
	if n, err := codec.ParseRoom(room); err == nil {
		return n.Display
	}
	return room
}

// NewID returns a say's id: random, so that a message that comes back in
// a resume's replay is recognised as this client's.
func NewID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// deliver sends once the client is connected, waiting up to QueueWait
// while it reconnects; a request that found no connection is sent again
// after the next reconnect, one that may have reached the server is not
// (client.ErrNotConfirmed).
func deliver(ctx context.Context, c Chatter, send func(ctx context.Context) error) error {
	for {
		wait, cancel := context.WithTimeout(ctx, QueueWait)
		err := c.Ready(wait)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return ErrNotConnected
		}
		if err != nil {
			return err
		}
		call, cancel := context.WithTimeout(ctx, callTimeout)
		err = send(call)
		cancel()
		if errors.Is(err, client.ErrDisconnected) && !errors.Is(err, client.ErrNotConfirmed) {
			continue
		}
		return err
	}
}

// ErrNotConnected: a message waited QueueWait for the connection to come
// back, and was not sent.
var ErrNotConnected = fmt.Errorf("not sent: no connection for %s", QueueWait)

// ErrUsage reports a command typed wrong.
var ErrUsage = errors.New("usage")

// Parse reads one input line. Blank lines parse to a CmdSay with empty
// text, which callers skip.
func Parse(line string) (Command, error) {
	line = strings.TrimRight(line, "\r\n")
	trimmed := strings.TrimSpace(line)
	switch trimmed {
	case "quit", "exit":
		return Command{Kind: CmdQuit}, nil
	}
	if !strings.HasPrefix(trimmed, "/") || strings.HasPrefix(trimmed, "//") {
		return Command{Kind: CmdSay, Text: strings.TrimPrefix(line, "/")}, nil
	}
	name, rest, _ := strings.Cut(trimmed[1:], " ")
	rest = strings.TrimSpace(rest)
	switch name {
	case "join", "j":
		return oneRoom(CmdJoin, rest, "/join room")
	case "leave", "part":
		return Command{Kind: CmdLeave, Room: rest}, nil
	case "room", "r":
		return oneRoom(CmdRoom, rest, "/room room")
	case "dm", "msg":
		nick, text, _ := strings.Cut(rest, " ")
		if nick == "" || strings.TrimSpace(text) == "" {
			return Command{}, fmt.Errorf("%w: /dm nick text", ErrUsage)
		}
		return Command{Kind: CmdDM, Nick: nick, Text: strings.TrimSpace(text)}, nil
	case "who", "w":
		return Command{Kind: CmdWho, Room: rest}, nil
	case "me":
		if rest == "" {
			return Command{}, fmt.Errorf("%w: /me action", ErrUsage)
		}
		return Command{Kind: CmdSay, Text: "/me " + rest}, nil
	case "help", "h", "?":
		return Command{Kind: CmdHelp}, nil
	case "quit", "exit", "q":
		return Command{Kind: CmdQuit}, nil
	}
	if cmd, ok, err := parseGovern(name, rest); ok {
		return cmd, err
	}
	if cmd, ok, err := parseConverse(name, rest); ok {
		return cmd, err
	}
	return Command{}, fmt.Errorf("%w: unknown command /%s (try /help)", ErrUsage, name)
}

func oneRoom(k Kind, rest, usage string) (Command, error) {
	if rest == "" || strings.Contains(rest, " ") {
		return Command{}, fmt.Errorf("%w: %s", ErrUsage, usage)
	}
	return Command{Kind: k, Room: rest}, nil
}

// Result is what running a command produced, for the UI to show.
type Result struct {
	Lines []string // notices to print
	Err   error    // the command failed
	Room  string   // the room to talk in from now on, when it changed
	Seq   uint64   // a say's seq
	Quit  bool
}

// Run carries out cmd for a user talking in room, in the order the user
// typed: the caller runs one command at a time. A say or a DM typed while
// the client reconnects waits for it (up to QueueWait). id names a say
// (NewID); "" for none. Quit is only reported: the caller quits, so it
// can wait for the goodbye its own way.
func Run(ctx context.Context, c Chatter, room, id string, cmd Command) Result {
	switch cmd.Kind {
	case CmdSay:
		if strings.TrimSpace(cmd.Text) == "" {
			return Result{}
		}
		var seq uint64
		err := deliver(ctx, c, func(ctx context.Context) (err error) {
			seq, err = c.SayID(ctx, room, id, cmd.Text)
			return err
		})
		return Result{Err: err, Seq: seq}
	case CmdJoin:
		room := RoomName(cmd.Room)
		if err := c.Join(ctx, room); err != nil {
			return Result{Err: err}
		}
		return Result{Room: room, Lines: []string{"* you joined " + room + ", and talk there now"}}
	case CmdLeave:
		return leave(ctx, c, room, cmd.Room)
	case CmdRoom:
		room := RoomName(cmd.Room)
		if !slices.Contains(c.Rooms(), room) {
			return Result{Err: NotMember(room)}
		}
		return Result{Room: room, Lines: []string{"* you talk in " + room + " now"}}
	case CmdDM:
		var seq uint64
		err := deliver(ctx, c, func(ctx context.Context) (err error) {
			seq, err = c.DMSeq(ctx, cmd.Nick, cmd.Text)
			return err
		})
		return Result{Err: err, Seq: seq}
	case CmdWho:
		return who(ctx, c, room, cmd.Room)
	case CmdHelp:
		return Result{Lines: Help}
	case CmdQuit:
		return Result{Quit: true}
	}
	if res, ok := runConverse(ctx, c, room, cmd); ok {
		return res
	}
	return runGovern(ctx, c, room, cmd)
}

// NotMember is the error of /room to a room the user is not in.
func NotMember(room string) error {
	return fmt.Errorf("you are not in %s: /join %s to enter it", room, room)
}

func leave(ctx context.Context, c Chatter, current, room string) Result {
	if room == "" {
		room = current
	}
	room = RoomName(room)
	if err := c.Leave(ctx, room); err != nil {
		return Result{Err: err}
	}
	res := Result{Lines: []string{"* you left " + room}}
	if room == current {
		res.Room = codec.Lobby
		res.Lines = append(res.Lines, "* you talk in "+codec.Lobby+" now")
	}
	return res
}

func who(ctx context.Context, c Chatter, current, room string) Result {
	switch room {
	case "":
		room = current
	case "*":
		room = ""
	}
	nicks, roles, count, err := c.WhoRoles(ctx, room)
	if err != nil {
		return Result{Err: err}
	}
	label := room
	if label == "" {
		label = "online"
	}
	return Result{Lines: []string{whoLine(label, count, nicks, roles)}}
}
