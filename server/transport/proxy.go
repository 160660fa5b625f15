package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// The PROXY protocol (v1 and v2, as HAProxy specifies it) lets a load
// balancer in front of the plain listener tell the client's own address,
// so that the per-address limits count clients rather than the balancer.
// A header is read only from the networks trusted (--proxy-trusted), and
// from them it is required; anyone else's connection is the chat protocol
// from its first byte, and a PROXY header from it is a bad frame.

// ProxyPolicy is the networks trusted to send a PROXY header, and the
// bound on header reads in progress.
type ProxyPolicy struct {
	trusted []netip.Prefix
	timeout time.Duration
	slots   chan struct{}
	warn    func(kind, msg string, attrs ...any)
}

// maxProxyReads bounds the connections waiting for their header at once.
const maxProxyReads = 1024

// NewProxyPolicy trusts PROXY headers from the trusted networks, reading
// each within timeout; warn reports a bad header (rate-limited by the
// caller, as hub.WarnLimited is).
func NewProxyPolicy(trusted []netip.Prefix, timeout time.Duration, warn func(string, string, ...any)) *ProxyPolicy {
	return &ProxyPolicy{trusted: trusted, timeout: timeout, slots: make(chan struct{}, maxProxyReads), warn: warn}
}

// ParsePrefixes reads networks ("10.0.0.0/8") and addresses ("10.0.0.1").
func ParsePrefixes(specs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range specs {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("server: proxy trusted %q is not a network or an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// trusts reports whether a connection from remote must send a header.
// A nil policy trusts nobody.
func (p *ProxyPolicy) trusts(remote string) bool {
	if p == nil {
		return false
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, n := range p.trusted {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// admit reads c's header on a goroutine of its own, then admits it under
// the client's address. A header that is missing, malformed or late
// closes the connection.
func (p *ProxyPolicy) admit(c *net.TCPConn, remote string, admit func(*net.TCPConn, string)) {
	select {
	case p.slots <- struct{}{}:
	default:
		p.warn("proxy-busy", "too many PROXY headers being read; connection closed", "remote", remote)
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-p.slots }()
		client, err := readProxyHeader(c, time.Now().Add(p.timeout))
		if err != nil {
			p.warn("proxy-header", "bad PROXY header; connection closed", "remote", remote, "err", err.Error())
			_ = c.Close()
			return
		}
		if client == "" {
			client = remote // LOCAL: the balancer's own connection, a health check
		}
		admit(c, client)
	}()
}

// The two signatures. A v1 header is one line of at most 107 bytes.
var (
	proxyV1Sig = []byte("PROXY ")
	proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

const maxProxyV1 = 107

// maxProxyV2 bounds a v2 header's addresses and TLVs (a balancer's TLVs
// are a few dozen bytes).
const maxProxyV2 = 2048

// readProxyHeader reads exactly one PROXY header from c, no byte of what
// follows (the connection then goes to gnet, which reads the rest), and
// returns the client's address, or "" for a LOCAL or UNKNOWN header.
func readProxyHeader(c net.Conn, deadline time.Time) (string, error) {
	_ = c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	raw := make([]byte, 6, 232)
	if _, err := readFull(c, raw); err != nil {
		return "", err
	}
	switch {
	case bytes.Equal(raw, proxyV1Sig):
		for raw[len(raw)-1] != '\n' {
			if len(raw) >= maxProxyV1 {
				return "", errors.New("v1 header too long")
			}
			var b [1]byte
			if _, err := readFull(c, b[:]); err != nil {
				return "", err
			}
			raw = append(raw, b[0])
		}
	case bytes.Equal(raw, proxyV2Sig[:6]):
		raw = raw[:16]
		if _, err := readFull(c, raw[6:]); err != nil {
			return "", err
		}
		n := int(raw[14])<<8 | int(raw[15])
		if n > maxProxyV2 {
			return "", errors.New("v2 header too long")
		}
		raw = append(raw, make([]byte, n)...)
		if _, err := readFull(c, raw[16:]); err != nil {
			return "", err
		}
	default:
		return "", errors.New("no PROXY header")
	}
	h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return "", err
	}
	if h.Command.IsLocal() || h.TransportProtocol == proxyproto.UNSPEC {
		return "", nil
	}
	if addr, ok := h.SourceAddr.(*net.TCPAddr); ok {
		return addr.String(), nil
	}
	return "", errors.New("the header's source is not a TCP address")
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
