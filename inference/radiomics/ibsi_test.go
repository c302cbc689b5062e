package radiomics_test

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/inference/radiomics"
	"github.com/orthotriage/orthotriage/internal/testenv"
)

// ibsiDir is the IBSI digital phantom and its reference values
// (testdata/ibsi: a copy of IBSI's published data, CC BY 4.0).
func ibsiDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "ibsi")
	if _, err := os.Stat(filepath.Join(dir, "digital_phantom.json")); err != nil {
		t.Fatalf("IBSI phantom not found at %s: %v", dir, err)
	}
	return dir
}

// phantom returns the IBSI-1 digital phantom as 2D slices (one per z).
func phantom(t *testing.T) []radiomics.Slice {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ibsiDir(t), "digital_phantom.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Image [][][]float64 `json:"image"`
		Mask  [][][]int     `json:"mask"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	var out []radiomics.Slice
	for z := range p.Image {
		h, w := len(p.Image[z]), len(p.Image[z][0])
		s := radiomics.Slice{W: w, H: h}
		for y := range h {
			for x := range w {
				s.Values = append(s.Values, p.Image[z][y][x])
				s.Mask = append(s.Mask, p.Mask[z][y][x] == 1)
			}
		}
		out = append(out, s)
	}
	return out
}

type reference struct {
	family, feature, aggregation, printed string
	value, tolerance                      float64
}

// references reads the reference table's rows.
func references(t *testing.T) []reference {
	t.Helper()
	f, err := os.Open(filepath.Join(ibsiDir(t), "digital_phantom_reference_values.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	clean := strings.NewReplacer(`\ :sup:`+"`th`", "th", `\`, "")
	var out []reference
	for _, r := range rows[1:] {
		printed := clean.Replace(r[4])
		v, err := strconv.ParseFloat(printed, 64)
		if err != nil {
			t.Fatalf("reference %q: value %q: %v", r[1], r[4], err)
		}
		tol, _ := strconv.ParseFloat(r[5], 64)
		out = append(out, reference{family: r[0], feature: clean.Replace(r[1]), aggregation: r[3], printed: printed, value: v, tolerance: tol})
	}
	return out
}

// printedPrecision is half a unit of the last printed digit: a value the
// manual gives without tolerance must round to what it prints.
func printedPrecision(s string) float64 {
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp, _ = strconv.Atoi(s[i+1:])
	}
	decimals := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		decimals = len(mant) - i - 1
	}
	return 0.5 * math.Pow(10, float64(exp-decimals))
}

// TestIBSIPhantom checks every implemented feature against the IBSI
// reference values of the digital phantom: the "2D, averaged" and "2D,
// slice-merged" rows (GLCM, GLRLM), the "2D" rows (GLSZM) and, for the
// intensity and histogram families, which do not depend on where pixels
// are, the ROI-wide rows. The phantom's intensities are already grey
// levels; as in the manual they are not re-discretised (Ng = 6, the
// largest level in the ROI).
func TestIBSIPhantom(t *testing.T) {
	slices := phantom(t)
	var ds []radiomics.Discrete
	for _, s := range slices {
		d, err := radiomics.AsDiscrete(s, 6)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	computed := map[[2]string]radiomics.Features{}
	must := func(f radiomics.Features, err error) radiomics.Features {
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	computed[[2]string{"Intensity-based statistical features", "3D/none"}] = must(radiomics.Intensity(slices...))
	computed[[2]string{"Intensity histogram features", "3D/none"}] = must(radiomics.Histogram(ds...))
	computed[[2]string{"Grey level co-occurrence based features", "2D, averaged"}] = must(radiomics.GLCM(radiomics.Averaged, ds...))
	computed[[2]string{"Grey level co-occurrence based features", "2D, slice-merged"}] = must(radiomics.GLCM(radiomics.SliceMerged, ds...))
	computed[[2]string{"Grey level run length based features", "2D, averaged"}] = must(radiomics.GLRLM(radiomics.Averaged, ds...))
	computed[[2]string{"Grey level run length based features", "2D, slice-merged"}] = must(radiomics.GLRLM(radiomics.SliceMerged, ds...))
	computed[[2]string{"Grey level size zone based features", "2D"}] = must(radiomics.GLSZM(ds...))

	checked := map[[2]string]int{}
	for _, ref := range references(t) {
		fs, ok := computed[[2]string{ref.family, ref.aggregation}]
		if !ok {
			continue // a family or aggregation not implemented
		}
		got, ok := fs[ref.feature]
		if !ok {
			t.Errorf("%s (%s): %q not computed", ref.family, ref.aggregation, ref.feature)
			continue
		}
		tol := ref.tolerance
		if tol == 0 {
			tol = printedPrecision(ref.printed)
		}
		if math.Abs(got-ref.value) > tol*(1+1e-9) {
			t.Errorf("%s (%s) %s = %.6g, want %s ± %g", ref.family, ref.aggregation, ref.feature, got, ref.printed, tol)
		}
		checked[[2]string{ref.family, ref.aggregation}]++
	}
	for k, fs := range computed {
		if checked[k] != len(fs) {
			t.Errorf("%s (%s): %d features computed, %d have reference values", k[0], k[1], len(fs), checked[k])
		}
	}
	t.Logf("checked against IBSI: %v", checked)
}
