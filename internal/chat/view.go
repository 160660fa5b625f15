package chat

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

var (
	styleTime    = lipgloss.NewStyle().Foreground(lipgloss.Color("244"))
	styleRoom    = lipgloss.NewStyle().Foreground(lipgloss.Color("39"))
	styleDM      = lipgloss.NewStyle().Foreground(lipgloss.Color("170")).Bold(true)
	styleNotice  = lipgloss.NewStyle().Foreground(lipgloss.Color("245")).Italic(true)
	styleError   = lipgloss.NewStyle().Foreground(lipgloss.Color("196"))
	styleStatus  = lipgloss.NewStyle().Reverse(true)
	styleSending = lipgloss.NewStyle().Faint(true)
	styleMention = lipgloss.NewStyle().Foreground(lipgloss.Color("0")).Background(lipgloss.Color("220"))
	styleHint    = lipgloss.NewStyle().Faint(true)
	nickColours  = []string{"33", "35", "36", "69", "105", "142", "166", "178", "203", "208"}
)

// nickStyle gives each nick a stable colour.
func nickStyle(nick string) lipgloss.Style {
	h := fnv.New32a()
	h.Write([]byte(nick))
	return lipgloss.NewStyle().Foreground(lipgloss.Color(nickColours[h.Sum32()%uint32(len(nickColours))])).Bold(true)
}

// render draws an entry wrapped to width, its continuation lines indented
// under the start of its text (a hanging indent). Widths are cells:
// East Asian wide characters count two.
func (e *entry) render(width int) string {
	if e.width == width && e.rendered != "" {
		return e.rendered
	}
	stamp := styleTime.Render(e.at.Format("15:04")) + " "
	text, style := e.text, lipgloss.NewStyle()
	who := nickStyle(e.nick).Render(e.nick + ":")
	if action, ok := strings.CutPrefix(text, "/me "); ok && e.kind != entryNotice && e.kind != entryError {
		who, text, style = nickStyle(e.nick).Render("* "+e.nick), action, style.Italic(true)
	}
	var head string
	switch e.kind {
	case entryRoom:
		head = stamp + styleRoom.Render("["+e.room+"]") + " " + who + " "
	case entryDM:
		head = stamp + styleDM.Render("["+e.room+"]") + " " + who + " "
	default:
		head = stamp
	}
	if e.kind == entryRoom || e.kind == entryDM {
		if e.deleted {
			text = "(deleted)"
		}
		before, after := msgDecor(e.replyTo, e.edited, e.reacts, e.seq)
		text = before + text + after
	}
	switch {
	case e.kind == entryNotice:
		style = styleNotice
	case e.kind == entryError:
		style = styleError
	case e.state == sending:
		text, style = text+" …", styleSending
	case e.state == failed:
		text, style = text+"  ✗ "+e.why, styleError
	case e.mention:
		style = style.Inherit(styleMention)
	}
	// Wrap the plain text, then style each line: a style that spans lines
	// would be cut where the view scrolls.
	indent := lipgloss.Width(head)
	var lines []string
	if indent <= width/2 {
		lines = strings.Split(ansi.Wrap(text, width-indent, " "), "\n")
		for i := range lines {
			lines[i] = style.Render(lines[i])
		}
		lines[0] = head + lines[0]
	} else { // a narrow window: the head takes its own width
		indent = min(2, width/4)
		lines = strings.Split(ansi.Wrap(ansi.Strip(head)+text, max(1, width-indent), " "), "\n")
	}
	for i := 1; i < len(lines); i++ {
		lines[i] = strings.Repeat(" ", indent) + lines[i]
	}
	e.rendered = strings.Join(lines, "\n")
	e.width = width
	return e.rendered
}

// resize lays the screen out for a new terminal size.
func (m *Model) resize(w, h int) {
	m.width, m.height = w, h
	m.vp.Width = w
	m.vp.Height = max(1, h-2)
	m.input.Width = max(1, w-len(m.input.Prompt)-1)
	m.refresh()
}

// refresh re-renders the scrollback, keeping the view at the bottom when
// it was there.
func (m *Model) refresh() {
	atBottom := m.vp.AtBottom()
	parts := make([]string, len(m.entries))
	for i, e := range m.entries {
		parts[i] = e.render(m.width)
	}
	m.vp.SetContent(strings.Join(parts, "\n"))
	if atBottom {
		m.vp.GotoBottom()
		m.below = 0
	}
}

// statusLine shows the room and its size, the connection, the nick and
// the server, most important first since a narrow window cuts the end;
// scrolled up, it starts with what is below.
func (m *Model) statusLine() string {
	count := ""
	if n, ok := m.counts[m.room]; ok {
		count = fmt.Sprintf(" (%d members)", n)
		if n == 1 {
			count = " (1 member)"
		}
	}
	more := ""
	if !m.vp.AtBottom() {
		more = " ↓ more below (End) ·"
		if m.below > 0 {
			more = fmt.Sprintf(" ↓ %d new below (End) ·", m.below)
		}
	}
	state := m.state
	waiting := len(m.jobs)
	if m.running {
		waiting++
	}
	if waiting > 0 && m.state != "connected" {
		state += fmt.Sprintf(", %d waiting to send", waiting)
	}
	typing := ""
	if t := m.typingLine(); t != "" {
		typing = " · " + t
	}
	if u := m.unreadLine(); u != "" {
		typing += " · " + u
	}
	s := fmt.Sprintf("%s %s%s%s · %s · %s@%s ", more, m.room, count, typing, state, m.ch.Nick(), m.addr)
	s = ansi.Truncate(s, m.width, "…")
	return styleStatus.Width(m.width).Render(s)
}

// inputLine draws the prompt and the part of the input around the caret
// that fits, and returns the caret's column.
func (m *Model) inputLine() (string, int) {
	prompt := m.input.Prompt
	pw := lipgloss.Width(prompt)
	value := []rune(m.input.Value())
	if len(value) == 0 {
		return prompt + styleHint.Render(ansi.Truncate(m.input.Placeholder, max(0, m.width-pw-1), "…")), pw
	}
	pos := min(m.input.Position(), len(value))
	avail := max(1, m.width-pw-1) // the last cell holds the caret at the end
	if pos < m.inOffset {
		m.inOffset = pos
	}
	for m.inOffset < pos && ansi.StringWidth(string(value[m.inOffset:pos])) > avail {
		m.inOffset++
	}
	shown := ansi.Truncate(string(value[m.inOffset:]), avail, "")
	return prompt + shown, pw + ansi.StringWidth(string(value[m.inOffset:pos]))
}

// View draws the screen: scrollback, status line, input line; and puts
// the terminal's cursor at the caret, where input methods look for it.
func (m *Model) View() string {
	line, col := m.inputLine()
	m.term.caret(m.height-1, col)
	return m.vp.View() + "\n" + m.statusLine() + "\n" + line
}
