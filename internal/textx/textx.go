// Package textx bounds text taken from a request or a token before it
// reaches an answer, an error or a log line, and checks the syntax of the
// FHIR ids in it.
package textx

import "strings"

// Clip returns s when it is at most n bytes, else its first n bytes (less
// any rune cut in two) and "...".
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// IsFHIRID reports whether s is a FHIR id: 1 to 64 of A-Z, a-z, 0-9, "-"
// and ".". (A scan, not a regular expression: it is checked on every hook
// call.)
func IsFHIRID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// CutReference splits a relative reference "Type/id" whose Type is one of
// types and whose id is a FHIR id, and reports whether s is one.
func CutReference(s string, types ...string) (typ, id string, ok bool) {
	typ, id, found := strings.Cut(s, "/")
	if !found || !IsFHIRID(id) {
		return "", "", false
	}
	for _, t := range types {
		if typ == t {
			return typ, id, true
		}
	}
	return "", "", false
}
