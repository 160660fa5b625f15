package hub

import (
	"fmt"
	"strings"
	"testing"

	"parley/codec"
)

func TestWhoPagesLargeRooms(t *testing.T) {
	entries := make([]nickEntry, 1200)
	for i := range entries {
		n := fmt.Sprintf("%04d%s", i, strings.Repeat("名", 28))
		entries[i] = nickEntry{n, n}
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
