package codec

import (
	"unicode"
	"unicode/utf8"
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
	// Lobby is the room every session starts in.
	Lobby = "lobby"
)

// ValidName reports whether s is 1 to max characters, each a Unicode letter,
// a Unicode digit, '_', '-' or '.': the rule for nicks and room names. It
// excludes spaces, control characters and bidirectional overrides.
func ValidName(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	n := 0
	for _, r := range s {
		n++
		if n > max {
			return false
		}
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
