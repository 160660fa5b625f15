package chat

import (
	"context"
	"sort"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"parley/client"
	"parley/codec"
)

// Typing in the full-screen chat: typing text (not a command) tells the
// room at most once per codec.TypingEvery, and the status line says who
// is typing in the room on screen, or to this user, for
// codec.TypingShown after each notice or until their message arrives.

// typers are the nicks typing, by where (a room's name, or "" for those
// typing to this user), each with when its notice runs out.
type typers map[string]map[string]time.Time

type typingExpiredMsg struct{}

// typed sends a typing notice for the room talked in, unless one went
// there lately or the line is a command.
func (m *Model) typed() tea.Cmd {
	if strings.HasPrefix(m.input.Value(), "/") {
		return nil
	}
	now := m.now()
	if m.typedRoom == m.room && now.Sub(m.typedAt) < codec.TypingEvery {
		return nil
	}
	m.typedRoom, m.typedAt = m.room, now
	ch, room := m.ch, m.room
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_ = ch.Typing(ctx, room) // best effort: nothing to tell if it fails
		return nil
	}
}

// noteTyping records a typing notice and has the status line redrawn
// when it runs out.
func (m *Model) noteTyping(ev client.Event) tea.Cmd {
	where := ev.Room // "" for one to this user
	if m.typing[where] == nil {
		m.typing[where] = map[string]time.Time{}
	}
	m.typing[where][ev.Nick] = m.now().Add(codec.TypingShown)
	return tea.Tick(codec.TypingShown, func(time.Time) tea.Msg { return typingExpiredMsg{} })
}

// stopTyping forgets nick's notice in where: its message came.
func (m *Model) stopTyping(where, nick string) { delete(m.typing[where], nick) }

// typingLine words who is typing in the room on screen or to this user,
// "" when nobody is.
func (m *Model) typingLine() string {
	now := m.now()
	var names []string
	for _, where := range []string{m.room, ""} {
		for nick, until := range m.typing[where] {
			if now.Before(until) {
				names = append(names, nick)
			} else {
				delete(m.typing[where], nick)
			}
		}
	}
	sort.Strings(names)
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0] + " is typing…"
	case 2, 3:
		return strings.Join(names, ", ") + " are typing…"
	}
	return "several people are typing…"
}
