// Package codec is Parley's wire format: length-prefixed JSON frames.
//
// A frame is a 4-byte big-endian unsigned length N followed by N bytes that
// are one UTF-8 JSON object with a string field "type". docs/PROTOCOL.md is
// the contract; this package is its Go form, shared by server, client and
// bench. Everything here is safe for concurrent use unless a type says
// otherwise.
package codec

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/bytedance/sonic"
	"github.com/bytedance/sonic/decoder"
	"github.com/bytedance/sonic/encoder"
)

// HeaderSize is the size of the length prefix.
const HeaderSize = 4

// DefaultMaxFrame is the default maximum frame size: the largest N a peer
// may declare in a frame header.
const DefaultMaxFrame = 65536

// json is the sonic configuration for decoding: keys match case-sensitively,
// as in the contract, and strings are copied out of the input.
var json = sonic.Config{CaseSensitive: true, CopyString: true}.Froze()

// encodeOpts makes sonic replace invalid UTF-8 with U+FFFD, so an encoded
// frame is always valid UTF-8, and drop the trailing newline.
const encodeOpts = encoder.ValidateString | encoder.NoEncoderNewline

// ParseHeader reads the frame length from the first HeaderSize bytes of hdr.
// A length of zero is ErrBadFrame, one above max is ErrFrameTooLarge. A max
// of zero or less means DefaultMaxFrame.
func ParseHeader(hdr []byte, max int) (int, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	n := binary.BigEndian.Uint32(hdr)
	switch {
	case n == 0:
		return 0, errorf(ErrBadFrame, "zero frame length")
	case uint64(n) > uint64(max):
		return 0, errorf(ErrFrameTooLarge, "frame length %d over %d", n, max)
	}
	return int(n), nil
}

// Split finds the first frame in buf. It returns the frame's body and the
// number of bytes the whole frame takes in buf. When buf holds no complete
// frame yet it returns n == 0 and a nil error: read more bytes and call
// again. A bad header is an error at once, before its body arrives, and
// Split never allocates. body aliases buf.
func Split(buf []byte, max int) (body []byte, n int, err error) {
	if len(buf) < HeaderSize {
		return nil, 0, nil
	}
	size, err := ParseHeader(buf, max)
	if err != nil {
		return nil, 0, err
	}
	if len(buf) < HeaderSize+size {
		return nil, 0, nil
	}
	return buf[HeaderSize : HeaderSize+size], HeaderSize + size, nil
}

// Append appends m to dst as one frame (header and JSON body) and returns
// the extended slice. The encoded bytes may be shared by any number of
// recipients: encode once, send many times.
func Append(dst []byte, m Message) ([]byte, error) {
	m.stamp()
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	if err := encoder.EncodeInto(&dst, m, encodeOpts); err != nil {
		return dst[:start], err
	}
	if l := len(dst); dst[l-1] == '\n' {
		dst = dst[:l-1]
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-HeaderSize))
	return dst, nil
}

// Encode returns m as one frame in a new slice.
func Encode(m Message) ([]byte, error) {
	return Append(make([]byte, 0, 128), m)
}

// MustEncode is Encode for messages whose fields cannot fail to encode (all
// of this package's types): it panics on an encoder failure.
func MustEncode(m Message) []byte {
	b, err := Encode(m)
	if err != nil {
		panic("codec: encode " + m.MessageType() + ": " + err.Error())
	}
	return b
}

// DecodeRequest decodes a client-to-server frame body into r. Errors wrap
// ErrBadFrame (not UTF-8, not an object), ErrBadJSON, ErrBadRequest (a field
// of the wrong kind, or no type) or ErrUnknownType.
func DecodeRequest(body []byte, r *Request) error {
	*r = Request{}
	if err := decodeObject(body, r); err != nil {
		return err
	}
	return checkType(r.Type, requestTypes)
}

// DecodeEvent decodes a server-to-client frame body into e, with the same
// errors as DecodeRequest.
func DecodeEvent(body []byte, e *Event) error {
	*e = Event{}
	if err := decodeObject(body, e); err != nil {
		return err
	}
	return checkType(e.Type, eventTypes)
}

func decodeObject(body []byte, v any) error {
	if !utf8.Valid(body) {
		return errorf(ErrBadFrame, "frame is not valid UTF-8")
	}
	if !isObject(body) {
		return errorf(ErrBadFrame, "frame is not a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var mismatch *decoder.MismatchTypeError
		if errors.As(err, &mismatch) {
			return errorf(ErrBadRequest, "field of the wrong kind: %v", err)
		}
		return errorf(ErrBadJSON, "%v", err)
	}
	if key, dup := duplicateKey(body); dup {
		return errorf(ErrBadJSON, "duplicate key %q", truncate(key, 64))
	}
	return nil
}

func checkType(t string, known map[string]bool) error {
	switch {
	case t == "":
		return errorf(ErrBadRequest, "missing type")
	case !known[t]:
		return errorf(ErrUnknownType, "unknown type %q", truncate(t, 64))
	}
	return nil
}

// isObject reports whether the first byte after JSON white space opens an
// object. The decoder checks the rest, including trailing bytes.
func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
