package radiomics

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// directions are the four 2D directions at distance 1 as (dx, dy):
// 0°, 45°, 90°, 135°.
var directions = [4][2]int{{1, 0}, {1, -1}, {0, 1}, {1, 1}}

// Aggregation is how per-direction matrices become one feature value.
type Aggregation int

const (
	// Averaged computes features per direction and slice and averages
	// them (IBSI "2D, averaged").
	Averaged Aggregation = iota
	// SliceMerged sums each slice's direction matrices, computes the
	// features per slice and averages over slices (IBSI "2D,
	// slice-merged").
	SliceMerged
)

// at returns the grey level at (x, y), 0 outside the image or the ROI.
func (d Discrete) at(x, y int) int {
	if x < 0 || y < 0 || x >= d.W || y >= d.H {
		return 0
	}
	return d.Grey[y*d.W+x]
}

// ---- GLCM ----

// glcm counts the symmetric co-occurrences in one direction (Ng x Ng, row
// major, levels 1..Ng at index 0..Ng-1).
func glcm(d Discrete, dir [2]int) []float64 {
	ng := d.Levels
	m := make([]float64, ng*ng)
	for y := range d.H {
		for x := range d.W {
			a, b := d.at(x, y), d.at(x+dir[0], y+dir[1])
			if a == 0 || b == 0 {
				continue
			}
			m[(a-1)*ng+b-1]++
			m[(b-1)*ng+a-1]++
		}
	}
	return m
}

// MaxTextureLevels bounds Ng for the GLCM (an Ng x Ng matrix per
// direction): discretise to fewer levels first.
const MaxTextureLevels = 1024

// GLCM returns the IBSI grey level co-occurrence features of discretised
// slices, aggregated as agg. Directions without any pair are left out.
func GLCM(agg Aggregation, ds ...Discrete) (Features, error) {
	var per []Features
	for _, d := range ds {
		if d.Levels > MaxTextureLevels {
			return nil, fmt.Errorf("radiomics: %d grey levels for the GLCM, want 1..%d (discretise to fewer bins)", d.Levels, MaxTextureLevels)
		}
		if err := d.check(); err != nil {
			return nil, err
		}
		ms := make([][]float64, 0, 4)
		for _, dir := range directions {
			ms = append(ms, glcm(d, dir))
		}
		if agg == SliceMerged {
			sum := make([]float64, len(ms[0]))
			for _, m := range ms {
				for i, v := range m {
					sum[i] += v
				}
			}
			ms = [][]float64{sum}
		}
		for _, m := range ms {
			if f, ok := glcmFeatures(m, d.Levels); ok {
				per = append(per, f)
			}
		}
	}
	if len(per) == 0 {
		return nil, ErrEmptyROI
	}
	return mean(per), nil
}

func glcmFeatures(m []float64, ng int) (Features, bool) {
	var total float64
	for _, v := range m {
		total += v
	}
	if total == 0 {
		return nil, false
	}
	g := cooccurrence{m: m, ng: ng, total: total}
	f := Features{}
	mg := g.jointFeatures(f)
	g.correlationFeatures(f, mg)
	mg.differenceSumFeatures(f, ng)
	return f, true
}

// cooccurrence is one co-occurrence matrix of ng grey levels, counts m row by row,
// normalised by their total.
type cooccurrence struct {
	m     []float64
	ng    int
	total float64
}

// p is the joint probability of levels i and j (1-based).
func (g cooccurrence) p(i, j int) float64 { return g.m[(i-1)*g.ng+j-1] / g.total }

// glcmMarginals are a matrix's marginal distributions: px, py by level
// (1..ng), pd by |i-j| (0..ng-1), ps by i+j (2..2ng); and its joint
// entropy.
type glcmMarginals struct {
	px, py, pd, ps []float64
	ent            float64
}

