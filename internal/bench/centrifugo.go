package bench

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

// TargetCentrifugo is a Centrifugo server (github.com/centrifugal/
// centrifugo/v6, v6.9.1 builds with go install), its receivers on its
// WebSocket JSON protocol subscribed to one channel, its senders
// publishing into it from client connections: the same load as Parley's
// WebSocket target.
const TargetCentrifugo Target = "centrifugo"

// centrifugoBinary finds the centrifugo command: $CENTRIFUGO, the PATH,
// or $GOPATH/bin.
func centrifugoBinary() (string, error) {
	if p := os.Getenv("CENTRIFUGO"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p, nil
	}
	home, _ := os.UserHomeDir()
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(os.Getenv("GOPATH"), "bin"), filepath.Join(home, "go", "bin")} {
		if p := filepath.Join(dir, "centrifugo"); dir != "" && fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no centrifugo binary: go install github.com/centrifugal/centrifugo/v6@v6.9.1, or set CENTRIFUGO")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// centrifugoConfig lifts the limits that would throttle a benchmark
// (every client may subscribe and publish without a token; a client's
// queue may hold 64 MiB) and keeps the log quiet.
const centrifugoConfig = `{
  "http_server": {"address": "127.0.0.1", "port": %d},
  "log": {"level": "error"},
  "client": {"insecure": true, "allowed_origins": ["*"], "queue_max_size": 67108864},
  "channel": {"without_namespace": {"allow_subscribe_for_client": true, "allow_publish_for_client": true}},
  "websocket": {"write_timeout": "10s"}
}`

// centrifugoSystem is Centrifugo: a channel per room, receivers on its
// WebSocket, senders on its HTTP API.
type centrifugoSystem struct{}

func (centrifugoSystem) start(cfg Config, _ Target) (*running, error) { return startCentrifugo(cfg) }

func (centrifugoSystem) receivers(cfg GroupConfig) (receivers, error) { return newStreamGroup(cfg) }

func (centrifugoSystem) sender(sp senderSpec) (sender, error) {
	return openCentrifugoSender(sp.addr, sp.room, sp.size)
}

func startCentrifugo(cfg Config) (*running, error) {
	bin, err := centrifugoBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "parley-bench-centrifugo-")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "config.json")
	r, err := startChild(cfg.PeerLog, bin, func(port int) []string {
		_ = os.WriteFile(conf, fmt.Appendf(nil, centrifugoConfig, port), 0o600)
		return []string{"--config", conf}
	}, "", "started: "+bin+" (insecure client mode: no tokens, any client subscribes and publishes; client queue 64 MiB; WebSocket JSON protocol)")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop := r.stop
	r.stop = func() { stop(); os.RemoveAll(dir) }
	return r, nil
}

// dialCentrifugo connects to Centrifugo's WebSocket endpoint and sends
// connect (and subscribe to channel, if given).
func dialCentrifugo(addr, channel string) (*wire, error) {
	w, err := upgradeWS(&net.Dialer{Timeout: 10 * time.Second}, addr, "/connection/websocket")
	if err != nil {
		return nil, err
	}
	conn := w.conn
	cmds := []byte(`{"id":1,"connect":{}}`)
	if channel != "" {
		cmds = fmt.Appendf(cmds, "\n{\"id\":2,\"subscribe\":{\"channel\":%q}}", channel)
	}
	if _, err := conn.Write(appendMasked(nil, cmds)); err != nil {
		conn.Close()
		return nil, err
	}
	return w, nil
}

// readCentrifugo records every publication until the connection ends.
// A frame may hold several replies, one per line; {} is a ping.
func (g *streamGroup) readCentrifugo(w *wire, shard int) {
	defer g.wg.Done()
	subscribed := false
	for {
		frame, err := w.next()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		for line := range bytes.SplitSeq(frame, []byte("\n")) {
			switch {
			case bytes.HasPrefix(line, []byte(`{"push"`)):
				if due, seq, ok := ParseFrame(line); ok {
					g.sink.deliver(shard, due, seq, now)
				}
			case bytes.Equal(line, []byte("{}")):
				_, _ = w.conn.Write(appendMasked(nil, []byte("{}")))
			case bytes.Contains(line, []byte(`"error"`)):
				select {
				case g.failed <- fmt.Errorf("centrifugo refused: %s", line):
				default:
				}
			case !subscribed && bytes.HasPrefix(line, []byte(`{"id":2`)):
				subscribed = true
				if g.ready.Add(1) == int64(g.cfg.Conns) {
					close(g.readyc)
				}
			}
		}
	}
}

// centrifugoSender publishes each message from a client connection.
type centrifugoSender struct {
	w       *wire
	channel string
	size    int
	id      atomic.Uint64
	body    []byte
	buf     []byte
}

func openCentrifugoSender(addr, channel string, size int) (*centrifugoSender, error) {
	w, err := dialCentrifugo(addr, "")
	if err != nil {
		return nil, err
	}
	s := &centrifugoSender{w: w, channel: channel, size: size}
	s.id.Store(1)
	go func() { // replies and pings
		for {
			frame, err := w.next()
			if err != nil {
				return
			}
			if bytes.Contains(frame, []byte("{}")) && len(bytes.TrimSpace(frame)) == 2 {
				_, _ = w.conn.Write(appendMasked(nil, []byte("{}")))
			}
		}
	}()
	return s, nil
}

func (s *centrifugoSender) send(due int64, seq uint64) error {
	s.body = Body(s.body, due, seq, s.size)
	cmd := strconv.AppendUint([]byte(`{"id":`), s.id.Add(1), 10)
	cmd = fmt.Appendf(cmd, `,"publish":{"channel":%q,"data":{"body":%q}}}`, s.channel, s.body)
	s.buf = appendMasked(s.buf[:0], cmd)
	_, err := s.w.conn.Write(s.buf)
	return err
}

func (s *centrifugoSender) close() { s.w.conn.Close() }
