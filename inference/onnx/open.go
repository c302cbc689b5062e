package onnx

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/spine"
)

// The pipeline's stages, as spine declares them.
var (
	_ spine.Localiser  = (*LocaliserModel)(nil)
	_ hipLocaliser     = (*LocaliserModel)(nil)
	_ spine.Classifier = (*Batcher)(nil)
	_ spine.Classifier = (*Model)(nil)
)

// hipLocaliser is analysis.HipLocaliser (this package does not import
// analysis).
type hipLocaliser interface {
	FindHips(pixels []float32, rows, cols int) (inference.HipJoints, error)
}

// Options say how Open loads a manifest's files.
type Options struct {
	// Library is the ONNX Runtime library; "" searches FindLibrary's
	// default paths. It is loaded once per process (see Start).
	Library string
	// Session are the settings of every session Open creates.
	Session SessionOptions
	// BatchMax > 0 puts the network behind a Batcher of at most BatchMax
	// crops that waits up to BatchWait under load (the service); 0 leaves
	// Loaded.Batcher nil, for callers that run one image at a time (the
	// offline commands).
	BatchMax  int
	BatchWait time.Duration
	// Partial loads only the stages of the manifest whose files exist, in
	// the order training writes them (a hip model's localiser, then its
	// network; a vertebral model's localiser, then
	// its network, then its fusion model), stopping at the first absent:
	// the training data of each stage needs the ones before it. ONNX
	// Runtime is loaded only when a stage is. Without Partial an absent
	// file is an error naming it.
	Partial bool
}

// Loaded is all a manifest needs at run time. Close releases it.
type Loaded struct {
	Manifest *inference.Manifest
	// Model is the network's session; nil when Partial found no file.
	Model *Model
	// Batcher is Model behind its batcher; nil unless Options.BatchMax > 0.
	Batcher *Batcher
	// Localiser is a vertebral manifest's localiser; nil for other tasks
	// or when Partial found no file.
	Localiser *LocaliserModel
	// HipLocaliser is a hip manifest's localiser (preprocessing.localiser);
	// nil when it has none or Partial found no file.
	HipLocaliser *LocaliserModel
	// Pipeline is a vertebral manifest's pipeline around the stages that
	// loaded: Localiser, the network (Batcher when there is one, else
	// Model) and the fusion model; nil for other tasks. A stage that did
	// not load is a nil field.
	Pipeline *spine.Pipeline

	closeOnce sync.Once
	closeErr  error
}

// Open loads what manifest m needs, as o says: ONNX Runtime (Start), the
// network's session and, for a vertebral manifest, the localiser's session
// and the fusion model, checking each against the manifest. On error
// nothing stays open.
func Open(m *inference.Manifest, o Options) (*Loaded, error) {
	l := &Loaded{Manifest: m}
	if err := l.open(o); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// open loads the stages in training order; see Options.Partial.
func (l *Loaded) open(o Options) error {
	m := l.Manifest
	absent := func(name string) bool {
		if !o.Partial {
			return false // loading reports it, naming the file
		}
		_, err := m.ReadFile(name)
		return err != nil
	}
	started := false
	start := func() error {
		if started {
			return nil
		}
		started = true
		_, err := Start(o.Library)
		return err
	}
	vertebral := m.Task == inference.TaskVertebral
	if hl := m.Preprocess.Localiser; hl != nil {
		// The hip localiser is trained first: the classifier's crops
		// follow it.
		if absent(hl.File) {
			return nil
		}
		if err := start(); err != nil {
			return err
		}
		loc, err := LoadHipLocaliser(m, o.Session)
		if err != nil {
			return err
		}
		l.HipLocaliser = loc
	}
	if vertebral {
		l.Pipeline = &spine.Pipeline{Manifest: m}
		if absent(m.Vertebral.Localiser.File) {
			return nil
		}
		if err := start(); err != nil {
			return err
		}
		loc, err := LoadLocaliser(m, o.Session)
		if err != nil {
			return err
		}
		l.Localiser, l.Pipeline.Localiser = loc, loc
	}
	if absent(m.File) {
		return nil
	}
	if err := start(); err != nil {
		return err
	}
	md, err := Load(m, o.Session)
	if err != nil {
		return err
	}
	l.Model = md
	var net spine.Classifier = md
	if o.BatchMax > 0 {
		l.Batcher = NewBatcher(md, o.BatchMax, o.BatchWait)
		net = l.Batcher
	}
	if !vertebral {
		return nil
	}
	l.Pipeline.Net = net
	if absent(m.Vertebral.Fusion) {
		return nil
	}
	data, err := m.ReadFile(m.Vertebral.Fusion)
	if err != nil {
		return err
	}
	f, err := spine.ParseFusion(data)
	if err != nil {
		return fmt.Errorf("model %s: %w", m.ID, err)
	}
	l.Pipeline.Fusion = f
	return nil
}

// UsesAfterClose is how many times the batcher, the network or the
// localiser was asked to run after Close (each got ErrClosed): 0 unless a
// shutdown closed the model under work still running.
func (l *Loaded) UsesAfterClose() uint64 {
	var n uint64
	if l.Batcher != nil {
		n += l.Batcher.UsesAfterClose()
	}
	if l.Model != nil {
		n += l.Model.UsesAfterClose()
	}
	if l.Localiser != nil {
		n += l.Localiser.UsesAfterClose()
	}
	if l.HipLocaliser != nil {
		n += l.HipLocaliser.UsesAfterClose()
	}
	return n
}

// Close stops the batcher (after the batch in progress) and releases the
// sessions; later calls return the first call's answer.
func (l *Loaded) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		if l.Batcher != nil {
			l.Batcher.Close()
		}
		if l.Model != nil {
			errs = append(errs, l.Model.Close())
		}
		if l.Localiser != nil {
			errs = append(errs, l.Localiser.Close())
		}
		if l.HipLocaliser != nil {
			errs = append(errs, l.HipLocaliser.Close())
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}
