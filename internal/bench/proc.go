package bench

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// clockTicks is the kernel's USER_HZ, the unit of CPU times in /proc.
const clockTicks = 100

// ProcStat is the RSS, CPU time and write calls of a process.
type ProcStat struct {
	RSS    int64         // bytes
	CPU    time.Duration // user + system
	Writes int64         // write system calls (syscw in /proc/PID/io: write, writev, sendmsg...)
}

// ReadProcStat reads /proc for pid (0 for this process).
func ReadProcStat(pid int) (ProcStat, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = fmt.Sprintf("/proc/%d", pid)
	}
	var st ProcStat
	raw, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return st, err
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: utime and stime are fields 14 and 15.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(fields) < 13 {
		return st, fmt.Errorf("short %s/stat", dir)
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	st.CPU = time.Duration(ut+stime) * time.Second / clockTicks
	if run, ok := threadsRuntime(dir); ok {
		st.CPU = run
	}
	if v, ok := procField(dir+"/status", "VmRSS:"); ok {
		kb, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
		st.RSS = kb << 10
	}
	if v, ok := procField(dir+"/io", "syscw:"); ok {
		st.Writes, _ = strconv.ParseInt(v, 10, 64)
	}
	return st, nil
}

// threadsRuntime sums the scheduler's run time of every thread of the
// process (se.sum_exec_runtime in /proc/PID/task/TID/sched, in ms to the
// ns). utime and stime count 10 ms ticks: at 10 messages a second to
// 1,000 receivers a server spends about 40 of them in a 10 s window, so
// one tick is a 2.5 % difference between two servers. A thread that ends
// between listing and reading is left out, and so is the run time of
// threads that ended earlier: the servers measured keep their threads.
func threadsRuntime(dir string) (time.Duration, bool) {
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		return 0, false
	}
	var total time.Duration
	read := 0
	for _, t := range tasks {
		v, ok := procField(dir+"/task/"+t.Name()+"/sched", "se.sum_exec_runtime")
		if !ok {
			continue // the thread ended
		}
		ms, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(v, ":")), 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(ms * float64(time.Millisecond))
		read++
	}
	return total, read > 0
}

// procField reads the value of the line of file that starts with key.
func procField(file, key string) (string, bool) {
	f, err := os.Open(file)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitListening dials addr until it answers or the timeout passes.
func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not start listening: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// boundAddr is the address a gnet engine listens on.
func boundAddr(eng gnet.Engine) net.Addr {
	fd, err := eng.Dup()
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil
	}
	if a, ok := sa.(*unix.SockaddrInet4); ok {
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}
