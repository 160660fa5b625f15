package main

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The Go runtime grows its heap as far as the process asks and returns
// it to the system slowly: without a limit, memory an attack made the
// server take stays taken. --memory-limit is the runtime's soft memory
// limit (debug.SetMemoryLimit): near it the collector runs harder and the
// scavenger gives pages back promptly. The default is three quarters of
// what the process may use (the cgroup's memory.max, else the machine's
// memory), leaving room for the kernel's socket buffers and the rest of
// the box. GOMEMLIMIT, when set, wins, as it does for any Go program.

// defaultMemoryLimit is three quarters of the memory the process may use,
// or 0 when it cannot be read.
func defaultMemoryLimit() int64 {
	avail := machineMemory()
	if c := cgroupMemory(); c > 0 && (avail == 0 || c < avail) {
		avail = c
	}
	return (avail / 4 * 3) &^ (1<<20 - 1) // whole MiB
}

// cgroupMemory reads cgroup v2's memory.max, 0 when unlimited or absent.
func cgroupMemory() int64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0 // "max"
	}
	return n
}

// machineMemory reads MemTotal from /proc/meminfo, 0 if it cannot.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kib, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil {
				return kib << 10
			}
		}
	}
	return 0
}

// applyMemoryLimit sets the runtime's memory limit to limit bytes (0: no
// limit) unless GOMEMLIMIT is set, and returns the limit in force, or -1
// for none.
func applyMemoryLimit(limit int64) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1) // reads the limit GOMEMLIMIT set
	}
	if limit <= 0 {
		debug.SetMemoryLimit(1<<63 - 1)
		return -1
	}
	debug.SetMemoryLimit(limit)
	return limit
}
