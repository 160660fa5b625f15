package chat

import (
	"context"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"parley/codec"
)

// The lines the user types take effect in the order typed. What needs no
// server (/room, /help) applies at once; the rest runs one command at a
// time, in order, so a /join is acked before the line after it is sent,
// and a line said after /room goes to the room switched to. A say or DM
// shows at once, marked as sending until its ack, and failed (with why)
// if refused; the line stays in the input history (Up). While the client
// reconnects, lines wait for it (up to QueueWait, at most MaxQueued).

// MaxQueued bounds the commands waiting behind the running one: typed
// while reconnecting, or faster than the server answers.
const MaxQueued = 50

// job is one typed command waiting to run, or running.
type job struct {
	cmd  Command
	room string // the room a say goes to, as of when it was typed
	line *entry // the line shown for a say or a DM
	prev string // the room talked in before a /join or /leave switched
	was  bool   // a /join's or /leave's room was one the user was in
}

type jobDoneMsg struct {
	job *job
	res Result
}

// submit runs the input line.
func (m *Model) submit() tea.Cmd {
	line := m.input.Value()
	if strings.TrimSpace(line) == "" {
		return nil
	}
	m.input.Reset()
	m.inOffset = 0
	m.history = append(m.history, line)
	m.histPos = len(m.history)
	cmd, err := Parse(line)
	if err != nil {
		m.add(&entry{kind: entryError, text: FormatError(err)})
		return nil
	}
	switch cmd.Kind {
	case CmdQuit:
		return m.quitCmd()
	case CmdHelp:
		for _, l := range Help {
			m.add(&entry{kind: entryNotice, text: l})
		}
		m.add(&entry{kind: entryNotice, text: "keys:"})
		for _, l := range Keys {
			m.add(&entry{kind: entryNotice, text: l})
		}
		return nil
	case CmdRoom:
		room := RoomName(cmd.Room)
		if !m.in[room] {
			m.add(&entry{kind: entryError, text: "! " + NotMember(room).Error()})
			return nil
		}
		left := m.markCmd(m.room) // what you leave, you have read
		m.switchTo(room)
		m.notice("you talk in " + room + " now")
		return tea.Batch(left, m.countCmd(room))
	}
	if len(m.jobs) >= MaxQueued {
		m.add(&entry{kind: entryError, text: fmt.Sprintf("! not sent: %d lines already wait for the server (Up recalls it)", MaxQueued)})
		return nil
	}
	j := &job{cmd: cmd, room: m.room, prev: m.room}
	me := m.ch.Nick()
	if err := m.pickMessage(&j.cmd); err != nil {
		m.add(&entry{kind: entryError, text: FormatError(err)})
		return nil
	}
	markCmd := tea.Batch(m.markCmd(m.room), m.markCmd("")) // what you answer, you have read
	switch cmd.Kind {
	case CmdReply:
		j.line = &entry{kind: entryRoom, room: m.room, nick: me, text: printable(cmd.Text, "\n"), state: sending, replyTo: cmd.Seq}
	case CmdSay:
		j.line = &entry{kind: entryRoom, room: m.room, nick: me, text: printable(cmd.Text, "\n"), state: sending, id: NewID()}
	case CmdDM:
		j.line = &entry{kind: entryDM, room: "→ " + cmd.Nick, nick: me, text: printable(cmd.Text, "\n"), state: sending}
		m.nicks[cmd.Nick] = true
	case CmdJoin:
		j.cmd.Room = RoomName(cmd.Room)
		j.was = m.in[j.cmd.Room]
		m.in[j.cmd.Room] = true
		m.switchTo(j.cmd.Room)
	case CmdLeave:
		if j.cmd.Room == "" {
			j.cmd.Room = m.room
		}
		j.cmd.Room = RoomName(j.cmd.Room)
		j.was = m.in[j.cmd.Room]
		delete(m.in, j.cmd.Room)
		if j.cmd.Room == m.room {
			m.switchTo(codec.Lobby)
		}
	}
	return tea.Batch(markCmd, m.queue(j.cmd, j))
}

