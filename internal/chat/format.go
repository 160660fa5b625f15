package chat

import (
	"errors"
	"fmt"

	"parley/client"
	"parley/codec"
)

// lineModeNewline stands for a newline of a multi-line message in line
// mode, which prints one line per event.
const lineModeNewline = " ↵ "

// Format returns the one-line form of an event used by line mode, and
// false for events that show nothing (pong, ack). The format is stable:
//
//	[lobby] bob: hi  #17
//	[lobby] amy: ↪#17 hello (edited)  👍2  #18
//	[dm] bob: hi
//	[dm → bob] amy: hi   (sent by another session of this account)
//	* bob joined lobby
//	* bob left lobby (timeout)
//	* carl was kicked from den by bob: cool off
//	* den topic: all things den (set by amy)
//	* amy edited #18 in lobby: hello
//	* bob reacted 👍 to #18 in lobby
//	* unread: den 3 (1 mentioning you), direct messages 2
//	* lobby: 10000 members (+12 joined, -3 left)
//	! nick_taken: ...
//	! lobby: messages sent while you were away could not be recovered
//	* connection lost (EOF); reconnecting   (once per outage)
//
// Control characters never reach the terminal (see printable), and the
// newlines of a multi-line message show as ↵.
// sender is how a message's sender is shown: its nick, marked when the
// application posted it under a name of its choosing (server API).
func sender(ev client.Event) string {
	if ev.API {
		return ev.From + " [app]"
	}
	return ev.From
}

func Format(ev client.Event) (string, bool) {
	ev = sanitize(ev, lineModeNewline)
	switch ev.Type {
	case codec.TypeMsg:
		switch {
		case ev.Room == "" && ev.Sent:
			return fmt.Sprintf("[dm → %s] %s: %s", ev.To, ev.From, ev.Body), true
		case ev.Room == "":
			return fmt.Sprintf("[dm] %s: %s", sender(ev), ev.Body), true
		}
		body := ev.Body
		if ev.Deleted {
			body = "(deleted)"
		}
		before, after := msgDecor(ev.ReplyTo, ev.Edited > 0, ev.Reactions, ev.Seq)
		return fmt.Sprintf("[%s] %s: %s%s%s", ev.Room, sender(ev), before, body, after), true
	case codec.TypeEdited, codec.TypeDeleted, codec.TypeReaction:
		return amendLine(ev), true
	case codec.TypeMarks:
		line := marksLine(ev.Marks)
		return line, line != ""
	case codec.TypeJoined:
		return fmt.Sprintf("* %s joined %s", ev.Nick, ev.Room), true
	case codec.TypeLeft:
		return fmt.Sprintf("* %s left %s (%s)", ev.Nick, ev.Room, ev.Reason), true
	case codec.TypePresence:
		return fmt.Sprintf("* %s: %d members (+%d joined, -%d left)", ev.Room, ev.Count, ev.Joined, ev.Left), true
	case codec.TypeWelcome:
		return fmt.Sprintf("* welcome, %s: you are in %s, %s", ev.Nick, ev.Room, othersOnline(ev.Online)), true
	case codec.TypeError:
		return fmt.Sprintf("! %s: %s", ev.Code, ev.Message), true
	case codec.TypeBye:
		return fmt.Sprintf("* the server said bye (%s)", ev.Reason), true
	case codec.TypeUsers:
		return fmt.Sprintf("* %s (%d): %v", ev.Room, ev.Count, ev.Nicks), true
	case codec.TypeMod:
		return modLine(ev), true
	case codec.TypeTopic:
		if ev.Topic == "" {
			return fmt.Sprintf("* %s has no topic now (%s)", ev.Room, ev.By), true
		}
		return fmt.Sprintf("* %s topic: %s (set by %s)", ev.Room, ev.Topic, ev.By), true
	case codec.TypeRecover:
		if ev.Recovered {
			return "", false // caught up: nothing to tell
		}
		return fmt.Sprintf("! %s: messages sent while you were away could not be recovered", ev.Room), true
	case codec.TypeGap:
		return fmt.Sprintf("! %s: messages %d to %d were lost", ev.Room, ev.First, ev.Last), true
	case client.EventReconnecting:
		if ev.Attempt > 1 {
			return "", false // one line per outage
		}
		return fmt.Sprintf("* connection lost (%v); reconnecting", ev.Err), true
	case client.EventReconnected:
		return "* reconnected", true
	case client.EventDisconnected:
		if client.Permanent(ev.Err) {
			return fmt.Sprintf("! the server refused the login (%s); not reconnecting", FormatError(ev.Err)[2:]), true
		}
		return fmt.Sprintf("* disconnected (%v)", ev.Err), true
	}
	return "", false
}

// FormatError returns the line for a failed command: "! code: message"
// for errors the server answered, "! message" for others.
func FormatError(err error) string {
	var pe *codec.Error
	if errors.As(err, &pe) {
		return fmt.Sprintf("! %s: %s", pe.Code, pe.Msg)
	}
	return "! " + err.Error()
}

// othersOnline words the welcome's online count.
func othersOnline(n int) string {
	switch n {
	case 0:
		return "nobody else is online"
	case 1:
		return "1 other user online"
	}
	return fmt.Sprintf("%d other users online", n)
}

// Human words why a line was not sent, for the line shown failed.
func Human(err error) string {
	var pe *codec.Error
	if !errors.As(err, &pe) {
		if errors.Is(err, client.ErrNotConfirmed) {
			return "not confirmed: the connection dropped after it was sent (it may have arrived)"
		}
		if errors.Is(err, client.ErrDisconnected) || errors.Is(err, client.ErrClosed) {
			return "not sent: disconnected"
		}
		return err.Error()
	}
	switch pe.Code {
	case codec.CodeNoSuchUser:
		return "not sent: nobody of that name is online"
	case codec.CodeNotInRoom:
		return "not sent: you are not in that room"
	case codec.CodeBodyTooLarge:
		return "not sent: too long"
	case codec.CodeRateLimited:
		return "not sent: too fast, wait a moment"
	case codec.CodeNotStored:
		return "delivered, but the server could not store it"
	case codec.CodeUnavailable:
		return "not confirmed: the server could not confirm it (it may have arrived)"
	}
	return fmt.Sprintf("not sent: %s: %s", pe.Code, pe.Msg)
}
