package dataset

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/inference/spine"
	"github.com/orthotriage/orthotriage/phantom"
)

// SpineReader reads the vertebral bodies of a radiograph; *spine.Pipeline
// is one.
type SpineReader interface {
	Read(ctx context.Context, img *imaging.Image, given []inference.Body, all bool) ([]spine.Reading, error)
}

// SpineModel is a vertebral model as far as it is trained: each stage's
// training data needs the stages before it.
type SpineModel struct {
	Manifest *inference.Manifest
	// Reader runs the trained localiser and, when Network, the
	// per-vertebra network; nil before the localiser is trained.
	Reader SpineReader
	// Network says the network is trained: its probabilities and deep
	// features are written.
	Network bool
}

// localiserHeader is the header of localiser.csv: one row per case and
// level, the box as fractions of the image.
var localiserHeader = []string{"index", "file", "level", "present", "cx", "cy", "w", "h"}

// spineItem is one case's training rows.
type spineItem struct {
	locPlane []float32
	locRows  [][]string
	rois     []float32
	roiRows  [][]string
	deep     []float32
	radio    []map[string]float64
	stats    localiserStats
	err      error
}

// localiserStats compare the localiser with the labels.
type localiserStats struct {
	Labelled    int     `json:"labelled"`    // vertebrae wholly in the image
	Found       int     `json:"found"`       // labelled and localised at the same level with IoU >= 0.3
	Extra       int     `json:"extra"`       // localised with no labelled match
	SumIoU      float64 `json:"sumIoU"`      // over found
	Fractured   int     `json:"fractured"`   // labelled fractured
	FracFound   int     `json:"fracFound"`   // of those, found
	FracCalled  int     `json:"fracCalled"`  // of those found, called fractured by the network
	NormalFound int     `json:"normalFound"` // labelled not fractured and found
	NormalFalse int     `json:"normalFalse"` // of those, called fractured
}

func (s *localiserStats) add(o localiserStats) {
	s.Labelled += o.Labelled
	s.Found += o.Found
	s.Extra += o.Extra
	s.SumIoU += o.SumIoU
	s.Fractured += o.Fractured
	s.FracFound += o.FracFound
	s.FracCalled += o.FracCalled
	s.NormalFound += o.NormalFound
	s.NormalFalse += o.NormalFalse
}

func (s localiserStats) String() string {
	out := fmt.Sprintf("localised %d of %d labelled vertebrae (%.1f%%), mean IoU %.3f, %d extra",
		s.Found, s.Labelled, 100*float64(s.Found)/float64(max(1, s.Labelled)), s.SumIoU/float64(max(1, s.Found)), s.Extra)
	if s.Fractured > 0 {
		out += fmt.Sprintf("; fractured: %d of %d localised", s.FracFound, s.Fractured)
		if s.FracCalled+s.NormalFalse > 0 || s.NormalFound > 0 {
			out += fmt.Sprintf(", %d called fractured (sensitivity %.3f), %d of %d unfractured called fractured",
				s.FracCalled, float64(s.FracCalled)/float64(max(1, s.FracFound)), s.NormalFalse, s.NormalFound)
		}
	}
	return out
}

// spineFiles are the writers of a spine run; those of the regions of
// interest open with the first case once the localiser is trained.
type spineFiles struct {
	*outputs
	model          SpineModel
	loc            *npyWriter
	locCSV         *csv.Writer
	roi, deep      *npyWriter
	roiCSV, radCSV *csv.Writer
	radNames       []string
	rois           int // regions of interest written
	stats          localiserStats
}

