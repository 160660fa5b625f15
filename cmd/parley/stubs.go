package main

import "github.com/spf13/cobra"

func newChatCmd() *cobra.Command {
	return &cobra.Command{Use: "chat", Short: "Chat from a terminal", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return exitError{code: 1, msg: "chat: not built yet"} }}
}

func newBenchCmd() *cobra.Command {
	return &cobra.Command{Use: "bench", Short: "Measure broadcast latency", Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return exitError{code: 1, msg: "bench: not built yet"} }}
}
