package chat

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"parley/client"
	"parley/codec"
)

// QuitWait bounds how long the UIs wait for the server's bye after quit.
const QuitWait = 2 * time.Second

// LineConfig configures line mode.
type LineConfig struct {
	Room string    // the room to talk in first; joined if not the lobby
	JSON bool      // print every server frame as one JSON line (the client needs Options.Raw)
	In   io.Reader // input lines
	Out  io.Writer // events and notices
}

// RunLine runs line mode until the input ends, the user quits or the
// client disconnects for good: each input line is a command or a message
// for the current room, each event one output line. At the end of input it
// sends quit and waits (bounded) for bye. It returns an error only when the
// connection was lost for good.
func RunLine(ctx context.Context, c *client.Client, cfg LineConfig) error {
	p := &printer{w: cfg.Out}
	printed := make(chan error, 1)
	go func() { printed <- printEvents(c, p, cfg.JSON) }()
	room := codec.Lobby
	if cfg.Room != "" && cfg.Room != codec.Lobby {
		room = cfg.Room
		if err := c.Join(ctx, room); err != nil {
			p.line(FormatError(err))
			room = codec.Lobby
		}
	}
	lines := readLines(cfg.In)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return quit(c, printed)
			}
			var done bool
			if room, done = handleLine(ctx, c, p, room, line, cfg.JSON); done {
				return quit(c, printed)
			}
		case err := <-printed:
			return err
		case <-ctx.Done():
			return quit(c, printed)
		}
	}
}

// handleLine runs one input line and prints what it produced.
func handleLine(ctx context.Context, c *client.Client, p *printer, room, line string, jsonMode bool) (string, bool) {
	cmd, err := Parse(line)
	if err != nil {
		p.line(FormatError(err))
		return room, false
	}
	id := ""
	if cmd.Kind == CmdSay {
		id = NewID()
	}
	res := Run(ctx, c, room, id, cmd)
	if res.Err != nil && !jsonMode {
		p.line(FormatError(res.Err))
	}
	if !jsonMode {
		for _, l := range res.Lines {
			p.line(l)
		}
	}
	if res.Room != "" {
		room = res.Room
	}
	return room, res.Quit
}

// quit says goodbye, waits for the bye (bounded) and for the event
// printer to finish.
func quit(c *client.Client, printed <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), QuitWait)
	defer cancel()
	_ = c.Quit(ctx)
	<-printed
	return nil
}

// printEvents prints events until the channel closes; it returns an error
// when the connection was lost for good.
func printEvents(c *client.Client, p *printer, jsonMode bool) error {
	var lost error
	for ev := range c.Events() {
		if ev.Type == client.EventDisconnected {
			lost = fmt.Errorf("connection lost: %v", ev.Err)
		}
		if jsonMode {
			if ev.Raw != nil {
				p.line(string(ev.Raw))
			}
			continue
		}
		if s, ok := Format(ev); ok {
			p.line(s)
		}
	}
	return lost
}

// readLines delivers input lines on a channel, closed at the end of input.
func readLines(r io.Reader) <-chan string {
	out := make(chan string)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 4096), codec.DefaultMaxFrame)
		for sc.Scan() {
			out <- sc.Text()
		}
	}()
	return out
}

// printer writes whole lines from several goroutines.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, s)
}
