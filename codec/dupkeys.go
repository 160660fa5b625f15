package codec

import (
	"bytes"

	"github.com/bytedance/sonic"
)

// duplicateKey returns a key that appears twice among the top-level keys
// of body, which must be valid JSON holding one object. A request with a
// duplicate key means different things to different parsers (the decoder
// keeps the last value, a filter in front of the server may read the
// first), so the contract refuses it. It does not allocate unless a key
// holds an escape.
func duplicateKey(body []byte) (string, bool) {
	var store [16][]byte
	seen := store[:0]
	depth, expectKey := 0, false
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{', '[':
			depth++
			expectKey = depth == 1
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			end, escaped := stringEnd(body, i)
			if depth == 1 && expectKey {
				key := body[i+1 : end]
				if escaped {
					key = unescape(body[i : end+1])
				}
				for _, k := range seen {
					if bytes.Equal(k, key) {
						return string(key), true
					}
				}
				seen = append(seen, key)
				expectKey = false
			}
			i = end
		}
	}
	return "", false
}

// stringEnd returns the index of the quote that closes the string opening
// at body[start], and whether the string holds an escape.
func stringEnd(body []byte, start int) (int, bool) {
	escaped := false
	for i := start + 1; i < len(body); i++ {
		switch body[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return len(body) - 1, escaped
}

func unescape(quoted []byte) []byte {
	var s string
	if err := sonic.ConfigStd.Unmarshal(quoted, &s); err != nil {
		return quoted
	}
	return []byte(s)
}
