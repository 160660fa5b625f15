package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"parley/client"
	"parley/codec"
)

func TestParse(t *testing.T) {
	cases := []struct {
		line string
		want Command
	}{
		{"hello there", Command{Kind: CmdSay, Text: "hello there"}},
		{"  spaced  ", Command{Kind: CmdSay, Text: "  spaced  "}},
		{"//not a command", Command{Kind: CmdSay, Text: "/not a command"}},
		{"/join go", Command{Kind: CmdJoin, Room: "go"}},
		{"/leave", Command{Kind: CmdLeave}},
		{"/leave go", Command{Kind: CmdLeave, Room: "go"}},
		{"/room go", Command{Kind: CmdRoom, Room: "go"}},
		{"/dm bob hi there", Command{Kind: CmdDM, Nick: "bob", Text: "hi there"}},
		{"/who", Command{Kind: CmdWho}},
		{"/who go", Command{Kind: CmdWho, Room: "go"}},
		{"/help", Command{Kind: CmdHelp}},
		{"/me waves", Command{Kind: CmdSay, Text: "/me waves"}},
		{"/quit", Command{Kind: CmdQuit}},
		{"quit", Command{Kind: CmdQuit}},
		{"exit", Command{Kind: CmdQuit}},
		{"  exit ", Command{Kind: CmdQuit}},
		{"/kick bob", Command{Kind: CmdModerate, Action: "kick", Nick: "bob"}},
		{"/kick bob cool off", Command{Kind: CmdModerate, Action: "kick", Nick: "bob", Text: "cool off"}},
		{"/ban bob 10m spam links", Command{Kind: CmdModerate, Action: "ban", Nick: "bob", Duration: 10 * time.Minute, Text: "spam links"}},
		{"/ban account:eve", Command{Kind: CmdModerate, Action: "ban", Nick: "account:eve"}},
		{"/mute bob too loud", Command{Kind: CmdModerate, Action: "mute", Nick: "bob", Text: "too loud"}},
		{"/invite bob 1h", Command{Kind: CmdModerate, Action: "invite", Nick: "bob", Duration: time.Hour}},
		{"/op bob", Command{Kind: CmdModerate, Action: "op", Nick: "bob"}},
		{"/topic all about Go", Command{Kind: CmdTopic, Text: "all about Go"}},
		{"/topic -", Command{Kind: CmdTopic}},
		{"/private on", Command{Kind: CmdPrivate, On: true}},
		{"/private off", Command{Kind: CmdPrivate}},
		{"/rooms", Command{Kind: CmdRooms}},
		{"/rooms 21", Command{Kind: CmdRooms, From: 20}},
		{"/audit", Command{Kind: CmdAudit}},
		{"/reply #12 yes", Command{Kind: CmdReply, Seq: 12, Text: "yes", On: true}},
		{"/edit 12 fixed it", Command{Kind: CmdEdit, Seq: 12, Text: "fixed it", On: true}},
		{"/edit fixed it", Command{Kind: CmdEdit, Text: "fixed it", On: true}},
		{"/delete #7", Command{Kind: CmdDelete, Seq: 7, On: true}},
		{"/delete", Command{Kind: CmdDelete, On: true}},
		{"/edit dm #3 better", Command{Kind: CmdEdit, DM: true, Seq: 3, Text: "better", On: true}},
		{"/delete dm", Command{Kind: CmdDelete, DM: true, On: true}},
		{"/react #4 👍", Command{Kind: CmdReact, Seq: 4, Text: "👍", On: true}},
		{"/unreact 👍", Command{Kind: CmdReact, Text: "👍"}},
	}
	for _, c := range cases {
		got, err := Parse(c.line)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.line, got, err, c.want)
		}
	}
	for _, bad := range []string{"/join", "/join a b", "/room", "/dm bob", "/dm", "/dance", "/me",
		"/kick", "/op bob why", "/unban bob 10m", "/ban bob 10ms", "/topic", "/private maybe", "/rooms 0", "/rooms x",
		"/reply yes", "/reply #3", "/edit #3", "/edit", "/delete #3 why", "/react #3", "/react #3 two words", "/edit dm #3", "/delete dm #3 why"} {
		if _, err := Parse(bad); !errors.Is(err, ErrUsage) {
			t.Errorf("Parse(%q) = %v, want a usage error", bad, err)
		}
	}
}

