package chat

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"parley/client"
	"parley/codec"
)

// Governance commands (docs/PROTOCOL.md "Rooms people run"): moderation
// in the room the user talks in, its topic and privacy, the room list
// and the audit log. What the server does shows as the room's mod and
// topic events, so a success prints nothing of its own.

// GovernHelp lists the governance commands, one per line, for /help.
var GovernHelp = []string{
	"/kick nick [why]            remove someone from this room (they may come back)",
	"/ban nick [time] [why]      remove and keep out; time like 10m or 24h (none: until /unban)",
	"/unban nick                 lift a ban",
	"/mute nick [time] [why]     keep from saying anything here; /unmute nick lifts it",
	"/op nick, /deop nick        make or unmake an operator (the room's owner)",
	"/invite nick [time]         let into this room while it is private",
	"/private on|off             make this room invite-only, or open again",
	"/topic text                 set this room's topic; /topic - clears it",
	"/rooms [from]               list the public rooms, largest first",
	"/audit [room]               the room's moderation log (operators)",
	"a nick may be account:sub, to name an account that is offline",
}

// moderations are the commands that act on a target, by protocol type.
var moderations = map[string]bool{
	codec.TypeKick: true, codec.TypeBan: true, codec.TypeUnban: true, codec.TypeMute: true, codec.TypeUnmute: true,
	codec.TypeOp: true, codec.TypeDeop: true, codec.TypeInvite: true, codec.TypeUninvite: true,
}

// takesTime and takesReason say which moderations read a duration and a
// reason after the target.
var (
	takesTime   = map[string]bool{codec.TypeBan: true, codec.TypeMute: true, codec.TypeInvite: true}
	takesReason = map[string]bool{codec.TypeKick: true, codec.TypeBan: true, codec.TypeMute: true}
)

// parseGovern reads a governance command, or reports false for a name
// that is none.
func parseGovern(name, rest string) (Command, bool, error) {
	switch {
	case moderations[name]:
		cmd, err := parseModeration(name, rest)
		return cmd, true, err
	case name == codec.TypeTopic:
		if rest == "" {
			return Command{}, true, fmt.Errorf("%w: /topic text (or /topic - to clear it)", ErrUsage)
		}
		if rest == "-" {
			rest = ""
		}
		return Command{Kind: CmdTopic, Text: rest}, true, nil
	case name == codec.TypePrivate:
		switch rest {
		case "on", "off":
			return Command{Kind: CmdPrivate, On: rest == "on"}, true, nil
		}
		return Command{}, true, fmt.Errorf("%w: /private on|off", ErrUsage)
	case name == codec.TypeRooms:
		from := 0
		if rest != "" {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 1 {
				return Command{}, true, fmt.Errorf("%w: /rooms [from], from a number of 1 or more", ErrUsage)
			}
			from = n - 1
		}
		return Command{Kind: CmdRooms, From: from}, true, nil
	case name == codec.TypeAudit:
		return Command{Kind: CmdAudit, Room: rest}, true, nil
	}
	return Command{}, false, nil
}

func parseModeration(action, rest string) (Command, error) {
	usage := "/" + action + " nick"
	if takesTime[action] {
		usage += " [time]"
	}
	if takesReason[action] {
		usage += " [why]"
	}
	target, rest, _ := strings.Cut(rest, " ")
	if target == "" {
		return Command{}, fmt.Errorf("%w: %s", ErrUsage, usage)
	}
	cmd := Command{Kind: CmdModerate, Action: action, Nick: target}
	rest = strings.TrimSpace(rest)
	if takesTime[action] {
		word, after, _ := strings.Cut(rest, " ")
		if d, err := time.ParseDuration(word); err == nil {
			if d < time.Second {
				return Command{}, fmt.Errorf("%w: %s, a time of a second or more", ErrUsage, usage)
			}
			cmd.Duration, rest = d, strings.TrimSpace(after)
		}
	}
	if rest != "" && !takesReason[action] {
		return Command{}, fmt.Errorf("%w: %s", ErrUsage, usage)
	}
	cmd.Text = rest
	return cmd, nil
}

// target is the account a moderation command names: account:sub, or a
// nick online.
func target(nick string) client.Target {
	if sub, ok := strings.CutPrefix(nick, "account:"); ok {
		return client.ByAccount(sub)
	}
	return client.ByNick(nick)
}

