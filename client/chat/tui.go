package chat

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"parley/client"
	"parley/codec"
)

// maxScrollback is how many lines the TUI keeps.
const maxScrollback = 2000

// callTimeout bounds one request made from the TUI.
const callTimeout = 10 * time.Second

// TUIConfig configures the full-screen UI.
type TUIConfig struct {
	Addr string // shown in the status line
	Room string // the room to talk in first; joined if not the lobby
	In   io.Reader
	Out  io.Writer
}

// RunTUI runs the full-screen chat until the user quits.
func RunTUI(c *client.Client, cfg TUIConfig) error {
	m := NewModel(c, c.Events(), cfg.Addr)
	m.startRoom = cfg.Room
	opts := []tea.ProgramOption{tea.WithAltScreen()}
	if cfg.In != nil {
		opts = append(opts, tea.WithInput(cfg.In))
	}
	if cfg.Out != nil {
		opts = append(opts, tea.WithOutput(cfg.Out))
	}
	_, err := tea.NewProgram(m, opts...).Run()
	return err
}

// Messages the model receives besides keys and window sizes.
type (
	eventMsg      client.Event
	eventsDoneMsg struct{}
	resultMsg     Result
	countMsg      struct {
		room string
		n    int
	}
	quitDoneMsg struct{}
)

type entryKind int

const (
	entryRoom entryKind = iota
	entryDM
	entryNotice
	entryError
)

// entry is one scrollback line, kept unrendered so a resize can re-wrap it.
type entry struct {
	at       time.Time
	kind     entryKind
	room     string
	nick     string
	text     string
	seq      uint64 // a room message's
	rendered string // cached for width
	width    int
}

// Model is the bubbletea model of the chat screen.
type Model struct {
	ch        Chatter
	events    <-chan client.Event
	addr      string
	room      string
	startRoom string
	state     string // connected, reconnecting…, disconnected
	counts    map[string]int
	entries   []*entry
	vp        viewport.Model
	input     textinput.Model
	history   []string
	histPos   int
	oldest    map[string]uint64 // per room, the oldest seq shown: PgUp at the top loads before it
	noOlder   map[string]bool   // rooms whose history has nothing older
	loading   bool              // a history page is on its way
	width     int
	height    int
	now       func() time.Time
}

// NewModel returns the chat screen for ch, fed by events.
func NewModel(ch Chatter, events <-chan client.Event, addr string) *Model {
	in := textinput.New()
	in.Prompt = "> "
	in.Placeholder = "say something, or /help"
	in.CharLimit = codec.DefaultMaxBody
	in.Focus()
	return &Model{
		ch: ch, events: events, addr: addr, room: codec.Lobby, state: "connected",
		counts: map[string]int{}, input: in, vp: viewport.New(80, 20), now: time.Now,
		oldest: map[string]uint64{}, noOlder: map[string]bool{},
		width: 80, height: 24,
	}
}

// Init starts the event pump, the cursor blink and the first member count.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.waitEvent(), textinput.Blink, m.countCmd(m.room)}
	if m.startRoom != "" && m.startRoom != codec.Lobby {
		cmds = append(cmds, m.runCmd(Command{Kind: CmdJoin, Room: m.startRoom}))
	}
	return tea.Batch(cmds...)
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
		return m, nil
	case tea.KeyMsg:
		return m, m.key(msg)
	case eventMsg:
		return m, tea.Batch(m.event(client.Event(msg)), m.waitEvent())
	case eventsDoneMsg:
		m.state = "disconnected"
		m.refresh()
		return m, nil
	case resultMsg:
		m.result(Result(msg))
		return m, nil
	case countMsg:
		m.counts[msg.room] = msg.n
		return m, nil
	case historyMsg:
		m.showHistory(msg)
		return m, nil
	case quitDoneMsg:
		return m, tea.Quit
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	switch k.Type {
	case tea.KeyCtrlC, tea.KeyCtrlD:
		return m.quitCmd()
	case tea.KeyEnter:
		return m.submit()
	case tea.KeyUp:
		m.historyMove(-1)
		return nil
	case tea.KeyDown:
		m.historyMove(1)
		return nil
	case tea.KeyPgUp, tea.KeyPgDown:
		top := m.vp.AtTop()
		var cmd tea.Cmd
		m.vp, cmd = m.vp.Update(k)
		if k.Type == tea.KeyPgUp && top && !m.loading && !m.noOlder[m.room] {
			m.loading = true
			return tea.Batch(cmd, m.historyCmd(m.room, m.oldest[m.room], true))
		}
		return cmd
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return cmd
}

