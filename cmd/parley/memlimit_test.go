package main

import (
	"runtime/debug"
	"testing"
)

// TestMemoryLimit: the default is three quarters of what the process may
// use, and the flag's value becomes the runtime's limit (0: none).
func TestMemoryLimit(t *testing.T) {
	def, machine := defaultMemoryLimit(), machineMemory()
	if def <= 0 || def > machine {
		t.Fatalf("default memory limit %d with %d bytes of memory", def, machine)
	}
	if c := cgroupMemory(); c > 0 && def > c {
		t.Fatalf("default memory limit %d over the cgroup's %d", def, c)
	}
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	t.Setenv("GOMEMLIMIT", "")
	if got := applyMemoryLimit(512 << 20); got != 512<<20 || debug.SetMemoryLimit(-1) != 512<<20 {
		t.Fatalf("applyMemoryLimit(512 MiB) = %d, runtime limit %d", got, debug.SetMemoryLimit(-1))
	}
	if got := applyMemoryLimit(0); got != -1 || debug.SetMemoryLimit(-1) != 1<<63-1 {
		t.Fatalf("applyMemoryLimit(0) = %d, runtime limit %d", got, debug.SetMemoryLimit(-1))
	}
}
