package codec

import (
	"testing"
	"unicode/utf8"

	"golang.org/x/text/cases"
)

// TestFoldMatchesCases checks Fold's ASCII path against x/text's case
// folding for every byte, and strings that leave it.
func TestFoldMatchesCases(t *testing.T) {
	var all []byte
	for b := 0; b < utf8.RuneSelf; b++ {
		all = append(all, byte(b))
	}
	for _, s := range []string{string(all), "Amy_K.9-x", "", "ΣΑΣ", "Straße", "ǅemal", "İstanbul", "ＡＢ", "mIxEd中文"} {
		if got, want := Fold(s), cases.Fold().String(s); got != want {
			t.Errorf("Fold(%q) = %q, want %q", s, got, want)
		}
	}
}
