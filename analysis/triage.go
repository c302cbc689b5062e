package analysis

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// StudyAnalyzer analyses one study; Cached is the one hooks and precompute
// jobs use (one computation per study), Analyzer the one underneath.
type StudyAnalyzer interface {
	Analyze(ctx context.Context, in Input) (Result, error)
	Reads(task string) bool
}

var (
	_ StudyAnalyzer = (*Cached)(nil)
	_ StudyAnalyzer = (*Analyzer)(nil)
)

// FHIRServer is an EHR's FHIR server and the bearer token for it: where a
// precompute job's study is read and where results are written back. The
// token must never be logged or put in an error.
type FHIRServer struct {
	BaseURL string
	Token   string
}

// TriageConfig is what a Triage is built from.
type TriageConfig struct {
	// Analyzer analyses one study; nil: no task is read (every hook is
	// answered with no guidance, every job is done with no result).
	Analyzer StudyAnalyzer
	// Studies reads a precompute job's study; cds.Resolver is one.
	Studies StudyReader
	// Tasks are what a precompute job analyses its study for: the model
	// tasks of the services offered (those the Analyzer reads).
	Tasks []string
	// WriteBack, when set, stores the results worth a card on the FHIR
	// server of their call or job.
	WriteBack *WriteBack
	// StudiesPerCall is how many of a call's studies (newest first) are
	// analysed; 1 when 0.
	StudiesPerCall int
	// Budgets is how long a hook waits for analyses, by hook; a hook not
	// listed waits as long as the request may. Unfinished analyses go on
	// in the background and are answered from the cache next time.
	Budgets map[string]time.Duration
	// NormalCards says results with nothing notable get a card too
	// (WorthACard), so that they are written back as well.
	NormalCards bool
	// Worklist, when set, is told each study read or still in analysis,
	// for the radiologist's worklist; nil: none is kept.
	Worklist Worklist
	Log      *slog.Logger
}

// Triage is the use case: the studies of a hook call analysed side by side
// within the hook's budget, and studies analysed ahead of any hook by
// precompute jobs; the results worth a card are written back.
type Triage struct {
	cfg TriageConfig
	// noted remembers the notes the worklist took lately (recentNotes).
	noted recentNotes
}

// NewTriage returns the use case built from cfg.
func NewTriage(cfg TriageConfig) *Triage {
	cfg.StudiesPerCall = max(1, cfg.StudiesPerCall)
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Triage{cfg: cfg}
}

// Reads reports whether a loaded model reads task.
func (t *Triage) Reads(task string) bool {
	return t.cfg.Analyzer != nil && t.cfg.Analyzer.Reads(task)
}

// Call is one hook call's studies, as the protocol resolved them.
type Call struct {
	Hook string // whose budget applies
	// Service and HookInstance name the call in the logs.
	Service, HookInstance string
	// Studies are the call's studies, newest first, each as it is to be
	// analysed; the first StudiesPerCall are.
	Studies []Input
	// Bodies are vertebral bodies the caller gave (a radiologist's
	// correction, say); each goes to the study it names.
	Bodies []GivenBody
	// Server is the call's FHIR server and token, where the results worth
	// a card are written back; none when its BaseURL is "".
	Server FHIRServer
}

// GivenBody is a vertebral body given by the caller for one study.
type GivenBody struct {
	// Study names the study: "ImagingStudy/{id}" or its Study Instance UID
	// (bare or urn:oid:); "" when the call analyses one study.
	Study string
	inference.Body
}

// StudyStatus says what became of one study of a call.
type StudyStatus int

// What becomes of a study.
const (
	// StudyDone: the study was read; the outcome holds its result.
	StudyDone StudyStatus = iota
	// StudyPending: still in analysis when the hook's budget ran out; the
	// next call is answered from the cache.
	StudyPending
	// StudyNotRead: no radiograph in it that a loaded model reads
	// (ErrNoRadiograph); not an error of the call.
	StudyNotRead
	// StudyOtherPatient: its subject is not the call's patient
	// (ErrOtherPatient); it is not shown for this patient.
	StudyOtherPatient
	// StudyFailed: the analysis failed (retrieval, decoding, a model).
	StudyFailed
)

// Outcome is what became of one study of a call.
type Outcome struct {
	Status StudyStatus
	Result Result // when Status is StudyDone
	Err    error  // why not, otherwise
}

// Call analyses the call's newest studies side by side and returns one
// outcome per study analysed, in order. It waits no longer than the hook's
// budget, then up to noteTimeout for the worklist to note the studies read
// or pending; it fails only when ctx ends (the request is over).
func (t *Triage) Call(ctx context.Context, c Call) ([]Outcome, error) {
	if t.cfg.Analyzer == nil {
		return nil, nil
	}
	studies := c.Studies[:min(len(c.Studies), t.cfg.StudiesPerCall)]
	wait, cancel := ctx, context.CancelFunc(func() {})
	if budget, ok := t.cfg.Budgets[c.Hook]; ok && budget > 0 {
		wait, cancel = context.WithTimeout(ctx, budget)
	}
	defer cancel()
	outcomes := make([]Outcome, len(studies))
	analyze := func(i int, in Input) {
		in.Bodies = bodiesFor(c.Bodies, in.Study, len(studies))
		r, err := t.cfg.Analyzer.Analyze(wait, in)
		outcomes[i] = Outcome{Result: r, Err: err}
	}
	if len(studies) == 1 {
		// Most calls name one study: no goroutine to start and wake for it.
		analyze(0, studies[0])
	} else {
		var wg sync.WaitGroup
		for i, in := range studies {
			wg.Go(func() { analyze(i, in) })
		}
		wg.Wait()
	}
	for i := range outcomes {
		o, study := &outcomes[i], deref(studies[i].Study.Id)
		switch {
		case o.Err == nil:
			o.Status = StudyDone
			t.writeBack(c.Server, o.Result)
		case errors.Is(o.Err, ErrOtherPatient):
			o.Status = StudyOtherPatient
			t.cfg.Log.WarnContext(ctx, "study of another patient not analysed", "service", c.Service, "hookInstance", c.HookInstance, "study", study)
		case errors.Is(o.Err, ErrNoRadiograph):
			o.Status = StudyNotRead
			t.cfg.Log.InfoContext(ctx, "study not analysed", "service", c.Service, "study", study, "reason", o.Err)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case wait.Err() != nil && IsPending(o.Err):
			o.Status = StudyPending
			t.cfg.Log.InfoContext(ctx, "study still in analysis at the hook's budget: answered later from the cache", "service", c.Service, "study", study)
		default:
			o.Status = StudyFailed
			t.cfg.Log.WarnContext(ctx, "study analysis failed", "service", c.Service, "study", study, "err", o.Err)
		}
	}
	t.noteCall(ctx, studies, outcomes)
	return outcomes, nil
}

