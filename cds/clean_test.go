package cds

import (
	"bytes"
	"encoding/json"
	"testing"
)

// slowClean is the reference: decode and walk.
func slowClean(b []byte) bool {
	var tree any
	if json.Unmarshal(b, &tree) != nil {
		return false
	}
	return checkEmpty(tree, "", true) == nil
}

// FuzzClean: the one-pass scan agrees with decoding and walking the tree on
// any compact JSON object.
func FuzzClean(f *testing.F) {
	for _, s := range []string{
		`{"cards":[]}`, `{"cards":[{"summary":"a"}]}`, `{"cards":[{"summary":""}]}`, `{"cards":[{"x":null}]}`,
		`{"cards":[{"x":[]}]}`, `{"cards":[{"x":{}}]}`, `{"a":"say \"null\" [] {}"}`, `{"a":"\\"}`, `{"a":["",1]}`,
		`{"cards":[],"systemActions":[]}`, `{}`, `{"a":{"cards":[]}}`, `{"a":"x\\\\","b":""}`, `{"n":1,"m":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var buf bytes.Buffer
		if json.Compact(&buf, in) != nil || len(buf.Bytes()) == 0 || buf.Bytes()[0] != '{' {
			return
		}
		b := buf.Bytes()
		if bytes.Contains(b, []byte(`"":`)) {
			return // empty keys: the tree walk names paths by keys and mistakes them; responses have none
		}
		if got, want := clean(b), slowClean(b); got != want {
			t.Fatalf("clean(%s) = %v, the tree walk says %v", b, got, want)
		}
	})
}
