package bench

import (
	"bytes"
	"strconv"
)

// A message body is "<due unix nanoseconds>:<sequence>:" padded with 'x'
// to the configured size. Receivers parse the two numbers with no JSON
// decoding, so per-delivery work stays a timestamp read and a histogram
// record.

// MinBody is the smallest body that holds a timestamp and a sequence.
const MinBody = 40

// Body returns a body of size bytes carrying due and seq.
func Body(dst []byte, due int64, seq uint64, size int) []byte {
	dst = strconv.AppendInt(dst[:0], due, 10)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ':')
	for len(dst) < size {
		dst = append(dst, 'x')
	}
	return dst
}

// ParseBody reads due and seq from the start of b.
func ParseBody(b []byte) (due int64, seq uint64, ok bool) {
	i := bytes.IndexByte(b, ':')
	if i <= 0 {
		return 0, 0, false
	}
	j := bytes.IndexByte(b[i+1:], ':')
	if j <= 0 {
		return 0, 0, false
	}
	d, err1 := strconv.ParseInt(string(b[:i]), 10, 64)
	s, err2 := strconv.ParseUint(string(b[i+1:i+1+j]), 10, 64)
	return d, s, err1 == nil && err2 == nil
}

var bodyKey = []byte(`"body":"`)

// ParseFrame finds the body of a Parley msg frame (the JSON after the
// length prefix) and parses it. Frames without a benchmark body (pings,
// presence) report ok == false.
func ParseFrame(frame []byte) (due int64, seq uint64, ok bool) {
	i := bytes.Index(frame, bodyKey)
	if i < 0 {
		return 0, 0, false
	}
	return ParseBody(frame[i+len(bodyKey):])
}