// noteTimeout bounds the worklist notes of a call or job: the worklist is
// not worth holding a hook's answer for.
const noteTimeout = 200 * time.Millisecond

// workNote is one study for the worklist of its tenant and FHIR server.
type workNote struct {
	tenant, fhirServer string
	item               WorkItem
}

// noteCall puts a call's studies read or still in analysis on the
// worklist.
func (t *Triage) noteCall(ctx context.Context, studies []Input, outcomes []Outcome) {
	var notes []workNote
	for i, o := range outcomes {
		in := studies[i]
		switch o.Status {
		case StudyDone:
			notes = append(notes, workNote{in.Tenant, in.FHIRServer, WorkItemOf(in, o.Result)})
		case StudyPending:
			notes = append(notes, workNote{in.Tenant, in.FHIRServer, PendingItem(in)})
		}
	}
	t.note(ctx, notes)
}

// note tells the worklist notes side by side, all within noteTimeout even
// when ctx has ended (the answer is computed by then); a failure is
// logged, never the caller's. A study with no ImagingStudy id or no FHIR
// server cannot be listed and is left out.
func (t *Triage) note(ctx context.Context, notes []workNote) {
	if t.cfg.Worklist == nil {
		return
	}
	type due struct {
		note workNote
		key  noteKey
	}
	var send []due
	for _, n := range notes {
		if n.item.ImagingStudy == "" || n.fhirServer == "" {
			continue
		}
		if key := n.key(); !t.noted.recent(key) {
			send = append(send, due{n, key})
		}
	}
	if len(send) == 0 {
		return // the usual repeated call: nothing to send, no timer to start
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noteTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, d := range send {
		wg.Go(func() {
			if err := t.cfg.Worklist.Note(ctx, d.note.tenant, d.note.fhirServer, d.note.item); err != nil {
				t.cfg.Log.WarnContext(ctx, "study not noted on the worklist", "study", d.note.item.ImagingStudy, "err", err)
				return
			}
			t.noted.add(d.key)
		})
	}
	wg.Wait()
}

// An EHR calls patient-view on every chart open, so the same study is
// noted again and again with the same content, each note a worklist
// (Redis) round trip within the call. A note the worklist took less than
// noteRepeatAfter ago is not sent again: it would only move the item's
// Updated stamp (the worklist's forgetting order) by as much. A note whose
// content changed (pending to read, another model) goes at once.
const (
	noteRepeatAfter = 10 * time.Second
	recentNotesMax  = 4096
)

// noteKey is a note's identity and content, comparable: Top by value, and
// times as instants (a result read back from Redis carries its time in
// another location than the one that was stored).
type noteKey struct {
	tenant, fhirServer string
	item               WorkItem // without Top
	top                WorkTop
}

func (n workNote) key() noteKey {
	k := noteKey{tenant: n.tenant, fhirServer: n.fhirServer, item: n.item}
	if n.item.Top != nil {
		k.top = *n.item.Top
	}
	k.item.Top = nil
	k.item.Analyzed, k.item.Updated = k.item.Analyzed.Round(0).UTC(), k.item.Updated.Round(0).UTC()
	return k
}

// recentNotes are the notes taken in the last noteRepeatAfter, at most
// recentNotesMax (all are forgotten when full). The zero value is ready.
type recentNotes struct {
	mu   sync.Mutex
	when map[noteKey]time.Time
}

func (r *recentNotes) recent(k noteKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.when[k]
	return ok && time.Since(at) < noteRepeatAfter
}

func (r *recentNotes) add(k noteKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.when == nil || len(r.when) >= recentNotesMax {
		r.when = make(map[noteKey]time.Time)
	}
	r.when[k] = time.Now()
}

// writeBack offers r for write-back to server when it is worth a card.
func (t *Triage) writeBack(server FHIRServer, r Result) {
	if t.cfg.WriteBack != nil && server.BaseURL != "" && r.WorthACard(t.cfg.NormalCards) {
		t.cfg.WriteBack.Offer(server, r)
	}
}

// bodiesFor are the given bodies of one study: those naming it, and those
// naming no study when the call analyses one.
func bodiesFor(given []GivenBody, s models.ImagingStudy, studies int) []inference.Body {
	var out []inference.Body
	uid := imaging.StudyInstanceUID(s)
	for _, b := range given {
		if b.Study == "ImagingStudy/"+deref(s.Id) || (uid != "" && (b.Study == uid || b.Study == "urn:oid:"+uid)) || (b.Study == "" && studies == 1) {
			out = append(out, b.Body)
		}
	}
	return out
}
