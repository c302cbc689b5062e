package cds_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/orthotriage/orthotriage/cds"
)

func BenchmarkMarshalCard(b *testing.B) {
	raw, err := os.ReadFile("../.cache/demo-card.json")
	if err != nil {
		b.Skip("run make demo first")
	}
	var r cds.Response
	if err := json.Unmarshal(raw, &r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cds.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}