// SpineCrops writes a vertebral model's training data for spine phantoms:
// always the localiser's input and targets (localiser.npy, localiser.csv);
// with the localiser trained, the region of interest and radiomics of every
// localised body matched to its label (rois.npy, rois.csv, radiomics.csv,
// and localiser-stats.json); with the network trained, its probabilities
// and deep features (deep.npy).
func (g Run) SpineCrops(ctx context.Context, s SpineModel, stdout io.Writer) error {
	if err := g.Vary.Validate(); err != nil {
		return err
	}
	began := time.Now()
	l := s.Manifest.Vertebral.Localiser
	f := &spineFiles{outputs: newOutputs(g.Out), model: s}
	defer f.close()
	var err error
	if f.loc, err = f.npy("localiser.npy", []int{g.N, 1, l.Height, l.Width}); err != nil {
		return err
	}
	f.locCSV = f.csv("localiser.csv", localiserHeader)
	err = inOrder(ctx, g.N, func(i int) spineItem { return g.spineCase(ctx, s, g.Start+i) }, func(i int, it spineItem) error {
		if err := f.write(it); err != nil {
			return err
		}
		if done := i + 1; done%100 == 0 || done == g.N {
			fmt.Fprintf(g.progress(), "phantom: %d/%d spine cases, %d regions of interest (%.1fs)\n", done, g.N, f.rois, time.Since(began).Seconds())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := f.finish(); err != nil {
		return err
	}
	if s.Reader != nil {
		fmt.Fprintf(g.progress(), "phantom: %s\n", f.stats)
		b, _ := json.MarshalIndent(f.stats, "", " ")
		if err := os.WriteFile(filepath.Join(g.Out, "localiser-stats.json"), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %d spine cases (%d regions of interest) to %s\n", g.N, f.rois, g.Out)
	return nil
}

// write writes one case's rows and values.
func (f *spineFiles) write(it spineItem) error {
	if it.err != nil {
		return it.err
	}
	f.loc.write(it.locPlane)
	f.locCSV.WriteAll(it.locRows)
	if f.model.Reader != nil && f.roi == nil {
		if err := f.openROIs(); err != nil {
			return err
		}
	}
	for k, row := range it.roiRows {
		if f.radCSV == nil {
			f.radNames = slices.Sorted(maps.Keys(it.radio[k]))
			f.radCSV = f.csv("radiomics.csv", append([]string{"index"}, f.radNames...))
		}
		rec := []string{strconv.Itoa(f.rois)}
		for _, name := range f.radNames {
			rec = append(rec, strconv.FormatFloat(it.radio[k][name], 'g', -1, 64))
		}
		f.radCSV.Write(rec)
		f.roiCSV.Write(append([]string{strconv.Itoa(f.rois)}, row...))
		f.rois++
	}
	if f.roi != nil {
		f.roi.write(it.rois)
	}
	if f.deep != nil {
		f.deep.write(it.deep)
	}
	f.stats.add(it.stats)
	return nil
}

// openROIs opens rois.npy, rois.csv and, with the network, deep.npy.
func (f *spineFiles) openROIs() error {
	m := f.model.Manifest
	rs := m.Preprocess.Resize
	var err error
	if f.roi, err = f.npyLater("rois.npy", []int{1, rs.Height, rs.Width}); err != nil {
		return err
	}
	f.roiCSV = f.csv("rois.csv", []string{"index", "file", "level", "fracture", "difficulty", "iou", "presence",
		"p_none", "p_acute", "p_chronic", "age", "sex", "symptom_days", "trauma", "tscore"})
	if f.model.Network {
		if f.deep, err = f.npyLater("deep.npy", []int{int(m.Output("features").Shape[1])}); err != nil {
			return err
		}
	}
	return nil
}

// LocaliserNegatives writes localiser inputs of pelvis phantoms with every
// level absent (localiser.npy, localiser.csv): trained only on spines, a
// localiser would find vertebrae on any image.
func (g Run) LocaliserNegatives(ctx context.Context, m *inference.Manifest, stdout io.Writer) error {
	if err := g.Vary.Validate(); err != nil {
		return err
	}
	l := m.Vertebral.Localiser
	w := newOutputs(g.Out)
	defer w.close()
	npy, err := w.npy("localiser.npy", []int{g.N, 1, l.Height, l.Width})
	if err != nil {
		return err
	}
	rows := w.csv("localiser.csv", localiserHeader)
	type negative struct {
		plane []float32
		id    string
		err   error
	}
	err = inOrder(ctx, g.N, func(i int) negative {
		pc, err := phantom.PelvisVaried(g.Seed, g.Start+i, g.Vary)
		if err != nil {
			return negative{err: err}
		}
		img, err := decodeCase(pc.ID, pc.Image)
		if err != nil {
			return negative{err: err}
		}
		plane := make([]float32, l.Width*l.Height)
		return negative{plane: plane, id: pc.ID, err: inference.LocaliserInput(l, m.Preprocess, img.Pixels, img.Meta.Rows, img.Meta.Columns, plane)}
	}, func(i int, it negative) error {
		if it.err != nil {
			return it.err
		}
		npy.write(it.plane)
		for _, level := range l.Levels {
			rows.Write([]string{strconv.Itoa(i), it.id, level, "0", "0", "0", "0", "0"})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.finish(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d localiser negatives (pelvis) to %s\n", g.N, g.Out)
	return nil
}

// SpineNegativeKinds are the kinds of images VertebralNegatives writes:
// NegativeKinds without the lateral spine (images of nothing, and
// pelvises upside down, turned, collimated or badly exposed).
var SpineNegativeKinds = slices.DeleteFunc(slices.Clone(NegativeKinds), func(k string) bool { return k == "spine" })

// VertebralNegatives writes a vertebral localiser's negatives
// (localiser.npy, localiser.csv with every level absent): blank, black,
// white, noise and structured-noise images and changed pelvises, cycling
// through SpineNegativeKinds by case index; LocaliserNegatives writes
// plain pelvises. It prints how many of each kind it wrote.
func (g Run) VertebralNegatives(ctx context.Context, m *inference.Manifest, stdout io.Writer) error {
	if m.Vertebral == nil {
		return fmt.Errorf("model %s has no vertebral localiser", m.ID)
	}
	return g.negatives(ctx, SpineNegativeKinds, m.Vertebral.Localiser, m.Preprocess, "vertebral localiser negatives", stdout)
}

// ff formats a fraction or probability for the CSV files.
func ff(v float64) string { return strconv.FormatFloat(v, 'f', 5, 64) }

// spineCase generates case i and runs the stages that exist on it.
func (g Run) spineCase(ctx context.Context, s SpineModel, i int) spineItem {
	sc, err := phantom.SpineVaried(g.Seed, i, g.Vary)
	if err != nil {
		return spineItem{err: err}
	}
	img, err := decodeCase(sc.ID, sc.Image)
	if err != nil {
		return spineItem{err: err}
	}
	m := s.Manifest
	l := m.Vertebral.Localiser
	rows, cols := img.Meta.Rows, img.Meta.Columns
	it := spineItem{locPlane: make([]float32, l.Width*l.Height)}
	if err := inference.LocaliserInput(l, m.Preprocess, img.Pixels, rows, cols, it.locPlane); err != nil {
		return spineItem{err: fmt.Errorf("case %s: %w", sc.ID, err)}
	}
	truth := map[string]phantom.Vertebra{}
	boxes := map[string]image.Rectangle{}
	for _, v := range sc.Vertebrae {
		b := v.Box
		truth[v.Level], boxes[v.Level] = v, image.Rect(b[0], b[1], b[0]+b[2], b[1]+b[3])
	}
	index := strconv.Itoa(i - g.Start)
	for _, level := range l.Levels {
		v, ok := truth[level]
		if !ok {
			it.locRows = append(it.locRows, []string{index, sc.ID, level, "0", "0", "0", "0", "0"})
			continue
		}
		b := v.Box
		it.locRows = append(it.locRows, []string{index, sc.ID, level, "1",
			ff((float64(b[0]) + float64(b[2])/2) / float64(cols)), ff((float64(b[1]) + float64(b[3])/2) / float64(rows)),
			ff(float64(b[2]) / float64(cols)), ff(float64(b[3]) / float64(rows))})
	}
	if s.Reader == nil {
		return it
	}
	readings, err := s.Reader.Read(ctx, img, nil, true)
	if err != nil {
		return spineItem{err: fmt.Errorf("case %s: %w", sc.ID, err)}
	}
	it.stats.Labelled = len(sc.Vertebrae)
	for _, v := range sc.Vertebrae {
		if v.Fracture != "none" {
			it.stats.Fractured++
		}
	}
	for _, r := range readings {
		iou, ok := inference.MatchBody(r.Body, boxes)
		if !ok {
			it.stats.Extra++
			continue
		}
		it.addROI(m, sc, truth[r.Body.Level], r, iou)
	}
	return it
}

// addROI adds a localised body matched to its labelled vertebra v: its
// rois.csv row, region of interest, deep and radiomics features, and its
// counts.
func (it *spineItem) addROI(m *inference.Manifest, sc phantom.SpineCase, v phantom.Vertebra, r spine.Reading, iou float64) {
	it.stats.Found++
	it.stats.SumIoU += iou
	probs := []string{"", "", ""}
	if r.Probabilities != nil {
		for k, q := range r.Probabilities[:3] {
			probs[k] = ff(q)
		}
		_, called := r.Fractured(m)
		switch {
		case v.Fracture != "none" && called:
			it.stats.FracCalled++
		case v.Fracture == "none" && called:
			it.stats.NormalFalse++
		}
	}
	if v.Fracture != "none" {
		it.stats.FracFound++
	} else {
		it.stats.NormalFound++
	}
	cl := sc.Clinical
	it.roiRows = append(it.roiRows, []string{sc.ID, v.Level, v.Fracture, v.Difficulty, ff(iou), ff(r.Body.Presence),
		probs[0], probs[1], probs[2],
		strconv.Itoa(cl.Age), cl.Sex, strconv.Itoa(cl.SymptomDays), strconv.FormatBool(cl.Trauma), strconv.FormatFloat(cl.TScore, 'f', 1, 64)})
	it.rois = append(it.rois, r.ROI...)
	it.deep = append(it.deep, r.Deep...)
	it.radio = append(it.radio, r.Radiomics)
}
