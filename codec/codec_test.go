package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// frame builds a raw frame around body.
func frame(body string) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	return append(b, body...)
}

func TestRoundTripRequests(t *testing.T) {
	cases := []struct {
		m    Message
		want Request
	}{
		{&Login{Nick: "小明", Token: "t", Ref: "r1"}, Request{Type: TypeLogin, Nick: "小明", Token: "t", Ref: "r1"}},
		{&Say{Room: "lobby", Body: "hi \"there\"\n", Ref: "r2"}, Request{Type: TypeSay, Room: "lobby", Body: "hi \"there\"\n", Ref: "r2"}},
		{&DM{To: "bob", Body: "psst"}, Request{Type: TypeDM, To: "bob", Body: "psst"}},
		{&Join{Room: "go"}, Request{Type: TypeJoin, Room: "go"}},
		{&Leave{Room: "go", Ref: "x"}, Request{Type: TypeLeave, Room: "go", Ref: "x"}},
		{&Who{Room: "go", After: "amy"}, Request{Type: TypeWho, Room: "go", After: "amy"}},
		{&Ping{}, Request{Type: TypePing}},
		{&Pong{}, Request{Type: TypePong}},
		{&Quit{}, Request{Type: TypeQuit}},
	}
	for _, c := range cases {
		t.Run(c.m.MessageType(), func(t *testing.T) {
			raw := MustEncode(c.m)
			body, n, err := Split(raw, 0)
			if err != nil || n != len(raw) {
				t.Fatalf("Split = %d, %v; want %d, nil", n, err, len(raw))
			}
			var got Request
			if err := DecodeRequest(body, &got); err != nil {
				t.Fatalf("DecodeRequest(%s): %v", body, err)
			}
			if got != c.want {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestRoundTripEvents(t *testing.T) {
	cases := []struct {
		m    Message
		want Event
	}{
		{&Welcome{ID: "u-1", Nick: "amy", Room: "lobby", Online: 0}, Event{Type: TypeWelcome, ID: "u-1", Nick: "amy", Room: "lobby"}},
		{&Msg{From: "amy", Room: "lobby", Body: "hi", TS: 1700000000000, Seq: 7}, Event{Type: TypeMsg, From: "amy", Room: "lobby", Body: "hi", TS: 1700000000000, Seq: 7}},
		{&Msg{From: "amy", To: "bob", Body: "hi", TS: 5}, Event{Type: TypeMsg, From: "amy", To: "bob", Body: "hi", TS: 5}},
		{&Msg{From: "amy", Room: "go", Body: "hi", TS: 5, Seq: 2, ID: "c-1"}, Event{Type: TypeMsg, From: "amy", Room: "go", Body: "hi", TS: 5, Seq: 2, ID: "c-1"}},
		{&Joined{Nick: "amy", Room: "go"}, Event{Type: TypeJoined, Nick: "amy", Room: "go"}},
		{&Left{Nick: "amy", Room: "go", Reason: ReasonTimeout}, Event{Type: TypeLeft, Nick: "amy", Room: "go", Reason: ReasonTimeout}},
		{&Presence{Room: "lobby", Count: 900, Joined: 3, Left: 1}, Event{Type: TypePresence, Room: "lobby", Count: 900, Joined: 3, Left: 1}},
		{&Gap{Room: "lobby", First: 7, Last: 9}, Event{Type: TypeGap, Room: "lobby", First: 7, Last: 9}},
		{&Users{Room: "go", Count: 2, Nicks: []string{"amy", "bob"}, More: true, Ref: "w"}, Event{Type: TypeUsers, Room: "go", Count: 2, Nicks: []string{"amy", "bob"}, More: true, Ref: "w"}},
		{&Ack{Ref: "r", Seq: 3}, Event{Type: TypeAck, Ref: "r", Seq: 3}},
		{&ErrorMsg{Code: CodeNickTaken, Message: "taken", Ref: "r"}, Event{Type: TypeError, Code: CodeNickTaken, Message: "taken", Ref: "r"}},
		{&Ping{}, Event{Type: TypePing}},
		{&Pong{}, Event{Type: TypePong}},
		{&Bye{Reason: ReasonShutdown}, Event{Type: TypeBye, Reason: ReasonShutdown}},
	}
	for _, c := range cases {
		t.Run(c.m.MessageType(), func(t *testing.T) {
			raw := MustEncode(c.m)
			var got Event
			if err := DecodeEvent(raw[HeaderSize:], &got); err != nil {
				t.Fatalf("DecodeEvent(%s): %v", raw[HeaderSize:], err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestWelcomeCarriesZeroOnline(t *testing.T) {
	raw := MustEncode(&Welcome{ID: "x", Nick: "a", Room: "lobby"})
	if !bytes.Contains(raw, []byte(`"online":0`)) {
		t.Fatalf("welcome must always carry online: %s", raw)
	}
}

func TestEncodeIsValidFrame(t *testing.T) {
	raw := MustEncode(&Msg{From: "a", Room: "r", Body: "bad \xff byte", TS: 1, Seq: 1})
	if got := int(binary.BigEndian.Uint32(raw)); got != len(raw)-HeaderSize {
		t.Fatalf("header says %d, body is %d", got, len(raw)-HeaderSize)
	}
	var e Event
	if err := DecodeEvent(raw[HeaderSize:], &e); err != nil {
		t.Fatalf("an encoded frame must decode even from invalid input: %v", err)
	}
	if e.Body != "bad \uFFFD byte" {
		t.Fatalf("invalid UTF-8 should become U+FFFD, got %q", e.Body)
	}
}

func TestAppendSharesOneBuffer(t *testing.T) {
	var buf []byte
	buf, _ = Append(buf, &Ping{})
	buf, _ = Append(buf, &Pong{})
	var types []string
	for len(buf) > 0 {
		body, n, err := Split(buf, 0)
		if err != nil || n == 0 {
			t.Fatalf("Split: %d %v", n, err)
		}
		var e Event
		if err := DecodeEvent(body, &e); err != nil {
			t.Fatal(err)
		}
		types = append(types, e.Type)
		buf = buf[n:]
	}
	if strings.Join(types, ",") != "ping,pong" {
		t.Fatalf("got %v", types)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name string
		body string
		want *Error
	}{
		{"invalid json", `{"type":"say",`, ErrBadJSON},
		{"trailing garbage", `{"type":"ping"} x`, ErrBadJSON},
		{"invalid utf8", "{\"type\":\"say\",\"body\":\"\xc3\x28\"}", ErrBadFrame},
		{"array", `["type","say"]`, ErrBadFrame},
		{"string", `"say"`, ErrBadFrame},
		{"number", `42`, ErrBadFrame},
		{"white space only", "  \n", ErrBadFrame},
		{"missing type", `{"body":"hi"}`, ErrBadRequest},
		{"empty type", `{"type":""}`, ErrBadRequest},
		{"type not a string", `{"type":5}`, ErrBadRequest},
		{"field of wrong kind", `{"type":"say","body":["x"]}`, ErrBadRequest},
		{"unknown type", `{"type":"dance"}`, ErrUnknownType},
		{"server type from client", `{"type":"welcome"}`, ErrUnknownType},
		{"type matches case-sensitively", `{"TYPE":"ping"}`, ErrBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r Request
			err := DecodeRequest([]byte(c.body), &r)
			if !errors.Is(err, c.want) {
				t.Fatalf("DecodeRequest(%q) = %v, want %v", c.body, err, c.want.Code)
			}
			if CodeOf(err) != c.want.Code {
				t.Fatalf("CodeOf = %q, want %q", CodeOf(err), c.want.Code)
			}
		})
	}
}

func TestUnknownFieldsIgnored(t *testing.T) {
	var r Request
	if err := DecodeRequest([]byte(`{"type":"say","body":"x","extra":{"a":[1,2]}}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Body != "x" {
		t.Fatalf("body = %q", r.Body)
	}
}

func TestHeaderErrors(t *testing.T) {
	cases := []struct {
		name string
		hdr  []byte
		max  int
		want *Error
	}{
		{"zero", []byte{0, 0, 0, 0}, 0, ErrBadFrame},
		{"oversized default", []byte{0, 1, 0, 1}, 0, ErrFrameTooLarge},
		{"4 GiB", []byte{0xff, 0xff, 0xff, 0xff}, 0, ErrFrameTooLarge},
		{"over configured", []byte{0, 0, 0, 11}, 10, ErrFrameTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, n, err := Split(c.hdr, c.max)
			if n != 0 || !errors.Is(err, c.want) {
				t.Fatalf("Split = %d, %v; want %v", n, err, c.want.Code)
			}
		})
	}
	if n, err := ParseHeader([]byte{0, 1, 0, 0}, 0); n != DefaultMaxFrame || err != nil {
		t.Fatalf("max frame itself must be allowed: %d %v", n, err)
	}
}

func TestSplitNeedsMore(t *testing.T) {
	raw := frame(`{"type":"ping"}`)
	for i := 0; i < len(raw); i++ {
		if body, n, err := Split(raw[:i], 0); body != nil || n != 0 || err != nil {
			t.Fatalf("prefix %d: got %q %d %v, want need-more", i, body, n, err)
		}
	}
}

// TestSplitEveryOffset cuts a stream of three frames at every pair of
// offsets and feeds the pieces through a Reader: the frames must come out
// whole and in order whatever the cut.
func TestSplitEveryOffset(t *testing.T) {
	stream := bytes.Join([][]byte{
		MustEncode(&Login{Nick: "小明"}),
		MustEncode(&Say{Room: "lobby", Body: strings.Repeat("é", 100)}),
		MustEncode(&Quit{}),
	}, nil)
	want := []string{TypeLogin, TypeSay, TypeQuit}
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j += 7 {
			chunks := [][]byte{stream[:i], stream[i:j], stream[j:]}
			got := readAll(t, &chunkReader{chunks: chunks})
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("cut at %d,%d: got %v", i, j, got)
			}
		}
	}
}

func TestOneByteAtATime(t *testing.T) {
	stream := append(MustEncode(&Say{Body: "drip"}), MustEncode(&Ping{})...)
	var chunks [][]byte
	for i := range stream {
		chunks = append(chunks, stream[i:i+1])
	}
	got := readAll(t, &chunkReader{chunks: chunks})
	if strings.Join(got, ",") != "say,ping" {
		t.Fatalf("got %v", got)
	}
}

func TestTwoAndThreeFramesInOneRead(t *testing.T) {
	for _, k := range []int{2, 3} {
		var stream []byte
		for i := 0; i < k; i++ {
			stream, _ = Append(stream, &Ping{})
		}
		got := readAll(t, &chunkReader{chunks: [][]byte{stream}})
		if len(got) != k {
			t.Fatalf("%d frames in one read: got %v", k, got)
		}
	}
}

func TestReaderTruncatedBody(t *testing.T) {
	raw := MustEncode(&Say{Body: "cut short"})
	r := NewReader(bytes.NewReader(raw[:len(raw)-3]), 0)
	if _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated body: got %v, want io.ErrUnexpectedEOF", err)
	}
	r = NewReader(bytes.NewReader(nil), 0)
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("empty stream: got %v, want io.EOF", err)
	}
}

// TestReaderDoesNotTrustDeclaredLength sends a header declaring the maximum
// size and only a few bytes: the reader must not allocate the declared size.
func TestReaderDoesNotTrustDeclaredLength(t *testing.T) {
	hdr := []byte{0, 1, 0, 0} // 65536, the largest legal frame
	r := NewReader(&chunkReader{chunks: [][]byte{hdr, []byte("{")}}, 0)
	_, err := r.Next()
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v", err)
	}
	if len(r.buf) > minReadBuf {
		t.Fatalf("reader grew to %d bytes for 5 bytes received", len(r.buf))
	}
	r = NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), 0)
	if _, err := r.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("4 GiB header: got %v", err)
	}
}

func TestReaderLargeFrame(t *testing.T) {
	big := MustEncode(&Say{Body: strings.Repeat("x", 60000)})
	got := readAll(t, &chunkReader{chunks: [][]byte{big[:1000], big[1000:]}})
	if len(got) != 1 || got[0] != TypeSay {
		t.Fatalf("got %v", got)
	}
}

func TestParseNick(t *testing.T) {
	good := map[string]string{ // nick: its display form
		"amy": "amy", "小明": "小明", "a.b-c_d": "a.b-c_d", "Ünïcødé": "Ünïcødé", "x1": "x1",
		strings.Repeat("名", 32): strings.Repeat("名", 32), "ＡＭＹ": "AMY", "नमस्ते": "नमस्ते",
		"さくら桜": "さくら桜", "한글漢字": "한글漢字",
	}
	for s, display := range good {
		n, err := ParseNick(s)
		if err != nil || n.Display != display {
			t.Errorf("ParseNick(%q) = %+v, %v; want display %q", s, n, err, display)
		}
	}
	bad := []string{"", "a b", "a\x00", "a\u202eb", "tab\t", strings.Repeat("名", 33), "emoji😀", "\xff",
		"аdmin", "bοb", "𝐚𝐝𝐦𝐢𝐧", "adminʼ", "admin\u3164", "\u3164", "x\u200by", "\u0301a", "a\x1b[31m",
		"a\u0085", "a\x7f", "latin한글かな", strings.Repeat("x", 200)}
	for _, s := range bad {
		if n, err := ParseNick(s); !errors.Is(err, ErrBadNick) {
			t.Errorf("ParseNick(%q) = %+v, %v; want bad_nick", s, n, err)
		}
	}
}

func TestNameKeys(t *testing.T) {
	same := [][]string{
		{"admin", "Admin", "ADMIN", "ａｄｍｉｎ", "admın"},
		{"bob1", "bobl", "BOBl"},
		{"modern", "rnodern"},
		{"Å", "å", "A\u030a"},
	}
	for _, group := range same {
		want, err := ParseNick(group[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range group[1:] {
			if n, err := ParseNick(s); err != nil || n.Key != want.Key {
				t.Errorf("key of %q = %q (%v), want %q as for %q", s, n.Key, err, want.Key, group[0])
			}
		}
	}
	if a, b := mustNick(t, "amy"), mustNick(t, "ann"); a.Key == b.Key {
		t.Fatal("different nicks share a key")
	}
	r, err := ParseRoom("LOBBY")
	if err != nil || r.Display != Lobby {
		t.Fatalf("ParseRoom(LOBBY) = %+v, %v", r, err)
	}
	if _, err := ParseRoom("lоbby"); !errors.Is(err, ErrBadRoom) { // Cyrillic о
		t.Fatalf("mixed-script room: %v", err)
	}
}

func mustNick(t *testing.T, s string) Name {
	t.Helper()
	n, err := ParseNick(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBodyControl(t *testing.T) {
	for _, ok := range []string{"hi", "two\nlines", "a\tb", "小明 ✓", "\u202eok"} {
		if r, bad := BodyControl(ok); bad {
			t.Errorf("BodyControl(%q) = %U", ok, r)
		}
	}
	for _, s := range []string{"\x1b[31mred", "\x01", "cr\r", "del\x7f", "c1\u0085", "\x00"} {
		if _, bad := BodyControl(s); !bad {
			t.Errorf("BodyControl(%q) passed", s)
		}
	}
}

func TestDuplicateKeys(t *testing.T) {
	bad := []string{
		`{"type":"say","type":"dm"}`,
		`{"type":"say","body":"a","body":"b"}`,
		`{"type":"say","\u0074ype":"dm"}`,
		`{"body":"x", "type" : "say" ,"ref":"1","ref":"2"}`,
	}
	for _, b := range bad {
		var req Request
		if err := DecodeRequest([]byte(b), &req); !errors.Is(err, ErrBadJSON) {
			t.Errorf("DecodeRequest(%s) = %v, want bad_json", b, err)
		}
	}
	good := []string{
		`{"type":"say","body":"{\"type\":1,\"type\":2}"}`,
		`{"type":"say","body":"a","x":{"type":1,"type":2},"y":["type","type"]}`,
		`{"type":"say","body":"\"type\""}`,
	}
	for _, b := range good {
		var req Request
		if err := DecodeRequest([]byte(b), &req); err != nil {
			t.Errorf("DecodeRequest(%s) = %v", b, err)
		}
	}
}

func TestSentinelAndCodeOf(t *testing.T) {
	remote := &Error{Code: CodeNickTaken, Msg: "from the wire"}
	if !errors.Is(remote, ErrNickTaken) || errors.Is(remote, ErrBadNick) {
		t.Fatal("errors.Is must match on code")
	}
	if Sentinel(CodeRateLimited) != ErrRateLimited || Sentinel("nope") != nil {
		t.Fatal("Sentinel lookup")
	}
	if !CodeBadFrame.Fatal() || CodeBadJSON.Fatal() {
		t.Fatal("Fatal")
	}
}

// chunkReader returns its chunks one Read at a time.
type chunkReader struct{ chunks [][]byte }

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func readAll(t *testing.T, src io.Reader) []string {
	t.Helper()
	r := NewReader(src, 0)
	var types []string
	for {
		body, err := r.Next()
		if err == io.EOF {
			return types
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		var req Request
		if err := DecodeRequest(body, &req); err != nil {
			t.Fatalf("decode %q: %v", body, err)
		}
		types = append(types, req.Type)
	}
}

// TestHighlyRestrictiveScripts: names follow TR39's highly restrictive
// level exactly: Latin may go with Japanese, Chinese with Bopomofo, or
// Korean; Latin with Cyrillic or Greek, and Hangul with Kana, may not.
func TestHighlyRestrictiveScripts(t *testing.T) {
	for _, ok := range []string{"Go语言", "小明abc", "Tom王", "たなかTanaka", "김민수kim", "Rust中文", "ㄅㄆ中文a", "漢字かなカナ", "한국어漢字", "amy", "Ελένη", "Иван"} {
		if _, err := ParseNick(ok); err != nil {
			t.Errorf("ParseNick(%q): %v", ok, err)
		}
		if _, err := ParseRoom(ok); err != nil {
			t.Errorf("ParseRoom(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"аdmin", "pαypal", "Ivanиван", "한글かな", "ㄅㄆかな", "ㄅ한", "Ελένηкот", "abcש"} {
		if _, err := ParseNick(bad); !errors.Is(err, ErrBadNick) {
			t.Errorf("ParseNick(%q) = %v, want bad_nick", bad, err)
		}
	}
}
