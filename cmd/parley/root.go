package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"parley/server"
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
	// A wrong flag's error is the last thing printed, not buried above
	// the usage (serve has some sixty flags).
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		fmt.Fprintf(cmd.ErrOrStderr(), "parley: %v\nRun '%s --help' for its flags.\n", err, cmd.CommandPath())
		return exitError{code: 2}
	})
	root.AddCommand(newServeCmd(), newChatCmd(), newBenchCmd(), newKeygenCmd(), newTokenCmd(), newStatusCmd(), newVersionCmd(), newAPICmd())
	root.AddCommand(newModerationCmds()...)
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

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this build",
		Long: `Print this build's version, the Go that built it and the platform. A
binary built from a git checkout (make build) names the commit, with -dirty
for uncommitted changes; parley_build_info on the admin port says the same.`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "parley %s %s %s/%s\n", server.Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
