package textx_test

import (
	"math/rand/v2"
	"regexp"
	"strings"
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

// IsFHIRID and CutReference accept exactly what the regular expressions
// they replace (FHIR R4's id syntax) accept, on edge cases and on random
// strings of the characters that matter.
func TestIDSyntaxMatchesRegexp(t *testing.T) {
	id := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	user := regexp.MustCompile(`^(Practitioner|PractitionerRole|Patient|RelatedPerson)/([A-Za-z0-9\-.]{1,64})$`)
	cases := []string{"", "a", "A-1.b", strings.Repeat("x", 64), strings.Repeat("x", 65), "a b", "a/b", "é", "a\n", "\na",
		"Practitioner/1", "PractitionerRole/x.y", "Patient/", "Patient//1", "patient/1", "Practitioner/1/2", "Device/1",
		"RelatedPerson/" + strings.Repeat("9", 64), "RelatedPerson/" + strings.Repeat("9", 65), "Patient/1\n", "/1"}
	const alphabet = "aZ09-./_ \né"
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		var b strings.Builder
		if rng.IntN(2) == 0 {
			b.WriteString([]string{"Practitioner/", "Patient/", "RelatedPerson/", "PractitionerRole/"}[rng.IntN(4)])
		}
		for range rng.IntN(70) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		if got, want := textx.IsFHIRID(s), id.MatchString(s); got != want {
			t.Fatalf("IsFHIRID(%q) = %v, the regexp says %v", s, got, want)
		}
		_, gotID, got := textx.CutReference(s, "Practitioner", "PractitionerRole", "Patient", "RelatedPerson")
		m := user.FindStringSubmatch(s)
		if got != (m != nil) || (m != nil && gotID != m[2]) {
			t.Fatalf("CutReference(%q) = %q, %v; the regexp says %q", s, gotID, got, m)
		}
	}
}
