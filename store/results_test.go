package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/cds"
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
	l1, l2 := store.NewRedisLocker(rdb), store.NewRedisLocker(rdb) // two replicas
	a, ok, err := l1.Lock(t.Context(), "k", 300*time.Millisecond)
	if !ok || err != nil {
		t.Fatalf("first lock: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := l2.Lock(t.Context(), "k", time.Second); ok {
		t.Fatal("a second holder got a held lock")
	}
	if err := a.Renew(t.Context(), 300*time.Millisecond); err != nil {
		t.Fatalf("renew: %v", err)
	}
	time.Sleep(400 * time.Millisecond) // a's lock expires; b takes it
	b, ok, _ := l2.Lock(t.Context(), "k", time.Second)
	if !ok {
		t.Fatal("expired lock not taken")
	}
	if err := a.Renew(t.Context(), time.Second); !errors.Is(err, analysis.ErrLockLost) {
		t.Errorf("renewing a lost lock: %v, want ErrLockLost", err)
	}
	if err := a.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l1.Lock(t.Context(), "k", time.Second); ok {
		t.Error("the old holder's release freed the new holder's lock")
	}
	b.Release(t.Context())
	if _, ok, _ := l1.Lock(t.Context(), "k", time.Second); !ok {
		t.Error("released lock not free")
	}
}

// TestRedisLockerRetakesItsOwnLock: a lock whose SET Redis carried out
// after the client stopped waiting (a busy Redis) is this locker's on the
// next try, not nobody's until it expires.
func TestRedisLockerRetakesItsOwnLock(t *testing.T) {
	rdb, err := store.NewRedisClient(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	l, other := store.NewRedisLocker(rdb), store.NewRedisLocker(rdb)
	if _, ok, err := l.Lock(t.Context(), "study", time.Minute); !ok || err != nil {
		t.Fatalf("first lock: ok=%v err=%v", ok, err)
	}
	lease, ok, err := l.Lock(t.Context(), "study", time.Minute) // the retry after a lost answer
	if !ok || err != nil {
		t.Fatalf("retaking its own lock: ok=%v err=%v, want it granted", ok, err)
	}
	if _, ok, _ := other.Lock(t.Context(), "study", time.Minute); ok {
		t.Fatal("another replica got the retaken lock")
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := other.Lock(t.Context(), "study", time.Minute); !ok {
		t.Error("released lock not free for the other replica")
	}
}

// TestReportStoreContract runs one contract over both report stores (the
// embedded one and Redis): Touch finds and extends what is there, and
// reports what expired or was never stored as missing.
func TestReportStoreContract(t *testing.T) {
	rdb, err := store.NewRedisClient(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	stores := map[string]cds.ReportStore{"memory": analysis.NewMemoryStore(10), "redis": store.NewRedisResults(rdb)}
	for name, s := range stores {
		t.Run(name, func(t *testing.T) {
			r := analysis.Result{Schema: analysis.SchemaVersion, Priority: "stat"}
			if there, err := s.Touch(t.Context(), "orthotriage:report:none", time.Minute); there || err != nil {
				t.Errorf("touch of a report never stored: there=%v err=%v", there, err)
			}
			if err := s.Put(t.Context(), "orthotriage:report:r1", r, 200*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if there, err := s.Touch(t.Context(), "orthotriage:report:r1", time.Minute); !there || err != nil {
				t.Fatalf("touch of a stored report: there=%v err=%v", there, err)
			}
			time.Sleep(300 * time.Millisecond) // past the first expiry: the touch extended it
			if _, ok, _ := s.Get(t.Context(), "orthotriage:report:r1"); !ok {
				t.Error("a touched report expired at its first expiry")
			}
			if err := s.Put(t.Context(), "orthotriage:report:r2", r, 50*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			if there, _ := s.Touch(t.Context(), "orthotriage:report:r2", time.Minute); there {
				t.Error("touch brought an expired report back")
			}
		})
	}
}
