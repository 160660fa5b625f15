// Command parley is the Parley chat server, its terminal client and its
// benchmark harness. main only wires flags to the library packages and
// handles signals.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			if exit.msg != "" {
				fmt.Fprintln(os.Stderr, "parley:", exit.msg)
			}
			os.Exit(exit.code)
		}
		// cobra has printed the usage error already.
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(2)
	}
}

// exitError ends the process with a specific status and message.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }
