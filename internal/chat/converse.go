package chat

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"parley/client"
	"parley/codec"
)

// Conversation commands (docs/PROTOCOL.md "Edits, deletes, reactions,
// replies and mentions"): a message is named by its #seq, which both UIs
// show after it. In the full-screen chat, /edit and /delete without one
// take your last message in the room, /react without one the room's
// last message.

// ConverseHelp lists the conversation commands, one per line, for /help.
var ConverseHelp = []string{
	"/reply #n text  answer message #n (the number after each message)",
	"/edit [#n] text replace the text of your message #n (your last without #n)",
	"/delete [#n]    delete your message #n (your last without #n); operators any",
	"/edit dm [#n] text, /delete dm [#n]   the same for a direct message you sent",
	"/react [#n] 👍  react to message #n (the last without #n); /unreact takes it back",
}

// parseConverse reads a conversation command, or reports false for a
// name that is none.
func parseConverse(name, rest string) (Command, bool, error) {
	var kind Kind
	usage := ""
	switch name {
	case "edit":
		kind, usage = CmdEdit, "/edit [#n] text"
	case "delete", "del":
		kind, usage = CmdDelete, "/delete [#n]"
	case "reply", "re":
		kind, usage = CmdReply, "/reply #n text"
	case "react", "unreact":
		kind, usage = CmdReact, "/"+name+" [#n] emoji"
	default:
		return Command{}, false, nil
	}
	cmd := Command{Kind: kind, On: name != "unreact"}
	if dm, after, _ := strings.Cut(rest, " "); (kind == CmdEdit || kind == CmdDelete) && (dm == "dm" || rest == "dm") {
		cmd.DM, rest, usage = true, strings.TrimSpace(after), strings.Replace(usage, " [#n]", " dm [#n]", 1)
	}
	first, more, _ := strings.Cut(rest, " ")
	if n, err := strconv.ParseUint(strings.TrimPrefix(first, "#"), 10, 64); err == nil && n > 0 {
		cmd.Seq, rest = n, strings.TrimSpace(more)
	}
	cmd.Text = rest
	switch {
	case kind == CmdReply && cmd.Seq == 0, kind != CmdDelete && rest == "", kind == CmdDelete && rest != "",
		kind == CmdReact && strings.ContainsAny(rest, " \t"):
		return Command{}, true, fmt.Errorf("%w: %s", ErrUsage, usage)
	}
	return cmd, true, nil
}

// runConverse carries out a conversation command in room, or reports
// false for a command that is none.
func runConverse(ctx context.Context, c Chatter, room string, cmd Command) (Result, bool) {
	switch cmd.Kind {
	case CmdEdit, CmdDelete, CmdReply, CmdReact:
	default:
		return Result{}, false
	}
	if cmd.Seq == 0 {
		return Result{Err: fmt.Errorf("%w: name the message by its #n", ErrUsage)}, true
	}
	var seq uint64
	var err error
	switch {
	case cmd.DM && cmd.Kind == CmdEdit:
		seq, err = c.EditDM(ctx, cmd.Seq, cmd.Text)
	case cmd.DM:
		seq, err = c.DeleteDM(ctx, cmd.Seq)
	case cmd.Kind == CmdEdit:
		seq, err = c.Edit(ctx, room, cmd.Seq, cmd.Text)
	case cmd.Kind == CmdDelete:
		seq, err = c.Delete(ctx, room, cmd.Seq)
	case cmd.Kind == CmdReply:
		err = deliver(ctx, c, func(ctx context.Context) (err error) {
			seq, err = c.Reply(ctx, room, cmd.Seq, cmd.Text)
			return err
		})
	default:
		seq, err = c.React(ctx, room, cmd.Seq, cmd.Text, !cmd.On)
	}
	return Result{Err: err, Seq: seq}, true
}

// amendLine words an edit, a delete or a reaction for line mode, and
// for the full-screen chat when the message is not on screen.
func amendLine(ev client.Event) string {
	where := ev.Room
	if where == "" {
		where = "direct messages"
	}
	switch ev.Type {
	case codec.TypeEdited:
		return fmt.Sprintf("* %s edited #%d in %s: %s", ev.From, ev.Of, where, ev.Body)
	case codec.TypeDeleted:
		return fmt.Sprintf("* %s deleted #%d in %s", ev.From, ev.Of, where)
	case codec.TypeReaction:
		if ev.Remove {
			return fmt.Sprintf("* %s took back %s on #%d in %s", ev.From, ev.Emoji, ev.Of, ev.Room)
		}
		return fmt.Sprintf("* %s reacted %s to #%d in %s", ev.From, ev.Emoji, ev.Of, ev.Room)
	}
	return ""
}

// marksLine words the unread counts a login's marks frame gives; ""
// when nothing is unread.
func marksLine(marks []codec.MarkInfo) string {
	if list := unreadList(marks, "direct messages", " (%d mentioning you)"); list != "" {
		return "* unread: " + list
	}
	return ""
}

// unreadList words the markers with unread messages, "den 3 (1
// mentioning you)", with dm naming the direct messages and mentions
// the format of a count of mentions.
func unreadList(marks []codec.MarkInfo, dm, mentions string) string {
	var parts []string
	for _, m := range marks {
		if m.Unread == 0 {
			continue
		}
		where := m.Room
		if m.DM {
			where = dm
		}
		part := fmt.Sprintf("%s %d", where, m.Unread)
		if m.Mentions > 0 {
			part += fmt.Sprintf(mentions, m.Mentions)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

// msgDecor is what a room message shows besides its text: the message
// it answers before, whether it was edited, its reactions and its #seq
// after.
func msgDecor(replyTo uint64, edited bool, reactions []codec.ReactionCount, seq uint64) (before, after string) {
	if replyTo > 0 {
		before = fmt.Sprintf("↪#%d ", replyTo)
	}
	if edited {
		after += " (edited)"
	}
	for i, r := range reactions {
		if i == 0 {
			after += " "
		}
		after += fmt.Sprintf(" %s%d", r.Emoji, r.Count)
	}
	if seq > 0 {
		after += fmt.Sprintf("  #%d", seq)
	}
	return before, after
}

// mentioned reports whether a message mentions nick: by the server's
// resolved mentions, or, from an older server, by the text.
func mentioned(ev client.Event, nick string) bool {
	me, err := codec.ParseNick(nick)
	for _, n := range ev.Mentions {
		if k, err2 := codec.ParseNick(n); err == nil && err2 == nil && k.Key == me.Key {
			return true
		}
	}
	return ev.Mentions == nil && Mentions(ev.Body, nick)
}

// applyReaction changes a message's reaction counts by one event.
func applyReaction(rs []codec.ReactionCount, emoji string, remove, mine bool) []codec.ReactionCount {
	for i := range rs {
		if rs[i].Emoji != emoji {
			continue
		}
		if remove {
			rs[i].Count--
			rs[i].Me = rs[i].Me && !mine
			if rs[i].Count <= 0 {
				return append(rs[:i], rs[i+1:]...)
			}
			return rs
		}
		rs[i].Count++
		rs[i].Me = rs[i].Me || mine
		return rs
	}
	if remove {
		return rs
	}
	return append(rs, codec.ReactionCount{Emoji: emoji, Count: 1, Me: mine})
}
