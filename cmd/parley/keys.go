package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"parley/server/auth"
)

func newKeygenCmd() *cobra.Command {
	out := "parley"
	secret := false
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Write a new Ed25519 key pair for signing login tokens",
		Long: `Write a new Ed25519 key pair: NAME.key, the private key (PKCS #8 PEM, mode
0600), for whatever signs tokens, and NAME.pub, the public key (PKIX PEM), for
parley serve --auth-key. Existing files are never overwritten. The key's kid
is NAME's file name unless --auth-key says otherwise (KID=FILE).

With --secret it writes NAME.secret instead (mode 0600): 32 random bytes in
hex, for parley serve --api-key, --webhook-secret or --auth-secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if secret {
				if err := writeSecret(out + ".secret"); err != nil {
					return exitError{code: 1, msg: "keygen: " + err.Error()}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.secret\n", out)
				return nil
			}
			if err := auth.WriteKeyPair(out+".key", out+".pub"); err != nil {
				return exitError{code: 1, msg: "keygen: " + err.Error()}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.key (private) and %s.pub (public)\n", out, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", out, "path and name of the two files, without extension")
	cmd.Flags().BoolVar(&secret, "secret", false, "write a random secret (NAME.secret) for an API key or a webhook secret instead of a key pair")
	return cmd
}

// writeSecret writes 32 random bytes in hex to a new file, mode 0600.
func writeSecret(path string) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, hex.EncodeToString(b[:])); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func newTokenCmd() *cobra.Command {
	var t auth.Token
	var keyFile string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a signed login token (for development and scripts)",
		Long: `Print a login token signed with a private key from parley keygen (or an RSA
key, or an HS256 secret file). In production the application that owns the
users signs tokens; this is for development, tests and scripts. The kid
defaults to the key file's name without extension, as parley serve names
--auth-key files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if t.Subject == "" {
				return exitError{code: 2, msg: "token: --sub is required"}
			}
			alg, key, err := auth.LoadSigner(keyFile)
			if err != nil {
				return exitError{code: 1, msg: "token: " + err.Error()}
			}
			if !cmd.Flags().Changed("kid") {
				t.KeyID, _ = auth.ParseKeySpec(keyFile)
			}
			tok, err := auth.Sign(alg, key, t, time.Now())
			if err != nil {
				return exitError{code: 1, msg: "token: " + err.Error()}
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "parley.key", "private key or HS256 secret file to sign with")
	f.StringVar(&t.Subject, "sub", "", "the account (required)")
	f.StringVar(&t.Name, "name", "", "display nick (default: the account)")
	f.DurationVar(&t.TTL, "ttl", time.Hour, "how long the token is valid")
	f.StringVar(&t.KeyID, "kid", "", "key id (default: the key file's name without extension)")
	f.StringVar(&t.Audience, "aud", "", "audience, for --auth-audience")
	f.StringVar(&t.Issuer, "iss", "", "issuer, for --auth-issuer")
	f.StringSliceVar(&t.Rooms, "rooms", nil, "private rooms the account may enter without an invitation (claim rooms)")
	f.StringVar(&t.Role, "role", "", "role claim: admin makes a server admin")
	f.StringVar(&t.ID, "jti", "", "the token's id, to revoke it alone (parley revoke --jti)")
	return cmd
}
