package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/internal/testenv"
	"github.com/orthotriage/orthotriage/store"
)

func TestRedisResults(t *testing.T) {
	rdb, err := store.NewRedisClient(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	s := store.NewRedisResults(rdb)
	key := analysis.StoreKey("https://ehr.example.org", "https://ehr.example.org/fhir", "1.2.3", "hip", "hip-000@0.1.0")
	if _, ok, err := s.Get(t.Context(), key); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	r := analysis.Result{Schema: analysis.SchemaVersion, Study: analysis.Study{UID: "1.2.3"}, Priority: "stat",
		Findings: []analysis.Finding{{Region: "left-hip", Class: "fnf", Probability: 0.97, Heatmap: []byte{0x89, 'P', 'N', 'G'}}},
		Analyzed: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	if err := s.Put(t.Context(), key, r, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(t.Context(), key)
	if !ok || err != nil || got.Priority != "stat" || got.Findings[0].Probability != 0.97 || string(got.Findings[0].Heatmap) != "\x89PNG" || !got.Analyzed.Equal(r.Analyzed) {
		t.Fatalf("read back %+v ok=%v err=%v", got, ok, err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, ok, _ := s.Get(t.Context(), key); ok {
		t.Error("result outlived its TTL")
	}
	// A value of another schema version (an older replica) is a miss.
	rdb.Set(t.Context(), key, `{"schema":99,"result":{"priority":"stat"}}`, time.Minute)
	if _, ok, err := s.Get(t.Context(), key); ok || err != nil {
		t.Errorf("other schema: ok=%v err=%v, want a miss", ok, err)
	}
	if other := analysis.StoreKey("https://ehr.example.org", "https://ehr.example.org/fhir", "1.2.3", "hip", "hip-000@0.2.0"); other == key {
		t.Error("a new model version shares the old version's key")
	}
	if other := analysis.StoreKey("https://other-ehr.example.org", "https://ehr.example.org/fhir", "1.2.3", "hip", "hip-000@0.1.0"); other == key {
		t.Error("another tenant shares the key")
	}
	if same := analysis.StoreKey("https://ehr.example.org", "HTTPS://EHR.example.org/fhir/", "1.2.3", "hip", "hip-000@0.1.0"); same != key {
		t.Error("the FHIR server's URL is not normalised in the key")
	}
}

func TestRedisLocker(t *testing.T) {
	rdb, err := store.NewRedisClient(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	l := store.NewRedisLocker(rdb)
	a, ok, err := l.Lock(t.Context(), "k", 300*time.Millisecond)
	if !ok || err != nil {
		t.Fatalf("first lock: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := l.Lock(t.Context(), "k", time.Second); ok {
		t.Fatal("a second holder got a held lock")
	}
	if err := a.Renew(t.Context(), 300*time.Millisecond); err != nil {
		t.Fatalf("renew: %v", err)
	}
	time.Sleep(400 * time.Millisecond) // a's lock expires; b takes it
	b, ok, _ := l.Lock(t.Context(), "k", time.Second)
	if !ok {
		t.Fatal("expired lock not taken")
	}
	if err := a.Renew(t.Context(), time.Second); !errors.Is(err, analysis.ErrLockLost) {
		t.Errorf("renewing a lost lock: %v, want ErrLockLost", err)
	}
	if err := a.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.Lock(t.Context(), "k", time.Second); ok {
		t.Error("the old holder's release freed the new holder's lock")
	}
	b.Release(t.Context())
	if _, ok, _ := l.Lock(t.Context(), "k", time.Second); !ok {
		t.Error("released lock not free")
	}
}