// jointFeatures sets the features that are sums over the joint
// probabilities alone and returns the marginals.
func (g cooccurrence) jointFeatures(f Features) glcmMarginals {
	ng := g.ng
	mg := glcmMarginals{px: make([]float64, ng+1), py: make([]float64, ng+1),
		pd: make([]float64, ng), ps: make([]float64, 2*ng+1)}
	var maxP, ent, asm, contrast, diss, invDiff, nInvDiff, idm, nIDM, auto float64
	for i := 1; i <= ng; i++ {
		for j := 1; j <= ng; j++ {
			v := g.p(i, j)
			if v == 0 {
				continue
			}
			mg.px[i] += v
			mg.py[j] += v
			k := i - j
			if k < 0 {
				k = -k
			}
			mg.pd[k] += v
			mg.ps[i+j] += v
			maxP = math.Max(maxP, v)
			ent -= plog2p(v)
			asm += v * v
			contrast += float64(k*k) * v
			diss += float64(k) * v
			invDiff += v / (1 + float64(k))
			nInvDiff += v / (1 + float64(k)/float64(ng))
			idm += v / (1 + float64(k*k))
			nIDM += v / (1 + float64(k*k)/float64(ng*ng))
			auto += float64(i*j) * v
		}
	}
	mg.ent = ent
	f["Joint maximum"], f["Joint entropy"] = maxP, ent
	f["Angular second moment"], f["Contrast"], f["Dissimilarity"] = asm, contrast, diss
	f["Inverse difference"], f["Normalised inverse difference"] = invDiff, nInvDiff
	f["Inverse difference moment"], f["Normalised inverse difference moment"] = idm, nIDM
	f["Autocorrelation"] = auto
	return mg
}

// correlationFeatures sets the features about the levels' means: joint
// average and variance, correlation, the cluster features and the
// information correlations.
func (g cooccurrence) correlationFeatures(f Features, mg glcmMarginals) {
	ng, px, py := g.ng, mg.px, mg.py
	var mux, muy float64
	for i := 1; i <= ng; i++ {
		mux += float64(i) * px[i]
		muy += float64(i) * py[i]
	}
	var jointVar, sx, sy, cov, tend, shade, prom, hx, hy, hxy1, hxy2 float64
	for i := 1; i <= ng; i++ {
		hx -= plog2p(px[i])
		hy -= plog2p(py[i])
		sx += (float64(i) - mux) * (float64(i) - mux) * px[i]
		sy += (float64(i) - muy) * (float64(i) - muy) * py[i]
		for j := 1; j <= ng; j++ {
			v := g.p(i, j)
			q := px[i] * py[j]
			if q > 0 {
				hxy1 -= v * math.Log2(q)
				hxy2 -= plog2p(q)
			}
			if v == 0 {
				continue
			}
			jointVar += (float64(i) - mux) * (float64(i) - mux) * v
			cov += (float64(i) - mux) * (float64(j) - muy) * v
			c := float64(i+j) - mux - muy
			tend += c * c * v
			shade += c * c * c * v
			prom += c * c * c * c * v
		}
	}
	f["Joint average"], f["Joint variance"] = mux, jointVar
	if sx > 0 && sy > 0 {
		f["Correlation"] = cov / math.Sqrt(sx*sy)
	}
	f["Cluster tendency"], f["Cluster shade"], f["Cluster prominence"] = tend, shade, prom
	hxy := mg.ent
	if h := math.Max(hx, hy); h > 0 {
		f["Information correlation 1"] = (hxy - hxy1) / h
	}
	f["Information correlation 2"] = math.Sqrt(math.Max(0, 1-math.Exp(-2*(hxy2-hxy))))
}

