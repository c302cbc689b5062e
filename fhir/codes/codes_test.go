package codes_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/fhir/codes"
)

// TestTable checks that every key is in the table once, each code once,
// complete, and says how it was verified.
func TestTable(t *testing.T) {
	keys := map[string]bool{}
	seen := map[string]bool{}
	for _, e := range codes.All() {
		if keys[e.Key] {
			t.Errorf("key %q appears twice", e.Key)
		}
		keys[e.Key] = true
		if c := e.System + "|" + e.Code; seen[c] {
			t.Errorf("code %s appears twice (Find would take the first)", c)
		} else {
			seen[c] = true
		}
		if e.System == "" || e.Code == "" || e.Display == "" || e.Verified == "" {
			t.Errorf("entry %+v is incomplete", e)
		}
		local := strings.HasPrefix(e.System, "https://orthotriage.github.io/")
		if local != strings.HasPrefix(e.Verified, "local:") {
			t.Errorf("entry %q: local system %v but Verified %q", e.Key, local, e.Verified)
		}
		if e.System == codes.SystemSNOMED && strings.Contains(e.Display, "(") {
			t.Errorf("entry %q: display %q carries a semantic tag; the preferred term has none", e.Key, e.Display)
		}
	}
	for _, k := range []string{codes.ConditionRefuted, codes.ConditionEnteredInError} {
		if _, ok := codes.Lookup(k); !ok {
			t.Errorf("key %q is not in the code table", k)
		}
	}
}

// TestGroups checks the lists the CDS services read an EHR's data with:
// their codes, in order (the lumbar spine's T-score first), each in its
// code system.
func TestGroups(t *testing.T) {
	tests := []struct {
		name, prefix, system string
		want                 []string
	}{
		{"spine T-scores", codes.TScoreSpinePrefix, codes.SystemLOINC, []string{"38267-1", "104938-6"}},
		{"hip and femur T-scores", codes.TScoreHipPrefix, codes.SystemLOINC, []string{"38264-8", "38263-0", "80945-9", "80946-7", "80947-5", "80948-3"}},
		{"back pain", codes.BackPainPrefix, codes.SystemSNOMED, []string{"279039007", "161891005"}},
		{"a fall", codes.FallPrefix, codes.SystemSNOMED, []string{"1912002", "161898004", "217082002"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := codes.Group(tc.prefix)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Group(%q) = %v, want %v", tc.prefix, got, tc.want)
			}
			for _, c := range got {
				if e, ok := codes.Find(tc.system, c); !ok || e.Key != tc.prefix+c {
					t.Errorf("%s|%s: entry %+v, found %v", tc.system, c, e, ok)
				}
			}
		})
	}
}