func TestFormat(t *testing.T) {
	cases := []struct {
		ev   codec.Event
		want string
	}{
		{codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: "hi"}, "[lobby] bob: hi"},
		{codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "amy", Body: "hello", Seq: 18, ReplyTo: 17, Edited: 1,
			Reactions: []codec.ReactionCount{{Emoji: "👍", Count: 2}}}, "[lobby] amy: ↪#17 hello (edited)  👍2  #18"},
		{codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "amy", Seq: 19, Deleted: true}, "[lobby] amy: (deleted)  #19"},
		{codec.Event{Type: codec.TypeEdited, Room: "lobby", From: "amy", Of: 18, Body: "hello!"}, "* amy edited #18 in lobby: hello!"},
		{codec.Event{Type: codec.TypeDeleted, From: "amy", Of: 3}, "* amy deleted #3 in direct messages"},
		{codec.Event{Type: codec.TypeReaction, Room: "den", From: "bob", Of: 5, Emoji: "🎉", Remove: true}, "* bob took back 🎉 on #5 in den"},
		{codec.Event{Type: codec.TypeMarks, Marks: []codec.MarkInfo{{Room: "den", Unread: 3, Mentions: 1}, {Room: "go"}, {DM: true, Unread: 2}}},
			"* unread: den 3 (1 mentioning you), direct messages 2"},
		{codec.Event{Type: codec.TypeMsg, To: "amy", From: "bob", Body: "hi"}, "[dm] bob: hi"},
		{codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "amy", Body: "deploy at 5", API: true}, "[lobby] amy [app]: deploy at 5"},
		{codec.Event{Type: codec.TypeMsg, To: "amy", From: "support", Body: "closed", API: true}, "[dm] support [app]: closed"},
		{codec.Event{Type: codec.TypeJoined, Nick: "bob", Room: "lobby"}, "* bob joined lobby"},
		{codec.Event{Type: codec.TypeLeft, Nick: "bob", Room: "lobby", Reason: codec.ReasonTimeout}, "* bob left lobby (timeout)"},
		{codec.Event{Type: codec.TypeError, Code: codec.CodeNickTaken, Message: "taken"}, "! nick_taken: taken"},
		{codec.Event{Type: codec.TypePresence, Room: "lobby", Count: 900, Joined: 3, Left: 1}, "* lobby: 900 members (+3 joined, -1 left)"},
		{codec.Event{Type: codec.TypeWelcome, Nick: "amy", Room: "lobby", Online: 2}, "* welcome, amy: you are in lobby, 2 other users online"},
		{codec.Event{Type: codec.TypeRecover, Room: "go"}, "! go: messages sent while you were away could not be recovered"},
		{codec.Event{Type: codec.TypeGap, Room: "go", First: 4, Last: 9}, "! go: messages 4 to 9 were lost"},
		{codec.Event{Type: codec.TypeMod, Room: "go", Action: "kick", Nick: "eve", By: "amy", Reason: "spam"}, "* eve was kicked from go by amy: spam"},
		{codec.Event{Type: codec.TypeMod, Room: "go", Action: "op", Nick: "bob", By: "amy"}, "* amy made bob an operator of go"},
		{codec.Event{Type: codec.TypeMod, Room: "go", Action: "private", By: "amy"}, "* amy made go private: invitations only"},
		{codec.Event{Type: codec.TypeTopic, Room: "go", Topic: "Go\x1b[2J", By: "amy"}, "* go topic: Go\uFFFD[2J (set by amy)"},
	}
	for _, c := range cases {
		got, ok := Format(client.Event{Event: c.ev})
		if !ok || got != c.want {
			t.Errorf("Format(%+v) = %q, want %q", c.ev, got, c.want)
		}
	}
	if _, ok := Format(client.Event{Event: codec.Event{Type: codec.TypePong}}); ok {
		t.Error("pong must not print")
	}
}

// fakeChatter records calls and answers them.
type fakeChatter struct {
	mu    sync.Mutex
	calls []string
	rooms []string
	fail  map[string]error // says whose body is a key fail with its error
}

