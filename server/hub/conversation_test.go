package hub

import (
	"fmt"
	"strings"
	"testing"

	"parley/codec"
	"parley/server/broker"
)

// TestReactionsBoundedAndCounted: reactions that arrive from the log
// past a message's bounds (as from nodes that checked at once) are not
// kept; what is kept counts against --history-bytes, and comes off it
// when the message leaves the history.
func TestReactionsBoundedAndCounted(t *testing.T) {
	cfg := testConfig()
	cfg.HistoryLen, cfg.HistoryBytes = 10000, 1<<30 // room for every reaction's event
	h := New(cfg, broker.NewLocal())
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	r := h.rooms.acquire("den", h.newRoom)
	r.followed = true
	r.mu.Unlock()
	say := func(m broker.Message) uint64 {
		t.Helper()
		m.Room, m.TS = "den", 1764590000000
		seq, err := (handler{h}).Sequence(m)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	target := say(broker.Message{Key: "amy", Nick: "amy", Body: "react to me"})
	bare := h.histBytes.Load()
	react := func(who, emoji string) {
		m := broker.Message{Key: who, Nick: who, Body: emoji}
		m.Kind, m.Of, m.Account = codec.TypeReaction, target, who
		say(m)
	}
	before := heap()
	for i := range 3 * codec.MaxReactionsPerMsg {
		react(fmt.Sprint("u", i), fmt.Sprint(":e", i%(2*codec.MaxReactionKinds), ":"))
	}
	for i := range 2 * codec.MaxReactionsPerUser {
		react("greedy", fmt.Sprint(":e", i, ":"))
	}
	grew := heap() - before
	r.mu.Lock()
	e := r.hist[0]
	r.mu.Unlock()
	if e.seq != target || e.amend == nil {
		t.Fatalf("the message has no reactions: %+v", e)
	}
	if len(e.amend.reactions) > codec.MaxReactionKinds || e.amend.total > codec.MaxReactionsPerMsg {
		t.Fatalf("%d kinds, %d reactions kept: over %d and %d", len(e.amend.reactions), e.amend.total, codec.MaxReactionKinds, codec.MaxReactionsPerMsg)
	}
	if e.amend.total != codec.MaxReactionsPerMsg {
		t.Fatalf("%d reactions kept, want the bound %d", e.amend.total, codec.MaxReactionsPerMsg)
	}
	events := int64(len(r.hist) - 1)
	amended := h.histBytes.Load() - bare
	t.Logf("reactions: %d on one message cost %d bytes against --history-bytes besides their %d events (%d bytes of heap in all)", e.amend.total, e.amend.cost, events, grew)
	if int64(e.amend.cost) < int64(e.amend.total*reactorCost) || amended < int64(e.amend.cost) {
		t.Fatalf("the reactions' %d bytes are not counted: history grew by %d", e.amend.cost, amended)
	}
	r.mu.Lock()
	for len(r.hist) > 0 {
		h.forgetOldest(&r.hist)
	}
	r.mu.Unlock()
	if got := h.histBytes.Load(); got != 0 {
		t.Fatalf("an empty history still counts %d bytes", got)
	}
}

// TestAccountTableBounds: an account keeps MaxMarks markers, the least
// recently moved going first; the table keeps its bounds of markers in
// all and of nicks (maxMarksTotal and MaxRememberedNicks; smaller here,
// to fill them fast); a marker never moves back; a record from the store
// or another node merges forward only.
func TestAccountTableBounds(t *testing.T) {
	tab := newAccountTable(MemoryAccounts{})
	if tab.maxMarks != maxMarksTotal || tab.maxNicks != codec.MaxRememberedNicks {
		t.Fatalf("bounds %d and %d, want %d and %d", tab.maxMarks, tab.maxNicks, maxMarksTotal, codec.MaxRememberedNicks)
	}
	tab.maxMarks, tab.maxNicks = 4096, 2048
	for i := range codec.MaxMarks + 10 {
		tab.mark("amy", fmt.Sprint("#r", i), 5, int64(i))
	}
	marks := tab.marksOf("amy")
	if len(marks) != codec.MaxMarks {
		t.Fatalf("%d markers kept for one account, want %d", len(marks), codec.MaxMarks)
	}
	if _, ok := marks["#r0"]; ok {
		t.Fatal("the least recently moved marker was kept")
	}
	if seq, moved := tab.mark("amy", "#r20", 3, 1000); moved || seq != 5 {
		t.Fatalf("a marker moved back: %d, %v", seq, moved)
	}
	if rec, moved := tab.apply([]byte(`{"account":"amy","conv":"#r20","seq":9,"at":2000}`)); !moved || rec.Seq != 9 {
		t.Fatalf("a record ahead did not move the marker: %+v %v", rec, moved)
	}
	if _, moved := tab.apply([]byte(`{"account":"amy","conv":"#r20","seq":7,"at":3000}`)); moved || tab.marksOf("amy")["#r20"] != 9 {
		t.Fatal("a record behind moved the marker back")
	}

	before := heap()
	accounts := tab.maxMarks/4 + 1
	for a := range accounts {
		for c := range 4 {
			tab.mark(fmt.Sprint("acct", a), fmt.Sprint("#room", c), 1, 1)
		}
	}
	perMark := float64(heap()-before) / float64(tab.nmarks)
	if tab.nmarks > tab.maxMarks {
		t.Fatalf("%d markers kept, over %d", tab.nmarks, tab.maxMarks)
	}
	t.Logf("read markers: %.0f bytes of heap each (%d kept, at most %d)", perMark, tab.nmarks, tab.maxMarks)

	for i := range tab.maxNicks + 100 {
		n := fmt.Sprint("nick", i)
		tab.remember("a"+n, n, n, 1)
	}
	if len(tab.nicks) > tab.maxNicks {
		t.Fatalf("%d nicks remembered, over %d", len(tab.nicks), tab.maxNicks)
	}
	later := nickMemory.Milliseconds() + 10
	tab.remember("newcomer", "late", "late", later) // the table is full of nicks now forgotten
	if acct, _, ok := tab.byNick("late", later); !ok || acct != "newcomer" {
		t.Fatal("a full table of expired nicks took no new one")
	}
	if _, _, ok := tab.byNick("nick5", later); ok {
		t.Fatal("a nick past its memory still resolves")
	}
}

// TestMemoryOfflineBounds: MaxOfflineDMs wait per account and
// MaxOfflineBytes of bodies in all; Collect empties and gives them back
// in order.
func TestMemoryOfflineBounds(t *testing.T) {
	m := NewMemoryOffline()
	var refused error
	leave := func(account, body string) {
		m.Leave(broker.OfflineDM{Account: account, To: account, Body: body, TS: 1 << 62}, func(err error) { refused = err })
	}
	for i := range codec.MaxOfflineDMs + 1 {
		leave("amy", fmt.Sprint(i))
	}
	if refused == nil {
		t.Fatalf("message %d for one account was kept", codec.MaxOfflineDMs+1)
	}
	body := strings.Repeat("x", codec.DefaultMaxBody)
	for a := 0; refused == nil || a < 2; a++ {
		refused = nil
		for range codec.MaxOfflineDMs {
			if leave(fmt.Sprint("acct", a), body); refused != nil {
				break
			}
		}
		if a > codec.MaxOfflineBytes/len(body)/codec.MaxOfflineDMs+2 {
			t.Fatal("the bound in bytes never refused")
		}
	}
	if m.bytes > codec.MaxOfflineBytes {
		t.Fatalf("%d bytes wait, over %d", m.bytes, codec.MaxOfflineBytes)
	}
	var got []broker.OfflineDM
	m.Collect("amy", func(dms []broker.OfflineDM, _ error) { got = dms })
	if len(got) != codec.MaxOfflineDMs || got[0].Body != "0" || got[len(got)-1].Body != fmt.Sprint(codec.MaxOfflineDMs-1) {
		t.Fatalf("collected %d messages", len(got))
	}
	m.Collect("amy", func(dms []broker.OfflineDM, _ error) { got = dms })
	if len(got) != 0 {
		t.Fatalf("collected %d messages twice", len(got))
	}
}
