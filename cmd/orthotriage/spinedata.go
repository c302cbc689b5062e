package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
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
	"github.com/orthotriage/orthotriage/inference/onnx"
	"github.com/orthotriage/orthotriage/inference/spine"
	"github.com/orthotriage/orthotriage/phantom"
)

// minMatchIoU is the overlap at which a localised body counts as the
// labelled vertebra of the same level.
const minMatchIoU = 0.3

// openSpine loads the stages of a vertebral model folder that exist: the
// localiser, then the network, then the fusion model. Training writes them
// in that order, and each stage's training data needs the ones before.
func openSpine(m *inference.Manifest, library string, threads int) (*spine.Pipeline, func(), error) {
	l, err := onnx.Open(m, onnx.Options{Library: library, Session: onnx.SessionOptions{IntraOpThreads: threads}, Partial: true})
	if err != nil {
		return nil, nil, err
	}
	return l.Pipeline, func() { l.Close() }, nil
}

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

// spineCrops writes a vertebral model's training data for spine phantoms:
// always the localiser's input and targets; with the localiser trained, the
// region of interest and radiomics of every localised body matched to its
// label; with the network trained, its probabilities and deep features.
func (g phantomRun) spineCrops(ctx context.Context, m *inference.Manifest, library string, stdout io.Writer) error {
	p, closeAll, err := openSpine(m, library, 1)
	if err != nil {
		return fmt.Errorf("phantom: %w", err)
	}
	defer closeAll()
	began := time.Now()
	l := m.Vertebral.Localiser
	w := newSpineWriter(g.out)
	defer w.close()
	locNPY, err := w.npy("localiser.npy", []int{g.n, 1, l.Height, l.Width})
	if err != nil {
		return err
	}
	locCSV := w.csv("localiser.csv", []string{"index", "file", "level", "present", "cx", "cy", "w", "h"})
	var roiNPY, deepNPY *npyWriter
	var roiCSV, radioCSV *csv.Writer
	var radioNames []string
	var stats localiserStats
	roiIndex := 0
	err = inOrder(ctx, g.n, func(i int) spineItem { return g.spineCase(ctx, p, g.start+i) }, func(i int, it spineItem) error {
		if it.err != nil {
			return it.err
		}
		locNPY.write(it.locPlane)
		locCSV.WriteAll(it.locRows)
		if p.Localiser != nil && roiNPY == nil {
			rs := m.Preprocess.Resize
			if roiNPY, err = w.npyLater("rois.npy", []int{1, rs.Height, rs.Width}); err != nil {
				return err
			}
			roiCSV = w.csv("rois.csv", []string{"index", "file", "level", "fracture", "difficulty", "iou", "presence",
				"p_none", "p_acute", "p_chronic", "age", "sex", "symptom_days", "trauma", "tscore"})
			if p.Net != nil {
				if deepNPY, err = w.npyLater("deep.npy", []int{int(m.Output("features").Shape[1])}); err != nil {
					return err
				}
			}
		}
		for k, row := range it.roiRows {
			if radioCSV == nil {
				radioNames = slices.Sorted(maps.Keys(it.radio[k]))
				radioCSV = w.csv("radiomics.csv", append([]string{"index"}, radioNames...))
			}
			rec := []string{strconv.Itoa(roiIndex)}
			for _, name := range radioNames {
				rec = append(rec, strconv.FormatFloat(it.radio[k][name], 'g', -1, 64))
			}
			radioCSV.Write(rec)
			roiCSV.Write(append([]string{strconv.Itoa(roiIndex)}, row...))
			roiIndex++
		}
		if roiNPY != nil {
			roiNPY.write(it.rois)
		}
		if deepNPY != nil {
			deepNPY.write(it.deep)
		}
		stats.add(it.stats)
		if done := i + 1; done%100 == 0 || done == g.n {
			fmt.Fprintf(g.stderr, "phantom: %d/%d spine cases, %d regions of interest (%.1fs)\n", done, g.n, roiIndex, time.Since(began).Seconds())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.finish(); err != nil {
		return err
	}
	if p.Localiser != nil {
		fmt.Fprintf(g.stderr, "phantom: %s\n", stats)
		b, _ := json.MarshalIndent(stats, "", " ")
		if err := os.WriteFile(filepath.Join(g.out, "localiser-stats.json"), b, 0o644); err != nil {
			return fmt.Errorf("phantom: %w", err)
		}
	}
	fmt.Fprintf(stdout, "wrote %d spine cases (%d regions of interest) to %s\n", g.n, roiIndex, g.out)
	return nil
}

// localiserNegatives writes localiser inputs of pelvis phantoms with every
// level absent: trained only on spines, a localiser would find vertebrae
// on any image.
func (g phantomRun) localiserNegatives(ctx context.Context, m *inference.Manifest, stdout io.Writer) error {
	l := m.Vertebral.Localiser
	w := newSpineWriter(g.out)
	defer w.close()
	npy, err := w.npy("localiser.npy", []int{g.n, 1, l.Height, l.Width})
	if err != nil {
		return err
	}
	rows := w.csv("localiser.csv", []string{"index", "file", "level", "present", "cx", "cy", "w", "h"})
	type negative struct {
		plane []float32
		id    string
		err   error
	}
	err = inOrder(ctx, g.n, func(i int) negative {
		pc := phantom.Pelvis(g.seed, g.start+i)
		var dcm bytes.Buffer
		if err := imaging.WriteDICOM(&dcm, pc.Image); err != nil {
			return negative{err: fmt.Errorf("phantom %s: %w", pc.ID, err)}
		}
		img, err := imaging.Decode(dcm.Bytes(), imaging.Limits{})
		if err != nil {
			return negative{err: fmt.Errorf("phantom %s: decode: %w", pc.ID, err)}
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
	fmt.Fprintf(stdout, "wrote %d localiser negatives (pelvis) to %s\n", g.n, g.out)
	return nil
}

// spineCase generates case i and runs the stages that exist on it.
func (g phantomRun) spineCase(ctx context.Context, p *spine.Pipeline, i int) spineItem {
	sc := phantom.Spine(g.seed, i)
	var dcm bytes.Buffer
	if err := imaging.WriteDICOM(&dcm, sc.Image); err != nil {
		return spineItem{err: fmt.Errorf("phantom %s: %w", sc.ID, err)}
	}
	img, err := imaging.Decode(dcm.Bytes(), imaging.Limits{})
	if err != nil {
		return spineItem{err: fmt.Errorf("phantom %s: decode: %w", sc.ID, err)}
	}
	m := p.Manifest
	l := m.Vertebral.Localiser
	rows, cols := img.Meta.Rows, img.Meta.Columns
	it := spineItem{locPlane: make([]float32, l.Width*l.Height)}
	if err := inference.LocaliserInput(l, m.Preprocess, img.Pixels, rows, cols, it.locPlane); err != nil {
		return spineItem{err: fmt.Errorf("phantom %s: %w", sc.ID, err)}
	}
	truth := map[string]phantom.Vertebra{}
	for _, v := range sc.Vertebrae {
		truth[v.Level] = v
	}
	ff := func(v float64) string { return strconv.FormatFloat(v, 'f', 5, 64) }
	index := strconv.Itoa(i - g.start)
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
	if p.Localiser == nil {
		return it
	}
	readings, err := p.Read(ctx, img, nil, true)
	if err != nil {
		return spineItem{err: fmt.Errorf("phantom %s: %w", sc.ID, err)}
	}
	it.stats.Labelled = len(sc.Vertebrae)
	for _, v := range sc.Vertebrae {
		if v.Fracture != "none" {
			it.stats.Fractured++
		}
	}
	cl := sc.Clinical
	for _, r := range readings {
		v, ok := truth[r.Body.Level]
		b := v.Box
		iou := 0.0
		if ok {
			iou = boxIoU(r.Body.Box, image.Rect(b[0], b[1], b[0]+b[2], b[1]+b[3]))
		}
		if iou < minMatchIoU {
			it.stats.Extra++
			continue
		}
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
		it.roiRows = append(it.roiRows, []string{sc.ID, v.Level, v.Fracture, v.Difficulty, ff(iou), ff(r.Body.Presence),
			probs[0], probs[1], probs[2],
			strconv.Itoa(cl.Age), cl.Sex, strconv.Itoa(cl.SymptomDays), strconv.FormatBool(cl.Trauma), strconv.FormatFloat(cl.TScore, 'f', 1, 64)})
		it.rois = append(it.rois, r.ROI...)
		it.deep = append(it.deep, r.Deep...)
		it.radio = append(it.radio, r.Radiomics)
	}
	return it
}

// boxIoU is the intersection over union of two boxes.
func boxIoU(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ai, aa, ab := float64(in.Dx()*in.Dy()), float64(a.Dx()*a.Dy()), float64(b.Dx()*b.Dy())
	return ai / (aa + ab - ai)
}

// spineWriter owns the output files of one run.
type spineWriter struct {
	dir   string
	files []*os.File
	csvs  []*csv.Writer
	npys  []*npyWriter
	err   error
}

// npyWriter streams float32 values into a .npy file; a writer made by
// npyLater learns its first dimension at the end.
type npyWriter struct {
	name  string
	shape []int // without the first dimension when later
	later bool
	f     *os.File
	w     *bufio.Writer
	n     int // values written
	err   error
}

func newSpineWriter(dir string) *spineWriter { return &spineWriter{dir: dir} }

func (s *spineWriter) create(name string) *os.File {
	f, err := os.Create(filepath.Join(s.dir, name))
	if err != nil {
		s.err = errors.Join(s.err, fmt.Errorf("phantom: %w", err))
		return nil
	}
	s.files = append(s.files, f)
	return f
}

func (s *spineWriter) csv(name string, header []string) *csv.Writer {
	f := s.create(name)
	if f == nil {
		return csv.NewWriter(io.Discard)
	}
	w := csv.NewWriter(f)
	w.Write(header)
	s.csvs = append(s.csvs, w)
	return w
}

func (s *spineWriter) npy(name string, shape []int) (*npyWriter, error) {
	f := s.create(name)
	if f == nil {
		return nil, s.err
	}
	w := &npyWriter{name: name, shape: shape, f: f, w: bufio.NewWriterSize(f, 1<<20)}
	if err := writeNPYHeader(w.w, shape); err != nil {
		return nil, err
	}
	s.npys = append(s.npys, w)
	return w, nil
}

// npyLater writes the values to NAME.part and the header at finish.
func (s *spineWriter) npyLater(name string, shape []int) (*npyWriter, error) {
	f := s.create(name + ".part")
	if f == nil {
		return nil, s.err
	}
	w := &npyWriter{name: name, shape: shape, later: true, f: f, w: bufio.NewWriterSize(f, 1<<20)}
	s.npys = append(s.npys, w)
	return w, nil
}

func (w *npyWriter) write(v []float32) {
	if w.err == nil {
		w.err = binary.Write(w.w, binary.LittleEndian, v)
		w.n += len(v)
	}
}

// finish flushes every file and gives the later .npy files their header.
func (s *spineWriter) finish() error {
	for _, c := range s.csvs {
		c.Flush()
		s.err = errors.Join(s.err, c.Error())
	}
	for _, w := range s.npys {
		s.err = errors.Join(s.err, w.err, w.w.Flush())
		if !w.later || s.err != nil {
			continue
		}
		per := 1
		for _, d := range w.shape {
			per *= d
		}
		s.err = errors.Join(s.err, w.assemble(filepath.Join(s.dir, w.name), w.n/max(per, 1)))
	}
	return s.err
}

// assemble writes the header for n rows, then the values of the .part file.
func (w *npyWriter) assemble(path string, n int) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("phantom: %w", err)
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	if err := writeNPYHeader(bw, append([]int{n}, w.shape...)); err != nil {
		return err
	}
	part := w.f.Name()
	in, err := os.Open(part)
	if err != nil {
		return fmt.Errorf("phantom: %w", err)
	}
	defer in.Close()
	if _, err := io.Copy(bw, in); err != nil {
		return fmt.Errorf("phantom: %s: %w", w.name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("phantom: %s: %w", w.name, err)
	}
	return os.Remove(part)
}

func (s *spineWriter) close() {
	for _, f := range s.files {
		f.Close()
	}
}
