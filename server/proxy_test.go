package server

import (
	"net"
	"testing"

	"github.com/pires/go-proxyproto"

	"parley/codec"
)

// proxied dials srv as a load balancer would, with a PROXY header (v1 or
// v2) saying the client is client.
func proxied(t *testing.T, srv *Server, version byte, client string) *tclient {
	t.Helper()
	c := dial(t, srv)
	src, err := net.ResolveTCPAddr("tcp", client)
	if err != nil {
		t.Fatal(err)
	}
	dst := c.conn.LocalAddr()
	if src.IP.To4() == nil {
		dst = &net.TCPAddr{IP: net.IPv6loopback, Port: 8060} // a header names one address family
	}
	h := proxyproto.HeaderProxyFromAddrs(version, src, dst)
	if _, err := h.WriteTo(c.conn); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProxyProtocol: from a trusted balancer, the header's client address
// is what the per-address limit counts, in v1 and in v2; a trusted peer
// that sends no header is closed; an untrusted peer's header is a bad
// frame, and its own address counts.
func TestProxyProtocol(t *testing.T) {
	srv := startServer(t, Config{Addr: "127.0.0.1:0", ProxyProtocol: true, ProxyTrusted: []string{"127.0.0.0/8"}, MaxConnsPerIP: 1, ConnRatePerIP: -1})
	a := proxied(t, srv, 1, "203.0.113.5:4000")
	a.login("amy")
	b := proxied(t, srv, 2, "203.0.113.6:4000") // another client behind the same balancer
	b.login("ben")
	again := proxied(t, srv, 2, "203.0.113.5:4001") // amy's address again: over its limit
	again.expectBye(codec.ReasonServerFull)
	v6 := proxied(t, srv, 1, "[2001:db8::1]:4000")
	v6.login("cat")
	bare := dial(t, srv) // trusted, but no header
	bare.sendRaw(codec.MustEncode(&codec.Login{Nick: "dan"}))
	bare.expectClosed()
	a.send(&codec.Ping{})
	a.until("pong", func(e codec.Event) bool { return e.Type == codec.TypePong })
	// A closed session gives its count back to the address it was counted
	// for, the header's, not the balancer's: amy's address takes one again.
	open := srv.Stats().Conns
	a.send(&codec.Quit{})
	a.expectClosed()
	reaches(t, "open connections after amy's quit", open-1, func() int { return srv.Stats().Conns })
	proxied(t, srv, 1, "203.0.113.5:4002").login("amy")

	strict := startServer(t, Config{Addr: "127.0.0.1:0", ProxyProtocol: true, ProxyTrusted: []string{"10.9.9.9"}, MaxConnsPerIP: 2, ConnRatePerIP: -1})
	spoof := proxied(t, strict, 1, "198.51.100.1:4000") // 127.0.0.1 is not trusted there
	spoof.expectError(codec.CodeFrameTooLarge)
	spoof.expectBye(codec.ReasonProtocolError)
	// The spoofer's own address counted: two more from 127.0.0.1 fill it.
	loggedIn(t, strict, "one")
	loggedIn(t, strict, "two")
	over := dial(t, strict)
	over.expectBye(codec.ReasonServerFull)
}
