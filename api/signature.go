package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a webhook's signature: t=<Unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>" keyed with the webhook secret>, as Stripe
// signs its webhooks. The same header signs the pre-send hook's requests.
const SignatureHeader = "Parley-Signature"

// NodeHeader names, on a webhook POST, the node that delivered it (in a
// cluster, one node at a time delivers each webhook).
const NodeHeader = "Parley-Node"

// EventIDHeader names, on a webhook POST, the ID of the batch's first
// event.
const EventIDHeader = "Parley-Delivery"

// Sign returns the signature header's value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is Verify's answer for a body the secret did not sign,
// or signed longer ago than the tolerance.
var ErrBadSignature = errors.New("api: bad webhook signature")

// Verify checks header (the SignatureHeader's value) against body and
// secret, and that it was signed within tolerance of now: a receiver
// runs it before trusting a delivery. It compares in constant time.
func Verify(secret []byte, header string, body []byte, tolerance time.Duration, now time.Time) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: the header has no t= and v1=", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s from now, over the tolerance of %s", ErrBadSignature, d.Round(time.Second), tolerance)
	}
	want := []byte(mac(secret, ts, body))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 matches the body", ErrBadSignature)
}