func (f *fakeChatter) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeChatter) Nick() string                { return "amy" }
func (f *fakeChatter) Ready(context.Context) error { return nil }
func (f *fakeChatter) Rooms() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{"lobby"}, f.rooms...)
}
func (f *fakeChatter) SayID(_ context.Context, room, id, body string) (uint64, error) {
	f.record("say " + room + " " + body)
	if err := f.fail[body]; err != nil {
		return 0, err
	}
	return 1, nil
}
func (f *fakeChatter) DMSeq(_ context.Context, to, body string) (uint64, error) {
	f.record("dm " + to + " " + body)
	return 0, nil
}
func (f *fakeChatter) Join(_ context.Context, room string) error {
	f.record("join " + room)
	if room == "full" {
		return &codec.Error{Code: codec.CodeTooManyRooms, Msg: "too many rooms"}
	}
	f.mu.Lock()
	f.rooms = append(f.rooms, room)
	f.mu.Unlock()
	return nil
}
func (f *fakeChatter) Leave(_ context.Context, room string) error {
	f.record("leave " + room)
	return nil
}
func (f *fakeChatter) Who(_ context.Context, room string) ([]string, int, error) {
	return []string{"amy", "bob"}, 2, nil
}
func (f *fakeChatter) Count(_ context.Context, room string) (int, error) { return 7, nil }
func (f *fakeChatter) WhoRoles(_ context.Context, room string) ([]string, map[string]string, int, error) {
	return []string{"amy", "bob"}, map[string]string{"amy": "owner"}, 2, nil
}
func (f *fakeChatter) Moderate(_ context.Context, typ, room string, t client.Target, d time.Duration, reason string) error {
	f.record(fmt.Sprintf("%s %s %v %s %s", typ, room, t, d, reason))
	return nil
}
func (f *fakeChatter) Typing(_ context.Context, room string) error {
	f.record("typing " + room)
	return nil
}
func (f *fakeChatter) SetTopic(_ context.Context, room, topic string) error {
	f.record("topic " + room + " " + topic)
	return nil
}
func (f *fakeChatter) SetPrivate(_ context.Context, room string, private bool) error {
	f.record(fmt.Sprint("private ", room, " ", private))
	return nil
}
func (f *fakeChatter) ListRooms(_ context.Context, offset, limit int) ([]codec.RoomInfo, int, bool, error) {
	return []codec.RoomInfo{{Room: "big", Count: 9, Topic: "things"}}, 1, false, nil
}
func (f *fakeChatter) Audit(_ context.Context, room string, before uint64, limit int) ([]codec.AuditEntry, bool, error) {
	return []codec.AuditEntry{{Action: "ban", By: "amy", Target: "eve", Reason: "spam"}}, false, nil
}
func (f *fakeChatter) Quit(_ context.Context) error { f.record("quit"); return nil }
func (f *fakeChatter) Reply(_ context.Context, room string, replyTo uint64, body string) (uint64, error) {
	f.record(fmt.Sprintf("reply %s %d %s", room, replyTo, body))
	return 20, nil
}
func (f *fakeChatter) Edit(_ context.Context, room string, seq uint64, body string) (uint64, error) {
	f.record(fmt.Sprintf("edit %s %d %s", room, seq, body))
	return 21, nil
}
func (f *fakeChatter) Delete(_ context.Context, room string, seq uint64) (uint64, error) {
	f.record(fmt.Sprintf("delete %s %d", room, seq))
	return 22, nil
}
func (f *fakeChatter) React(_ context.Context, room string, seq uint64, emoji string, remove bool) (uint64, error) {
	f.record(fmt.Sprintf("react %s %d %s %v", room, seq, emoji, remove))
	return 23, nil
}
func (f *fakeChatter) Mark(_ context.Context, room string, seq uint64) (uint64, error) {
	f.record(fmt.Sprintf("mark %s %d", room, seq))
	return seq, nil
}
func (f *fakeChatter) EditDM(_ context.Context, seq uint64, body string) (uint64, error) {
	f.record(fmt.Sprintf("edit dm %d %s", seq, body))
	return 24, nil
}
func (f *fakeChatter) DeleteDM(_ context.Context, seq uint64) (uint64, error) {
	f.record(fmt.Sprintf("delete dm %d", seq))
	return 25, nil
}
func (f *fakeChatter) MarkDMs(_ context.Context, seq uint64) (uint64, error) {
	f.record(fmt.Sprintf("mark dm %d", seq))
	return seq, nil
}

// History serves seqs 1 to 120 of room "old", and nothing of the others.
func (f *fakeChatter) History(_ context.Context, room string, before uint64, limit int) ([]codec.Event, bool, error) {
	f.record(fmt.Sprintf("history %s %d", room, before))
	if room != "old" {
		return nil, false, nil
	}
	if before == 0 {
		before = 121
	}
	from := max(1, int(before)-limit)
	var out []codec.Event
	for seq := from; seq < int(before); seq++ {
		out = append(out, codec.Event{Type: codec.TypeMsg, Room: room, From: "old", Body: fmt.Sprint("said ", seq), Seq: uint64(seq)})
	}
	return out, from > 1, nil
}

