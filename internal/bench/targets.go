package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// running is a target server for one sweep point.
type running struct {
	addrs []string // where receivers and senders connect (NATS: URLs)
	// recvAddrs, when set, is where the receivers connect instead, and
	// certPEM the certificate they trust (the TLS listener).
	recvAddrs []string
	certPEM   string
	pid       int    // the server process, 0 when unknown (--addr, or in-process)
	note      string // what the bench did to the server, for the report
	stop      func()
}

// BenchServerFlags are the flags the bench gives a Parley server it starts:
// quiet logs, flood control off, since a benchmark sender sends far more
// than the 50 frames a second a chat user may, and no per-address rate of
// new connections, since every receiver dials from 127.0.0.1.
var BenchServerFlags = []string{"--log-level", "warn", "--rate-limit", "0", "--max-conn-rate-per-ip", "0"}

// parleySystem is Parley with receivers and senders on its plain listener.
type parleySystem struct{}

func (parleySystem) start(cfg Config, t Target) (*running, error) {
	if cfg.Addr != "" {
		return &running{addrs: strings.Split(cfg.Addr, ","), stop: func() {}, note: "using the running server at " + cfg.Addr + " (its flood control must allow the senders' rate and its per-address limits the receivers': start it with --rate-limit 0 --max-conn-rate-per-ip 0)"}, nil
	}
	args := append([]string{"serve"}, BenchServerFlags...)
	switch {
	case t == TargetParleyOneLoop:
		args = append(args, "--loops", "1")
	case cfg.ServerLoops > 0:
		args = append(args, "--loops", strconv.Itoa(cfg.ServerLoops))
	}
	return startChild(cfg.PeerLog, cfg.Exe, func(port int) []string {
		return append(args, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	}, "", "started: parley "+strings.Join(args, " ")+" (flood control and the per-address connection rate off, so the senders and receivers are not throttled)")
}

// receivers are gnet's (framedGroup), or with --lean a goroutine and a
// small buffer each (streamGroup).
func (parleySystem) receivers(cfg GroupConfig) (receivers, error) {
	if cfg.Lean {
		return newStreamGroup(cfg)
	}
	return newFramedGroup(cfg)
}

func (parleySystem) sender(sp senderSpec) (sender, error) { return openParleySender(sp) }

// parleyStreamSystem is Parley with receivers and senders on TLS or
// WebSocket.
type parleyStreamSystem struct{}

func (parleyStreamSystem) start(cfg Config, t Target) (*running, error) {
	return startStreamTarget(cfg, t)
}

func (parleyStreamSystem) receivers(cfg GroupConfig) (receivers, error) { return newStreamGroup(cfg) }

func (parleyStreamSystem) sender(sp senderSpec) (sender, error) { return openParleySender(sp) }

// startStreamTarget starts a Parley server whose receivers and senders
// connect over TLS (a self-signed certificate they trust) or WebSocket,
// as browsers and public deployments do.
func startStreamTarget(cfg Config, t Target) (*running, error) {
	switch {
	case cfg.Addr != "" && cfg.StreamAddr != "":
		return &running{addrs: []string{cfg.Addr}, recvAddrs: []string{cfg.StreamAddr}, certPEM: cfg.StreamCertPEM, stop: func() {},
			note: "using the running server at " + cfg.Addr + ", receivers at " + cfg.StreamAddr}, nil
	case cfg.Addr != "":
		return nil, fmt.Errorf("target %s starts its own server: --addr is for parley", t)
	}
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	recvAddr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"serve"}, BenchServerFlags...)
	if cfg.ServerLoops > 0 {
		args = append(args, "--loops", strconv.Itoa(cfg.ServerLoops))
	}
	how, certPEM := "receivers and senders on WebSocket (/ws)", ""
	if t == TargetParleyTLS {
		var certFile, keyFile string
		if certFile, keyFile, certPEM, err = selfSigned(dir); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		args = append(args, "--tls-addr", recvAddr, "--tls-cert", certFile, "--tls-key", keyFile)
		how = "receivers and senders on TLS 1.3 with a self-signed ECDSA P-256 certificate"
	} else {
		args = append(args, "--ws-addr", recvAddr)
	}
	r, err := startChild(cfg.PeerLog, cfg.Exe, func(port int) []string {
		return append(args, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	}, "", "started: parley "+strings.Join(args, " ")+" ("+how+")")
	if err == nil {
		err = waitListening(recvAddr, 15*time.Second)
	}
	if err != nil {
		if r != nil {
			r.stop()
		}
		os.RemoveAll(dir)
		return nil, err
	}
	stop := r.stop
	r.recvAddrs, r.certPEM = []string{recvAddr}, certPEM
	r.stop = func() { stop(); os.RemoveAll(dir) }
	return r, nil
}

// startChild runs exe with the arguments for a free port, its output to
// out, and waits until it listens.
func startChild(out io.Writer, exe string, argsFor func(port int) []string, scheme, note string) (*running, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, argsFor(port)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	hostport := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitListening(hostport, 15*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	return &running{addrs: []string{scheme + hostport}, pid: cmd.Process.Pid, stop: stop, note: note}, nil
}

// RunChildServer is the body of the hidden child commands: it runs fn
// until SIGTERM or SIGINT.
func RunChildServer(fn func(ctx context.Context) error) error {
	ctx, stop := signalContext()
	defer stop()
	return fn(ctx)
}
