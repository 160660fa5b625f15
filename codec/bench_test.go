package codec

import (
	stdjson "encoding/json"
	"testing"
)

// typicalMsg is a room message of about 140 bytes on the wire.
var typicalMsg = Msg{From: "alice", Room: "lobby", Body: "hello everyone, the build is green again and the release goes out at five", TS: 1763716800000, Seq: 123456}

func BenchmarkEncodeSonic(b *testing.B) {
	buf := make([]byte, 0, 512)
	m := typicalMsg
	b.ReportAllocs()
	for b.Loop() {
		out, err := Append(buf[:0], &m)
		if err != nil {
			b.Fatal(err)
		}
		buf = out
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodeStdlib(b *testing.B) {
	m := typicalMsg
	m.Type = TypeMsg
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stdjson.Marshal(&m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSonic(b *testing.B) {
	body := MustEncode(&Say{Room: typicalMsg.Room, Body: typicalMsg.Body, Ref: "r-1"})[HeaderSize:]
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := DecodeRequest(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStdlib(b *testing.B) {
	body := MustEncode(&Say{Room: typicalMsg.Room, Body: typicalMsg.Body, Ref: "r-1"})[HeaderSize:]
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r = Request{}
		if err := stdjson.Unmarshal(body, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMentionedNames is what a say pays for mentions: a body
// without an @ (the common case), and one naming two nicks.
func BenchmarkMentionedNames(b *testing.B) {
	for name, body := range map[string]string{
		"none": "lunch at noon? the usual place, I will book a table for six people",
		"two":  "@amy lunch at noon? @Bob, the usual place, I will book a table for six",
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				MentionedNames(body)
			}
		})
	}
}
