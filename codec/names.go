package codec

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/cases"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Default limits of the contract.
const (
	DefaultMaxNick  = 32   // characters
	DefaultMaxRoom  = 64   // characters
	DefaultMaxBody  = 4096 // bytes
	DefaultMaxRooms = 64   // rooms per session
	MaxRef          = 64   // bytes
	// WhoPage is the most nicks one users frame carries.
	WhoPage = 500
	// HistoryPage is the most messages one history answer carries: a
	// history request's limit is 1 to HistoryPage.
	HistoryPage = 100
	// Lobby is the room every session starts in.
	Lobby = "lobby"
)

// Name is a nick or room name that passed the naming rule.
type Name struct {
	// Display is the form shown to users: a nick as typed, with full-width
	// forms mapped to their normal width and composed to NFC; a room name
	// also in lower case, so that `LOBBY` and `lobby` are one room with one
	// spelling on the wire.
	Display string
	// Key is the identity: two names with the same key are the same nick
	// (or room). It is the Unicode TR39 confusable skeleton of the
	// case-folded name, so `admin`, `Admin`, `ａｄｍｉｎ` and `admın` share it.
	Key string
}

// GuestPrefix starts the nick of a guest on a server where accounts log
// in with tokens (--auth optional): no account's nick can start with it,
// so a guest never takes an account's nick.
const GuestPrefix = "~"

// ParseNick checks a nick against the naming rule (docs/PROTOCOL.md) and
// returns its display form and identity key. A guest's nick (GuestPrefix
// and a name) parses too. Errors wrap ErrBadNick.
func ParseNick(s string) (Name, error) {
	rest, guest := strings.CutPrefix(s, GuestPrefix)
	n, err := parseName(rest, DefaultMaxNick, precis.UsernameCasePreserved)
	if err != nil {
		return Name{}, fmt.Errorf("%w: %s", ErrBadNick, err)
	}
	if guest {
		n.Display, n.Key = GuestPrefix+n.Display, GuestPrefix+n.Key
	}
	return n, nil
}

// IsGuest reports whether a nick is a guest's.
func IsGuest(nick string) bool { return strings.HasPrefix(nick, GuestPrefix) }

// ParseRoom checks a room name against the naming rule and returns its
// display form (lower case) and identity key. Errors wrap ErrBadRoom.
func ParseRoom(s string) (Name, error) {
	n, err := parseName(s, DefaultMaxRoom, precis.UsernameCaseMapped)
	if err != nil {
		return Name{}, fmt.Errorf("%w: %s", ErrBadRoom, err)
	}
	return n, nil
}

// parseName applies the rule: 1 to max characters; PRECIS
// UsernameCasePreserved (RFC 8265: width mapping, NFC, no control, space,
// default-ignorable or compatibility characters); each character a letter,
// a digit, '_', '-', '.' or a combining mark after a letter; one script,
// or Latin, Han and one of Japanese's, Korean's or Bopomofo's as TR39's
// highly restrictive level allows (singleScript); and
// no character whose skeleton is ASCII punctuation (ʼ looks like ').
func parseName(s string, max int, profile *precis.Profile) (Name, error) {
	// Bound the work before any mapping: max characters are at most 4*max bytes.
	if s == "" || len(s) > 4*max || !utf8.ValidString(s) {
		return Name{}, fmt.Errorf("a name is 1 to %d characters", max)
	}
	display, err := profile.String(s)
	if err != nil {
		return Name{}, fmt.Errorf("a name may not hold spaces, control, invisible or compatibility characters")
	}
	if err := checkRunes(display, max); err != nil {
		return Name{}, err
	}
	if !singleScript(display) {
		return Name{}, fmt.Errorf("a name may not mix scripts")
	}
	key := foldKey(confusables.Skeleton(Fold(display)))
	for _, r := range key {
		if r < utf8.RuneSelf && !nameRune(r) {
			return Name{}, fmt.Errorf("a name may not hold characters that look like punctuation")
		}
	}
	return Name{Display: display, Key: key}, nil
}

// SortKey is the order of nicks in a users frame: the nick case-folded
// and composed. It differs between any two nicks online at once, since
// their keys differ.
func SortKey(nick string) string {
	return Fold(norm.NFC.String(nick))
}

