package codec

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecode feeds arbitrary bytes through the stream reader and the request
// decoder, cut at an arbitrary point. Nothing may panic, every error must
// carry a protocol code or be an I/O end, and every accepted frame must be a
// known type that re-encodes to a frame that decodes to the same request.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 15, '{', '"', 't', 'y', 'p', 'e', '"', ':', '"', 'p', 'i', 'n', 'g', '"', '}'}, uint16(3))
	f.Add(MustEncode(&Say{Room: "lobby", Body: "hello"}), uint16(0))
	f.Add(MustEncode(&Login{Nick: "小明"}), uint16(5))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(1))
	f.Add([]byte{0, 0, 0, 0}, uint16(2))
	f.Add(frame(`[1,2,3]`), uint16(4))
	f.Add(frame("{\"type\":\"say\",\"body\":\"\xff\"}"), uint16(4))
	f.Add(frame(`{"type":"say","body":`+string(bytes.Repeat([]byte("["), 2000))+`}`), uint16(9))
	f.Add(frame(`{"type":"say","seq":1e999999}`), uint16(6))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		at := int(cut) % (len(data) + 1)
		r := NewReader(&chunkReader{chunks: [][]byte{data[:at], data[at:]}}, 4096)
		for {
			body, err := r.Next()
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && CodeOf(err) == "" {
					t.Fatalf("error without a code: %v", err)
				}
				return
			}
			var req Request
			if err := DecodeRequest(body, &req); err != nil {
				if CodeOf(err) == "" {
					t.Fatalf("decode error without a code: %v", err)
				}
				continue
			}
			if !requestTypes[req.Type] {
				t.Fatalf("accepted unknown type %q", req.Type)
			}
			checkReencode(t, &req)
		}
	})
}

func checkReencode(t *testing.T, req *Request) {
	raw, err := Encode(&Login{Nick: req.Nick, Token: req.Token, Ref: req.Ref})
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var back Request
	if err := DecodeRequest(raw[HeaderSize:], &back); err != nil && !errors.Is(err, ErrBadRequest) {
		t.Fatalf("re-decode of %s: %v", raw, err)
	}
	if back.Nick != req.Nick || back.Ref != req.Ref {
		t.Fatalf("re-encode changed the fields: %+v vs %+v", back, req)
	}
}
