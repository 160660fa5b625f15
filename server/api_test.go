package server

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"parley/api"
	"parley/codec"
	"parley/server/tlstest"
)

// The server API (docs/API.md) over real HTTP, against members on real
// TCP, TLS and WebSocket connections.

// apiKeys writes a read-write key and a read-only key and returns their
// specs and secrets.
type apiKeyFiles struct {
	dir               string
	write, read       string // the keys
	writeSpec, roSpec string
}

func newAPIKeys(t *testing.T) apiKeyFiles {
	k := apiKeyFiles{dir: t.TempDir(), write: strings.Repeat("w", 40), read: strings.Repeat("r", 40)}
	k.writeSpec, k.roSpec = "app="+filepath.Join(k.dir, "app.key"), "viewer="+filepath.Join(k.dir, "ro.key")
	if err := os.WriteFile(filepath.Join(k.dir, "app.key"), []byte(k.write+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.dir, "ro.key"), []byte(k.read+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// withAPI serves the API with keys on 127.0.0.1:0.
func (k apiKeyFiles) withAPI(cfg *Config) {
	cfg.APIAddr = "127.0.0.1:0"
	cfg.APIKeys, cfg.APIReadKeys = []string{k.writeSpec}, []string{k.roSpec}
}

// apiClient calls srv's API with key.
func apiClient(srv *Server, key string) *api.Client {
	return api.NewClient("http://"+srv.APIAddr().String(), key, nil)
}

// refusedWith fails unless err is the API's refusal with code.
func refusedWith(t *testing.T, what string, err error, code codec.Code) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Code != string(code) {
		t.Fatalf("%s: got %v, want the API's %s", what, err, code)
	}
}

// rawCall posts body to method with header values, and returns the
// status and the decoded error code.
func rawCall(t *testing.T, srv *Server, method string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.APIAddr().String()+"/api/"+method, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &e)
	return resp.StatusCode, e.Code
}

// TestAPIRefusals: every way a request is refused, with its status and
// code, and that a refused request changes nothing.
func TestAPIRefusals(t *testing.T) {
	keys := newAPIKeys(t)
	srv := startServer(t, Config{APIAddr: "127.0.0.1:0", APIKeys: []string{keys.writeSpec}, APIReadKeys: []string{keys.roSpec}, MaxBody: 1000})
	ctx := t.Context()
	amy := loggedIn(t, srv, "amy")
	hello := []byte(`{"room":"lobby","from":"bot","body":"hi"}`)
	jsonCT := map[string]string{"Content-Type": "application/json"}
	for _, tc := range []struct {
		what   string
		header map[string]string
		method string
		body   []byte
		status int
		code   codec.Code
	}{
		{"no key", jsonCT, "publish", hello, 401, codec.CodeBadToken},
		{"wrong key", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + strings.Repeat("x", 40)}, "publish", hello, 401, codec.CodeBadToken},
		{"a key one byte short", map[string]string{"Content-Type": "application/json", "X-API-Key": keys.write[1:]}, "publish", hello, 401, codec.CodeBadToken},
		{"read-only key writes", map[string]string{"Content-Type": "application/json", "X-API-Key": keys.read}, "publish", hello, 403, codec.CodeForbidden},
		{"not JSON's content type", map[string]string{"Authorization": "Bearer " + keys.write}, "publish", hello, 415, codec.CodeBadRequest},
		{"unknown method", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + keys.write}, "teleport", []byte(`{}`), 404, codec.CodeUnknownType},
		{"oversized request", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + keys.write}, "publish", bytes.Repeat([]byte(" "), 2<<20), 413, codec.CodeBodyTooLarge},
		{"bad JSON", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + keys.write}, "publish", []byte(`{"room":`), 400, codec.CodeBadRequest},
		{"unknown field", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + keys.write}, "publish", []byte(`{"room":"lobby","from":"bot","body":"hi","sender":"x"}`), 400, codec.CodeBadRequest},
	} {
		status, code := rawCall(t, srv, tc.method, tc.body, tc.header)
		if status != tc.status || code != string(tc.code) {
			t.Errorf("%s: got %d %s, want %d %s", tc.what, status, code, tc.status, tc.code)
		}
	}
	app := apiClient(srv, keys.write)
	_, err := app.Publish(ctx, api.Publish{Room: "nowhere", From: "bot", Body: "hi"})
	refusedWith(t, "publish to a room that does not exist", err, codec.CodeNotFound)
	_, err = app.Publish(ctx, api.Publish{Room: "#bad room", From: "bot", Body: "hi"})
	refusedWith(t, "publish to a bad room name", err, codec.CodeBadRoom)
	_, err = app.Publish(ctx, api.Publish{Room: "lobby", From: "not a nick!", Body: "hi"})
	refusedWith(t, "publish from a bad name", err, codec.CodeBadNick)
	_, err = app.Publish(ctx, api.Publish{Room: "lobby", From: "bot", Body: strings.Repeat("x", 1001)})
	refusedWith(t, "publish of a body over --max-body", err, codec.CodeBodyTooLarge)
	_, err = app.Publish(ctx, api.Publish{Room: "lobby", From: "bot", Body: "hi", ReplyTo: 999})
	refusedWith(t, "a reply to no message", err, codec.CodeNotFound)
	_, err = app.Presence(ctx, "nobody")
	refusedWith(t, "presence of an account never seen", err, codec.CodeNotFound)
	_, err = app.RoomInfo(ctx, "nowhere")
	refusedWith(t, "info of a room that does not exist", err, codec.CodeNotFound)
	_, err = app.DM(ctx, api.DM{From: "bot", Body: "hi"})
	refusedWith(t, "a dm to no account", err, codec.CodeBadRequest)
	err = app.Moderate(ctx, api.Moderate{Room: "den", Action: "promote", Account: "amy"})
	refusedWith(t, "an unknown action", err, codec.CodeBadRequest)
	_, err = app.Batch(ctx, api.Batch{Requests: make([]api.BatchRequest, api.MaxBatch+1)})
	refusedWith(t, "a batch over the bound", err, codec.CodeBadRequest)
	// Nothing of it reached the room.
	amy.send(&codec.Say{Room: "lobby", Body: "marker", Ref: "m"})
	if ev := amy.untilAck("m"); ev.Seq != 1 {
		t.Fatalf("amy's message is seq %d: a refused publish took a seq", ev.Seq)
	}
	// The read-only key reads.
	ro := apiClient(srv, keys.read)
	if _, err := ro.Stats(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ro.RoomInfo(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
}

// TestAPIPublishReachesEveryTransport: a message the API publishes
// reaches members on TCP, TLS and WebSocket with the room's next seq and
// the api mark, is in the room's history (through the protocol and
// through the API), and waits for the store with --data-dir.
func TestAPIPublishReachesEveryTransport(t *testing.T) {
	ca := tlstest.NewCA(t)
	keys := newAPIKeys(t)
	dir := t.TempDir()
	cert, key := ca.Issue(t, dir, 7)
	srv := startServer(t, Config{TLSAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", TLSCert: cert, TLSKey: key,
		DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", APIKeys: []string{keys.writeSpec}})
	tcp := loggedIn(t, srv, "tcp")
	sec, _ := dialTLS(t, srv, ca)
	sec.login("sec")
	web := dialWSS(t, srv, ca)
	web.login("web")
	for _, c := range []*tclient{tcp, sec, web} {
		c.joinRoom("den")
	}
	tcp.send(&codec.Say{Room: "den", Body: "first", Ref: "f"})
	tcp.untilAck("f")
	// The API is served over HTTPS: the server has a certificate.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}}
	app := api.NewClient("https://"+srv.APIAddr().String(), keys.write, hc)
	ctx := t.Context()
	got, err := app.Publish(ctx, api.Publish{Room: "den", From: "announcer", Body: "maintenance at 5", ReplyTo: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 2 || got.Room != "den" {
		t.Fatalf("publish answered %+v, want seq 2 in den", got)
	}
	for _, c := range []*tclient{tcp, sec, web} {
		ev := c.until("the published message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == "den" && ev.Seq == 2 })
		if ev.From != "announcer" || ev.Body != "maintenance at 5" || !ev.API || ev.ReplyTo != 1 {
			t.Fatalf("a member got %+v", ev)
		}
	}
	tcp.send(&codec.History{Room: "den", Ref: "h"})
	page := tcp.until("history", func(ev codec.Event) bool { return ev.Type == codec.TypeHistory && ev.Ref == "h" })
	if n := len(page.Msgs); n != 2 || page.Msgs[1].Seq != 2 || !page.Msgs[1].API {
		t.Fatalf("history holds %+v", page.Msgs)
	}
	hist, err := app.History(ctx, api.History{Room: "den"})
	if err != nil {
		t.Fatal(err)
	}
	var last codec.Event
	if len(hist.Msgs) != 2 || json.Unmarshal(hist.Msgs[1], &last) != nil || last.Body != "maintenance at 5" || last.Seq != 2 {
		t.Fatalf("the API's history: %s", hist.Msgs)
	}
	// A message under a member's nick is not that member's to edit.
	got, err = app.Publish(ctx, api.Publish{Room: "den", From: "tcp", Body: "system notice"})
	if err != nil {
		t.Fatal(err)
	}
	tcp.refused(&codec.Edit{Room: "den", Seq: got.Seq, Body: "forged", Ref: "e"}, "e", codec.CodeForbidden)
	// A bot account's message carries its account: the bot may edit it.
	got, err = app.Publish(ctx, api.Publish{Room: "den", From: "helper", Account: "helper-bot", Body: "@tcp hi"})
	if err != nil {
		t.Fatal(err)
	}
	ev := tcp.until("the bot's message", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Seq == got.Seq })
	if ev.Account != "helper-bot" || len(ev.Mentions) != 1 || ev.Mentions[0] != "tcp" {
		t.Fatalf("the bot's message: %+v", ev)
	}
}

// TestAPIRoomsAndPeople: room_create, room_set, room_info, rooms,
// room_members, moderate, presence, dm, disconnect, stats and batch, each
// seen from a member's side too.
func TestAPIRoomsAndPeople(t *testing.T) {
	s := newSigner(t)
	keys := newAPIKeys(t)
	srv := authServer(t, s, "required", keys.withAPI)
	app := apiClient(srv, keys.write)
	ctx := t.Context()
	topic, private := "releases", true
	if err := app.CreateRoom(ctx, api.RoomCreate{Room: "Ship", Owner: "amy", Topic: &topic, Private: &private}); err != nil {
		t.Fatal(err)
	}
	refusedWith(t, "a second room_create", app.CreateRoom(ctx, api.RoomCreate{Room: "ship"}), codec.CodeBadRequest)
	info, err := app.RoomInfo(ctx, "ship")
	if err != nil {
		t.Fatal(err)
	}
	if info.Room != "ship" || info.Owner != "amy" || info.Topic != "releases" || !info.Private || info.Members != 0 {
		t.Fatalf("room_info: %+v", info)
	}
	// A created room takes a message before anyone is in it.
	if p, err := app.Publish(ctx, api.Publish{Room: "ship", From: "ci", Body: "build 1 green"}); err != nil || p.Seq != 1 {
		t.Fatalf("publish to the empty room: %+v %v", p, err)
	}
	amy := account(t, srv, s, "amy", nil)
	amy.ok(&codec.Join{Room: "ship", Ref: "j"}, "j") // its owner passes privacy
	bob := account(t, srv, s, "bob", nil)
	bob.refused(&codec.Join{Room: "ship", Ref: "j"}, "j", codec.CodeInviteOnly)
	if err := app.SetRoom(ctx, api.RoomSet{Room: "ship", Private: new(bool)}); err != nil {
		t.Fatal(err)
	}
	amy.until("the room made public", func(ev codec.Event) bool {
		return ev.Type == codec.TypeMod && ev.Action == "public" && ev.By == "api:app"
	})
	bob.ok(&codec.Join{Room: "ship", Ref: "j2"}, "j2")
	owner := "bob"
	if err := app.SetRoom(ctx, api.RoomSet{Room: "ship", Owner: &owner}); err != nil {
		t.Fatal(err)
	}
	if info, _ = app.RoomInfo(ctx, "ship"); info.Owner != "bob" || info.Members != 2 || info.Seq != 1 {
		t.Fatalf("after room_set: %+v", info)
	}
	members, err := app.RoomMembers(ctx, api.RoomMembers{Room: "ship", Limit: 1})
	if err != nil || members.Count != 2 || len(members.Members) != 1 || !members.More || members.Members[0].Nick != "amy" {
		t.Fatalf("room_members page 1: %+v %v", members, err)
	}
	members, _ = app.RoomMembers(ctx, api.RoomMembers{Room: "ship", After: "amy"})
	if len(members.Members) != 1 || members.Members[0].Nick != "bob" || members.More {
		t.Fatalf("room_members page 2: %+v", members)
	}
	list, err := app.Rooms(ctx)
	if err != nil || len(list.Rooms) < 2 {
		t.Fatalf("rooms: %+v %v", list, err)
	}
	// moderate: a ban takes bob out of the room and keeps him out.
	if err := app.Moderate(ctx, api.Moderate{Room: "ship", Action: "ban", Account: "amy", Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	amy.untilLeft("amy", "ship", codec.ReasonBan)
	amy.refused(&codec.Join{Room: "ship", Ref: "j3"}, "j3", codec.CodeBanned)
	// presence
	p, err := app.Presence(ctx, "AMY")
	if err != nil || !p.Online || p.Nick != "amy" || p.Sessions != 1 {
		t.Fatalf("presence of amy: %+v %v", p, err)
	}
	// dm: delivered to a session online; kept for an account offline.
	sent, err := app.DM(ctx, api.DM{Account: "bob", From: "support", Body: "your ticket is closed"})
	if err != nil || !sent.Delivered {
		t.Fatalf("dm to bob: %+v %v", sent, err)
	}
	dm := bob.until("the dm", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.To != "" })
	if dm.From != "support" || !dm.API || dm.Body != "your ticket is closed" {
		t.Fatalf("bob got %+v", dm)
	}
	sent, err = app.DM(ctx, api.DM{Account: "cyd", From: "support", Body: "welcome"})
	if err != nil || !sent.Stored {
		t.Fatalf("dm to cyd, never seen: %+v %v", sent, err)
	}
	cyd := account(t, srv, s, "cyd", nil)
	if ev := cyd.until("the dm that waited", func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.To != "" }); ev.Body != "welcome" || !ev.API {
		t.Fatalf("cyd got %+v", ev)
	}
	// disconnect ends both of bob's sessions; their resume does not
	// bring the nick back.
	bob2 := account(t, srv, s, "bob", nil)
	gone, err := app.Disconnect(ctx, api.Disconnect{Account: "bob", Message: "account closed"})
	if err != nil || gone.Sessions != 2 {
		t.Fatalf("disconnect: %+v %v", gone, err)
	}
	for _, c := range []*tclient{bob, bob2} {
		bye := c.until("bye", func(ev codec.Event) bool { return ev.Type == codec.TypeBye })
		if bye.Reason != codec.ReasonDisconnected || bye.Message != "account closed" {
			t.Fatalf("bye %+v", bye)
		}
	}
	eventually(t, "bob offline", func() bool {
		p, err := app.Presence(ctx, "bob")
		return err == nil && !p.Online
	})
	// broadcast: one message to several rooms, each answered.
	cyd.ok(&codec.Join{Room: "ship", Ref: "j"}, "j")
	bc, err := app.Broadcast(ctx, api.Broadcast{Rooms: []string{"ship", "lobby", "nowhere"}, From: "ops", Body: "maintenance"})
	if err != nil || len(bc.Results) != 3 || bc.Results[0].Seq != 2 || bc.Results[1].Seq == 0 ||
		bc.Results[2].Error == nil || bc.Results[2].Error.Code != string(codec.CodeNotFound) {
		t.Fatalf("broadcast: %+v %v", bc, err)
	}
	for _, room := range []string{"ship", "lobby"} {
		if ev := cyd.until("the broadcast in "+room, func(ev codec.Event) bool { return ev.Type == codec.TypeMsg && ev.Room == room && ev.API }); ev.Body != "maintenance" {
			t.Fatalf("cyd got %+v", ev)
		}
	}
	_, err = app.Broadcast(ctx, api.Broadcast{From: "ops", Body: "x"})
	refusedWith(t, "a broadcast to no room", err, codec.CodeBadRequest)
	// batch: each request answered in order, a failure among them.
	var results api.Batched
	results, err = app.Batch(ctx, api.Batch{Requests: []api.BatchRequest{
		{Method: "stats", Params: json.RawMessage(`{}`)},
		{Method: "presence", Params: json.RawMessage(`{"account":"nobody"}`)},
		{Method: "publish", Params: json.RawMessage(`{"room":"ship","from":"ci","body":"build 2"}`)},
		{Method: "batch", Params: json.RawMessage(`{}`)},
	}})
	if err != nil || len(results.Replies) != 4 {
		t.Fatalf("batch: %+v %v", results, err)
	}
	var st api.Stats
	var pub api.Published
	if json.Unmarshal(results.Replies[0].Result, &st) != nil || st.Online != 2 {
		t.Errorf("batch stats: %s", results.Replies[0].Result)
	}
	if e := results.Replies[1].Error; e == nil || e.Code != string(codec.CodeNotFound) {
		t.Errorf("batch presence: %+v", results.Replies[1])
	}
	if json.Unmarshal(results.Replies[2].Result, &pub) != nil || pub.Seq != 3 {
		t.Errorf("batch publish: %s", results.Replies[2].Result)
	}
	if e := results.Replies[3].Error; e == nil || e.Code != string(codec.CodeUnknownType) {
		t.Errorf("a batch in a batch: %+v", results.Replies[3])
	}
}

// TestAPIKeysRateAndReload: a key over its rate gets rate_limited (a
// batch counts each request), and a reload swaps the keys.
func TestAPIKeysRateAndReload(t *testing.T) {
	keys := newAPIKeys(t)
	srv := startServer(t, Config{APIAddr: "127.0.0.1:0", APIKeys: []string{keys.writeSpec}, APIRate: 0.001})
	app := apiClient(srv, keys.write)
	ctx := t.Context()
	// The burst is 2 at least (twice the rate, rounded up to whole
	// requests): the first batch of 2 passes, the next is refused.
	two := api.Batch{Requests: []api.BatchRequest{{Method: "stats"}, {Method: "stats"}}}
	if _, err := app.Batch(ctx, two); err != nil {
		t.Fatal(err)
	}
	_, err := app.Stats(ctx)
	refusedWith(t, "a request past the key's rate", err, codec.CodeRateLimited)

	fresh := strings.Repeat("n", 48)
	if err := os.WriteFile(filepath.Join(keys.dir, "app.key"), []byte(fresh+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	_, err = app.Stats(ctx)
	refusedWith(t, "the old key after a reload", err, codec.CodeBadToken)
	_, err = apiClient(srv, fresh).Stats(ctx)
	refusedWith(t, "the new key shares the old one's rate (same ID)", err, codec.CodeRateLimited)
	// A reload that cannot read a key keeps the keys in force.
	if err := os.WriteFile(filepath.Join(keys.dir, "app.key"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(); err == nil {
		t.Fatal("a reload with a short key succeeded")
	}
	_, err = apiClient(srv, fresh).Stats(ctx)
	refusedWith(t, "the key in force after a failed reload", err, codec.CodeRateLimited)
}

// TestAPIOpenAPIServed: the document served is the checked-in one, and it
// describes every method the API routes, and nothing else.
func TestAPIOpenAPIServed(t *testing.T) {
	keys := newAPIKeys(t)
	srv := startServer(t, Config{APIAddr: "127.0.0.1:0", APIKeys: []string{keys.writeSpec}})
	resp, err := http.Get("http://" + srv.APIAddr().String() + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(data, api.OpenAPI) {
		t.Fatal("GET /openapi.json is not parley/api's document")
	}
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	// Every path the document lists answers (not 404 unknown_type), and
	// a method it does not list does.
	for path := range doc.Paths {
		if path == "/openapi.json" {
			continue
		}
		status, code := rawCall(t, srv, strings.TrimPrefix(path, "/api/"), []byte(`{}`),
			map[string]string{"Content-Type": "application/json", "X-API-Key": keys.write})
		if status == http.StatusNotFound && code == string(codec.CodeUnknownType) {
			t.Errorf("%s is in the document but not routed", path)
		}
	}
	if status, code := rawCall(t, srv, "nope", []byte(`{}`), map[string]string{"Content-Type": "application/json", "X-API-Key": keys.write}); status != 404 || code != string(codec.CodeUnknownType) {
		t.Errorf("an unknown method answered %d %s", status, code)
	}
}

// dialWSS upgrades a TLS connection to srv's /ws (the web port serves
// HTTPS when the server has a certificate).
func dialWSS(t *testing.T, srv *Server, ca *tlstest.CA) *tclient {
	t.Helper()
	d := ws.Dialer{Timeout: waitFor, TLSConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}
	conn, br, _, err := d.Dial(t.Context(), "wss://"+srv.WSAddr().String()+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var r io.Reader = conn
	if br != nil {
		r = br
	}
	c := &tclient{t: t, conn: conn, events: make(chan codec.Event, 4096), done: make(chan struct{}), ws: &wsPeer{}}
	go c.readWS(r)
	return c
}

// TestBrowserShowsAppMessages: in the web chat (a real Chromium), a
// message the application posts under the reader's own nick is marked
// "app" and is not shown as the reader's, so it offers no edit.
func TestBrowserShowsAppMessages(t *testing.T) {
	chrome := needChromium(t)
	keys := newAPIKeys(t)
	srv := startServer(t, Config{WSAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", APIKeys: []string{keys.writeSpec}})
	page := newBrowser(t, chrome)()
	page.login("http://"+srv.WSAddr().String()+"/", "amy")
	app := apiClient(srv, keys.write)
	if _, err := app.Publish(t.Context(), api.Publish{Room: "lobby", From: "amy", Body: "a notice under your name"}); err != nil {
		t.Fatal(err)
	}
	page.waitFor("the app's message, marked", `[...document.querySelectorAll("#messages li")].some(li => li.textContent.includes("a notice under your name") && li.querySelector(".app") && !li.classList.contains("mine"))`)
}
