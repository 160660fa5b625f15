// Command parley is the Parley chat server, its terminal client and its
// benchmark harness. main only wires flags to the library packages and
// handles signals.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	raiseFileLimit()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// raiseFileLimit lifts the soft open-file limit to the hard one: a server
// or a load generator holds one descriptor per connection, and the usual
// soft limit of 1024 would cap it far below what the machine allows.
func raiseFileLimit() {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
}

// run executes the command line and returns the exit status: 0 for
// success, 1 for a failure at run time, 2 for a usage error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var exit exitError
	if errors.As(err, &exit) {
		if exit.msg != "" {
			fmt.Fprintln(stderr, "parley:", exit.msg)
		}
		return exit.code
	}
	// Unknown commands and the like: usage errors.
	fmt.Fprintf(stderr, "parley: %v\n", err)
	return 2
}

// exitError ends the process with a specific status and message.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }
