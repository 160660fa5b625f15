// Command attacks runs the attacks of docs/RELIABILITY.md "Round 3" from
// outside, as an attacker would, against a `parley serve` process started
// with the default flags plus only the flag that turns the attacked
// feature on. Every attack targets 127.0.0.1 only, is bounded in count and
// time, and stops by itself.
//
//	go build -o bin/parley ./cmd/parley && go run ./scripts/attacks -row 1
//
// For each row it prints the server's RSS before, at its peak and 5 s
// after, its CPU time, a bystander's ping round trips (p50 and p99 while
// idle, just before, and under the attack), and what the row itself
// measures.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"parley/codec"
)

func main() {
	bin := flag.String("bin", "bin/parley", "the parley binary to attack")
	row := flag.Int("row", 0, "the attack to run: 1 to 7")
	by := flag.String("bystander", "", "run as the bystander of a server at this address")
	nick := flag.String("nick", "bystander", "the bystander's nick")
	acks := flag.String("acks", "", "instead of an attack: measure --data-dir's say acks for -bin and this binary, in turns")
	flag.Parse()
	if *by != "" {
		pinger(*by, *nick)
		return
	}
	if *acks != "" {
		durableAcks([]string{*acks, *bin})
		return
	}
	attacks := map[int]func(string){
		1: wsPingFlood, 2: httpFlood, 3: manyRooms, 4: resumeStorm, 5: historyFlood, 6: burstFlood, 7: refreshFlood,
	}
	run, ok := attacks[*row]
	if !ok {
		fmt.Fprintln(os.Stderr, "attacks: -row is 1 to 7")
		os.Exit(2)
	}
	run(*bin)
}

// target is a parley serve process.
type target struct {
	cmd                   *exec.Cmd
	addr, wsAddr, admAddr string
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs bin serve with args on free loopback ports.
func start(bin string, args ...string) *target {
	t := &target{addr: freeAddr(), wsAddr: freeAddr(), admAddr: freeAddr()}
	for i, a := range args {
		switch a {
		case "WS":
			args[i] = t.wsAddr
		case "ADMIN":
			args[i] = t.admAddr
		}
	}
	t.cmd = exec.Command(bin, append([]string{"serve", "--addr", t.addr, "--log-level", "error"}, args...)...)
	t.cmd.Stderr = os.Stderr
	if err := t.cmd.Start(); err != nil {
		panic(err)
	}
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", t.addr); err == nil {
			c.Close()
			break
		}
		if i > 500 {
			panic("the server did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return t
}

func (t *target) stop() { _ = t.cmd.Process.Kill(); _ = t.cmd.Wait() }

// rssMiB is the server's resident memory.
func (t *target) rssMiB() float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", t.cmd.Process.Pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpu is the server's user and system CPU time so far.
func (t *target) cpu() time.Duration {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.cmd.Process.Pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.Atoi(f[11])
	k, _ := strconv.Atoi(f[12])
	return time.Duration(u+k) * 10 * time.Millisecond
}

// fds is how many descriptors the server holds.
func (t *target) fds() int {
	d, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", t.cmd.Process.Pid))
	return len(d)
}

// metric reads one unlabeled value from the admin endpoint.
func (t *target) metric(name string) float64 {
	c, err := net.Dial("tcp", t.admAddr)
	if err != nil {
		return -1
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
	var sb strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			return v
		}
	}
	return -1
}

// client is a raw protocol connection.
type client struct {
	net.Conn
	r *codec.Reader
}

func dialFrom(addr string, src int) (*client, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if src > 0 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(src/250), byte(2+src%250))}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &client{Conn: c, r: codec.NewReader(c, 0)}, nil
}

func (c *client) send(m codec.Message) error {
	_, err := c.Write(codec.MustEncode(m))
	return err
}

// until reads events until match holds, within 5 s.
func (c *client) until(match func(codec.Event) bool) (codec.Event, error) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		body, err := c.r.Next()
		if err != nil {
			return codec.Event{}, err
		}
		var ev codec.Event
		if err := codec.DecodeEvent(body, &ev); err != nil {
			return ev, err
		}
		if match(ev) {
			return ev, nil
		}
	}
}

