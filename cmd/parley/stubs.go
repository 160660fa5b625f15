package main

import "github.com/spf13/cobra"

func newBenchCmd() *cobra.Command {
	return &cobra.Command{Use: "bench", Short: "Measure broadcast latency", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return exitError{code: 1, msg: "bench: not built yet"} }}
}