// submit runs the input line.
func (m *Model) submit() tea.Cmd {
	line := m.input.Value()
	m.input.Reset()
	if strings.TrimSpace(line) == "" {
		return nil
	}
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
	case CmdSay:
		m.add(&entry{kind: entryRoom, room: m.room, nick: m.ch.Nick(), text: cmd.Text})
	case CmdDM:
		m.add(&entry{kind: entryDM, room: "→ " + cmd.Nick, nick: m.ch.Nick(), text: cmd.Text})
	}
	return m.runCmd(cmd)
}

func (m *Model) historyMove(d int) {
	if len(m.history) == 0 {
		return
	}
	m.histPos = max(0, min(len(m.history), m.histPos+d))
	if m.histPos == len(m.history) {
		m.input.SetValue("")
	} else {
		m.input.SetValue(m.history[m.histPos])
	}
	m.input.CursorEnd()
}

// event shows one client event and updates the status it carries.
func (m *Model) event(ev client.Event) tea.Cmd {
	ev = sanitize(ev, "\n")
	switch ev.Type {
	case codec.TypeMsg:
		switch {
		case ev.Room == "" && ev.Sent:
			m.add(&entry{kind: entryDM, room: "dm → " + ev.To, nick: ev.From, text: ev.Body})
		case ev.Room == "":
			m.add(&entry{kind: entryDM, room: "dm", nick: ev.From, text: ev.Body})
		default:
			m.add(&entry{kind: entryRoom, room: ev.Room, nick: ev.From, text: ev.Body, seq: ev.Seq})
			if m.oldest[ev.Room] == 0 {
				m.oldest[ev.Room] = ev.Seq
			}
		}
	case codec.TypeJoined:
		m.counts[ev.Room]++
		m.notice(fmt.Sprintf("%s joined %s", ev.Nick, ev.Room))
	case codec.TypeLeft:
		m.counts[ev.Room]--
		m.notice(fmt.Sprintf("%s left %s (%s)", ev.Nick, ev.Room, ev.Reason))
	case codec.TypePresence:
		m.counts[ev.Room] = ev.Count
		m.refresh()
	case codec.TypeWelcome:
		m.state = "connected"
		m.notice(fmt.Sprintf("welcome, %s: %s. Type /help for commands.", ev.Nick, othersOnline(ev.Online)))
		return m.countCmd(m.room)
	case client.EventReconnecting:
		m.state = fmt.Sprintf("reconnecting (attempt %d)", ev.Attempt)
		m.notice(fmt.Sprintf("connection lost (%v); reconnecting in %s", ev.Err, ev.Delay.Round(10*time.Millisecond)))
	case client.EventReconnected:
		m.state = "connected"
		m.notice("reconnected")
		return m.countCmd(m.room)
	case client.EventDisconnected:
		m.state = "disconnected"
		m.notice(fmt.Sprintf("disconnected (%v); /quit to leave", ev.Err))
	default:
		if s, ok := Format(ev); ok {
			m.add(&entry{kind: entryNotice, text: s})
		}
	}
	return nil
}

