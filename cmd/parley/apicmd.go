package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"parley/api"
	"parley/server/httpapi"
)

func newAPICmd() *cobra.Command {
	var url, keyFile, caFile string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "api METHOD [JSON]",
		Short: "Call the server API (docs/API.md)",
		Long: `Call a method of the server API that parley serve --api-addr serves, and print
its answer as JSON. The parameters are a JSON object: the second argument, or
standard input when it is - or absent. The key is read from --key-file
(or PARLEY_KEY_FILE, as every flag). Exit status 1 when the server refuses
the request (its error is printed to standard error), 2 for a usage error.

Methods: publish, broadcast, dm, disconnect, room_create, room_set, room_info,
rooms, room_members, moderate, presence, history, stats, batch.

  parley api --key-file app.secret publish '{"room":"lobby","from":"bot","body":"hello"}'
  parley api --key-file app.secret presence '{"account":"amy"}'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return exitError{code: 2, msg: "api: give the key's file with --key-file"}
			}
			key, err := httpapi.ReadSecret(keyFile)
			if err != nil {
				return exitError{code: 2, msg: "api: " + err.Error()}
			}
			var params []byte
			if len(args) == 2 && args[1] != "-" {
				params = []byte(args[1])
			} else {
				var err error
				if params, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20)); err != nil {
					return exitError{code: 2, msg: "api: " + err.Error()}
				}
			}
			if len(bytes.TrimSpace(params)) == 0 {
				params = []byte("{}")
			}
			if !json.Valid(params) {
				return exitError{code: 2, msg: "api: the parameters are not JSON"}
			}
			hc := &http.Client{}
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return exitError{code: 2, msg: "api: " + err.Error()}
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return exitError{code: 2, msg: "api: " + caFile + " holds no PEM certificate"}
				}
				hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var out json.RawMessage
			err = api.NewClient(url, string(key), hc).Call(ctx, args[0], json.RawMessage(params), &out)
			var refused *api.Error
			switch {
			case errors.As(err, &refused):
				msg, _ := json.Marshal(refused)
				return exitError{code: 1, msg: string(msg)}
			case err != nil:
				return exitError{code: 1, msg: "api: " + err.Error()}
			}
			var pretty bytes.Buffer
			if json.Indent(&pretty, out, "", "  ") != nil {
				pretty.Reset()
				pretty.Write(out)
			}
			fmt.Fprintln(cmd.OutOrStdout(), pretty.String())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "http://127.0.0.1:8070", "the server API's address (https:// when the server has a certificate)")
	f.StringVar(&keyFile, "key-file", "", "the file holding the API key (its first line)")
	f.StringVar(&caFile, "ca", "", "a PEM certificate to trust for https (a self-signed server's)")
	f.DurationVar(&timeout, "timeout", 15*time.Second, "how long to wait for the answer")
	return cmd
}