// differenceSumFeatures sets the features of the |i-j| and i+j
// distributions.
func (mg glcmMarginals) differenceSumFeatures(f Features, ng int) {
	pd, ps := mg.pd, mg.ps
	var dAvg, dVar, dEnt, invVar float64
	for k := range ng {
		dAvg += float64(k) * pd[k]
		dEnt -= plog2p(pd[k])
		if k > 0 {
			invVar += pd[k] / float64(k*k)
		}
	}
	for k := range ng {
		dVar += (float64(k) - dAvg) * (float64(k) - dAvg) * pd[k]
	}
	var sAvg, sVar, sEnt float64
	for k := 2; k <= 2*ng; k++ {
		sAvg += float64(k) * ps[k]
		sEnt -= plog2p(ps[k])
	}
	for k := 2; k <= 2*ng; k++ {
		sVar += (float64(k) - sAvg) * (float64(k) - sAvg) * ps[k]
	}
	f["Difference average"], f["Difference variance"], f["Difference entropy"] = dAvg, dVar, dEnt
	f["Sum average"], f["Sum variance"], f["Sum entropy"] = sAvg, sVar, sEnt
	f["Inverse variance"] = invVar
}

// ---- GLRLM and GLSZM: both are counts by grey level and a length ----

// lengthMatrix counts items (runs or zones) by grey level (1..ng) and
// length or size (1..).
type lengthMatrix struct {
	ng     int
	counts map[[2]int]float64 // (grey, length) -> count
	pixels int                // ROI pixels the items cover
}

func newLengthMatrix(ng int) *lengthMatrix {
	return &lengthMatrix{ng: ng, counts: map[[2]int]float64{}}
}

func (m *lengthMatrix) add(o *lengthMatrix) {
	for k, v := range o.counts {
		m.counts[k] += v
	}
	m.pixels += o.pixels
}

// runs counts the runs of one grey level along dir.
func runs(d Discrete, dir [2]int) *lengthMatrix {
	m := newLengthMatrix(d.Levels)
	for y := range d.H {
		for x := range d.W {
			g := d.at(x, y)
			if g == 0 {
				continue
			}
			m.pixels++
			if d.at(x-dir[0], y-dir[1]) == g {
				continue // not the start of a run
			}
			n := 1
			for d.at(x+n*dir[0], y+n*dir[1]) == g {
				n++
			}
			m.counts[[2]int{g, n}]++
		}
	}
	return m
}

// zones counts the 8-connected zones of one grey level.
func zones(d Discrete) *lengthMatrix {
	m := newLengthMatrix(d.Levels)
	seen := make([]bool, len(d.Grey))
	var stack []int
	for start, g := range d.Grey {
		if g == 0 || seen[start] {
			continue
		}
		size := 0
		seen[start] = true
		stack = append(stack[:0], start)
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			size++
			x, y := i%d.W, i/d.W
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					if (dx != 0 || dy != 0) && d.at(x+dx, y+dy) == g && !seen[(y+dy)*d.W+x+dx] {
						seen[(y+dy)*d.W+x+dx] = true
						stack = append(stack, (y+dy)*d.W+x+dx)
					}
				}
			}
		}
		m.pixels += size
		m.counts[[2]int{g, size}]++
	}
	return m
}

