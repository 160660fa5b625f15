package chat

import (
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/charmbracelet/x/ansi"
)

// terminal is the full-screen UI's output. bubbletea leaves the cursor at
// the start of the last line after each frame; input methods open their
// candidate window at the cursor, so after each frame terminal puts it at
// the input's caret and shows it. It also rings the bell.
type terminal struct {
	mu       sync.Mutex
	w        io.Writer
	row, col int  // the caret, from 0
	on       bool // a frame placed the caret, and the UI has not stopped
	stopped  bool
}

// Write passes a frame through and puts the cursor at the caret.
func (t *terminal) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.w.Write(p)
	if err == nil && t.on {
		_, err = io.WriteString(t.w, ansi.CursorPosition(t.col+1, t.row+1)+ansi.ShowCursor)
	}
	return n, err
}

// caret notes where the next frame's caret is. UI goroutine.
func (t *terminal) caret(row, col int) {
	t.mu.Lock()
	t.row, t.col, t.on = row, col, !t.stopped
	t.mu.Unlock()
}

// stop leaves the cursor to bubbletea for the frames that restore the
// terminal.
func (t *terminal) stop() {
	t.mu.Lock()
	t.on, t.stopped = false, true
	t.mu.Unlock()
}

// bell rings the terminal's bell: a mention or a direct message arrived.
func (t *terminal) bell() {
	t.mu.Lock()
	_, _ = io.WriteString(t.w, "\a")
	t.mu.Unlock()
}

// completion is what Tab cycles through: the word before the caret was
// prefix, and matches replace it in turn.
type completion struct {
	start   int // the rune index the word starts at
	matches []string
	next    int
	suffix  string // added after a match
}

// maxNicks bounds the nicks remembered for Tab.
const maxNicks = 1000

// complete replaces the word before the caret with the next completion:
// a /command as the first word, a room after /room, /join and /leave, a
// nick elsewhere (nicks seen in messages, joins and who lists). A nick
// that starts the line gets ": ", others a space.
func (m *Model) complete() {
	value := []rune(m.input.Value())
	pos := min(m.input.Position(), len(value))
	if m.tab == nil {
		start := pos
		for start > 0 && value[start-1] != ' ' {
			start--
		}
		word := string(value[start:pos])
		before := strings.Fields(string(value[:start]))
		c := &completion{start: start, suffix: " "}
		switch {
		case start == 0 && strings.HasPrefix(word, "/"):
			c.matches = prefixed(Commands, word)
		case len(before) == 1 && (before[0] == "/room" || before[0] == "/r" || before[0] == "/leave" || before[0] == "/join"):
			rooms := make([]string, 0, len(m.in))
			for r := range m.in {
				rooms = append(rooms, r)
			}
			c.matches = prefixed(rooms, word)
		default:
			if len(m.nicks) > maxNicks {
				m.nicks = map[string]bool{}
			}
			nicks := make([]string, 0, len(m.nicks))
			for n := range m.nicks {
				nicks = append(nicks, n)
			}
			c.matches = prefixed(nicks, word)
			if start == 0 {
				c.suffix = ": "
			}
		}
		if len(c.matches) == 0 {
			return
		}
		m.tab = c
	}
	c := m.tab
	match := c.matches[c.next%len(c.matches)]
	c.next++
	// Replace from the word's start up to the caret (the previous
	// completion, or the word typed).
	rest := string(value[pos:])
	line := string(value[:c.start]) + match + c.suffix
	m.input.SetValue(line + rest)
	m.input.SetCursor(len([]rune(line)))
}

// prefixed returns the words that start with prefix, in any case, sorted.
func prefixed(words []string, prefix string) []string {
	p := strings.ToLower(prefix)
	var out []string
	for _, w := range words {
		if strings.HasPrefix(strings.ToLower(w), p) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}

// file is what bubbletea asks of an output to treat it as a terminal
// (its size, raw mode): terminal passes it through.
type file interface {
	io.ReadWriteCloser
	Fd() uintptr
}

// Fd is the terminal's descriptor, so that bubbletea finds its size.
func (t *terminal) Fd() uintptr {
	if f, ok := t.w.(file); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

func (t *terminal) Read(p []byte) (int, error) {
	if f, ok := t.w.(file); ok {
		return f.Read(p)
	}
	return 0, io.EOF
}

func (t *terminal) Close() error {
	if f, ok := t.w.(file); ok {
		return f.Close()
	}
	return nil
}
