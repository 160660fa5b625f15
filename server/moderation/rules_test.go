package moderation

import (
	"errors"
	"testing"
	"time"

	"parley/codec"
)

func TestCheckRanks(t *testing.T) {
	r := &Room{Owner: "own", Ops: map[string]bool{"op1": true, "op2": true}}
	owner, op, member := Actor{Account: "own"}, Actor{Account: "op1"}, Actor{Account: "m"}
	admin, guest := Actor{Account: "adm", Admin: true}, Actor{}
	cases := []struct {
		who    Actor
		act    Action
		target string
		ok     bool
	}{
		{owner, ActOp, "m", true},
		{op, ActOp, "m", false}, // only the owner names operators
		{owner, ActDeop, "op1", true},
		{op, ActDeop, "op2", false},
		{op, ActKick, "m", true},
		{op, ActKick, "op2", false},   // not another operator
		{op, ActBan, "own", false},    // not the owner
		{owner, ActBan, "own", false}, // the owner cannot ban itself
		{owner, ActBan, "op1", true},
		{admin, ActBan, "own", true}, // a server admin can
		{member, ActKick, "x", false},
		{member, ActTopic, "", false},
		{op, ActTopic, "", true},
		{op, ActPrivate, "", true},
		{guest, ActKick, "m", false},
		{admin, ActOp, "m", true},
	}
	for _, c := range cases {
		err := r.Check(c.who, c.act, c.target)
		if (err == nil) != c.ok {
			t.Errorf("%+v %s %q: err %v, want ok=%v", c.who, c.act, c.target, err, c.ok)
		}
		if err != nil && !errors.Is(err, codec.ErrForbidden) {
			t.Errorf("%s: %v is not forbidden", c.act, err)
		}
	}
	if err := (&Room{}).Check(Actor{Account: "a"}, ActKick, "b"); err == nil {
		t.Error("a room without an owner let an account kick")
	}
}

func TestLimitsEndOnTime(t *testing.T) {
	now := time.Now()
	r := &Room{}
	d := int64(60)
	until, err := ParseDuration(&d, now)
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Apply(ActBan, "a", Limit{Until: until})
	_ = r.Apply(ActMute, "b", Limit{})
	if _, ok := r.Banned("a", now.UnixMilli()); !ok {
		t.Fatal("a is not banned")
	}
	if _, ok := r.Banned("a", until); ok {
		t.Fatal("a is still banned at its end")
	}
	if r.NextEnd() != until {
		t.Fatalf("next end %d, want %d", r.NextEnd(), until)
	}
	bans, mutes := r.Expire(until)
	if len(bans) != 1 || bans[0].Key != "a" || bans[0].Until != until || len(mutes) != 0 || len(r.Bans) != 0 || len(r.Mutes) != 1 {
		t.Fatalf("expire dropped bans %v mutes %v; left %v %v", bans, mutes, r.Bans, r.Mutes)
	}
	if _, ok := r.Muted("b", until*2); !ok {
		t.Fatal("a mute without an end ended")
	}
}

func TestBadInput(t *testing.T) {
	for _, d := range []int64{0, -5, codec.MaxDuration + 1, 1 << 62} {
		if _, err := ParseDuration(&d, time.Now()); !errors.Is(err, codec.ErrBadRequest) {
			t.Errorf("duration %d: %v", d, err)
		}
	}
	for _, s := range []string{"a\x1b[2J", "two\nlines", string(make([]byte, codec.MaxTopic+1))} {
		if err := CheckText("topic", s, codec.MaxTopic); !errors.Is(err, codec.ErrBadRequest) {
			t.Errorf("topic %q: %v", s, err)
		}
	}
	r := &Room{}
	for i := 0; i < MaxOperators; i++ {
		if err := r.Apply(ActOp, string(rune('A'+i)), Limit{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Apply(ActOp, "one more", Limit{}); err == nil {
		t.Fatal("a room took more than MaxOperators")
	}
}

func TestAuditPages(t *testing.T) {
	l := NewAuditLog(5, nil)
	for i := 0; i < 8; i++ {
		room := "a"
		if i%2 == 1 {
			room = "b"
		}
		l.Append(codec.AuditEntry{Room: room, Action: "kick"})
	}
	if l.Len() != 5 {
		t.Fatalf("len %d", l.Len())
	}
	all, more := l.Page("", true, 0, 3)
	if len(all) != 3 || !more || all[0].Seq != 6 || all[2].Seq != 8 {
		t.Fatalf("newest page %+v more %v", all, more)
	}
	older, more := l.Page("", true, 6, 10)
	if len(older) != 2 || more || older[0].Seq != 4 {
		t.Fatalf("older page %+v more %v", older, more)
	}
	a, _ := l.Page("a", false, 0, 10)
	for _, e := range a {
		if e.Room != "a" {
			t.Fatalf("room a's page holds %+v", e)
		}
	}
	again := NewAuditLog(5, all)
	if e := again.Append(codec.AuditEntry{}); e.Seq != 9 {
		t.Fatalf("a reloaded log numbered on from %d", e.Seq)
	}
}