func (m *Model) result(r Result) {
	if r.Err != nil {
		m.add(&entry{kind: entryError, text: FormatError(r.Err)})
	}
	for _, l := range r.Lines {
		m.add(&entry{kind: entryNotice, text: l})
	}
	if r.Room != "" && r.Room != m.room {
		m.room = r.Room
		m.refresh()
	}
}

// historyPage is how many messages the screen asks for at a time.
const historyPage = 50

// historyMsg is a page of a room's history; older pages go above
// everything shown.
type historyMsg struct {
	room  string
	msgs  []codec.Event
	more  bool
	older bool
	err   error
}

// historyCmd asks for the page of room's history before seq before (the
// latest page if 0).
func (m *Model) historyCmd(room string, before uint64, older bool) tea.Cmd {
	ch := m.ch
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		msgs, more, err := ch.History(ctx, room, before, historyPage)
		return historyMsg{room: room, msgs: msgs, more: more, older: older, err: err}
	}
}

// showHistory puts a page on screen: a joined room's latest page after the
// join, an older page at the top of the scrollback.
func (m *Model) showHistory(h historyMsg) {
	m.loading = false
	if h.err != nil {
		m.add(&entry{kind: entryError, text: FormatError(h.err)})
		return
	}
	if !h.more {
		m.noOlder[h.room] = true
	}
	if len(h.msgs) == 0 {
		return
	}
	if old := m.oldest[h.room]; old == 0 || h.msgs[0].Seq < old {
		m.oldest[h.room] = h.msgs[0].Seq
	}
	page := []*entry{{kind: entryNotice, text: fmt.Sprintf("* earlier in %s:", h.room), at: m.now()}}
	for _, ev := range h.msgs {
		ev = sanitize(client.Event{Event: ev}, "\n").Event
		page = append(page, &entry{kind: entryRoom, room: h.room, nick: ev.From, text: ev.Body, seq: ev.Seq, at: time.UnixMilli(ev.TS)})
	}
	if !h.older {
		page = append(page, &entry{kind: entryNotice, text: "* now:", at: m.now()})
		m.entries = append(m.entries, page...)
	} else {
		m.entries = append(page, m.entries...)
	}
	if len(m.entries) > maxScrollback {
		m.entries = m.entries[len(m.entries)-maxScrollback:]
	}
	m.refresh()
	if h.older {
		m.vp.GotoTop()
	}
}

func (m *Model) notice(s string) { m.add(&entry{kind: entryNotice, text: "* " + s}) }

func (m *Model) add(e *entry) {
	e.at = m.now()
	m.entries = append(m.entries, e)
	if len(m.entries) > maxScrollback {
		m.entries = m.entries[len(m.entries)-maxScrollback:]
	}
	m.refresh()
}

// Commands that talk to the server run off the UI goroutine.

func (m *Model) waitEvent() tea.Cmd {
	events := m.events
	return func() tea.Msg {
		ev, ok := <-events
		if !ok {
			return eventsDoneMsg{}
		}
		return eventMsg(ev)
	}
}

func (m *Model) runCmd(cmd Command) tea.Cmd {
	ch, room := m.ch, m.room
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		res := Run(ctx, ch, room, cmd)
		if res.Room != "" {
			batch := tea.BatchMsg{func() tea.Msg { return resultMsg(res) }}
			if n, err := ch.Count(ctx, res.Room); err == nil {
				batch = append(batch, func() tea.Msg { return countMsg{res.Room, n} })
			}
			if cmd.Kind == CmdJoin {
				batch = append(batch, m.historyCmd(res.Room, 0, false))
			}
			return batch
		}
		return resultMsg(res)
	}
}

func (m *Model) countCmd(room string) tea.Cmd {
	ch := m.ch
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		n, err := ch.Count(ctx, room)
		if err != nil {
			return nil
		}
		return countMsg{room, n}
	}
}

func (m *Model) quitCmd() tea.Cmd {
	ch := m.ch
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), QuitWait)
		defer cancel()
		_ = ch.Quit(ctx)
		return quitDoneMsg{}
	}
}
