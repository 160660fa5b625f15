package chat

import (
	"context"
	"fmt"
	"sort"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"parley/client"
	"parley/codec"
)

// The full-screen chat's side of the conversation features: amendments
// change the message on screen, read markers give the status line its
// unread counts and move when you write in a room or leave it for
// another.

// amend applies an edit, a delete or a reaction to the message on
// screen, or tells it as a line when the message is not shown.
func (m *Model) amend(ev client.Event) {
	kind := entryRoom
	if ev.Room == "" {
		kind = entryDM // of is the seq in this account's direct messages
		m.lastSeq[""] = max(m.lastSeq[""], ev.Seq)
	} else {
		m.seen(ev.Room, ev.Seq, false, false)
	}
	var e *entry
	for i := len(m.entries) - 1; i >= 0; i-- {
		if x := m.entries[i]; x.kind == kind && (kind == entryDM || x.room == ev.Room) && x.seq == ev.Of {
			e = x
			break
		}
	}
	if e == nil {
		m.notice(strings.TrimPrefix(amendLine(ev), "* "))
		return
	}
	switch ev.Type {
	case codec.TypeEdited:
		e.text, e.edited = ev.Body, true
	case codec.TypeDeleted:
		e.deleted, e.reacts = true, nil
	case codec.TypeReaction:
		e.reacts = applyReaction(e.reacts, ev.Emoji, ev.Remove, ev.From == m.ch.Nick())
	}
	e.rendered = ""
	m.refresh()
}

// marks takes the account's read markers: at login, with what is unread
// after each; later, one another session moved.
func (m *Model) marks(ev client.Event) {
	for _, mk := range ev.Marks {
		room := mk.Room
		if mk.DM {
			room = ""
		}
		m.marked[room] = max(m.marked[room], mk.Seq)
		switch {
		case mk.Unread > 0 && room != m.room:
			m.unread[room] = mk
		case mk.Seq >= m.lastSeq[room]:
			delete(m.unread, room) // read up to here on another device
		}
	}
	if line := marksLine(ev.Marks); line != "" {
		m.notice(strings.TrimPrefix(line, "* "))
	}
	m.refresh()
}

// seen notes a seq shown in room; a message from someone else in a room
// you do not look at counts as unread.
func (m *Model) seen(room string, seq uint64, other, mention bool) {
	if seq == 0 {
		return
	}
	m.lastSeq[room] = max(m.lastSeq[room], seq)
	if other && room != m.room && seq > m.marked[room] {
		u := m.unread[room]
		u.Unread++
		if mention {
			u.Mentions++
		}
		m.unread[room] = u
	}
}

// markCmd moves the account's marker in room ("": its direct messages,
// which show in every room) to the newest seq shown there; nil when
// there is nothing to move (or no account).
func (m *Model) markCmd(room string) tea.Cmd {
	seq := m.lastSeq[room]
	if !m.account || seq <= m.marked[room] {
		return nil
	}
	m.marked[room] = seq
	if room == "" {
		delete(m.unread, "")
	}
	ch := m.ch
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if room == "" {
			_, _ = ch.MarkDMs(ctx, seq)
		} else {
			_, _ = ch.Mark(ctx, room, seq) // best effort: the next one moves it further
		}
		return nil
	}
}

// unreadLine lists the rooms with unread messages, for the status line.
func (m *Model) unreadLine() string {
	var list []codec.MarkInfo
	for room, u := range m.unread {
		if room != m.room {
			u.Room, u.DM = room, room == ""
			list = append(list, u)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Room < list[j].Room })
	if s := unreadList(list, "dm", " (%d@)"); s != "" {
		return "unread: " + s
	}
	return ""
}

// pickMessage fills the message a conversation command names when the
// user gave no #n: your last message in the room for /edit and /delete,
// the room's last message for /react.
func (m *Model) pickMessage(cmd *Command) error {
	if cmd.Seq != 0 {
		return nil
	}
	switch cmd.Kind {
	case CmdEdit, CmdDelete, CmdReact:
	default:
		return nil
	}
	me := m.ch.Nick()
	for i := len(m.entries) - 1; i >= 0; i-- {
		e := m.entries[i]
		switch {
		case e.seq == 0 || e.deleted || cmd.Kind != CmdReact && e.nick != me:
		case cmd.DM && e.kind == entryDM, !cmd.DM && e.kind == entryRoom && e.room == m.room:
			cmd.Seq = e.seq
			return nil
		}
	}
	if cmd.DM {
		return fmt.Errorf("%w: no direct message of yours to name: give its #n", ErrUsage)
	}
	return fmt.Errorf("%w: no message of yours in %s to name: give its #n", ErrUsage, m.room)
}

// ownAmendment is the event the others got for the user's own edit,
// delete or reaction, which the server acks to the user instead.
func ownAmendment(room, me string, cmd Command, seq uint64) client.Event {
	ev := codec.Event{Room: room, Seq: seq, Of: cmd.Seq, From: me}
	switch cmd.Kind {
	case CmdEdit:
		ev.Type, ev.Body = codec.TypeEdited, cmd.Text
	case CmdDelete:
		ev.Type = codec.TypeDeleted
	default:
		ev.Type, ev.Emoji, ev.Remove = codec.TypeReaction, cmd.Text, !cmd.On
	}
	return client.Event{Event: ev}
}
