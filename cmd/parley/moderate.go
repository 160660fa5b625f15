package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"parley/server"
)

// Server-wide moderation from the command line, through a running
// server's admin port (docs/OPERATIONS.md "Moderation"): parley ban,
// unban, bans, revoke, lockdown and audit.

func newModerationCmds() []*cobra.Command {
	return []*cobra.Command{newBanCmd(), newUnbanCmd(), newBansCmd(), newRevokeCmd(), newLockdownCmd(), newAuditCmd()}
}

// adminFlag adds --admin-addr to cmd.
func adminFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "admin-addr", "127.0.0.1:9090", "the server's --admin-addr")
}

// adminCall sends a moderation request to the admin port and decodes a
// successful answer into out (nil: ignore it); a refusal is an error
// with the server's code and message.
func adminCall(addr, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e server.AdminError
		if json.Unmarshal(data, &e) == nil && e.Code != "" {
			return fmt.Errorf("%s: %s", e.Code, e.Message)
		}
		return fmt.Errorf("%s answered %s: %s", path, resp.Status, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

func moderationErr(cmd string, err error) error {
	if err == nil {
		return nil
	}
	return exitError{code: 1, msg: cmd + ": " + err.Error()}
}

func newBanCmd() *cobra.Command {
	var addr, account, address, reason string
	var d time.Duration
	cmd := &cobra.Command{
		Use:   "ban",
		Short: "Ban an account or an address from a running server",
		Long: `Ban an account (--account, a token's sub) or an address or CIDR network
(--address) from the whole server, through its admin port. The account's
sessions end with bye banned and its logins and refreshes are refused;
connections from the address are refused and its sessions end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := server.BanRequest{Account: account, Address: address, Reason: reason}
			if d > 0 {
				secs := int64((d + time.Second - 1) / time.Second)
				b.Duration = &secs
			}
			return moderationErr("ban", adminCall(addr, http.MethodPost, "/moderation/bans", b, nil))
		},
	}
	adminFlag(cmd, &addr)
	cmd.Flags().StringVar(&account, "account", "", "the account to ban (a token's sub)")
	cmd.Flags().StringVar(&address, "address", "", "the address or CIDR network to ban")
	cmd.Flags().DurationVar(&d, "duration", 0, "how long the ban holds (0: until parley unban)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the audit log")
	return cmd
}

func newUnbanCmd() *cobra.Command {
	var addr, account, address string
	cmd := &cobra.Command{
		Use:   "unban",
		Short: "Lift a server ban of an account or an address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if account != "" {
				q.Set("account", account)
			}
			if address != "" {
				q.Set("address", address)
			}
			return moderationErr("unban", adminCall(addr, http.MethodDelete, "/moderation/bans?"+q.Encode(), nil, nil))
		},
	}
	adminFlag(cmd, &addr)
	cmd.Flags().StringVar(&account, "account", "", "the banned account")
	cmd.Flags().StringVar(&address, "address", "", "the banned address or network, as it was banned")
	return cmd
}

func newBansCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "bans",
		Short: "List a running server's bans and its lockdown level",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var a server.BansAnswer
			if err := adminCall(addr, http.MethodGet, "/moderation/bans", nil, &a); err != nil {
				return moderationErr("bans", err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintf(w, "lockdown: %s\n", a.Lockdown)
			fmt.Fprintln(w, "WHO\tBY\tSINCE\tUNTIL\tREASON")
			for _, b := range a.Bans {
				who := b.Account
				if who == "" {
					who = b.Address
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", who, b.By, stamp(b.At), stampOr(b.Until, "lifted"), b.Reason)
			}
			return w.Flush()
		},
	}
	adminFlag(cmd, &addr)
	return cmd
}

func newRevokeCmd() *cobra.Command {
	var addr, account, jti, beforeText string
	cmd := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke an account's tokens, or one token by its jti",
		Long: `Refuse an account's tokens issued before a time (--account, --issued-before,
default now), or one token by its jti (--jti). Sessions holding a revoked
token end with bye token_revoked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rv := server.RevokeRequest{Account: account, JTI: jti}
			if beforeText != "" {
				before, err := time.Parse(time.RFC3339, beforeText)
				if err != nil {
					return exitError{code: 2, msg: "revoke: --issued-before is an RFC 3339 time, like 2026-12-07T12:00:00Z"}
				}
				rv.IssuedBefore = before.UnixMilli()
			}
			return moderationErr("revoke", adminCall(addr, http.MethodPost, "/moderation/revoke", rv, nil))
		},
	}
	adminFlag(cmd, &addr)
	cmd.Flags().StringVar(&account, "account", "", "the account whose tokens to revoke")
	cmd.Flags().StringVar(&beforeText, "issued-before", "", "revoke the account's tokens issued before this RFC 3339 time (default now)")
	cmd.Flags().StringVar(&jti, "jti", "", "revoke the one token with this jti instead")
	return cmd
}

func newLockdownCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "lockdown [off|accounts|admins]",
		Short: "Show or set which new logins a running server takes",
		Long: `With no argument, print the lockdown level. accounts refuses guests and nick
logins; admins refuses every new login but admins'; off lifts it.
Sessions already logged in stay.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st server.LockdownState
			if len(args) == 1 {
				if err := adminCall(addr, http.MethodPost, "/moderation/lockdown", server.LockdownState{Level: args[0]}, nil); err != nil {
					return moderationErr("lockdown", err)
				}
			}
			if err := adminCall(addr, http.MethodGet, "/moderation/lockdown", nil, &st); err != nil {
				return moderationErr("lockdown", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "lockdown:", st.Level)
			return nil
		},
	}
	adminFlag(cmd, &addr)
	return cmd
}

func newAuditCmd() *cobra.Command {
	var addr, room string
	var before uint64
	var limit int
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Print a running server's audit log of moderation actions",
		Long: `Print the newest entries of the audit log (every room's, or --room's), oldest
first; page back with --before, an entry's seq.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if room != "" {
				q.Set("room", room)
			}
			if before > 0 {
				q.Set("before", strconv.FormatUint(before, 10))
			}
			var a server.AuditAnswer
			if err := adminCall(addr, http.MethodGet, "/moderation/audit?"+q.Encode(), nil, &a); err != nil {
				return moderationErr("audit", err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SEQ\tWHEN\tNODE\tACTION\tROOM\tBY\tTARGET\tUNTIL\tREASON")
			for _, e := range a.Entries {
				target := e.Target
				if e.Nick != "" && e.Nick != e.Target {
					target += " (" + e.Nick + ")"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, stamp(e.TS), e.Node, e.Action, e.Room, e.By, target, stampOr(e.Until, ""), e.Reason)
			}
			if a.More && len(a.Entries) > 0 {
				fmt.Fprintf(w, "(older entries: --before %d)\n", a.Entries[0].Seq)
			}
			return w.Flush()
		},
	}
	adminFlag(cmd, &addr)
	cmd.Flags().StringVar(&room, "room", "", "one room's entries only")
	cmd.Flags().Uint64Var(&before, "before", 0, "entries before this seq (default: the newest)")
	cmd.Flags().IntVar(&limit, "limit", 50, "entries to print, 1 to 1000")
	return cmd
}

// stamp prints Unix milliseconds as UTC time.
func stamp(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

func stampOr(ms int64, none string) string {
	if ms == 0 {
		return none
	}
	return stamp(ms)
}
