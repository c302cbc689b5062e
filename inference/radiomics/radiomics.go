// Package radiomics computes IBSI-defined radiomics features of a 2D region
// of interest (a vertebral body on a lateral radiograph): intensity
// statistics, the intensity histogram, 2D morphology and the texture
// matrices GLCM, GLRLM and GLSZM. Definitions follow the Image Biomarker
// Standardisation Initiative reference manual (IBSI 1, chapter "Image
// features"); the tests check every feature against IBSI's digital phantom.
//
// # Discretisation
//
// Texture and histogram features need discrete grey levels 1..Ng. Two IBSI
// methods are offered:
//
//   - FixedBinNumber (FBN): Ng bins spanning the ROI's own minimum to
//     maximum, level = floor(Ng*(x-min)/(max-min)) + 1, the maximum in bin
//     Ng. Suits images without calibrated units, such as radiographs after
//     VOI windowing: the features then describe texture independent of the
//     ROI's brightness.
//   - FixedBinSize (FBS): bins of a fixed width from a fixed lower bound,
//     level = floor((x-low)/width) + 1. Suits calibrated intensities.
//
// The vertebral pipeline uses FBN with the manifest's radiomicsBins (see All). Data that is
// already discrete (the IBSI phantom) is used as is.
//
// # 2D aggregation
//
// A radiograph is one slice. Texture matrices are built per slice in the
// four 2D directions (0°, 45°, 90°, 135°) at distance 1, with pixels outside
// the ROI breaking neighbourhoods and runs; zones are 8-connected. IBSI's
// "2D, averaged" computes the features from each direction's matrix and
// averages them (over directions and slices); "2D, slice-merged" sums the
// four direction matrices of a slice into one, computes the features from
// it and averages over slices. For one radiograph both are averages over
// one slice.
package radiomics

import (
	"errors"
	"fmt"
	"math"
)

// Slice is one 2D image with its region of interest: W x H values, row
// major, and a mask of the same size (true: in the ROI).
type Slice struct {
	W, H   int
	Values []float64
	Mask   []bool
}

// Discrete is a slice discretised to grey levels 1..Levels; pixels outside
// the ROI are 0.
type Discrete struct {
	W, H   int
	Grey   []int
	Levels int // Ng
}

// Errors of invalid input.
var (
	ErrEmptyROI = errors.New("radiomics: the region of interest is empty")
	ErrShape    = errors.New("radiomics: values and mask do not match the slice size")
)

// check validates a slice and returns its ROI pixel count.
func (s Slice) check() (int, error) {
	if s.W <= 0 || s.H <= 0 || len(s.Values) != s.W*s.H || len(s.Mask) != s.W*s.H {
		return 0, fmt.Errorf("%w: %dx%d, %d values, %d mask", ErrShape, s.W, s.H, len(s.Values), len(s.Mask))
	}
	n := 0
	for i, in := range s.Mask {
		if in {
			if math.IsNaN(s.Values[i]) || math.IsInf(s.Values[i], 0) {
				return 0, fmt.Errorf("radiomics: value at %d is %v", i, s.Values[i])
			}
			n++
		}
	}
	if n == 0 {
		return 0, ErrEmptyROI
	}
	return n, nil
}

// roiValues returns the ROI's values over all slices.
func roiValues(slices []Slice) ([]float64, error) {
	var v []float64
	for _, s := range slices {
		if _, err := s.check(); err != nil {
			return nil, err
		}
		for i, in := range s.Mask {
			if in {
				v = append(v, s.Values[i])
			}
		}
	}
	if len(v) == 0 {
		return nil, ErrEmptyROI
	}
	return v, nil
}

// AsDiscrete takes values that are already grey levels 1..levels (rounded
// to the nearest integer) without re-discretisation, as IBSI does for its
// digital phantom.
func AsDiscrete(s Slice, levels int) (Discrete, error) {
	if _, err := s.check(); err != nil {
		return Discrete{}, err
	}
	d := Discrete{W: s.W, H: s.H, Grey: make([]int, len(s.Values)), Levels: levels}
	for i, in := range s.Mask {
		if !in {
			continue
		}
		g := int(math.Round(s.Values[i]))
		if g < 1 || g > levels {
			return Discrete{}, fmt.Errorf("radiomics: grey level %d outside 1..%d", g, levels)
		}
		d.Grey[i] = g
	}
	return d, nil
}