// runGovern carries out a governance command in room.
func runGovern(ctx context.Context, c Chatter, room string, cmd Command) Result {
	switch cmd.Kind {
	case CmdModerate:
		return Result{Err: c.Moderate(ctx, cmd.Action, room, target(cmd.Nick), cmd.Duration, cmd.Text)}
	case CmdTopic:
		return Result{Err: c.SetTopic(ctx, room, cmd.Text)}
	case CmdPrivate:
		return Result{Err: c.SetPrivate(ctx, room, cmd.On)}
	case CmdRooms:
		rooms, total, more, err := c.ListRooms(ctx, cmd.From, 20)
		if err != nil {
			return Result{Err: err}
		}
		lines := []string{fmt.Sprintf("* rooms %d to %d of %d:", min(cmd.From+1, total), cmd.From+len(rooms), total)}
		for _, r := range rooms {
			line := fmt.Sprintf("  %s (%d)", r.Room, r.Count)
			if r.Topic != "" {
				line += ": " + printable(r.Topic, " ")
			}
			lines = append(lines, line)
		}
		if more {
			lines = append(lines, fmt.Sprintf("  more: /rooms %d", cmd.From+len(rooms)+1))
		}
		return Result{Lines: lines}
	case CmdAudit:
		if cmd.Room != "" {
			room = RoomName(cmd.Room)
		}
		entries, more, err := c.Audit(ctx, room, 0, 20)
		if err != nil {
			return Result{Err: err}
		}
		lines := []string{fmt.Sprintf("* moderation in %s, oldest first:", room)}
		for _, e := range entries {
			lines = append(lines, "  "+printable(auditLine(e), " "))
		}
		if more {
			lines = append(lines, "  (older entries: parley audit --room "+room+")")
		}
		return Result{Lines: lines}
	}
	return Result{Err: fmt.Errorf("%w: unknown command", ErrUsage)}
}

// auditLine words one audit entry.
func auditLine(e codec.AuditEntry) string {
	who := e.Nick
	if who == "" {
		who = e.Target
	}
	s := fmt.Sprintf("%s %s %s %s", time.UnixMilli(e.TS).Format("2006-01-02 15:04"), e.By, e.Action, who)
	if e.Until > 0 {
		s += " until " + time.UnixMilli(e.Until).Format("2006-01-02 15:04")
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return strings.TrimSpace(s)
}

// modLine words a mod event of a room.
func modLine(ev client.Event) string {
	var s string
	switch ev.Action {
	case codec.TypeKick:
		s = fmt.Sprintf("%s was kicked from %s by %s", ev.Nick, ev.Room, ev.By)
	case codec.TypeBan:
		s = fmt.Sprintf("%s was banned from %s by %s", ev.Nick, ev.Room, ev.By)
	case codec.TypeMute:
		s = fmt.Sprintf("%s was muted in %s by %s", ev.Nick, ev.Room, ev.By)
	case codec.TypeOp:
		s = fmt.Sprintf("%s made %s an operator of %s", ev.By, ev.Nick, ev.Room)
	case codec.TypeDeop:
		s = fmt.Sprintf("%s is no longer an operator of %s (%s)", ev.Nick, ev.Room, ev.By)
	case codec.TypePrivate:
		s = fmt.Sprintf("%s made %s private: invitations only", ev.By, ev.Room)
	case "public":
		s = fmt.Sprintf("%s opened %s to everyone", ev.By, ev.Room)
	default: // unban, unmute, invite, uninvite
		s = fmt.Sprintf("%s: %s %s %s", ev.Room, ev.By, ev.Action, ev.Nick)
	}
	if ev.Until > 0 {
		s += " until " + time.UnixMilli(ev.Until).Format("2006-01-02 15:04")
	}
	if ev.Reason != "" {
		s += ": " + string(ev.Reason)
	}
	return "* " + s
}

// whoLine lists a room's members with the roles of those who hold one.
func whoLine(label string, count int, nicks []string, roles map[string]string) string {
	shown := make([]string, len(nicks))
	for i, n := range nicks {
		shown[i] = n
		switch roles[n] {
		case "owner":
			shown[i] += " (owner)"
		case "operator":
			shown[i] += " (op)"
		}
	}
	return fmt.Sprintf("* %s (%d): %s", label, count, strings.Join(shown, ", "))
}
