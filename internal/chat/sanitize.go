package chat

import (
	"strings"

	"parley/client"
)

// printable returns s with nothing a terminal would act on: C0 and C1
// controls and DEL (escape sequences start with them) and the bidi
// embedding, override and isolate controls (they reorder what follows)
// become U+FFFD; a tab becomes spaces and a newline becomes nl. A server
// refuses such bodies, but the client does not trust a server to.
func printable(s, nl string) string {
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(nl)
		case r == '\t':
			b.WriteString("    ")
		case unsafeRune(r):
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// sanitize makes every text field of ev printable, with newlines as nl.
func sanitize(ev client.Event, nl string) client.Event {
	for _, f := range []*string{&ev.From, &ev.To, &ev.Nick, &ev.Room, &ev.Body, &ev.Message, (*string)(&ev.Reason), (*string)(&ev.Code),
		&ev.Action, &ev.By, &ev.Topic} {
		*f = printable(*f, nl)
	}
	if len(ev.Nicks) > 0 {
		nicks := make([]string, len(ev.Nicks))
		for i, n := range ev.Nicks {
			nicks[i] = printable(n, " ")
		}
		ev.Nicks = nicks
	}
	return ev
}
