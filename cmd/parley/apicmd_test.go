package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/api"
	"parley/codec"
	"parley/server"
	"parley/server/servertest"
)

// TestAPICommand: parley keygen --secret writes a key the server takes,
// and parley api calls the server API with it: a publish reaches a
// member, parameters come from standard input too, and a refusal exits 1
// with the API's error.
func TestAPICommand(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	name := filepath.Join(dir, "app")
	if code := run([]string{"keygen", "--secret", "--out", name}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("keygen --secret: exit %d: %s", code, errOut.String())
	}
	info, err := os.Stat(name + ".secret")
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the secret file: %v %v", info, err)
	}
	if code := run([]string{"keygen", "--secret", "--out", name}, strings.NewReader(""), &out, &errOut); code == 0 {
		t.Fatal("keygen --secret overwrote a secret")
	}
	srv := servertest.Start(t, server.Config{APIAddr: "127.0.0.1:0", APIKeys: []string{name + ".secret"}})
	conn, err := net.DialTimeout("tcp", srv.Addr().String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(codec.MustEncode(&codec.Login{Nick: "amy"})); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	frames := codec.NewReader(conn, 0)
	if body, err := frames.Next(); err != nil || !bytes.Contains(body, []byte(`"welcome"`)) {
		t.Fatalf("login: %s %v", body, err)
	}
	url := "http://" + srv.APIAddr().String()
	out.Reset()
	args := []string{"api", "--url", url, "--key-file", name + ".secret", "publish", `{"room":"lobby","from":"ops","body":"deploy at 5"}`}
	if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("api publish: exit %d: %s", code, errOut.String())
	}
	var pub api.Published
	if err := json.Unmarshal(out.Bytes(), &pub); err != nil || pub.Seq != 1 || pub.Room != "lobby" {
		t.Fatalf("api publish printed %q (%v)", out.String(), err)
	}
	for {
		body, err := frames.Next()
		if err != nil {
			t.Fatal(err)
		}
		var ev codec.Event
		if err := codec.DecodeEvent(body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == codec.TypeMsg {
			if ev.Body != "deploy at 5" || ev.From != "ops" || !ev.API {
				t.Fatalf("amy got %+v", ev)
			}
			break
		}
	}
	out.Reset()
	if code := run([]string{"api", "--url", url, "--key-file", name + ".secret", "stats", "-"}, strings.NewReader("{}"), &out, &errOut); code != 0 {
		t.Fatalf("api stats from stdin: exit %d: %s", code, errOut.String())
	}
	var st api.Stats
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.Online != 1 {
		t.Fatalf("api stats printed %q (%v)", out.String(), err)
	}
	errOut.Reset()
	if code := run([]string{"api", "--url", url, "--key-file", name + ".secret", "presence", `{"account":"nobody"}`}, strings.NewReader(""), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `"code":"not_found"`) {
		t.Fatalf("a refused call: exit %d, %q", code, errOut.String())
	}
	if code := run([]string{"api", "--url", url, "stats"}, strings.NewReader(""), &out, &errOut); code != 2 {
		t.Fatalf("no key: exit %d", code)
	}
}
