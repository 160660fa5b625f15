package main

import (
	"testing"

	"github.com/spf13/pflag"
)

func TestApplyEnv(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	addr := fs.String("addr", ":8060", "")
	idle := fs.Duration("idle-timeout", 0, "")
	given := fs.String("log-level", "info", "")
	if err := fs.Parse([]string{"--log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PARLEY_ADDR", "127.0.0.1:9")
	t.Setenv("PARLEY_IDLE_TIMEOUT", "1m30s")
	t.Setenv("PARLEY_LOG_LEVEL", "error")
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if *addr != "127.0.0.1:9" || idle.String() != "1m30s" {
		t.Fatalf("env not applied: addr=%q idle=%v", *addr, *idle)
	}
	if *given != "debug" {
		t.Fatalf("a flag on the command line must win over the environment, got %q", *given)
	}
	t.Setenv("PARLEY_IDLE_TIMEOUT", "soon")
	fs2 := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs2.Duration("idle-timeout", 0, "")
	if err := applyEnv(fs2); err == nil {
		t.Fatal("an invalid environment value must be an error")
	}
}
