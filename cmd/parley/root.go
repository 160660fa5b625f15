package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "parley",
		Short: "Parley: a high-connection chat server, its client and its benchmark",
		Long: `Parley is a chat backend: a server speaking length-prefixed JSON over TCP
and TLS, and over WebSocket to its web chat (docs/PROTOCOL.md), a terminal
client, tools for login tokens and operators, and a benchmark harness.

Every flag can also be set from the environment as PARLEY_<FLAG>, with the
flag name upper-cased and dashes turned into underscores, for example
PARLEY_ADDR=:9000 or PARLEY_IDLE_TIMEOUT=1m. A flag given on the command
line wins over the environment.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		fmt.Fprintf(cmd.ErrOrStderr(), "parley: %v\n\n%s", err, cmd.UsageString())
		return exitError{code: 2}
	})
	root.AddCommand(newServeCmd(), newChatCmd(), newBenchCmd(), newKeygenCmd(), newTokenCmd(), newStatusCmd())
	root.AddCommand(newBenchChildCmds()...)
	return root
}

// envName is the environment variable that sets the flag name.
func envName(flag string) string {
	return "PARLEY_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// PARLEY_<FLAG> environment variable.
func applyEnv(flags *pflag.FlagSet) error {
	var firstErr error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if err := flags.Set(f.Name, v); err != nil {
			firstErr = exitError{code: 2, msg: fmt.Sprintf("invalid %s=%q: %v", envName(f.Name), v, err)}
		}
	})
	return firstErr
}
