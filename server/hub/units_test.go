package hub

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"parley/codec"
)

func TestWhoPagesLargeRooms(t *testing.T) {
	entries := make([]nickEntry, 1200)
	for i := range entries {
		n := fmt.Sprintf("%04d%s", i, strings.Repeat("名", 28))
		entries[i] = nickEntry{key: n, nick: n}
	}
	nicks, more := whoPage(entries, codec.WhoPage, codec.DefaultMaxFrame-1024)
	if !more || len(nicks) == 0 || len(nicks) > codec.WhoPage {
		t.Fatalf("page of %d, more=%v", len(nicks), more)
	}
	frame := codec.MustEncode(&codec.Users{Count: 1200, Nicks: nicks, More: more})
	if len(frame)-codec.HeaderSize > codec.DefaultMaxFrame {
		t.Fatalf("users frame of %d bytes is over the frame limit", len(frame))
	}
}

func TestCloseCause(t *testing.T) {
	for err, want := range map[error]string{
		nil:    "closed by the server",
		io.EOF: "eof",
		os.NewSyscallError("read", syscall.ECONNRESET): "reset in read",
		os.NewSyscallError("writev", syscall.EPIPE):    "reset in writev",
		os.NewSyscallError("write", syscall.ETIMEDOUT): "error in write: write: connection timed out",
	} {
		if got := closeCause(err); got != want {
			t.Errorf("closeCause(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestSessionFitsItsSizeClass: a Session is allocated for every
// connection; past 512 bytes Go's allocator gives it 576, 64 bytes more
// per connection (docs/PERFORMANCE.md, memory per connection). What most
// sessions never use hangs off a pointer (perTarget).
func TestSessionFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 512 {
		t.Fatalf("Session is %d bytes, past the 512-byte size class", n)
	}
}
