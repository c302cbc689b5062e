package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
)

// masked is what a set Secret shows instead of its value.
const masked = "[redacted]"

// Secret is a setting that must never be shown: a bearer token, a password,
// a signing key, a URL that may carry credentials. It loads like a string
// (YAML, ORTHOTRIAGE_* variables, flags) but prints with any fmt verb,
// encodes as JSON or text, and logs through slog as "[redacted]" (empty
// when unset), so a Config can be printed or logged whole. Reveal gives the
// value to the code that uses it.
type Secret string

// Reveal returns the secret's value, for the code that sends or checks it.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" when the secret is unset.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString is what %#v shows: the masked value, quoted.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format makes every fmt verb (%v, %s, %q, %x, %#v ...) see the masked value.
func (s Secret) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// MarshalJSON encodes the masked value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText encodes the masked value (YAML, slog's text handler, map keys).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText sets the secret from its text, as a string setting would be
// (a YAML scalar, a JSON string).
func (s *Secret) UnmarshalText(text []byte) error {
	*s = Secret(text)
	return nil
}

// LogValue logs the masked value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

var (
	_ fmt.Stringer   = Secret("")
	_ fmt.GoStringer = Secret("")
	_ fmt.Formatter  = Secret("")
	_ json.Marshaler = Secret("")
	_ slog.LogValuer = Secret("")

	_ encoding.TextMarshaler   = Secret("")
	_ encoding.TextUnmarshaler = (*Secret)(nil)
)
