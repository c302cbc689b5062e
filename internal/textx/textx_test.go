package textx_test

import (
	"testing"
	"unicode/utf8"

	"github.com/orthotriage/orthotriage/internal/textx"
)

func TestClip(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"longer text", 6, "longer..."},
		{"héllo", 2, "h..."}, // é is two bytes, cut in two: dropped
		{"", 0, ""},
	}
	for _, tt := range tests {
		got := textx.Clip(tt.s, tt.n)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("Clip(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