func login(addr, nick string, src int, extra func(*codec.Login)) (*client, codec.Event, error) {
	c, err := dialFrom(addr, src)
	if err != nil {
		return nil, codec.Event{}, err
	}
	l := &codec.Login{Nick: nick}
	if extra != nil {
		extra(l)
	}
	_ = c.send(l)
	ev, err := c.until(func(ev codec.Event) bool {
		return ev.Type == codec.TypeWelcome || ev.Type == codec.TypeError || ev.Type == codec.TypeBye
	})
	if err == nil && ev.Type != codec.TypeWelcome {
		err = fmt.Errorf("login %s: %s %s%s", nick, ev.Code, ev.Message, ev.Reason)
	}
	return c, ev, err
}

// bystander is a child process (this program with -bystander) that
// pings every 20 ms and prints each round trip: it runs apart from the
// attack's goroutines, so its figures are the server's, not this
// process's scheduling.
type bystander struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	phase string
	rtts  map[string][]time.Duration
	done  chan struct{}
}

var bystanders atomic.Int64

func watch(addr string) *bystander {
	b := &bystander{phase: "idle", rtts: map[string][]time.Duration{}, done: make(chan struct{})}
	b.cmd = exec.Command(os.Args[0], "-bystander", addr, "-nick", fmt.Sprint("bystander", bystanders.Add(1)))
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		panic(err)
	}
	b.cmd.Stderr = os.Stderr
	if err := b.cmd.Start(); err != nil {
		panic(err)
	}
	go func() {
		defer close(b.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ns, err := strconv.ParseInt(sc.Text(), 10, 64)
			if err == nil {
				b.record(time.Duration(ns))
			}
		}
	}()
	return b
}

// pinger is the bystander's process: it pings addr every 20 ms as nick
// and prints each round trip in nanoseconds, until killed.
func pinger(addr, nick string) {
	c, _, err := login(addr, nick, 0, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bystander:", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for {
		time.Sleep(20 * time.Millisecond)
		start := time.Now()
		if c.send(&codec.Ping{}) != nil {
			return
		}
		if _, err := c.until(func(ev codec.Event) bool { return ev.Type == codec.TypePong }); err != nil {
			fmt.Fprintln(w, int64(10*time.Second)) // no answer within 5 s
			w.Flush()
			return
		}
		fmt.Fprintln(w, int64(time.Since(start)))
		w.Flush()
	}
}

func (b *bystander) record(d time.Duration) {
	b.mu.Lock()
	b.rtts[b.phase] = append(b.rtts[b.phase], d)
	b.mu.Unlock()
}

func (b *bystander) set(phase string) {
	b.mu.Lock()
	b.phase = phase
	b.mu.Unlock()
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = append([]time.Duration(nil), d...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(p*float64(len(d))))]
}

func (b *bystander) report() string {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	idle, att := b.rtts["idle"], b.rtts["attack"]
	i50, i99, a50, a99 := pct(idle, .5), pct(idle, .99), pct(att, .5), pct(att, .99)
	return fmt.Sprintf("bystander ping idle p50 %v p99 %v; under attack p50 %v p99 %v (%.1f x, %.1f x; %d pings)",
		i50.Round(time.Microsecond), i99.Round(time.Microsecond), a50.Round(time.Microsecond), a99.Round(time.Microsecond),
		float64(a50)/float64(max(i50, 1)), float64(a99)/float64(max(i99, 1)), len(att))
}

// measure runs attack for at most d with a bystander watching, sampling
// the server's RSS, and prints the common figures.
func measure(t *target, d time.Duration, attack func(stop <-chan struct{})) {
	b := watch(t.addr)
	time.Sleep(2 * time.Second)
	before, cpu0 := t.rssMiB(), t.cpu()
	b.set("attack")
	var peak atomic.Int64
	stopSample := make(chan struct{})
	go func() {
		for {
			if r := int64(t.rssMiB()); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stopSample:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	stop := make(chan struct{})
	time.AfterFunc(d, func() { close(stop) })
	start := time.Now()
	attack(stop)
	took := time.Since(start)
	cpu := t.cpu() - cpu0
	b.set("after")
	close(stopSample)
	fmt.Println(b.report())
	time.Sleep(5 * time.Second)
	fmt.Printf("server RSS %.0f MiB before, %d MiB at the peak, %.0f MiB 5 s after; server CPU %v over the %v attack (%.0f %%)\n",
		before, peak.Load(), t.rssMiB(), cpu.Round(10*time.Millisecond), took.Round(10*time.Millisecond), 100*cpu.Seconds()/took.Seconds())
}
