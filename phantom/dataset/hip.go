package dataset

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/orthotriage/orthotriage/imaging"
	"github.com/orthotriage/orthotriage/inference"
	"github.com/orthotriage/orthotriage/phantom"
)

// HipFinder finds the hip joints on a display-ready image;
// *onnx.LocaliserModel (and analysis.HipLocaliser) is one.
type HipFinder interface {
	FindHips(pixels []float32, rows, cols int) (inference.HipJoints, error)
}

// HipModel is a hip model whose manifest has a localiser stage
// (preprocessing.localiser), as far as it is trained.
type HipModel struct {
	Manifest *inference.Manifest
	// Localiser is the trained hip localiser; nil before it is trained.
	Localiser HipFinder
}

// hipItem is one pelvis case's training rows.
type hipItem struct {
	locPlane []float32
	locRows  [][]string
	crops    []float32
	cropRows [][]string
	fallback bool // the localiser found no joint: crops from the truth
	err      error
}

// HipLocaliserData writes a hip model's training data for pelvis phantoms:
// always the localiser's input and targets (localiser.npy, localiser.csv,
// levels right, left and pelvis); with the localiser trained, the crops
// the service cuts through it (crops.npy, crops.csv in the format of
// Generate's crops). A case whose joints the localiser cannot place gets
// its crops from its recorded joint boxes, and is counted.
func (g Run) HipLocaliserData(ctx context.Context, h HipModel, stdout io.Writer) error {
	if err := g.Vary.Validate(); err != nil {
		return err
	}
	m := h.Manifest
	l := m.Preprocess.Localiser
	if l == nil {
		return fmt.Errorf("model %s has no hip localiser (preprocessing.localiser)", m.ID)
	}
	began := time.Now()
	w := newOutputs(g.Out)
	defer w.close()
	loc, err := w.npy("localiser.npy", []int{g.N, 1, l.Height, l.Width})
	if err != nil {
		return err
	}
	locCSV := w.csv("localiser.csv", localiserHeader)
	var crops *npyWriter
	var cropCSV *csv.Writer
	if h.Localiser != nil {
		rs := m.Preprocess.Resize
		if crops, err = w.npy("crops.npy", []int{g.N * len(m.Preprocess.Regions), 1, rs.Height, rs.Width}); err != nil {
			return err
		}
		cropCSV = w.csv("crops.csv", cropsHeader)
	}
	fallbacks := 0
	err = inOrder(ctx, g.N, func(i int) hipItem { return g.hipCase(h, g.Start+i) }, func(i int, it hipItem) error {
		if it.err != nil {
			return it.err
		}
		loc.write(it.locPlane)
		locCSV.WriteAll(it.locRows)
		if crops != nil {
			crops.write(it.crops)
			cropCSV.WriteAll(it.cropRows)
		}
		if it.fallback {
			fallbacks++
		}
		if done := i + 1; done%100 == 0 || done == g.N {
			fmt.Fprintf(g.progress(), "phantom: %d/%d pelvis cases (%.1fs)\n", done, g.N, time.Since(began).Seconds())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.finish(); err != nil {
		return err
	}
	if h.Localiser == nil {
		fmt.Fprintf(stdout, "wrote %d pelvis cases (localiser inputs) to %s\n", g.N, g.Out)
		return nil
	}
	fmt.Fprintf(stdout, "wrote %d pelvis cases (localiser inputs, %d crops through the localiser) to %s\n", g.N, g.N*len(m.Preprocess.Regions), g.Out)
	fmt.Fprintf(stdout, "localiser found no joint on %d of %d cases: their crops follow the recorded joint boxes\n", fallbacks, g.N)
	return nil
}

// cropsHeader is the header of crops.csv.
var cropsHeader = []string{"index", "file", "side", "class", "difficulty", "detail"}

// jointRect is a recorded joint box as image pixels.
func jointRect(j phantom.HipJoint) image.Rectangle {
	b := j.Box
	return image.Rect(int(math.Round(b[0])), int(math.Round(b[1])), int(math.Round(b[0]+b[2])), int(math.Round(b[1]+b[3])))
}

// HipPresent is the share of a joint's box in the collimated field from
// which the joint counts as present in localiser.csv.
const HipPresent = 0.5

// hipLocaliserRows are a pelvis case's localiser.csv rows for levels:
// right and left from the recorded joint boxes (absent when less than
// HipPresent of the box is in the field), pelvis the box spanning both
// joints' boxes (absent only when both joints are), as fractions of the
// image.
func hipLocaliserRows(pc phantom.PelvisCase, index int, levels []string) [][]string {
	rows, cols := float64(pc.Image.Rows), float64(pc.Image.Columns)
	row := func(level string, present bool, x, y, w, h float64) []string {
		if !present {
			return []string{strconv.Itoa(index), pc.ID, level, "0", "0", "0", "0", "0"}
		}
		return []string{strconv.Itoa(index), pc.ID, level, "1", ff((x + w/2) / cols), ff((y + h/2) / rows), ff(w / cols), ff(h / rows)}
	}
	r, l := pc.Right.Joint, pc.Left.Joint
	var out [][]string
	for _, level := range levels {
		switch level {
		case "right", "left":
			j := map[string]phantom.HipJoint{"right": r, "left": l}[level]
			out = append(out, row(level, j.Open >= HipPresent, j.Box[0], j.Box[1], j.Box[2], j.Box[3]))
		default: // pelvis
			x0, y0 := math.Min(r.Box[0], l.Box[0]), math.Min(r.Box[1], l.Box[1])
			x1, y1 := math.Max(r.Box[0]+r.Box[2], l.Box[0]+l.Box[2]), math.Max(r.Box[1]+r.Box[3], l.Box[1]+l.Box[3])
			out = append(out, row(level, r.Open >= HipPresent || l.Open >= HipPresent, x0, y0, x1-x0, y1-y0))
		}
	}
	return out
}

// hipCase generates pelvis case i, its localiser input and targets and,
// with the localiser, its crops.
func (g Run) hipCase(h HipModel, i int) hipItem {
	pc, err := phantom.PelvisVaried(g.Seed, i, g.Vary)
	if err != nil {
		return hipItem{err: err}
	}
	img, err := decodeCase(pc.ID, pc.Image)
	if err != nil {
		return hipItem{err: err}
	}
	m := h.Manifest
	pre := m.Preprocess
	l := pre.Localiser
	rows, cols := img.Meta.Rows, img.Meta.Columns
	it := hipItem{locPlane: make([]float32, l.Width*l.Height)}
	if err := inference.LocaliserInput(*l, pre, img.Pixels, rows, cols, it.locPlane); err != nil {
		return hipItem{err: fmt.Errorf("case %s: %w", pc.ID, err)}
	}
	it.locRows = hipLocaliserRows(pc, i-g.Start, l.Levels)
	if h.Localiser == nil {
		return it
	}
	// The service's path: the localiser's joints, the missed one mirrored,
	// upright anatomy-sized crops.
	found, err := h.Localiser.FindHips(img.Pixels, rows, cols)
	if err != nil {
		return hipItem{err: fmt.Errorf("case %s: localiser: %w", pc.ID, err)}
	}
	right, left, _, err := found.Complete()
	var crops []inference.Crop
	if err == nil {
		crops, err = pre.JointCrops(right, left)
	}
	if errors.Is(err, inference.ErrNoJoint) {
		it.fallback = true
		crops, err = pre.JointCrops(jointRect(pc.Right.Joint), jointRect(pc.Left.Joint))
	}
	if err != nil {
		return hipItem{err: fmt.Errorf("case %s: %w", pc.ID, err)}
	}
	rs := pre.Resize
	it.crops = make([]float32, len(crops)*rs.Width*rs.Height)
	if err := pre.PrepareCrops(img.Pixels, rows, cols, crops, it.crops); err != nil {
		return hipItem{err: fmt.Errorf("case %s: %w", pc.ID, err)}
	}
	for k, c := range crops {
		hip := pc.Right
		if c.Region.Laterality == "left" {
			hip = pc.Left
		}
		index := (i-g.Start)*len(crops) + k
		it.cropRows = append(it.cropRows, []string{strconv.Itoa(index), pc.ID, c.Region.Laterality, hip.Class, hip.Difficulty, hip.Detail})
	}
	return it
}

// NegativeKinds are the kinds of images HipNegatives writes, in the order
// case indices cycle through them: images of nothing (grey, black, white,
// noise, structured noise), another region and view (a lateral spine),
// pelvises upside down, turned 90 degrees, turned 180 degrees (mirrored
// both ways) or collimated to one quadrant, and heavily under- or
// over-exposed pelvises.
var NegativeKinds = []string{"grey", "black", "white", "noise", "structured", "spine", "flipped", "under", "over", "rotated", "mirrored", "corner"}

// negative is one generated negative image.
type negative struct {
	kind   string
	id     string
	pixels []float32
	rows   int
	cols   int
	// template is the radiograph the image was made from.
	template imaging.Radiograph
}

// OODKinds are the kinds of out-of-distribution images OOD writes, in the
// order case indices cycle through them: the localiser's negative kinds
// (an OOD set takes another seed than the training negatives).
var OODKinds = NegativeKinds

// negativeImage is negative case i: its kind is NegativeKinds[i mod
// len], its parameters drawn from (seed, i).
func (g Run) negativeImage(i int) (negative, error) {
	return g.negativeOf(NegativeKinds[i%len(NegativeKinds)], i)
}

// negativeOf is the image of a kind (one of OODKinds or SpineOODKinds) for case i, its
// parameters drawn from (seed, i). Images made of nothing are
// pelvis-sized; the others are decoded phantoms, changed on display-ready
// values where the kind says. template is the source case's radiograph
// (its tags and spacing).
func (g Run) negativeOf(kind string, i int) (negative, error) {
	rng := rand.New(rand.NewPCG(g.Seed, uint64(i)^0x6e6567617469766))
	var img *imaging.Image
	var id string
	var template imaging.Radiograph
	if kind == "spine" {
		sc, err := phantom.SpineVaried(g.Seed, i, g.Vary)
		if err != nil {
			return negative{}, err
		}
		if img, err = decodeCase(sc.ID, sc.Image); err != nil {
			return negative{}, err
		}
		id, template = sc.ID, sc.Image
	} else {
		pc, err := phantom.PelvisVaried(g.Seed, i, g.Vary)
		if err != nil {
			return negative{}, err
		}
		if img, err = decodeCase(pc.ID, pc.Image); err != nil {
			return negative{}, err
		}
		id, template = pc.ID, pc.Image
	}
	rows, cols := img.Meta.Rows, img.Meta.Columns
	px := slices.Clone(img.Pixels)
	fill := func(v float32) {
		for k := range px {
			px[k] = v
		}
	}
	switch kind {
	case "grey":
		fill(float32(0.1 + 0.8*rng.Float64()))
	case "black":
		fill(0)
	case "white":
		fill(1)
	case "noise":
		for k := range px {
			px[k] = rng.Float32()
		}
	case "structured":
		for k := range px {
			px[k] = rng.Float32()
		}
		radius := 4 + rng.IntN(28)
		for range 3 {
			boxBlur(px, rows, cols, radius)
		}
		stretch(px, 0.1*rng.Float32(), 0.8+0.2*rng.Float32())
	case "flipped":
		for y := range rows / 2 {
			a, b := px[y*cols:(y+1)*cols], px[(rows-1-y)*cols:(rows-y)*cols]
			for x := range a {
				a[x], b[x] = b[x], a[x]
			}
		}
	case "under", "over":
		crush(px, 2+4*rng.Float64(), kind == "over")
	case "rotated":
		px, rows, cols = rotate90(px, rows, cols, rng.IntN(2) == 0), cols, rows
	case "mirrored":
		slices.Reverse(px) // left-right and upside-down
	case "corner":
		collimateCorner(px, rows, cols, rng.IntN(4))
	default: // "spine", "pelvis": the case as it is
		if !slices.Contains(OODKinds, kind) && !slices.Contains(SpineOODKinds, kind) {
			return negative{}, fmt.Errorf("unknown negative kind %q", kind)
		}
	}
	return negative{kind: kind, id: kind + "-" + id, pixels: px, rows: rows, cols: cols, template: template}, nil
}

// rotate90 is a plane turned a quarter, clockwise or not; the result has
// cols rows and rows columns.
func rotate90(px []float32, rows, cols int, clockwise bool) []float32 {
	out := make([]float32, len(px))
	for y := range rows {
		for x := range cols {
			// Clockwise: (y, x) goes to row x, column rows-1-y.
			if clockwise {
				out[x*rows+rows-1-y] = px[y*cols+x]
			} else {
				out[(cols-1-x)*rows+y] = px[y*cols+x]
			}
		}
	}
	return out
}

// collimateCorner keeps one quadrant of a plane (0 top-left, 1 top-right,
// 2 bottom-left, 3 bottom-right) and shows the rest as the collimator
// does: as bright as dense bone (the image's 99th percentile).
func collimateCorner(px []float32, rows, cols, quadrant int) {
	sorted := slices.Clone(px)
	slices.Sort(sorted)
	shade := sorted[len(sorted)*99/100]
	top, left := quadrant < 2, quadrant%2 == 0
	for y := range rows {
		for x := range cols {
			if (y < rows/2) != top || (x < cols/2) != left {
				px[y*cols+x] = shade
			}
		}
	}
}

// crush maps display values v to v^gamma, scaled so that over 90% of the
// pixels are under 0.1 (black, heavily under-exposed); with over, the
// mirror image: over 90% above 0.9 (white).
func crush(px []float32, gamma float64, over bool) {
	for k, v := range px {
		u := float64(v)
		if over {
			u = 1 - u
		}
		px[k] = float32(math.Pow(math.Max(0, math.Min(1, u)), gamma))
	}
	sorted := slices.Clone(px)
	slices.Sort(sorted)
	if q := sorted[len(sorted)*92/100]; q > 0.09 {
		for k := range px {
			px[k] *= 0.09 / q
		}
	}
	if over {
		for k := range px {
			px[k] = 1 - px[k]
		}
	}
}

// boxBlur blurs a plane in place with a box of side 2*radius+1, rows then
// columns, edges clamped.
func boxBlur(px []float32, rows, cols, radius int) {
	pass := func(n int, at func(j int) int) {
		buf := make([]float32, n)
		for j := range n {
			buf[j] = px[at(j)]
		}
		var sum float32
		for k := -radius; k <= radius; k++ {
			sum += buf[max(0, min(n-1, k))]
		}
		side := float32(2*radius + 1)
		for j := range n {
			px[at(j)] = sum / side
			sum += buf[min(n-1, j+radius+1)] - buf[max(0, j-radius)]
		}
	}
	for y := range rows {
		pass(cols, func(j int) int { return y*cols + j })
	}
	for x := range cols {
		pass(rows, func(j int) int { return j*cols + x })
	}
}

// stretch maps a plane's range linearly onto [lo, hi].
func stretch(px []float32, lo, hi float32) {
	mn, mx := slices.Min(px), slices.Max(px)
	if mx <= mn {
		return
	}
	for k, v := range px {
		px[k] = lo + (v-mn)/(mx-mn)*(hi-lo)
	}
}

// HipNegatives writes a hip localiser's negatives (localiser.npy,
// localiser.csv with every level absent): images that are no AP pelvis,
// cycling through NegativeKinds by case index. It prints how many of each
// kind it wrote.
func (g Run) HipNegatives(ctx context.Context, m *inference.Manifest, stdout io.Writer) error {
	l := m.Preprocess.Localiser
	if l == nil {
		return fmt.Errorf("model %s has no hip localiser (preprocessing.localiser)", m.ID)
	}
	return g.negatives(ctx, NegativeKinds, *l, m.Preprocess, "hip localiser negatives", stdout)
}

// negatives writes localiser inputs of negative images of kinds, cycled
// through by case index, with every level of l absent, and prints how
// many of each kind it wrote under what.
func (g Run) negatives(ctx context.Context, kinds []string, l inference.Localiser, pre inference.Preprocess, what string, stdout io.Writer) error {
	if err := g.Vary.Validate(); err != nil {
		return err
	}
	w := newOutputs(g.Out)
	defer w.close()
	npy, err := w.npy("localiser.npy", []int{g.N, 1, l.Height, l.Width})
	if err != nil {
		return err
	}
	rows := w.csv("localiser.csv", localiserHeader)
	type item struct {
		plane []float32
		kind  string
		id    string
		err   error
	}
	counts := map[string]int{}
	err = inOrder(ctx, g.N, func(i int) item {
		n, err := g.negativeOf(kinds[(g.Start+i)%len(kinds)], g.Start+i)
		if err != nil {
			return item{err: err}
		}
		plane := make([]float32, l.Width*l.Height)
		if err := inference.LocaliserInput(l, pre, n.pixels, n.rows, n.cols, plane); err != nil {
			return item{err: fmt.Errorf("negative %s: %w", n.id, err)}
		}
		return item{plane: plane, kind: n.kind, id: n.id}
	}, func(i int, it item) error {
		if it.err != nil {
			return it.err
		}
		npy.write(it.plane)
		for _, level := range l.Levels {
			rows.Write([]string{strconv.Itoa(i), it.id, level, "0", "0", "0", "0", "0"})
		}
		counts[it.kind]++
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.finish(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d %s to %s:", g.N, what, g.Out)
	for _, k := range kinds {
		fmt.Fprintf(stdout, " %s %d", k, counts[k])
	}
	fmt.Fprintln(stdout)
	return nil
}
