package chat

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

var (
	styleTime   = lipgloss.NewStyle().Foreground(lipgloss.Color("244"))
	styleRoom   = lipgloss.NewStyle().Foreground(lipgloss.Color("39"))
	styleDM     = lipgloss.NewStyle().Foreground(lipgloss.Color("170")).Bold(true)
	styleNotice = lipgloss.NewStyle().Foreground(lipgloss.Color("245")).Italic(true)
	styleError  = lipgloss.NewStyle().Foreground(lipgloss.Color("196"))
	styleStatus = lipgloss.NewStyle().Reverse(true)
	nickColours = []string{"33", "35", "36", "69", "105", "142", "166", "178", "203", "208"}
)

// nickStyle gives each nick a stable colour.
func nickStyle(nick string) lipgloss.Style {
	h := fnv.New32a()
	h.Write([]byte(nick))
	return lipgloss.NewStyle().Foreground(lipgloss.Color(nickColours[h.Sum32()%uint32(len(nickColours))])).Bold(true)
}

// render draws an entry wrapped to width; lipgloss measures East Asian
// wide characters as two cells, so Chinese text wraps correctly.
func (e *entry) render(width int) string {
	if e.width == width && e.rendered != "" {
		return e.rendered
	}
	var line string
	stamp := styleTime.Render(e.at.Format("15:04"))
	switch e.kind {
	case entryRoom:
		line = fmt.Sprintf("%s %s %s %s", stamp, styleRoom.Render("["+e.room+"]"), nickStyle(e.nick).Render(e.nick+":"), e.text)
	case entryDM:
		line = fmt.Sprintf("%s %s %s %s", stamp, styleDM.Render("["+e.room+"]"), nickStyle(e.nick).Render(e.nick+":"), e.text)
	case entryNotice:
		line = stamp + " " + styleNotice.Render(e.text)
	case entryError:
		line = stamp + " " + styleError.Render(e.text)
	}
	e.rendered = lipgloss.NewStyle().Width(width).Render(line)
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
	}
}

// statusLine shows the room and its size, the connection, the nick and
// the server, most important first since a narrow window cuts the end.
func (m *Model) statusLine() string {
	count := ""
	if n, ok := m.counts[m.room]; ok {
		count = fmt.Sprintf(" (%d members)", n)
		if n == 1 {
			count = " (1 member)"
		}
	}
	s := fmt.Sprintf(" %s%s · %s · %s@%s ", m.room, count, m.state, m.ch.Nick(), m.addr)
	s = ansi.Truncate(s, m.width, "…")
	return styleStatus.Width(m.width).Render(s)
}

// View draws the screen: scrollback, status line, input line.
func (m *Model) View() string {
	return m.vp.View() + "\n" + m.statusLine() + "\n" + m.input.View()
}