// FixedBinNumber discretises the ROI into n bins between its minimum and
// maximum (IBSI FBN). A flat ROI gets level 1 everywhere.
func FixedBinNumber(s Slice, n int) (Discrete, error) {
	if n < 1 || n > MaxLevels {
		return Discrete{}, fmt.Errorf("radiomics: %d bins, want 1..%d", n, MaxLevels)
	}
	v, err := roiValues([]Slice{s})
	if err != nil {
		return Discrete{}, err
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	d := Discrete{W: s.W, H: s.H, Grey: make([]int, len(s.Values)), Levels: n}
	for i, in := range s.Mask {
		if !in {
			continue
		}
		g := 1
		if hi > lo {
			// (x-lo)/(hi-lo) first: hi-lo may overflow where the ratio
			// does not.
			t := (s.Values[i]/2 - lo/2) / (hi/2 - lo/2)
			var err error
			if g, err = level(math.Floor(float64(n)*t), n+1); err != nil {
				return Discrete{}, err
			}
			g = min(n, g)
		}
		d.Grey[i] = g
	}
	return d, nil
}

// FixedBinSize discretises the ROI into bins of width from low (IBSI FBS);
// values below low are an error (re-segment first).
func FixedBinSize(s Slice, width, low float64) (Discrete, error) {
	if !(width > 0) {
		return Discrete{}, fmt.Errorf("radiomics: bin width %v, want > 0", width)
	}
	if _, err := s.check(); err != nil {
		return Discrete{}, err
	}
	d := Discrete{W: s.W, H: s.H, Grey: make([]int, len(s.Values))}
	for i, in := range s.Mask {
		if !in {
			continue
		}
		if s.Values[i] < low {
			return Discrete{}, fmt.Errorf("radiomics: value %v below the bins' lower bound %v", s.Values[i], low)
		}
		g, err := level(math.Floor((s.Values[i]-low)/width), MaxLevels)
		if err != nil {
			return Discrete{}, err
		}
		d.Grey[i] = g
		d.Levels = max(d.Levels, g)
	}
	return d, nil
}

// MaxLevels bounds the grey levels of any discretisation.
const MaxLevels = 1 << 16

// check validates a discretised slice: its size, and every grey level
// within 0 (outside the ROI) .. Levels.
func (d Discrete) check() error {
	if d.W <= 0 || d.H <= 0 || len(d.Grey) != d.W*d.H {
		return ErrShape
	}
	if d.Levels < 1 || d.Levels > MaxLevels {
		return fmt.Errorf("radiomics: %d grey levels, want 1..%d", d.Levels, MaxLevels)
	}
	for _, g := range d.Grey {
		if g < 0 || g > d.Levels {
			return fmt.Errorf("radiomics: grey level %d outside 1..%d", g, d.Levels)
		}
	}
	return nil
}

// level converts a bin position to a grey level, refusing what is not a
// finite number of bins (huge ranges or tiny widths overflow).
func level(bin float64, limit int) (int, error) {
	if math.IsNaN(bin) || bin < 0 || bin >= float64(limit) {
		return 0, fmt.Errorf("radiomics: more than %d bins (range too large for the bin width)", limit)
	}
	return int(bin) + 1, nil
}

// Features are named by the IBSI manual's feature names.
type Features map[string]float64

// log2 of p, 0 for p = 0 (entropies sum p log2 p with 0 log 0 = 0).
func plog2p(p float64) float64 {
	if p <= 0 {
		return 0
	}
	return p * math.Log2(p)
}

// mean averages feature maps key by key.
func mean(fs []Features) Features {
	out := Features{}
	for _, f := range fs {
		for k, v := range f {
			out[k] += v / float64(len(fs))
		}
	}
	return out
}

// All computes every implemented feature family of one ROI, as the
// vertebral pipeline uses them: intensity statistics and 2D morphology on
// the values as given, and the histogram, GLCM, GLRLM (both "2D, averaged")
// and GLSZM on FBN discretisation to bins levels. Names are prefixed with
// their family ("intensity:", "histogram:", "morphology:", "glcm:",
// "glrlm:", "glszm:"), since some IBSI names recur across families. sx and
// sy are the pixel spacing in mm (morphology only).
func All(s Slice, sx, sy float64, bins int) (Features, error) {
	out := Features{}
	add := func(family string, f Features, err error) error {
		if err != nil {
			return fmt.Errorf("radiomics: %s: %w", family, err)
		}
		for k, v := range f {
			out[family+":"+k] = v
		}
		return nil
	}
	f, err := Intensity(s)
	if err := add("intensity", f, err); err != nil {
		return nil, err
	}
	f, err = Morphology(s, sx, sy)
	if err := add("morphology", f, err); err != nil {
		return nil, err
	}
	d, err := FixedBinNumber(s, bins)
	if err != nil {
		return nil, err
	}
	f, err = Histogram(d)
	if err := add("histogram", f, err); err != nil {
		return nil, err
	}
	f, err = GLCM(Averaged, d)
	if err := add("glcm", f, err); err != nil {
		return nil, err
	}
	f, err = GLRLM(Averaged, d)
	if err := add("glrlm", f, err); err != nil {
		return nil, err
	}
	f, err = GLSZM(d)
	if err := add("glszm", f, err); err != nil {
		return nil, err
	}
	return out, nil
}
