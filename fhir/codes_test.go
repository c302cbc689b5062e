package fhir

import (
	"strings"
	"testing"
)

// TestCodeTable checks that every key the builders use is in the table
// once, complete, and says how it was verified.
func TestCodeTable(t *testing.T) {
	used := []string{
		keyExamHip, keyExamSpine, keyCategoryRAD, keyCategoryImaging,
		keyInterpNormal, keyInterpAbnormal, keyInterpCritical, keySecurityAIAST,
		keyHipJoint, keyRight, keyLeft, keyAcute, keyChronic,
		keyHipFinding, keyVertebralFinding, keyProbability, keyLaterality, keyFractureAcuity,
		keyTaskRead, keyProvenanceAuthor,
	}
	for _, v := range []string{"T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"} {
		used = append(used, keyVertebraPrefix+v)
	}
	for _, k := range used {
		if _, ok := lookupCode(k); !ok {
			t.Errorf("key %q is not in the code table", k)
		}
	}
	seen := map[string]bool{}
	for _, e := range Codes() {
		if seen[e.Key] {
			t.Errorf("key %q appears twice", e.Key)
		}
		seen[e.Key] = true
		if e.System == "" || e.Code == "" || e.Display == "" || e.Verified == "" {
			t.Errorf("entry %+v is incomplete", e)
		}
		local := strings.HasPrefix(e.System, "https://orthotriage.github.io/")
		if local != strings.HasPrefix(e.Verified, "local:") {
			t.Errorf("entry %q: local system %v but Verified %q", e.Key, local, e.Verified)
		}
	}
}
