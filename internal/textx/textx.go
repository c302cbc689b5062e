// Package textx bounds text taken from a request or a token before it
// reaches an answer, an error or a log line.
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
