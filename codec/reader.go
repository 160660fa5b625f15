package codec

import (
	"io"
)

// Reader reads frames from a byte stream such as a net.Conn. Its buffer
// grows with the bytes that have arrived, never with the length a peer
// declares, so a header that promises 4 GiB costs nothing until the bytes
// come. A Reader is not safe for concurrent use.
type Reader struct {
	r          io.Reader
	max        int
	buf        []byte
	start, end int
}

// minReadBuf is the initial buffer size: one typical read.
const minReadBuf = 4096

// NewReader returns a Reader over r that rejects frames above max bytes
// (DefaultMaxFrame when max <= 0).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	return &Reader{r: r, max: max}
}

// Next returns the body of the next frame. The slice is valid until the next
// call. Errors are the reader's I/O errors (io.EOF at a clean end between
// frames, io.ErrUnexpectedEOF inside one) or a framing error wrapping
// ErrBadFrame or ErrFrameTooLarge, after which the stream cannot be trusted.
func (r *Reader) Next() ([]byte, error) {
	for {
		body, n, err := Split(r.buf[r.start:r.end], r.max)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			r.start += n
			return body, nil
		}
		if err := r.fill(); err != nil {
			if err == io.EOF && r.start != r.end {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// fill reads at least one more byte, compacting or growing the buffer first
// when it has no room left.
func (r *Reader) fill() error {
	if r.end == len(r.buf) {
		r.makeRoom()
	}
	n, err := r.r.Read(r.buf[r.end:])
	r.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

func (r *Reader) makeRoom() {
	pending := r.end - r.start
	if r.start > 0 && pending < len(r.buf)/2 {
		copy(r.buf, r.buf[r.start:r.end])
		r.start, r.end = 0, pending
		return
	}
	size := 2 * len(r.buf)
	if size < minReadBuf {
		size = minReadBuf
	}
	if limit := HeaderSize + r.max; size > limit && pending < limit {
		size = limit
	}
	nb := make([]byte, size)
	copy(nb, r.buf[r.start:r.end])
	r.buf, r.start, r.end = nb, 0, pending
}
