package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"time"
)

// TargetRedis is Redis pub/sub (Debian's redis-server, started by the
// bench with persistence off and no output buffer limit for pub/sub
// clients): receivers SUBSCRIBE to the room's channel, senders PUBLISH.
const TargetRedis Target = "redis"

// redisSystem is Redis pub/sub: a channel per room.
type redisSystem struct{}

func (redisSystem) start(cfg Config, _ Target) (*running, error) {
	if cfg.RedisAddr != "" {
		return &running{addrs: []string{cfg.RedisAddr}, stop: func() {}, note: "using the running Redis at " + cfg.RedisAddr}, nil
	}
	return startRedis(cfg)
}

func (redisSystem) receivers(cfg GroupConfig) (receivers, error) { return newStreamGroup(cfg) }

func (redisSystem) sender(sp senderSpec) (sender, error) {
	return openRedisSender(sp.addr, sp.room, sp.size)
}

func startRedis(cfg Config) (*running, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("no redis-server: apt-get install redis-server (make bench does)")
	}
	return startChild(cfg.PeerLog, bin, func(port int) []string {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--protected-mode", "no", "--client-output-buffer-limit", "pubsub 0 0 0", "--maxclients", "100000", "--loglevel", "warning"}
	}, "", "started: "+bin+" (persistence off, pub/sub output buffers unlimited)")
}

// respCommand encodes a command as a RESP array of bulk strings.
func respCommand(dst []byte, args ...[]byte) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// dialRedis subscribes a lean receiver: one connection, an 8 KiB reader.
func dialRedis(addr, channel string) (*wire, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(respCommand(nil, []byte("SUBSCRIBE"), []byte(channel))); err != nil {
		conn.Close()
		return nil, err
	}
	return &wire{conn: conn, br: bufio.NewReaderSize(conn, 8<<10)}, nil
}

// readRedis records every published message until the connection ends.
// A push is an array: "message", the channel, the payload.
func (g *streamGroup) readRedis(w *wire, shard int) {
	defer g.wg.Done()
	var parts [3][]byte
	for {
		n, err := readRESPArray(w.br, parts[:], &w.buf)
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		switch {
		case n == 3 && bytes.Equal(parts[0], []byte("message")):
			if due, seq, ok := ParseBody(parts[2]); ok {
				g.sink.deliver(shard, due, seq, now)
			}
		case n == 3 && bytes.Equal(parts[0], []byte("subscribe")):
			if g.ready.Add(1) == int64(g.cfg.Conns) {
				close(g.readyc)
			}
		}
	}
}

// readRESPArray reads one array of bulk strings or integers into parts
// (at most len(parts) kept), valid until the next call; buf holds them.
func readRESPArray(r *bufio.Reader, parts [][]byte, buf *[]byte) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 3 || line[0] != '*' {
		return 0, fmt.Errorf("redis: not an array: %q", line)
	}
	n, err := strconv.Atoi(string(line[1 : len(line)-2]))
	if err != nil {
		return 0, err
	}
	*buf = (*buf)[:0]
	var offs [][2]int
	for i := 0; i < n; i++ {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		switch line[0] {
		case ':':
			start := len(*buf)
			*buf = append(*buf, line[1:len(line)-2]...)
			offs = append(offs, [2]int{start, len(*buf)})
		case '$':
			size, err := strconv.Atoi(string(line[1 : len(line)-2]))
			if err != nil {
				return 0, err
			}
			start := len(*buf)
			*buf = append(*buf, make([]byte, size+2)...)
			if _, err := io.ReadFull(r, (*buf)[start:]); err != nil {
				return 0, err
			}
			*buf = (*buf)[:start+size]
			offs = append(offs, [2]int{start, start + size})
		default:
			return 0, fmt.Errorf("redis: unexpected %q", line)
		}
	}
	for i := 0; i < n && i < len(parts); i++ {
		parts[i] = (*buf)[offs[i][0]:offs[i][1]]
	}
	return n, nil
}

// redisSender publishes each message on the channel, pipelined; a
// goroutine reads the replies (subscriber counts).
type redisSender struct {
	conn    net.Conn
	channel []byte
	size    int
	body    []byte
	buf     []byte
}

func openRedisSender(addr, channel string, size int) (*redisSender, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	go func() { _, _ = io.Copy(io.Discard, conn) }()
	return &redisSender{conn: conn, channel: []byte(channel), size: size}, nil
}

func (s *redisSender) send(due int64, seq uint64) error {
	s.body = Body(s.body, due, seq, s.size)
	s.buf = respCommand(s.buf[:0], []byte("PUBLISH"), s.channel, s.body)
	_, err := s.conn.Write(s.buf)
	return err
}

func (s *redisSender) close() { s.conn.Close() }
