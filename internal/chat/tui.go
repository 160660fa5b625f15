package chat

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"parley/client"
	"parley/codec"
)

// maxScrollback is how many lines the TUI keeps.
const maxScrollback = 2000

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
	out := cfg.Out
	if out == nil {
		out = os.Stdout
	}
	m.term = &terminal{w: out}
	opts := []tea.ProgramOption{tea.WithAltScreen(), tea.WithOutput(m.term)}
	if cfg.In != nil {
		opts = append(opts, tea.WithInput(cfg.In))
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

// sendState is where a line the user typed is on its way.
type sendState int

const (
	received sendState = iota // not the user's, or shown from the server
	sending                   // waiting for its ack (or for the connection)
	sent                      // acked
	failed                    // refused, or given up
)

// entry is one scrollback line, kept unrendered so a resize can re-wrap it.
type entry struct {
	at       time.Time
	kind     entryKind
	room     string
	nick     string
	text     string
	seq      uint64    // a room message's
	id       string    // the id of a say of this client
	state    sendState // a line the user typed
	why      string    // why it failed
	mention  bool      // another's message naming the user
	replyTo  uint64    // the message it answers
	edited   bool
	deleted  bool
	reacts   []codec.ReactionCount
	rendered string // cached for width
	width    int
}

// Model is the bubbletea model of the chat screen.
type Model struct {
	ch        Chatter
	events    <-chan client.Event
	addr      string
	room      string          // the room lines go to, as of the last line typed
	in        map[string]bool // the rooms the user is in, as of the last line typed
	startRoom string
	state     string // connected, reconnecting…, disconnected
	outage    bool   // a reconnect is under way: its first attempt was told
	counts    map[string]int
	entries   []*entry
	vp        viewport.Model
	input     textinput.Model
	inOffset  int // the first rune of the input shown, when it is wider than the line
	history   []string
	histPos   int
	oldest    map[string]uint64 // per room, the oldest seq shown: PgUp at the top loads before it
	noOlder   map[string]bool   // rooms whose history has nothing older
	loading   bool              // a history page is on its way
	jobs      []*job            // commands typed, waiting for the one running
	running   bool              // a command is running
	nicks     map[string]bool   // nicks seen, for Tab
	tab       *completion       // the completion Tab cycles through
	below     int               // entries added while scrolled up
	term      *terminal         // the real cursor and the bell
	width     int
	height    int
	now       func() time.Time
	typing    typers                    // who is typing where (typing.go)
	unread    map[string]codec.MarkInfo // per room (and "" for direct messages): unread and mentions since the marker
	lastSeq   map[string]uint64         // per room, the newest seq seen
	marked    map[string]uint64         // per room, the read marker as last sent or received
	account   bool                      // logged in with a token: read markers are kept
	typedRoom string                    // where this user last said it was typing
	typedAt   time.Time                 // and when
}

// NewModel returns the chat screen for ch, fed by events.
func NewModel(ch Chatter, events <-chan client.Event, addr string) *Model {
	in := textinput.New()
	in.Prompt = "> "
	in.Placeholder = "say something, or /help"
	in.CharLimit = codec.DefaultMaxBody
	in.Cursor.SetMode(cursor.CursorHide) // the terminal's own cursor shows the caret (View)
	in.Focus()
	return &Model{
		ch: ch, events: events, addr: addr, room: codec.Lobby, state: "connected",
		in: map[string]bool{codec.Lobby: true}, nicks: map[string]bool{},
		counts: map[string]int{}, input: in, vp: viewport.New(80, 20), now: time.Now,
		oldest: map[string]uint64{}, noOlder: map[string]bool{},
		term: &terminal{w: io.Discard}, width: 80, height: 24, typing: typers{},
		unread: map[string]codec.MarkInfo{}, lastSeq: map[string]uint64{}, marked: map[string]uint64{},
	}
}

// Init starts the event pump and the first member count.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.waitEvent(), m.countCmd(m.room)}
	if m.startRoom != "" && m.startRoom != codec.Lobby {
		cmds = append(cmds, m.queue(Command{Kind: CmdJoin, Room: m.startRoom}, nil))
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
		m.failQueued("not sent: disconnected")
		m.refresh()
		return m, nil
	case jobDoneMsg:
		return m, m.jobDone(msg)
	case countMsg:
		m.counts[msg.room] = msg.n
		return m, nil
	case historyMsg:
		m.showHistory(msg)
		return m, nil
	case typingExpiredMsg:
		return m, nil // the status line is drawn anew
	case quitDoneMsg:
		m.term.stop()
		return m, tea.Quit
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	if k.Type != tea.KeyTab {
		m.tab = nil
	}
	switch k.Type {
	case tea.KeyCtrlC, tea.KeyCtrlD:
		return m.quitCmd()
	case tea.KeyEnter:
		return m.submit()
	case tea.KeyTab:
		m.complete()
		return nil
	case tea.KeyUp:
		m.historyMove(-1)
		return nil
	case tea.KeyDown:
		m.historyMove(1)
		return nil
	case tea.KeyEnd, tea.KeyCtrlEnd:
		if !m.vp.AtBottom() || k.Type == tea.KeyCtrlEnd {
			m.vp.GotoBottom()
			m.below = 0
			return nil
		}
	case tea.KeyPgUp, tea.KeyPgDown:
		top := m.vp.AtTop()
		var cmd tea.Cmd
		m.vp, cmd = m.vp.Update(k)
		if m.vp.AtBottom() {
			m.below = 0
		}
		if k.Type == tea.KeyPgUp && top && !m.loading && !m.noOlder[m.room] {
			m.loading = true
			return tea.Batch(cmd, m.historyCmd(m.room, m.oldest[m.room], true))
		}
		return cmd
	}
	if k.Type == tea.KeyRunes || k.Type == tea.KeySpace {
		m.insert(k.Runes)
		return m.typed()
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return cmd
}

// insert puts typed or pasted text at the caret. textinput would match a
// burst of text against its key bindings first: typed fast enough, the
// word "down" arrives as one key named "down" and was lost.
func (m *Model) insert(runes []rune) {
	value := []rune(m.input.Value())
	pos := min(m.input.Position(), len(value))
	var clean []rune
	for _, r := range runes {
		if r == '\n' || r == '\r' || r == '\t' {
			r = ' '
		}
		if !unsafeRune(r) {
			clean = append(clean, r)
		}
	}
	if room := m.input.CharLimit - len(value); m.input.CharLimit > 0 && len(clean) > room {
		clean = clean[:max(0, room)]
	}
	m.input.SetValue(string(value[:pos]) + string(clean) + string(value[pos:]))
	m.input.SetCursor(pos + len(clean))
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
		m.stopTyping(ev.Room, ev.From)
		m.message(ev)
	case codec.TypeTyping:
		return m.noteTyping(ev)
	case codec.TypeEdited, codec.TypeDeleted, codec.TypeReaction:
		m.amend(ev)
	case codec.TypeMarks:
		m.marks(ev)
	case codec.TypeJoined:
		m.counts[ev.Room]++
		m.nicks[ev.Nick] = true
		m.notice(fmt.Sprintf("%s joined %s", ev.Nick, ev.Room))
	case codec.TypeLeft:
		m.counts[ev.Room]--
		m.notice(fmt.Sprintf("%s left %s (%s)", ev.Nick, ev.Room, ev.Reason))
		if ev.Nick == m.ch.Nick() && m.in[ev.Room] { // kicked or banned
			delete(m.in, ev.Room)
			if m.room == ev.Room {
				m.switchTo(codec.Lobby)
				m.notice("you talk in " + codec.Lobby + " now")
			}
		}
	case codec.TypePresence:
		m.counts[ev.Room] = ev.Count
		m.refresh()
	case codec.TypeWelcome:
		if m.outage {
			return nil // the reconnected event tells
		}
		m.state = "connected"
		m.account = ev.DMEpoch != ""
		m.notice(fmt.Sprintf("welcome, %s: %s. Type /help for commands and keys.", ev.Nick, othersOnline(ev.Online)))
		return m.countCmd(m.room)
	case client.EventReconnecting:
		m.state = fmt.Sprintf("reconnecting (attempt %d)", ev.Attempt)
		if !m.outage {
			m.outage = true
			m.notice(fmt.Sprintf("connection lost (%v); reconnecting. What you type now is sent once connected.", ev.Err))
		}
		m.refresh()
	case client.EventReconnected:
		m.state = "connected"
		m.outage = false
		m.notice("reconnected")
		return m.countCmd(m.room)
	case client.EventDisconnected:
		m.state = "disconnected"
		s, _ := Format(client.Event{Event: codec.Event{Type: client.EventDisconnected}, Err: ev.Err})
		m.add(&entry{kind: entryError, text: s + "; /quit to leave"})
	default:
		if s, ok := Format(ev); ok {
			m.add(&entry{kind: entryNotice, text: s})
		}
	}
	return nil
}

// message shows a room message or a DM. One of the user's own says that
// comes back in a replay is the line already shown: it is marked sent.
func (m *Model) message(ev client.Event) {
	me := m.ch.Nick()
	if ev.From != me {
		m.nicks[ev.From] = true
	}
	if ev.Room == "" {
		peer, label := ev.From, "dm"
		if ev.Sent {
			peer, label = ev.To, "dm → "+ev.To
		}
		m.nicks[peer] = true
		m.add(&entry{kind: entryDM, room: label, nick: sender(ev), text: ev.Body, seq: ev.Seq, mention: !ev.Sent && ev.From != me})
		if ev.Seq > 0 {
			m.lastSeq[""] = max(m.lastSeq[""], ev.Seq) // on screen: read when you next write
		}
		if !ev.Sent && !ev.Filled && ev.From != me {
			m.term.bell()
		}
		return
	}
	if ev.From == me && ev.ID != "" {
		if e := m.ownLine(ev.ID); e != nil {
			e.state, e.seq, e.why, e.rendered = sent, ev.Seq, "", ""
			m.refresh()
			return
		}
	}
	mention := ev.From != me && mentioned(ev, me)
	m.add(&entry{kind: entryRoom, room: ev.Room, nick: sender(ev), text: ev.Body, seq: ev.Seq, mention: mention, replyTo: ev.ReplyTo})
	m.seen(ev.Room, ev.Seq, ev.From != me, mention)
	if mention && !ev.Filled {
		m.term.bell()
	}
	if m.oldest[ev.Room] == 0 {
		m.oldest[ev.Room] = ev.Seq
	}
}

// ownLine is the line of the user's say with id, if still shown.
func (m *Model) ownLine(id string) *entry {
	for i := len(m.entries) - 1; i >= 0; i-- {
		if m.entries[i].id == id {
			return m.entries[i]
		}
	}
	return nil
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
		if ev.Type != codec.TypeMsg {
			continue // an amendment: the message it amends shows it already
		}
		page = append(page, &entry{kind: entryRoom, room: h.room, nick: ev.From, text: ev.Body, seq: ev.Seq, at: time.UnixMilli(ev.TS),
			replyTo: ev.ReplyTo, edited: ev.Edited > 0, deleted: ev.Deleted, reacts: ev.Reactions, mention: ev.From != m.ch.Nick() && mentioned(client.Event{Event: ev}, m.ch.Nick())})
		m.seen(h.room, ev.Seq, false, false)
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
	if !m.vp.AtBottom() {
		m.below++
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

// Mentions reports whether body names nick, in any case: as a word where
// the nick and the text around it are ASCII letters or digits, anywhere
// otherwise (Chinese has no spaces). A guest's ~nick is also named
// without its ~.
func Mentions(body, nick string) bool {
	lower := strings.ToLower(body)
	for _, n := range []string{strings.ToLower(nick), strings.ToLower(strings.TrimPrefix(nick, "~"))} {
		if n == "" {
			continue
		}
		for i := 0; i <= len(lower)-len(n); {
			j := strings.Index(lower[i:], n)
			if j < 0 {
				break
			}
			at, end := i+j, i+j+len(n)
			joinedLeft := at > 0 && asciiWord(n[0]) && asciiWord(lower[at-1])
			joinedRight := end < len(lower) && asciiWord(n[len(n)-1]) && asciiWord(lower[end])
			if !joinedLeft && !joinedRight {
				return true
			}
			i = at + 1
		}
	}
	return false
}

func asciiWord(b byte) bool {
	return b == '_' || b == '-' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9'
}