// drive feeds msg to the model and runs the commands it returns, feeding
// their messages back, except the event pump (never started here).
func drive(m *Model, msg tea.Msg) {
	_, cmd := m.Update(msg)
	runCmd(m, cmd)
}

func runCmd(m *Model, cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	switch msg := cmd().(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			runCmd(m, c)
		}
	case jobDoneMsg, countMsg, quitDoneMsg, historyMsg:
		drive(m, msg)
	default:
		// the event pump and the cursor blink: not driven in these tests
	}
}

func typeLine(m *Model, s string) {
	for _, r := range s {
		drive(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	drive(m, tea.KeyMsg{Type: tea.KeyEnter})
}

func newTestModel() (*Model, *fakeChatter) {
	f := &fakeChatter{}
	// Events are driven directly; the pump finds its channel closed.
	events := make(chan client.Event)
	close(events)
	m := NewModel(f, events, "127.0.0.1:8060")
	m.now = func() time.Time { return time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC) }
	drive(m, tea.WindowSizeMsg{Width: 60, Height: 12})
	return m, f
}

func TestTUIShowsEventsAndStatus(t *testing.T) {
	m, _ := newTestModel()
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeWelcome, Nick: "amy", Room: "lobby", Online: 1}}))
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: "hello amy"}}))
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, To: "amy", From: "bob", Body: "secret"}}))
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeLeft, Nick: "cat", Room: "lobby", Reason: codec.ReasonTimeout}}))
	view := m.View()
	for _, want := range []string{"welcome, amy", "09:30", "[lobby]", "bob:", "hello amy", "[dm]", "secret", "cat left lobby (timeout)", "127.0.0.1:8060", "connected", "lobby (6 members)"} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypePresence, Room: "lobby", Count: 10000}}))
	if !strings.Contains(m.View(), "lobby (10000 members)") {
		t.Errorf("presence did not update the count:\n%s", m.View())
	}
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: client.EventReconnecting}, Err: errors.New("EOF"), Attempt: 2, Delay: time.Second}))
	if !strings.Contains(m.View(), "reconnecting (attempt 2)") {
		t.Errorf("status does not show reconnecting:\n%s", m.View())
	}
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: client.EventReconnected}}))
	if !strings.Contains(m.View(), "· connected ·") {
		t.Errorf("status does not show connected:\n%s", m.View())
	}
}

func TestTUICommandsAndHistory(t *testing.T) {
	m, f := newTestModel()
	typeLine(m, "hi all")
	typeLine(m, "/join go")
	typeLine(m, "in go now")
	typeLine(m, "/dm bob psst")
	typeLine(m, "/join full")
	typeLine(m, "/room lobby")
	typeLine(m, "/bogus")
	f.mu.Lock()
	calls := strings.Join(f.calls, "|")
	f.mu.Unlock()
	// Typing is told once per room within TypingEvery, never for a command.
	if calls != "typing lobby|say lobby hi all|join go|history go 0|typing go|say go in go now|dm bob psst|join full" {
		t.Fatalf("calls = %s", calls)
	}
	view := m.View()
	for _, want := range []string{"amy:", "hi all", "you joined go", "[→ bob]", "! too_many_rooms", "unknown command /bogus", " lobby (7 members) · "} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
	// Up recalls the previous lines, down goes back to an empty line.
	drive(m, tea.KeyMsg{Type: tea.KeyUp})
	if m.input.Value() != "/bogus" {
		t.Fatalf("up: %q", m.input.Value())
	}
	drive(m, tea.KeyMsg{Type: tea.KeyUp})
	if m.input.Value() != "/room lobby" {
		t.Fatalf("up twice: %q", m.input.Value())
	}
	drive(m, tea.KeyMsg{Type: tea.KeyDown})
	drive(m, tea.KeyMsg{Type: tea.KeyDown})
	if m.input.Value() != "" {
		t.Fatalf("down past the end: %q", m.input.Value())
	}
}

