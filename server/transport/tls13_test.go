package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"testing"
)

// Unit tests of TLS 1.3's record layer: a client's records and the
// server's, keyed from the same two secrets. The handshake's hand-over to
// records is tested with crypto/tls's client (handshake_test.go), and
// interoperation with crypto/tls and OpenSSL in package server.

// recordPair is a server's records and a client's, its mirror.
func recordPair(t *testing.T, suite uint16) (server, client *records) {
	t.Helper()
	cs, ss := bytes.Repeat([]byte{1}, 48), bytes.Repeat([]byte{2}, 48)
	h := suites13[suite].hash().Size()
	server, err := newRecords(suite, cs[:h], ss[:h])
	if err != nil {
		t.Fatal(err)
	}
	client, err = newRecords(suite, ss[:h], cs[:h]) // reads what the server writes
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

var allSuites13 = []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256}

func TestRecordsRoundTrip(t *testing.T) {
	for _, suite := range allSuites13 {
		server, client := recordPair(t, suite)
		big := bytes.Repeat([]byte("0123456789abcdef"), 3000) // three records
		wire := client.seal(nil, []byte("hello"))
		wire = client.seal(wire, big)
		// As a loop reads: chunks arrive, what is not whole waits.
		var got, buf []byte
		for at := 0; at < len(wire); at += 7919 {
			buf = append(buf, wire[at:min(len(wire), at+7919)]...)
			var used int
			var err error
			got, used, err = server.open(got, buf)
			if err != nil {
				t.Fatalf("suite %x: %v", suite, err)
			}
			buf = buf[used:]
		}
		if want := append([]byte("hello"), big...); !bytes.Equal(got, want) || len(buf) != 0 {
			t.Fatalf("suite %x: got %d bytes, want %d; %d left", suite, len(got), len(want), len(buf))
		}
		back := server.seal(nil, []byte("welcome"))
		if plain, used, err := client.open(nil, back); err != nil || used != len(back) || string(plain) != "welcome" {
			t.Fatalf("suite %x: server to client: %q %d %v", suite, plain, used, err)
		}
	}
}

func TestRecordsSplitAtEveryOffset(t *testing.T) {
	_, c := recordPair(t, tls.TLS_AES_128_GCM_SHA256)
	wire := c.seal(nil, []byte("one"))
	wire = c.seal(wire, []byte("two"))
	for cut := 0; cut <= len(wire); cut++ {
		s, _ := recordPair(t, tls.TLS_AES_128_GCM_SHA256)
		first, used, err := s.open(nil, wire[:cut])
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		rest, used2, err := s.open(first, wire[used:])
		if err != nil || used+used2 != len(wire) || string(rest) != "onetwo" {
			t.Fatalf("cut %d: %q, used %d+%d of %d, %v", cut, rest, used, used2, len(wire), err)
		}
	}
}

// TestRecordsKeyUpdate: a key update that asks for ours is answered under
// the old key before anything else is written, and both directions go on
// under the new keys.
func TestRecordsKeyUpdate(t *testing.T) {
	server, client := recordPair(t, tls.TLS_AES_256_GCM_SHA384)
	wire := client.sealOne(nil, recordHandshake, []byte{handshakeKeyUpdate, 0, 0, 1, 1})
	if err := client.suite.next(&client.out); err != nil {
		t.Fatal(err)
	}
	wire = client.seal(wire, []byte("after"))
	plain, _, err := server.open(nil, wire)
	if err != nil || string(plain) != "after" {
		t.Fatalf("after the client's update: %q %v", plain, err)
	}
	if !server.owesUpdate {
		t.Fatal("a requested key update is not owed")
	}
	back := server.seal(nil, []byte("reply"))
	if server.owesUpdate {
		t.Fatal("the key update was not sent")
	}
	plain, _, err = client.open(nil, back)
	if err != nil || string(plain) != "reply" {
		t.Fatalf("client reading the server's update and reply: %q %v", plain, err)
	}
	if client.owesUpdate {
		t.Fatal("update_not_requested was taken for a request")
	}
}