// lengthFeatures are the features GLRLM and GLSZM share, named with the
// family's words (run or zone).
func (m *lengthMatrix) features(names lengthNames) (Features, bool) {
	// Sum in a fixed order (map order is random; float sums are not
	// associative), so identical input gives identical features.
	keys := slices.SortedFunc(maps.Keys(m.counts), func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	var ns float64
	for _, k := range keys {
		ns += m.counts[k]
	}
	if ns == 0 {
		return nil, false
	}
	byGrey, byLen := map[int]float64{}, map[int]float64{}
	var se, le, lge, hge, slge, shge, llge, lhge, muI, muJ float64
	for _, k := range keys {
		v := m.counts[k]
		i, j := float64(k[0]), float64(k[1])
		byGrey[k[0]] += v
		byLen[k[1]] += v
		se += v / (j * j)
		le += v * j * j
		lge += v / (i * i)
		hge += v * i * i
		slge += v / (i * i * j * j)
		shge += v * i * i / (j * j)
		llge += v * j * j / (i * i)
		lhge += v * i * i * j * j
		muI += i * v / ns
		muJ += j * v / ns
	}
	var gln, lnu, varI, varJ, ent float64
	for _, g := range slices.Sorted(maps.Keys(byGrey)) {
		gln += byGrey[g] * byGrey[g]
	}
	for _, l := range slices.Sorted(maps.Keys(byLen)) {
		lnu += byLen[l] * byLen[l]
	}
	for _, k := range keys {
		p := m.counts[k] / ns
		varI += (float64(k[0]) - muI) * (float64(k[0]) - muI) * p
		varJ += (float64(k[1]) - muJ) * (float64(k[1]) - muJ) * p
		ent -= plog2p(p)
	}
	return Features{
		names.short: se / ns, names.long: le / ns, names.low: lge / ns, names.high: hge / ns,
		names.shortLow: slge / ns, names.shortHigh: shge / ns, names.longLow: llge / ns, names.longHigh: lhge / ns,
		names.greyNU: gln / ns, names.greyNUN: gln / (ns * ns), names.lenNU: lnu / ns, names.lenNUN: lnu / (ns * ns),
		names.percentage: ns / float64(m.pixels), names.greyVar: varI, names.lenVar: varJ, names.entropy: ent,
	}, true
}

type lengthNames struct {
	short, long, low, high, shortLow, shortHigh, longLow, longHigh       string
	greyNU, greyNUN, lenNU, lenNUN, percentage, greyVar, lenVar, entropy string
}

var runNames = lengthNames{
	"Short runs emphasis", "Long runs emphasis", "Low grey level run emphasis", "High grey level run emphasis",
	"Short run low grey level emphasis", "Short run high grey level emphasis", "Long run low grey level emphasis", "Long run high grey level emphasis",
	"Grey level non-uniformity", "Normalised grey level non-uniformity", "Run length non-uniformity", "Normalised run length non-uniformity",
	"Run percentage", "Grey level variance", "Run length variance", "Run entropy",
}

var zoneNames = lengthNames{
	"Small zone emphasis", "Large zone emphasis", "Low grey level zone emphasis", "High grey level zone emphasis",
	"Small zone low grey level emphasis", "Small zone high grey level emphasis", "Large zone low grey level emphasis", "Large zone high grey level emphasis",
	"Grey level non-uniformity", "Normalised grey level non-uniformity", "Zone size non-uniformity", "Normalised zone size non-uniformity",
	"Zone percentage", "Grey level variance", "Zone size variance", "Zone size entropy",
}

// GLRLM returns the IBSI grey level run length features of discretised
// slices, aggregated as agg.
func GLRLM(agg Aggregation, ds ...Discrete) (Features, error) {
	var per []Features
	for _, d := range ds {
		if err := d.check(); err != nil {
			return nil, err
		}
		var ms []*lengthMatrix
		for _, dir := range directions {
			ms = append(ms, runs(d, dir))
		}
		if agg == SliceMerged {
			sum := newLengthMatrix(d.Levels)
			for _, m := range ms {
				sum.add(m)
			}
			ms = []*lengthMatrix{sum}
		}
		for _, m := range ms {
			if f, ok := m.features(runNames); ok {
				per = append(per, f)
			}
		}
	}
	if len(per) == 0 {
		return nil, ErrEmptyROI
	}
	return mean(per), nil
}

// GLSZM returns the IBSI grey level size zone features of discretised
// slices (8-connected zones per slice, features averaged over slices:
// IBSI "2D").
func GLSZM(ds ...Discrete) (Features, error) {
	var per []Features
	for _, d := range ds {
		if err := d.check(); err != nil {
			return nil, err
		}
		if f, ok := zones(d).features(zoneNames); ok {
			per = append(per, f)
		}
	}
	if len(per) == 0 {
		return nil, ErrEmptyROI
	}
	return mean(per), nil
}