// foldKey makes a skeleton comparable: confusable prototypes can be upper
// case (0 maps to O), so it is folded and composed again.
func foldKey(skeleton string) string {
	return norm.NFC.String(Fold(skeleton))
}

// Fold is Unicode case folding (cases.Fold). An ASCII string, which most
// names are, folds to its lower case; x/text's transformer would allocate
// its buffers for it on every call, and a login folds three times.
func Fold(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return cases.Fold().String(s)
		}
	}
	return strings.ToLower(s)
}

// checkRunes enforces the character rule and the length on a mapped name.
func checkRunes(s string, max int) error {
	n, marks := 0, 0
	for _, r := range s {
		n++
		switch {
		case n > max:
			return fmt.Errorf("a name is 1 to %d characters", max)
		case nameRune(r):
			marks = 0
		case unicode.In(r, unicode.Mn, unicode.Mc) && n > 1 && marks < 2:
			marks++ // vowel signs and viramas of Indic scripts; no stacks
		default:
			return fmt.Errorf("a name is letters, digits, '_', '-' and '.'")
		}
	}
	return nil
}

func nameRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.'
}

// scripts a name may be written in; Common and Inherited (digits,
// punctuation, combining marks) go with any of them.
var scripts = []*unicode.RangeTable{
	unicode.Latin, unicode.Greek, unicode.Cyrillic, unicode.Armenian, unicode.Hebrew,
	unicode.Arabic, unicode.Devanagari, unicode.Bengali, unicode.Gurmukhi, unicode.Gujarati,
	unicode.Tamil, unicode.Telugu, unicode.Kannada, unicode.Malayalam, unicode.Thai,
	unicode.Georgian, unicode.Ethiopic, unicode.Khmer, unicode.Han, unicode.Hiragana,
	unicode.Katakana, unicode.Hangul, unicode.Bopomofo,
}

func scriptBit(r rune) uint32 {
	for i, t := range scripts {
		if unicode.Is(t, r) {
			return 1 << i
		}
	}
	return 0
}

// scriptName finds the script of a letter outside the table (rare, so a
// walk over every script is fine).
func scriptName(r rune) string {
	for name, t := range unicode.Scripts {
		if unicode.Is(t, r) {
			return name
		}
	}
	return "?"
}

// Script bits for the combinations TR39 allows.
const bitLatin = 1 << 0 // scripts[0]

const (
	bitHan = 1 << (18 + iota) // scripts[18] on
	bitHiragana
	bitKatakana
	bitHangul
	bitBopomofo
)

// highlyRestrictive are the sets of scripts that Unicode TR39's "highly
// restrictive" level lets one name mix (section 5.2): Latin with Japanese
// (Han, Hiragana, Katakana), with Chinese and Bopomofo, or with Korean
// (Han, Hangul). A name whose scripts all lie in one of them passes.
var highlyRestrictive = [...]uint32{
	bitLatin | bitHan | bitHiragana | bitKatakana,
	bitLatin | bitHan | bitBopomofo,
	bitLatin | bitHan | bitHangul,
}

// singleScript reports whether s passes TR39's "highly restrictive"
// level: one script, or scripts within one of the sets it allows, so
// `Go语言`, `たなかTanaka` and `김민수kim` pass and Latin with Cyrillic or
// Greek does not. A letter of a script not in the table is told apart by
// its name.
func singleScript(s string) bool {
	var seen uint32
	other := ""
	for _, r := range s {
		if unicode.In(r, unicode.Common, unicode.Inherited) {
			continue
		}
		bit := scriptBit(r)
		if bit == 0 {
			name := scriptName(r)
			if other != "" && other != name {
				return false
			}
			other, bit = name, 1<<31
		}
		seen |= bit
	}
	if seen&(seen-1) == 0 {
		return true // one script, or none but Common
	}
	for _, set := range highlyRestrictive {
		if seen&^set == 0 {
			return true
		}
	}
	return false
}

// BodyControl returns the first control character in a message body that
// the contract refuses: every C0 control but newline and tab, DEL, and the
// C1 controls. Terminal escapes (ESC) and carriage returns are among them.
func BodyControl(body string) (rune, bool) {
	for _, r := range body {
		if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f) {
			return r, true
		}
	}
	return 0, false
}