// queue adds a job (one is made for cmd when j is nil) and starts it if
// nothing runs.
func (m *Model) queue(cmd Command, j *job) tea.Cmd {
	if j == nil {
		j = &job{cmd: cmd, room: m.room, prev: m.room}
		if cmd.Kind == CmdJoin {
			j.cmd.Room = RoomName(cmd.Room)
			m.in[j.cmd.Room] = true
			m.switchTo(j.cmd.Room)
		}
	}
	if j.line != nil {
		m.add(j.line)
	}
	m.jobs = append(m.jobs, j)
	return m.next()
}

// next starts the first waiting job unless one runs.
func (m *Model) next() tea.Cmd {
	if m.running || len(m.jobs) == 0 {
		return nil
	}
	j := m.jobs[0]
	m.jobs = m.jobs[1:]
	m.running = true
	ch := m.ch
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), QueueWait+callTimeout)
		defer cancel()
		id := ""
		if j.line != nil {
			id = j.line.id
		}
		return jobDoneMsg{job: j, res: Run(ctx, ch, j.room, id, j.cmd)}
	}
}

// jobDone shows what a job did and starts the next.
func (m *Model) jobDone(d jobDoneMsg) tea.Cmd {
	m.running = false
	j, r := d.job, d.res
	var cmds []tea.Cmd
	if e := j.line; e != nil {
		if r.Err != nil {
			e.state, e.why = failed, Human(r.Err)
		} else if e.state != sent { // a replay may have confirmed it first
			e.state, e.seq = sent, r.Seq
			if e.kind == entryRoom {
				m.seen(e.room, r.Seq, false, false)
			}
		}
		e.rendered = ""
	} else if r.Err != nil {
		m.add(&entry{kind: entryError, text: FormatError(r.Err)})
	}
	room := j.cmd.Room
	switch j.cmd.Kind {
	case CmdJoin:
		if r.Err != nil {
			if !j.was {
				delete(m.in, room)
			}
			if m.room == room && !j.was {
				m.switchTo(j.prev)
				m.notice("you talk in " + j.prev + " now")
			}
			break
		}
		if m.room == room {
			m.notice("you joined " + room + ", and talk there now")
			m.counts[room] = 0
			cmds = append(cmds, m.countCmd(room))
		} else {
			m.notice("you joined " + room)
		}
		cmds = append(cmds, m.historyCmd(room, 0, false))
	case CmdLeave:
		if r.Err != nil {
			if j.was {
				m.in[room] = true
			}
			break
		}
		if j.prev == room {
			m.notice("you left " + room + ", and talk in " + m.room + " now")
			cmds = append(cmds, m.countCmd(m.room))
		} else {
			m.notice("you left " + room)
		}
	case CmdEdit, CmdDelete, CmdReact:
		if r.Err == nil && r.Seq > 0 { // the server tells everyone but the sender
			room := j.room
			if j.cmd.DM {
				room = ""
			}
			m.amend(ownAmendment(room, m.ch.Nick(), j.cmd, r.Seq))
		}
	default:
		for _, l := range r.Lines {
			m.add(&entry{kind: entryNotice, text: l})
		}
	}
	m.refresh()
	return tea.Batch(append(cmds, m.next())...)
}

// failQueued marks every waiting line failed: the client stopped.
func (m *Model) failQueued(why string) {
	for _, j := range m.jobs {
		if j.line != nil {
			j.line.state, j.line.why, j.line.rendered = failed, why, ""
		}
	}
	m.jobs = nil
}

// switchTo makes room the one lines go to.
func (m *Model) switchTo(room string) {
	if room == m.room {
		return
	}
	m.room = room
	delete(m.unread, room)
	m.refresh()
}