func TestTUIQuit(t *testing.T) {
	m, f := newTestModel()
	_, cmd := m.Update(tea.KeyMsg{Type: tea.KeyCtrlC})
	msg := cmd()
	if _, ok := msg.(quitDoneMsg); !ok {
		t.Fatalf("ctrl+c gave %T", msg)
	}
	if _, cmd = m.Update(msg); cmd == nil {
		t.Fatal("no tea.Quit after the quit finished")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Fatal("not tea.Quit")
	}
	if strings.Join(f.calls, "|") != "quit" {
		t.Fatalf("calls = %v", f.calls)
	}
}

// TestTUIWideCharactersAndResize: Chinese text wraps by display width, and
// every line of the view fits the window after a resize.
func TestTUIWideCharactersAndResize(t *testing.T) {
	m, _ := newTestModel()
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "小明", Body: strings.Repeat("你好世界", 20)}}))
	for _, w := range []int{60, 30, 100} {
		drive(m, tea.WindowSizeMsg{Width: w, Height: 15})
		lines := strings.Split(m.View(), "\n")
		if len(lines) != 15 {
			t.Fatalf("width %d: view has %d lines, want 15", w, len(lines))
		}
		for _, l := range lines {
			if lipgloss.Width(l) > w {
				t.Fatalf("width %d: line of %d cells: %q", w, lipgloss.Width(l), l)
			}
		}
		if !strings.Contains(m.View(), "你好世界") {
			t.Fatalf("width %d: message lost:\n%s", w, m.View())
		}
	}
}

// TestFormatNeverPrintsControlCharacters: whatever a server sends, line
// mode prints no control character a terminal would act on.
func TestFormatNeverPrintsControlCharacters(t *testing.T) {
	ev := client.Event{Event: codec.Event{Type: codec.TypeMsg, From: "e\x1b[2Jvil", Room: "lobby", Body: "red \x1b[31malert\x07\r\nline two\u202e\u0085"}}
	line, ok := Format(ev)
	if !ok {
		t.Fatal("no line")
	}
	for _, r := range line {
		if unsafeRune(r) {
			t.Fatalf("line %q holds %U", line, r)
		}
	}
	if !strings.Contains(line, "line two") || !strings.Contains(line, "↵") {
		t.Fatalf("line %q lost the text or the newline mark", line)
	}
}

// TestTUILoadsHistory: joining a room shows its latest page of history;
// PgUp at the top of the scrollback loads the page before the oldest shown,
// until there is nothing older.
func TestTUILoadsHistory(t *testing.T) {
	m, f := newTestModel()
	typeLine(m, "/join old")
	if view := m.View(); !strings.Contains(view, "said 120") || !strings.Contains(view, "now:") {
		t.Fatalf("no history after the join:\n%s", view)
	}
	for i := 0; i < 10 && !m.vp.AtTop(); i++ {
		drive(m, tea.KeyMsg{Type: tea.KeyPgUp})
	}
	for range 3 {
		drive(m, tea.KeyMsg{Type: tea.KeyPgUp})
		for i := 0; i < 20 && !m.vp.AtTop(); i++ {
			drive(m, tea.KeyMsg{Type: tea.KeyPgUp})
		}
	}
	f.mu.Lock()
	calls := strings.Join(f.calls, "|")
	f.mu.Unlock()
	if !strings.Contains(calls, "history old 0") || !strings.Contains(calls, "history old 71") || !strings.Contains(calls, "history old 21") {
		t.Fatalf("calls = %s", calls)
	}
	if strings.Count(calls, "history old") != 3 {
		t.Fatalf("asked again after the start of the history: %s", calls)
	}
	if m.oldest["old"] != 1 || !m.noOlder["old"] {
		t.Fatalf("oldest %d, noOlder %v", m.oldest["old"], m.noOlder["old"])
	}
	if view := m.View(); !strings.Contains(view, "said 1") {
		t.Fatalf("the top of the scrollback is not the oldest page:\n%s", view)
	}
}

