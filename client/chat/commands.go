// Package chat is the user interface of `parley chat`: a full-screen
// terminal UI for people and a line mode for pipes and scripts. Both share
// the command language and the event format defined here.
package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"parley/codec"
)

// Chatter is what the UI needs of a client; *client.Client implements it.
type Chatter interface {
	Nick() string
	Say(ctx context.Context, room, body string) (uint64, error)
	DM(ctx context.Context, to, body string) error
	Join(ctx context.Context, room string) error
	Leave(ctx context.Context, room string) error
	Who(ctx context.Context, room string) ([]string, int, error)
	Count(ctx context.Context, room string) (int, error)
	History(ctx context.Context, room string, before uint64, limit int) ([]codec.Event, bool, error)
	Quit(ctx context.Context) error
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
)

// Command is one parsed input line.
type Command struct {
	Kind Kind
	Room string
	Nick string
	Text string
}

// Help lists the commands, one per line.
var Help = []string{
	"/join room      join a room (created if needed) and talk there",
	"/leave [room]   leave a room (the current one by default)",
	"/room room      switch the room you talk in",
	"/dm nick text   send a direct message",
	"/who [room]     list the members of a room, or everyone online with /who *",
	"/help           this list",
	"/quit           leave the chat (also: a bare quit or exit line)",
	"anything else is said in the current room",
}

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
	case "help", "h", "?":
		return Command{Kind: CmdHelp}, nil
	case "quit", "exit", "q":
		return Command{Kind: CmdQuit}, nil
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
	Quit  bool
}

// Run carries out cmd for a user talking in room. Quit is only reported:
// the caller quits, so it can wait for the goodbye its own way.
func Run(ctx context.Context, c Chatter, room string, cmd Command) Result {
	switch cmd.Kind {
	case CmdSay:
		if strings.TrimSpace(cmd.Text) == "" {
			return Result{}
		}
		_, err := c.Say(ctx, room, cmd.Text)
		return Result{Err: err}
	case CmdJoin:
		if err := c.Join(ctx, cmd.Room); err != nil {
			return Result{Err: err}
		}
		return Result{Room: cmd.Room, Lines: []string{"* you joined " + cmd.Room + ", and talk there now"}}
	case CmdLeave:
		return leave(ctx, c, room, cmd.Room)
	case CmdRoom:
		return Result{Room: cmd.Room, Lines: []string{"* you talk in " + cmd.Room + " now"}}
	case CmdDM:
		return Result{Err: c.DM(ctx, cmd.Nick, cmd.Text)}
	case CmdWho:
		return who(ctx, c, room, cmd.Room)
	case CmdHelp:
		return Result{Lines: Help}
	case CmdQuit:
		return Result{Quit: true}
	}
	return Result{Err: fmt.Errorf("%w: unknown command", ErrUsage)}
}

func leave(ctx context.Context, c Chatter, current, room string) Result {
	if room == "" {
		room = current
	}
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
	nicks, count, err := c.Who(ctx, room)
	if err != nil {
		return Result{Err: err}
	}
	label := room
	if label == "" {
		label = "online"
	}
	return Result{Lines: []string{fmt.Sprintf("* %s (%d): %s", label, count, strings.Join(nicks, ", "))}}
}
