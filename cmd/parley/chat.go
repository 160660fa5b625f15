package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"parley/client"
	"parley/codec"
	"parley/internal/chat"
)

type chatFlags struct {
	addr, nick, room         string
	plain, json, noReconnect bool
	tokenFile, tlsCA         string
	tls                      bool
}

func newChatCmd() *cobra.Command {
	var f chatFlags
	cmd := &cobra.Command{
		Use:   "chat",
		Short: "Chat from a terminal",
		Long: `Connect to a Parley server and chat.

On a terminal it opens a full-screen chat; with --plain, --json, or when
stdin or stdout is not a terminal it runs in line mode: every input line is
said in the current room or is a command, every event is printed as one line
([lobby] bob: hi  #17, [dm] bob: hi, * bob joined lobby, * amy edited #17 in
lobby: hello, ! code: message). At the end of input it sends quit and waits
briefly for the server's bye.

Commands: /join room, /leave [room], /room room (a room you are in),
/dm nick text, /me action, /who [room] (/who * for everyone online), /help,
/quit; a bare quit or exit line also leaves. A room message shows its number
(#17): /reply #17 text answers it, /react #17 👍 reacts (/unreact takes it
back), /edit #17 text and /delete #17 change your own, /edit dm #5 text and
/delete dm #5 a direct message you sent (the full-screen chat takes your last
message without #n). Logged in with a token, the status line
counts what is unread in your other rooms, and direct messages sent while you
were offline arrive at login. Lines take effect in the order typed. Without --nick it asks for one, and asks again when a nick is taken.
It reconnects after a lost connection or a server restart unless
--no-reconnect is given, and sends the lines typed meanwhile once it is
back (at most 50, within 2 minutes); a refused token or nick ends it.

With --token-file it logs in with the token in that file (the nick comes from
the token), reading the file again before every reconnect and every refresh,
so that a process that rotates the file keeps the session going. --tls talks
TLS to the server's --tls-addr, checking its certificate against the system's
roots or --tls-ca.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runChat(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8060", "server address")
	fl.StringVar(&f.nick, "nick", "", "nickname (asked for when missing)")
	fl.StringVar(&f.room, "room", codec.Lobby, "room to talk in first")
	fl.BoolVar(&f.plain, "plain", false, "line mode even on a terminal")
	fl.BoolVar(&f.json, "json", false, "line mode printing every server frame as one JSON line")
	fl.BoolVar(&f.noReconnect, "no-reconnect", false, "exit when the connection is lost instead of reconnecting")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding a login token, reread before every reconnect and refresh")
	fl.BoolVar(&f.tls, "tls", false, "connect with TLS (to the server's --tls-addr)")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "PEM file of the CA certificates to trust instead of the system's (implies --tls)")
	return cmd
}

func runChat(cmd *cobra.Command, f chatFlags) error {
	in, out, errw := cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	interactive := !f.plain && !f.json && isTerminal(in) && isTerminal(out)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lines := bufio.NewReader(in)
	c, err := login(ctx, f, lines, errw)
	if err != nil {
		return err
	}
	if interactive {
		if err := chat.RunTUI(c, chat.TUIConfig{Addr: f.addr, Room: f.room}); err != nil {
			c.Close()
			return exitError{code: 1, msg: err.Error()}
		}
		return nil
	}
	if err := chat.RunLine(ctx, c, chat.LineConfig{Room: f.room, JSON: f.json, In: lines, Out: out}); err != nil {
		return exitError{code: 1, msg: err.Error()}
	}
	return nil
}

// login dials and logs in, asking for a nick when none was given or the
// one given is taken or invalid.
func login(ctx context.Context, f chatFlags, lines *bufio.Reader, errw io.Writer) (*client.Client, error) {
	opts := client.Options{Reconnect: !f.noReconnect, ReconnectOnShutdown: !f.noReconnect, Raw: f.json}
	if err := securityOptions(f, &opts); err != nil {
		return nil, err
	}
	nick := f.nick
	for {
		if nick == "" && opts.Token == nil {
			fmt.Fprint(errw, "请输入昵称 (nickname): ")
			line, err := lines.ReadString('\n')
			nick = strings.TrimSpace(line)
			if nick == "" && err != nil {
				return nil, exitError{code: 1, msg: "no nickname given"}
			}
			if nick == "" {
				continue
			}
		}
		opts.Nick = nick
		c, err := client.Dial(ctx, f.addr, opts)
		if err == nil {
			return c, nil
		}
		if opts.Token == nil && (errors.Is(err, codec.ErrNickTaken) || errors.Is(err, codec.ErrBadNick)) {
			fmt.Fprintln(errw, chat.FormatError(err))
			nick = ""
			continue
		}
		return nil, exitError{code: 1, msg: fmt.Sprintf("cannot connect to %s: %s%s", f.addr, rootCause(err), tlsHint(err, opts.TLS != nil))}
	}
}

// securityOptions sets the token source and TLS configuration of the
// chat flags.
func securityOptions(f chatFlags, opts *client.Options) error {
	if f.tokenFile != "" {
		path := f.tokenFile
		if _, err := readToken(path); err != nil {
			return exitError{code: 2, msg: err.Error()}
		}
		opts.Token = func(context.Context) (string, error) { return readToken(path) }
	}
	if !f.tls && f.tlsCA == "" {
		return nil
	}
	opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return exitError{code: 2, msg: "tls-ca: " + err.Error()}
		}
		opts.TLS.RootCAs = x509.NewCertPool()
		if !opts.TLS.RootCAs.AppendCertsFromPEM(pem) {
			return exitError{code: 2, msg: "tls-ca: no PEM certificate in " + f.tlsCA}
		}
	}
	return nil
}

// readToken reads a token file: its first line, trimmed.
func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return strings.TrimSpace(tok), nil
}

// tlsHint guesses a TLS mismatch from how a login failed: a TLS port
// closes on a plain login without a word, and a plain port's answer is
// not a TLS handshake.
func tlsHint(err error, usedTLS bool) string {
	var rec tls.RecordHeaderError
	switch {
	case usedTLS && errors.As(err, &rec):
		return " (the server does not speak TLS on this port: drop --tls, or use its --tls-addr)"
	case !usedTLS && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)):
		return " (the server closed the connection during login: if this is its --tls-addr, add --tls)"
	}
	return ""
}

// rootCause turns "dial tcp 127.0.0.1:8060: connect: connection refused"
// into "connection refused".
func rootCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var sys *os.SyscallError
		if errors.As(op.Err, &sys) {
			return sys.Err.Error()
		}
		return op.Err.Error()
	}
	return err.Error()
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