// TestTUILinesGoWhereTyped: /room and /join take effect before the next
// line; /room to a room the user is not in is refused and changes nothing;
// a refused say is shown failed, with why, and stays in the input history.
func TestTUILinesGoWhereTyped(t *testing.T) {
	m, f := newTestModel()
	f.fail = map[string]error{"too long": &codec.Error{Code: codec.CodeBodyTooLarge, Msg: "body too large"}}
	typeLine(m, "/join Café")
	typeLine(m, "/room lobby")
	typeLine(m, "for the lobby")
	typeLine(m, "/room CAFÉ")
	typeLine(m, "for café")
	typeLine(m, "/room nowhere")
	typeLine(m, "still café")
	typeLine(m, "too long")
	f.mu.Lock()
	calls := strings.Join(f.calls, "|")
	f.mu.Unlock()
	if calls != "join café|history café 0|typing lobby|say lobby for the lobby|typing café|say café for café|say café still café|say café too long" {
		t.Fatalf("calls = %s", calls)
	}
	view := m.View()
	for _, want := range []string{"you are not in nowhere: /join nowhere", "[café] amy: for café", "✗ not sent: too long"} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
	if strings.Contains(view, "Café") {
		t.Errorf("the room is shown as typed, not as the server names it:\n%s", view)
	}
	drive(m, tea.KeyMsg{Type: tea.KeyUp})
	if m.input.Value() != "too long" {
		t.Fatalf("the failed line is not recalled by Up: %q", m.input.Value())
	}
}

// TestTUIOwnLineConfirmedByReplay: a say that failed unconfirmed and then
// comes back in a replay (same id) is marked sent, and not shown twice.
func TestTUIOwnLineConfirmedByReplay(t *testing.T) {
	m, f := newTestModel()
	f.fail = map[string]error{"lost ack": client.ErrNotConfirmed}
	typeLine(m, "lost ack")
	if !strings.Contains(m.View(), "✗ not confirmed") {
		t.Fatalf("not marked unconfirmed:\n%s", m.View())
	}
	id := m.entries[len(m.entries)-1].id
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "amy", Body: "lost ack", ID: id, Seq: 9}}))
	if view := m.View(); strings.Count(view, "lost ack") != 1 || strings.Contains(view, "✗") {
		t.Fatalf("the replayed line is shown twice or still failed:\n%s", view)
	}
}

func TestMentions(t *testing.T) {
	cases := []struct {
		body, nick string
		want       bool
	}{
		{"hi amy", "amy", true},
		{"AMY: look", "amy", true},
		{"amyx is here", "amy", false},
		{"ask xamy", "amy", false},
		{"amy-2 there", "amy", false},
		{"你好小明！", "小明", true},
		{"hello guest", "~guest", true},
		{"nothing here", "amy", false},
	}
	for _, c := range cases {
		if got := Mentions(c.body, c.nick); got != c.want {
			t.Errorf("Mentions(%q, %q) = %v", c.body, c.nick, got)
		}
	}
}

// TestTUIMentionRingsAndHighlights: a message naming the user rings the
// bell once; one that does not, and history, do not.
func TestTUIMentionRingsAndHighlights(t *testing.T) {
	m, _ := newTestModel()
	var out strings.Builder
	m.term = &terminal{w: &out}
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: "plain talk"}}))
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: "amy, look"}}))
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: "amy again", Seq: 3}, Filled: true}))
	if n := strings.Count(out.String(), "\a"); n != 1 {
		t.Fatalf("%d bells, want 1", n)
	}
	if !m.entries[len(m.entries)-2].mention || m.entries[len(m.entries)-3].mention {
		t.Fatal("the mention is not the highlighted line")
	}
}

// TestTUIHangingIndent: a wrapped message's continuation lines start under
// its text, not at column 0.
func TestTUIHangingIndent(t *testing.T) {
	m, _ := newTestModel()
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: strings.Repeat("word ", 30)}}))
	lines := strings.Split(ansi.Strip(m.entries[len(m.entries)-1].render(60)), "\n")
	if len(lines) < 2 {
		t.Fatalf("not wrapped: %q", lines)
	}
	indent := strings.Index(lines[0], "word")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, strings.Repeat(" ", indent)+"word") {
			t.Fatalf("continuation %q is not indented %d:\n%s", l, indent, strings.Join(lines, "\n"))
		}
	}
}

// TestTUITabCompletes: Tab completes commands, nicks seen (with ": " at
// the start of a line) and rooms after /room; again cycles.
func TestTUITabCompletes(t *testing.T) {
	m, _ := newTestModel()
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeJoined, Room: "lobby", Nick: "bobby"}}))
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: "x"}}))
	typeKeys := func(s string) {
		for _, r := range s {
			drive(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
		}
	}
	tab := func() { drive(m, tea.KeyMsg{Type: tea.KeyTab}) }
	typeKeys("/jo")
	tab()
	if m.input.Value() != "/join " {
		t.Fatalf("command: %q", m.input.Value())
	}
	m.input.SetValue("")
	typeKeys("BO")
	tab()
	if m.input.Value() != "bob: " {
		t.Fatalf("nick: %q", m.input.Value())
	}
	tab()
	if m.input.Value() != "bobby: " {
		t.Fatalf("next nick: %q", m.input.Value())
	}
	m.input.SetValue("")
	typeKeys("/room lo")
	tab()
	if m.input.Value() != "/room lobby " {
		t.Fatalf("room: %q", m.input.Value())
	}
}