func TestRecordsRefusals(t *testing.T) {
	tamper := func(w []byte) []byte { w[len(w)-1] ^= 1; return w }
	cases := []struct {
		name string
		wire func(c *records) []byte
		want uint8
	}{
		{"tampered", func(c *records) []byte { return tamper(c.seal(nil, []byte("x"))) }, alertBadRecordMAC},
		{"plaintext handshake record", func(*records) []byte { return []byte{recordHandshake, 3, 3, 0, 1, 0} }, alertUnexpectedMessage},
		{"change_cipher_spec", func(*records) []byte { return []byte{20, 3, 3, 0, 1, 1} }, alertUnexpectedMessage},
		{"oversized", func(*records) []byte { return []byte{recordData, 3, 3, 0x48, 0x01} }, alertRecordOverflow},
		{"plaintext too large", func(c *records) []byte { return c.sealOne(nil, recordData, make([]byte, maxPlaintext+1)) }, alertRecordOverflow},
		{"only padding", func(c *records) []byte { return c.sealOne(nil, 0, nil) }, alertUnexpectedMessage},
		{"unknown content type", func(c *records) []byte { return c.sealOne(nil, 99, []byte("x")) }, alertUnexpectedMessage},
		{"new session ticket", func(c *records) []byte { return c.sealOne(nil, recordHandshake, []byte{4, 0, 0, 1, 0}) }, alertUnexpectedMessage},
		{"key update split", func(c *records) []byte { return c.sealOne(nil, recordHandshake, []byte{handshakeKeyUpdate, 0, 0, 1}) }, alertUnexpectedMessage},
		{"key update, bad request", func(c *records) []byte {
			return c.sealOne(nil, recordHandshake, []byte{handshakeKeyUpdate, 0, 0, 1, 7})
		}, alertIllegalParameter},
		{"malformed alert", func(c *records) []byte { return c.sealOne(nil, recordAlert, []byte{2}) }, alertDecodeError},
		{"empty records", func(c *records) []byte {
			var w []byte
			for range maxUselessRecords + 1 {
				w = c.sealOne(w, recordData, nil)
			}
			return w
		}, alertUnexpectedMessage},
	}
	for _, tc := range cases {
		server, client := recordPair(t, tls.TLS_CHACHA20_POLY1305_SHA256)
		_, _, err := server.open(nil, tc.wire(client))
		var alert *alertError
		if !errors.As(err, &alert) || alert.received || alert.desc != tc.want {
			t.Errorf("%s: %v, want alert %s", tc.name, err, alertName(tc.want))
			continue
		}
		// The alert goes out under the server's keys, and reads as one.
		plain, _, err := client.open(nil, server.alert(nil, alert.desc))
		if !errors.As(err, &alert) || !alert.received || alert.desc != tc.want || len(plain) != 0 {
			t.Errorf("%s: the client read %v", tc.name, err)
		}
	}
}

// TestRecordsPaddingAndClose: padding after the content type is not
// data, and close_notify ends the reading.
func TestRecordsPaddingAndClose(t *testing.T) {
	server, client := recordPair(t, tls.TLS_AES_128_GCM_SHA256)
	wire := client.seal(nil, []byte("plain "))
	wire = append(wire, sealRaw(client, []byte{'p', 'a', 'd', recordData, 0, 0, 0, 0})...)
	wire = client.alert(wire, alertCloseNotify)
	wire = client.seal(wire, []byte("after close"))
	plain, _, err := server.open(nil, wire)
	if err != io.EOF {
		t.Fatalf("close_notify read as %v", err)
	}
	if string(plain) != "plain pad" {
		t.Fatalf("plain %q", plain)
	}
}

// sealRaw seals inner, the plaintext with its content type and padding
// already in it, as one record.
func sealRaw(r *records, inner []byte) []byte {
	tag := r.out.aead.Overhead()
	out := []byte{recordData, 3, 3, 0, byte(len(inner) + tag)}
	nonce := r.out.nonce()
	return r.out.aead.Seal(out, nonce[:], inner, out[:recordHeader])
}
