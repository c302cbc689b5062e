package analysis_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/store"
)

// underPatient is the study of studyWith filed under another patient and
// ImagingStudy id, as after a merge or a misfiled study: same pixels, same
// Study Instance UID.
func underPatient(patient, imagingStudyID string) analysis.Input {
	in := studyWith("Pelvis")
	in.Patient = "Patient/" + patient
	in.Study.Id = ptr(imagingStudyID)
	in.Study.Subject.Reference = ptr("Patient/" + patient)
	in.Study.BasedOn = nil
	return in
}

// TestSameStudyAnotherPatientIsBoundToTheCall: a cached result is what the
// pixels say; the patient, ImagingStudy and server come from each call.
func TestSameStudyAnotherPatientIsBoundToTheCall(t *testing.T) {
	probs := p(0, 0, 0, 1, 0, 0, 0, 0)
	results := store.NewMemoryResults(10)
	a := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, results, nil, analysis.CacheOptions{}, a.Log)

	first, err := c.Analyze(t.Context(), underPatient("alice", "is-a"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Analyze(t.Context(), underPatient("bob", "is-b"))
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Computed != 1 || st.Hits != 1 {
		t.Fatalf("stats %+v: want one analysis, the second call from the cache", st)
	}
	if first.Study.Patient != "Patient/alice" || first.Study.ImagingStudyID != "is-a" {
		t.Errorf("first call bound to %+v", first.Study)
	}
	if second.Study.Patient != "Patient/bob" || second.Study.ImagingStudyID != "is-b" || len(second.Study.BasedOn) != 0 {
		t.Errorf("second patient's answer names %+v, want Patient/bob, ImagingStudy is-b, no order", second.Study)
	}
	if len(second.Findings) != 2 || second.Findings[0].Class != first.Findings[0].Class {
		t.Errorf("the pixels' findings differ between the calls: %+v vs %+v", first.Findings, second.Findings)
	}
	stored, ok, _ := results.Get(t.Context(), c.Key(underPatient("carol", "is-c")))
	if !ok {
		t.Fatal("result not stored under the study's key")
	}
	if stored.Study.Patient != "" || stored.Study.ImagingStudyID != "" || stored.FHIRServer != "" || stored.Tenant != "" {
		t.Errorf("the stored result names a patient, study or server: %+v tenant %q server %q", stored.Study, stored.Tenant, stored.FHIRServer)
	}
}

// TestConcurrentCallsOfTwoPatientsShareOnlyThePixels: two charts open the
// same study at once; the one computation is answered to each with its own
// patient.
func TestConcurrentCallsOfTwoPatientsShareOnlyThePixels(t *testing.T) {
	probs := p(0, 0, 0, 1, 0, 0, 0, 0)
	sr := &slowRetriever{fakeRetriever: fakeRetriever{bodyPart: "PELVIS"}, release: make(chan struct{})}
	a := analyzer(sr, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for i := range 20 {
		patient := []string{"alice", "bob"}[i%2]
		wg.Go(func() {
			r, err := c.Analyze(context.Background(), underPatient(patient, "is-"+patient))
			if err != nil || r.Study.Patient != "Patient/"+patient || r.Study.ImagingStudyID != "is-"+patient {
				wrong.Add(1)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(sr.release)
	wg.Wait()
	if n := wrong.Load(); n != 0 || sr.calls.Load() != 1 {
		t.Errorf("%d of 20 answers failed or named the other patient; %d retrievals, want 0 and 1", n, sr.calls.Load())
	}
}

func TestStudyOfAnotherPatientIsNotAnalysed(t *testing.T) {
	tests := []struct {
		name, subject, patient string
		want                   error
	}{
		{"relative, same patient", "Patient/alice", "Patient/alice", nil},
		{"absolute on the call's server", "https://EHR.example.org/fhir/Patient/alice", "Patient/alice", nil},
		{"another patient", "Patient/bob", "Patient/alice", analysis.ErrOtherPatient},
		{"same id on another server", "https://other.example.org/fhir/Patient/alice", "Patient/alice", analysis.ErrOtherPatient},
		{"a longer id", "Patient/alice2", "Patient/alice", analysis.ErrOtherPatient},
		{"no subject", "", "Patient/alice", analysis.ErrOtherPatient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := p(1, 0, 0, 0, 0, 0, 0, 0)
			fr := &fakeRetriever{bodyPart: "PELVIS"}
			a := analyzer(fr, hipClassifier(t, "0.1.0", probs, probs))
			c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)
			in := underPatient("alice", "is-a")
			in.Study.Subject.Reference = ptr(tt.subject)
			in.Patient = tt.patient
			_, err := c.Analyze(t.Context(), in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want != nil && fr.calls != 0 {
				t.Errorf("the other patient's study was retrieved %d times", fr.calls)
			}
		})
	}
}

// TestVertebralKeyNamesThePatient: the nomogram reads the patient's
// clinical data, so a vertebral result is not what the pixels alone say.
func TestVertebralKeyNamesThePatient(t *testing.T) {
	probs := p(1, 0, 0, 0, 0, 0, 0, 0)
	a := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)
	alice, bob := underPatient("alice", "is-a"), underPatient("bob", "is-b")
	if c.Key(alice) != c.Key(bob) {
		t.Error("a hip result of one study is keyed per patient")
	}
	alice.Task, bob.Task = inference.TaskVertebral, inference.TaskVertebral
	if c.Key(alice) == c.Key(bob) {
		t.Error("a vertebral result (clinical data in the nomogram) is shared across patients")
	}
}

// racingLocker grants every lock, but first lets another replica finish
// the study (before grants): the result is stored between the loser's
// lookup and its lock.
type racingLocker struct {
	before func()
	once   sync.Once
}

func (l *racingLocker) Lock(context.Context, string, time.Duration) (analysis.Lease, bool, error) {
	l.once.Do(l.before)
	return store.NewMemoryLocker().Lock(context.Background(), "", time.Minute)
}

// TestLockWinnerLooksAgainBeforeComputing: a result stored by another
// replica while this one took the lock is served, not computed again.
func TestLockWinnerLooksAgainBeforeComputing(t *testing.T) {
	probs := p(0, 0, 0, 1, 0, 0, 0, 0)
	shared := &sharedStore{MemoryResults: store.NewMemoryResults(10)}
	other := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
	replicaB := analysis.NewCached(other, shared, nil, analysis.CacheOptions{}, other.Log)
	fr := &fakeRetriever{bodyPart: "PELVIS"}
	a := analyzer(fr, hipClassifier(t, "0.1.0", probs, probs))
	replicaA := analysis.NewCached(a, shared, &racingLocker{before: func() {
		if _, err := replicaB.Analyze(context.Background(), studyWith("Pelvis")); err != nil {
			t.Error(err)
		}
	}}, analysis.CacheOptions{}, a.Log)
	if _, err := replicaA.Analyze(t.Context(), studyWith("Pelvis")); err != nil {
		t.Fatal(err)
	}
	if a, b := replicaA.Stats().Computed, replicaB.Stats().Computed; a+b != 1 || fr.calls != 0 {
		t.Errorf("replica A computed %d, B %d (A retrieved %d times): want the study computed once, by B", a, b, fr.calls)
	}
}

// sharedStore is a MemoryResults standing for Redis (Cached keeps its near
// copy and asks it as it asks Redis); it can be slow: Get waits for the
// deadline while slow is set.
type sharedStore struct {
	*store.MemoryResults
	slow  atomic.Bool
	fail  error // every operation fails with it when set
	calls atomic.Int32
}

// InProcess is false: the store stands for Redis, whose operations have
// deadlines (the embedded MemoryResults would say true).
func (s *sharedStore) InProcess() bool { return false }

func (s *sharedStore) Get(ctx context.Context, key string) (analysis.Result, bool, error) {
	s.calls.Add(1)
	if s.fail != nil {
		return analysis.Result{}, false, s.fail
	}
	if s.slow.Load() {
		<-ctx.Done()
		return analysis.Result{}, false, ctx.Err()
	}
	return s.MemoryResults.Get(ctx, key)
}

func (s *sharedStore) Put(ctx context.Context, key string, r analysis.Result, ttl time.Duration) error {
	s.calls.Add(1)
	if s.fail != nil {
		return s.fail
	}
	return s.MemoryResults.Put(ctx, key, r, ttl)
}

// heldLocker is a lock another replica holds: never granted; or, with
// fail, a lock store that fails; with slow, one that does not answer.
type heldLocker struct {
	fail error
	slow bool
}

func (l heldLocker) Lock(ctx context.Context, _ string, _ time.Duration) (analysis.Lease, bool, error) {
	if l.fail != nil {
		return nil, false, l.fail
	}
	if l.slow {
		<-ctx.Done()
		return nil, false, ctx.Err()
	}
	return nil, false, nil
}

// TestSlowStoreDoesNotSwitchTheLockOff: a store call slower than its
// timeout is a busy Redis, not a down one: the replica that lost the lock
// keeps waiting for the winner's result instead of computing it too.
func TestSlowStoreDoesNotSwitchTheLockOff(t *testing.T) {
	probs := p(0, 0, 0, 1, 0, 0, 0, 0)
	shared := &sharedStore{MemoryResults: store.NewMemoryResults(10)}
	winner := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
	fr := &fakeRetriever{bodyPart: "PELVIS"}
	a := analyzer(fr, hipClassifier(t, "0.1.0", probs, probs))
	loser := analysis.NewCached(a, shared, heldLocker{}, analysis.CacheOptions{StoreTimeout: 20 * time.Millisecond, Poll: 10 * time.Millisecond}, a.Log)
	shared.slow.Store(true)
	go func() { // the lock holder finishes a little later, once the store is quick again
		time.Sleep(150 * time.Millisecond)
		shared.slow.Store(false)
		w := analysis.NewCached(winner, shared, nil, analysis.CacheOptions{}, winner.Log)
		if _, err := w.Analyze(context.Background(), studyWith("Pelvis")); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := loser.Analyze(ctx, studyWith("Pelvis"))
	if err != nil {
		t.Fatal(err)
	}
	st := loser.Stats()
	if st.Computed != 0 || st.LockBypassed != 0 || fr.calls != 0 || len(r.Findings) != 2 {
		t.Errorf("the lock's loser computed %d, bypassed the lock %d times, retrieved %d: want the winner's result, none of its own", st.Computed, st.LockBypassed, fr.calls)
	}
	if st.StoreErrors == 0 || st.Outages != 0 {
		t.Errorf("stats %+v: want the slow calls counted as errors, no outage", st)
	}
}

// TestOnlyAnOutageRelaxesTheLock: a store that refuses connections, or
// that has not answered once for OutageAfter, is down; then the analysis
// runs without the lock, and the counters say so.
func TestOnlyAnOutageRelaxesTheLock(t *testing.T) {
	tests := []struct {
		name   string
		store  func() *sharedStore
		locker heldLocker
	}{
		{"connection refused", func() *sharedStore {
			return &sharedStore{MemoryResults: store.NewMemoryResults(10), fail: refused}
		}, heldLocker{fail: refused}},
		{"no answer for OutageAfter", func() *sharedStore {
			s := &sharedStore{MemoryResults: store.NewMemoryResults(10)}
			s.slow.Store(true)
			return s
		}, heldLocker{slow: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := p(0, 0, 0, 1, 0, 0, 0, 0)
			a := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
			c := analysis.NewCached(a, tt.store(), tt.locker, analysis.CacheOptions{StoreTimeout: 10 * time.Millisecond,
				Poll: 5 * time.Millisecond, OutageAfter: 100 * time.Millisecond, StoreBackoff: time.Hour}, a.Log)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if _, err := c.Analyze(ctx, studyWith("Pelvis")); err != nil {
				t.Fatal(err)
			}
			if st := c.Stats(); st.Computed != 1 || st.LockBypassed != 1 || st.Outages != 1 {
				t.Errorf("stats %+v: want one analysis without the lock, one outage", st)
			}
		})
	}
}

// TestJobAndHookBindTheSamePatient: a precompute job (no context patient)
// reading a study whose subject is the Patient's absolute URL on the server
// binds it as the hook does, "Patient/{id}": same key, same resource ids.
func TestJobAndHookBindTheSamePatient(t *testing.T) {
	probs := p(0, 0, 0, 1, 0, 0, 0, 0)
	a := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
	c := analysis.NewCached(a, nil, nil, analysis.CacheOptions{}, a.Log)
	job := underPatient("alice", "is-a")
	job.Patient = ""
	job.Study.Subject.Reference = ptr("https://ehr.example.org/fhir/Patient/alice")
	r, err := c.Analyze(t.Context(), job)
	if err != nil {
		t.Fatal(err)
	}
	if r.Study.Patient != "Patient/alice" {
		t.Errorf("the job bound the study to %q, want Patient/alice", r.Study.Patient)
	}
	hook := underPatient("alice", "is-a")
	job.Task, hook.Task = inference.TaskVertebral, inference.TaskVertebral
	if c.Key(job) != c.Key(hook) {
		t.Error("a vertebral job and a hook for the same patient have different keys")
	}
}

// TestPatientOf: a subject names a patient of the call's server only as a
// relative reference or an absolute URL under that server, by whole path
// segments; anything else (another server, another type, a path trick) is
// no patient.
func TestPatientOf(t *testing.T) {
	const base = "https://fhir.example.org/r4"
	tests := []struct {
		ref, want string
		ok        bool
	}{
		{"Patient/p1", "p1", true},
		{"https://fhir.example.org/r4/Patient/p1", "p1", true},
		{"HTTPS://FHIR.example.org:443/r4/Patient/p1", "p1", true},
		{"https://fhir.example.org/r4x/Patient/p1", "", false},
		{"https://other.example.org/r4/Patient/p1", "", false},
		{"https://fhir.example.org/r4/Group/p1", "", false},
		{"https://fhir.example.org/r4/../r4/Patient/p1", "", false},
		{"Group/p1", "", false},
		{"Patient/", "", false},
		{"Patient/p1/_history/2", "", false},
		{"Patient/p%2F1", "", false},
		{"Patient/p1?x=1", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := analysis.PatientOf(tt.ref, base)
		if got != tt.want || ok != tt.ok {
			t.Errorf("PatientOf(%q) = %q, %v; want %q, %v", tt.ref, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := analysis.PatientOf("https://fhir.example.org/r4/Patient/p1", ""); ok {
		t.Error("an absolute reference with no server named a patient")
	}
}

// deadlineStore counts its Gets given no deadline.
type deadlineStore struct {
	*store.MemoryResults
	inProcess  atomic.Bool
	noDeadline atomic.Int32
}

func (d *deadlineStore) InProcess() bool { return d.inProcess.Load() }

func (d *deadlineStore) Get(ctx context.Context, key string) (analysis.Result, bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		d.noDeadline.Add(1)
	}
	return d.MemoryResults.Get(ctx, key)
}

// TestInProcessStoreGetsNoDeadline: the embedded store's operations get no
// deadline of their own (a timer on every hook call, for a map lookup); a
// shared store's do.
func TestInProcessStoreGetsNoDeadline(t *testing.T) {
	probs := p(0, 0, 0, 1, 0, 0, 0, 0)
	for _, inProcess := range []bool{true, false} {
		st := &deadlineStore{MemoryResults: store.NewMemoryResults(10)}
		st.inProcess.Store(inProcess)
		a := analyzer(&fakeRetriever{bodyPart: "PELVIS"}, hipClassifier(t, "0.1.0", probs, probs))
		c := analysis.NewCached(a, st, store.NewMemoryLocker(), analysis.CacheOptions{}, a.Log)
		if _, err := c.Analyze(context.Background(), studyWith("Pelvis")); err != nil {
			t.Fatal(err)
		}
		// The hook's own context has no deadline here: only the store
		// operation's could give one.
		if got := st.noDeadline.Load(); (got > 0) != inProcess {
			t.Errorf("in process %v: %d of the store's Gets had no deadline", inProcess, got)
		}
	}
}