// TestTUIScrollMarkerAndEnd: scrolled up, the status line says what is
// below; End goes back to the bottom.
func TestTUIScrollMarkerAndEnd(t *testing.T) {
	m, _ := newTestModel()
	for i := range 40 {
		drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: fmt.Sprint("line ", i)}}))
	}
	drive(m, tea.KeyMsg{Type: tea.KeyPgUp})
	drive(m, eventMsg(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: "newest"}}))
	if !strings.Contains(m.statusLine(), "↓ 1 new below (End)") {
		t.Fatalf("no marker: %s", m.statusLine())
	}
	drive(m, tea.KeyMsg{Type: tea.KeyEnd})
	if !m.vp.AtBottom() || strings.Contains(m.statusLine(), "below") {
		t.Fatalf("End did not go to the bottom: %s", m.statusLine())
	}
}

// TestTUITypedBurstIsText: text that arrives at once (typed fast, pasted)
// is inserted at the caret even when it spells a key's name.
func TestTUITypedBurstIsText(t *testing.T) {
	m, _ := newTestModel()
	for _, burst := range []string{"going ", "down", " and up", "\tend"} {
		drive(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(burst)})
	}
	if got := m.input.Value(); got != "going down and up end" {
		t.Fatalf("input %q", got)
	}
}

// TestGovernRun: governance commands act on the room talked in, and what
// they list reads as the help says.
func TestGovernRun(t *testing.T) {
	f := &fakeChatter{}
	ctx := context.Background()
	for _, line := range []string{"/ban bob 1h spam", "/kick account:eve", "/topic hello", "/private on"} {
		cmd, err := Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		if res := Run(ctx, f, "den", "", cmd); res.Err != nil || len(res.Lines) != 0 {
			t.Fatalf("%s: %+v", line, res)
		}
	}
	want := fmt.Sprint([]string{"ban den {bob } 1h0m0s spam", "kick den { eve} 0s ", "topic den hello", "private den true"})
	if got := fmt.Sprint(f.calls); got != want {
		t.Fatalf("calls %s, want %s", got, want)
	}
	for line, want := range map[string]string{
		"/who":   "* den (2): amy (owner), bob",
		"/rooms": "  big (9): things",
		"/audit": "amy ban eve: spam",
	} {
		cmd, _ := Parse(line)
		res := Run(ctx, f, "den", "", cmd)
		if res.Err != nil || !strings.Contains(strings.Join(res.Lines, "\n"), want) {
			t.Errorf("%s printed %q, want %q in it", line, res.Lines, want)
		}
	}
}

// TestTUITypingLine: a typing notice shows in the status line for the
// room on screen (and one to this user anywhere), and goes when the
// typer's message arrives or its time runs out.
func TestTUITypingLine(t *testing.T) {
	m, _ := newTestModel()
	now := m.now()
	m.now = func() time.Time { return now }
	m.event(client.Event{Event: codec.Event{Type: codec.TypeTyping, Room: "lobby", Nick: "bob"}})
	m.event(client.Event{Event: codec.Event{Type: codec.TypeTyping, Room: "elsewhere", Nick: "carl"}})
	m.event(client.Event{Event: codec.Event{Type: codec.TypeTyping, To: "amy", Nick: "dora"}})
	if s := m.statusLine(); !strings.Contains(s, "bob, dora are typing…") || strings.Contains(s, "carl") {
		t.Fatalf("status line %q", s)
	}
	m.event(client.Event{Event: codec.Event{Type: codec.TypeMsg, Room: "lobby", From: "bob", Body: "done", Seq: 1}})
	if s := m.statusLine(); !strings.Contains(s, "dora is typing…") {
		t.Fatalf("status line after bob's message %q", s)
	}
	m.now = func() time.Time { return now.Add(codec.TypingShown) }
	if s := m.statusLine(); strings.Contains(s, "typing") {
		t.Fatalf("status line after the notices ran out %q", s)
	}
}
