package phantom

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/orthotriage/orthotriage/imaging"
)

func varied(t *testing.T, seed uint64, i int, v Variation) PelvisCase {
	t.Helper()
	pc, err := PelvisVaried(seed, i, v)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// brightness is pixel k of r as displayed, 0 black to 1 white.
func brightness(r imaging.Radiograph, k int) float64 {
	b := float64(r.Stored[k]) / float64(int(1)<<r.BitsStored-1)
	if r.Photometric == "MONOCHROME1" {
		return 1 - b
	}
	return b
}

func TestParseVariation(t *testing.T) {
	clinical := ClinicalVariation()
	noisy := clinical
	noisy.Noise = 0.1
	for _, tc := range []struct {
		name, in string
		want     Variation
		wantErr  []string
	}{
		{name: "none", in: "none", want: Variation{}},
		{name: "clinical", in: "clinical", want: clinical},
		{name: "a preset with an override", in: "clinical, noise=0.1", want: noisy},
		{name: "fields", in: "rotate=15,shift=0.1,zoom=0.15,markers=1", want: Variation{Rotate: 15, Shift: 0.1, Zoom: 0.15, Markers: 1}},
		{name: "too much rotation", in: "rotate=90", wantErr: []string{"rotate 90 outside 0-45 degrees"}},
		{name: "each bad field", in: "rotate=-1,shift=0.5,noise=0.001,markers=2", wantErr: []string{"rotate -1 outside", "shift 0.5 outside", "noise 0.001 outside 0.006-0.25", "markers 2 outside 0-1"}},
		{name: "not a number", in: "zoom=NaN", wantErr: []string{"zoom NaN outside"}},
		{name: "infinite", in: "exposure=Inf", wantErr: []string{"exposure +Inf outside 0-3 stops"}},
		{name: "garbage value", in: "rotate=ten", wantErr: []string{`rotate "ten" is not a number`}},
		{name: "unknown field", in: "colour=1", wantErr: []string{`unknown field "colour"`, "rotate, shift"}},
		{name: "unknown preset", in: "hospital", wantErr: []string{`"hospital" is neither a preset (clinical, none) nor a field=value pair`}},
		{name: "preset after a field", in: "rotate=1,clinical", wantErr: []string{`the preset "clinical" must come first`}},
		{name: "empty", in: "", wantErr: []string{`"" is neither a preset`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVariation(tc.in)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
				if back, err := ParseVariation(got.String()); err != nil || back != got {
					t.Errorf("String %q reads back as %+v (%v)", got.String(), back, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, got %+v", got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// An invalid variation is an error, not a panic; the largest valid one
// makes cases that are still valid radiographs.
func TestVariationExtremes(t *testing.T) {
	if _, err := PelvisVaried(1, 0, Variation{Rotate: math.Inf(1)}); err == nil || !strings.Contains(err.Error(), "rotate") {
		t.Errorf("pelvis with infinite rotation: %v", err)
	}
	if _, err := SpineVaried(1, 0, Variation{Collimation: 0.9}); err == nil || !strings.Contains(err.Error(), "collimation") {
		t.Errorf("spine with collimation 0.9: %v", err)
	}
	most := Variation{Rotate: 45, Shift: 0.3, Zoom: 0.5, Exposure: 3, Noise: 0.25, Collimation: 0.4, Markers: 1, Text: 1}
	for i := range 3 {
		pc := varied(t, 8, i, most)
		sc, err := SpineVaried(8, i, most)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []imaging.Radiograph{pc.Image, sc.Image} {
			var buf bytes.Buffer
			if err := imaging.WriteDICOM(&buf, r); err != nil {
				t.Fatal(err)
			}
			if _, err := imaging.Decode(buf.Bytes(), imaging.Limits{}); err != nil {
				t.Errorf("case %d: %v", i, err)
			}
		}
		if len(pc.Row("x.dcm")) != len(PelvisHeader) {
			t.Errorf("case %d: row of %d columns for %d", i, len(pc.Row("x.dcm")), len(PelvisHeader))
		}
	}
}

// A varied case is a pure function of (seed, index, variation), shows the
// same patient as the default case, and is a study of its own.
func TestVariedDeterministic(t *testing.T) {
	v := ClinicalVariation()
	a, b := varied(t, 5, 3, v), varied(t, 5, 3, v)
	if !slices.Equal(a.Image.Stored, b.Image.Stored) || a.Right != b.Right || a.Left != b.Left || !cmp.Equal(a.Acquisition, b.Acquisition, cmp.AllowUnexported(Acquisition{}, mark{})) {
		t.Fatal("the same (seed, index, variation) gave different cases")
	}
	d := Pelvis(5, 3)
	for _, h := range [][2]Hip{{a.Right, d.Right}, {a.Left, d.Left}} {
		if h[0].Class != h[1].Class || h[0].Detail != h[1].Detail || h[0].Difficulty != h[1].Difficulty {
			t.Errorf("varied hip %+v, default %+v: not the same patient", h[0], h[1])
		}
	}
	if slices.Equal(a.Image.Stored, d.Image.Stored) || a.Acquisition.Rotation == d.Acquisition.Rotation {
		t.Error("the clinical variation left the case as it was")
	}
	uids := map[string]bool{d.Image.StudyInstanceUID: true, d.Image.SOPInstanceUID: true}
	other := varied(t, 5, 3, Variation{Rotate: 15})
	for _, u := range []string{a.Image.StudyInstanceUID, a.Image.SOPInstanceUID, other.Image.StudyInstanceUID, other.Image.SOPInstanceUID} {
		if uids[u] {
			t.Errorf("UID %s shared between variations", u)
		}
		uids[u] = true
	}
	// One field of a variation leaves the draws of the others as they were.
	rot := varied(t, 5, 3, Variation{Rotate: v.Rotate})
	if rot.Acquisition.Rotation != a.Acquisition.Rotation {
		t.Errorf("rotation %v alone, %v with the clinical preset", rot.Acquisition.Rotation, a.Acquisition.Rotation)
	}
}

// similarity maps default-case pixels to varied-case pixels, from the two
// hips' centres in both.
type similarity struct{ a, b, tx, ty float64 } // x' = a x - b y + tx, y' = b x + a y + ty

func fitSimilarity(from, to [2][2]float64) similarity {
	dx, dy := from[1][0]-from[0][0], from[1][1]-from[0][1]
	ex, ey := to[1][0]-to[0][0], to[1][1]-to[0][1]
	n := dx*dx + dy*dy
	a, b := (ex*dx+ey*dy)/n, (ey*dx-ex*dy)/n
	return similarity{a, b, to[0][0] - (a*from[0][0] - b*from[0][1]), to[0][1] - (b*from[0][0] + a*from[0][1])}
}

func (s similarity) apply(x, y float64) (float64, float64) {
	return s.a*x - s.b*y + s.tx, s.b*x + s.a*y + s.ty
}

func (s similarity) inverse() similarity {
	n := s.a*s.a + s.b*s.b
	a, b := s.a/n, -s.b/n
	return similarity{a, b, -(a*s.tx - b*s.ty), -(b*s.tx + a*s.ty)}
}

// bilinear samples c's attenuation at pixel coordinates (x, y); ok is false
// outside the image.
func bilinear(c *canvas, x, y float64) (float64, bool) {
	x, y = x-0.5, y-0.5
	j, i := int(math.Floor(x)), int(math.Floor(y))
	if i < 0 || j < 0 || i+1 >= c.rows || j+1 >= c.cols {
		return 0, false
	}
	fx, fy := x-float64(j), y-float64(i)
	at := func(i, j int) float64 { return c.a[i*c.cols+j] }
	return (1-fy)*((1-fx)*at(i, j)+fx*at(i, j+1)) + fy*((1-fx)*at(i+1, j)+fx*at(i+1, j+1)), true
}

func correlation(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma, mb = ma+a[i], mb+b[i]
	}
	ma, mb = ma/float64(len(a)), mb/float64(len(b))
	var sab, saa, sbb float64
	for i := range a {
		sab += (a[i] - ma) * (b[i] - mb)
		saa += (a[i] - ma) * (a[i] - ma)
		sbb += (b[i] - mb) * (b[i] - mb)
	}
	return sab / math.Sqrt(saa*sbb)
}

// The recorded hip centres, rotation, shift and zoom describe where the
// anatomy went: the rotation between two cases equals the turn of the line
// through the hip centres, the zoom its stretch, the recorded patient
// centre maps onto the recorded patient centre, and the bone of the varied
// case is the default case's bone moved by that transform.
func TestVariationMovesAnatomy(t *testing.T) {
	v := Variation{Rotate: 15, Shift: 0.15, Zoom: 0.2}
	for i := range 4 {
		dflt, vary := newPelvisScene(12, i, Variation{}), newPelvisScene(12, i, v)
		d, w := dflt.pc, vary.pc
		centres := func(pc PelvisCase) [2][2]float64 { return [2][2]float64{pc.Right.Joint.Centre, pc.Left.Joint.Centre} }
		s := fitSimilarity(centres(d), centres(w))
		turn := math.Atan2(s.b, s.a) * 180 / math.Pi
		if want := w.Acquisition.Rotation - d.Acquisition.Rotation; math.Abs(turn-want) > 1e-6 {
			t.Errorf("case %d: hip centres turned %.4f degrees, recorded rotations differ by %.4f", i, turn, want)
		}
		if stretch, want := math.Hypot(s.a, s.b), w.Acquisition.Zoom/d.Acquisition.Zoom; math.Abs(stretch-want) > 1e-9 {
			t.Errorf("case %d: hip centres stretched %.5f, recorded zoom ratio %.5f", i, stretch, want)
		}
		cols, rows := float64(vary.l.bone.cols), float64(vary.l.bone.rows)
		x, y := s.apply((0.5+d.Acquisition.ShiftX)*cols, (0.5+d.Acquisition.ShiftY)*rows)
		if wx, wy := (0.5+w.Acquisition.ShiftX)*cols, (0.5+w.Acquisition.ShiftY)*rows; math.Hypot(x-wx, y-wy) > 1e-6 {
			t.Errorf("case %d: patient centre maps to (%.2f, %.2f), recorded (%.2f, %.2f)", i, x, y, wx, wy)
		}
		for k, h := range []Hip{w.Right, w.Left} {
			if r := h.Joint.Radius / ([]Hip{d.Right, d.Left}[k].Joint.Radius); math.Abs(r-math.Hypot(s.a, s.b)) > 1e-9 {
				t.Errorf("case %d: head radius scaled %.4f", i, r)
			}
		}
		// The bone layers: the varied one against the default one read
		// through the transform, and through no transform at all.
		inv := s.inverse()
		var got, moved, still []float64
		b := vary.l.bone
		for p := 0; p < b.rows*b.cols; p += 7 {
			x, y := float64(p%b.cols)+0.5, float64(p/b.cols)+0.5
			dx, dy := inv.apply(x, y)
			m, ok := bilinear(dflt.l.bone, dx, dy)
			n, ok2 := bilinear(dflt.l.bone, x, y)
			if !ok || !ok2 {
				continue
			}
			got, moved, still = append(got, b.a[p]), append(moved, m), append(still, n)
		}
		cm, cs := correlation(got, moved), correlation(got, still)
		t.Logf("case %d: rotation %.1f, shift %.3f %.3f, zoom %.3f: bone correlation %.3f through the recorded transform, %.3f without", i,
			w.Acquisition.Rotation, w.Acquisition.ShiftX, w.Acquisition.ShiftY, w.Acquisition.Zoom, cm, cs)
		if cm < 0.95 || cm < cs+0.1 {
			t.Errorf("case %d: the varied bone matches the moved default bone with correlation %.3f (%.3f unmoved)", i, cm, cs)
		}
	}
}

// Collimation: nothing of the patient shows outside the collimated field,
// only the unexposed level and noise; inside, the anatomy does.
func TestCollimation(t *testing.T) {
	checked := 0
	for i := 0; checked < 3 && i < 20; i++ {
		pc := varied(t, 4, i, Variation{Collimation: 0.3})
		c := pc.Acquisition.Collimation
		if c[0] < 0.12 {
			continue
		}
		checked++
		r := pc.Image
		edge, inside := []float64{}, []float64{}
		for y := int((c[2] + 0.02) * float64(r.Rows)); y < int((1-c[3]-0.02)*float64(r.Rows)); y++ {
			for x := range r.Columns {
				fx := (float64(x) + 0.5) / float64(r.Columns)
				switch {
				case fx < c[0]-0.01:
					edge = append(edge, brightness(r, y*r.Columns+x))
				case fx > c[0]+0.05 && fx < 0.5:
					inside = append(inside, brightness(r, y*r.Columns+x))
				}
			}
		}
		mean, sd := meanSD(edge)
		_, sdIn := meanSD(inside)
		want := 0.04 + 0.92*0.9 // the unexposed level
		noise := pc.Acquisition.Noise * math.Sqrt(1.2) * 0.92
		if math.Abs(mean-want) > 0.01 || sd > 1.3*noise {
			t.Errorf("case %d: collimated margin %.3f: brightness %.3f +- %.4f, want %.3f +- %.4f", i, c[0], mean, sd, want, noise)
		}
		if sdIn < 3*sd {
			t.Errorf("case %d: the open field (sd %.4f) is as flat as the collimated margin (%.4f)", i, sdIn, sd)
		}
	}
	if checked == 0 {
		t.Fatal("no case with a left margin of 12%")
	}
}

func meanSD(v []float64) (float64, float64) {
	var s, ss float64
	for _, x := range v {
		s += x
	}
	m := s / float64(len(v))
	for _, x := range v {
		ss += (x - m) * (x - m)
	}
	return m, math.Sqrt(ss / float64(len(v)))
}

// Markers and text change the image where they are drawn and nowhere else:
// lead letters brighten it, text is white with a black outline.
func TestMarkersAndText(t *testing.T) {
	for i := range 6 {
		plain := varied(t, 6, i, Variation{})
		pc := varied(t, 6, i, Variation{Markers: 1, Text: 1})
		a := pc.Acquisition
		if a.Markers == "" || a.Text == "" {
			t.Fatalf("case %d: markers %q, text %q with both certain", i, a.Markers, a.Text)
		}
		var letters, lines []string
		for _, m := range a.marks {
			if m.what == "R" || m.what == "L" {
				letters = append(letters, m.what)
			} else {
				lines = append(lines, m.what)
			}
		}
		if strings.Join(letters, " ") != a.Markers || strings.Join(lines, "; ") != a.Text {
			t.Errorf("case %d: drew %v and %v, recorded %q and %q", i, letters, lines, a.Markers, a.Text)
		}
		r, p := pc.Image, plain.Image
		near := func(x, y, pad int) *mark {
			for k, m := range a.marks {
				if x >= m.x0-pad && x < m.x1+pad && y >= m.y0-pad && y < m.y1+pad {
					return &a.marks[k]
				}
			}
			return nil
		}
		brighter := map[string]float64{}
		for y := range r.Rows {
			for x := range r.Columns {
				k := y*r.Columns + x
				diff := brightness(r, k) - brightness(p, k)
				if diff == 0 {
					continue
				}
				m := near(x, y, 5) // blur spreads a lead letter by a few pixels
				if m == nil {
					t.Fatalf("case %d: pixel (%d, %d) changed away from every marker and text", i, x, y)
				}
				brighter[m.what] += diff
			}
		}
		for _, l := range letters {
			if brighter[l] < 10 {
				t.Errorf("case %d: lead marker %s brightened the image by %.1f", i, l, brighter[l])
			}
		}
		for _, l := range lines {
			if _, ok := brighter[l]; !ok {
				t.Errorf("case %d: text %q left the image as it was", i, l)
			}
		}
	}
}

// Exposure and noise show in the pixels: more dose darkens the image, and
// the noise measured between neighbouring pixels follows the recorded level.
func TestExposureAndNoise(t *testing.T) {
	for i := range 6 {
		plain := varied(t, 9, i, Variation{})
		pc := varied(t, 9, i, Variation{Exposure: 1.5, Noise: 0.1})
		dm, _ := meanSD(allBrightness(plain.Image))
		vm, _ := meanSD(allBrightness(pc.Image))
		e := pc.Acquisition.Exposure
		if math.Abs(e) > 0.2 && (vm-dm)*e >= 0 {
			t.Errorf("case %d: %.2f stops changed the mean brightness from %.3f to %.3f", i, e, dm, vm)
		}
		quiet := varied(t, 9, i, Variation{Noise: 0.1})
		ratio := neighbourNoise(quiet.Image) / neighbourNoise(plain.Image)
		want := quiet.Acquisition.Noise / plain.Acquisition.Noise
		t.Logf("case %d: exposure %.2f stops, brightness %.3f -> %.3f; noise x%.2f recorded, x%.2f measured", i, e, dm, vm, want, ratio)
		if math.Abs(ratio/want-1) > 0.2 {
			t.Errorf("case %d: noise recorded x%.2f, measured x%.2f", i, want, ratio)
		}
	}
}

func allBrightness(r imaging.Radiograph) []float64 {
	out := make([]float64, len(r.Stored))
	for k := range out {
		out[k] = brightness(r, k)
	}
	return out
}

// neighbourNoise is the median absolute difference of horizontally
// adjacent pixels: the detector's white noise, little moved by anatomy.
func neighbourNoise(r imaging.Radiograph) float64 {
	var d []float64
	for k := 0; k+1 < len(r.Stored); k++ {
		if (k+1)%r.Columns != 0 {
			d = append(d, math.Abs(brightness(r, k+1)-brightness(r, k)))
		}
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// The clinical preset's draws cover its ranges and never leave them; its
// images cut part of a hip now and then, and record hips that lie on them.
func TestClinicalPopulation(t *testing.T) {
	v := ClinicalVariation()
	lo := Acquisition{Rotation: math.Inf(1), ShiftX: math.Inf(1), ShiftY: math.Inf(1), Zoom: math.Inf(1), Exposure: math.Inf(1), Noise: math.Inf(1)}
	hi := Acquisition{Rotation: math.Inf(-1), ShiftX: math.Inf(-1), ShiftY: math.Inf(-1), Zoom: math.Inf(-1), Exposure: math.Inf(-1), Noise: math.Inf(-1)}
	const n = 2000
	var markers, text int
	maxColl := 0.0
	for i := range n {
		d := drawVariation(20, "pelvis", i)
		c := newCanvas(480, 560, 0.7, vec{}, 0, vec{})
		p := v.pose(d, 0.01, vec{3, 2}, c.rows, c.cols, c.spacing)
		c.theta, c.shift, c.zoom = p.theta, p.shift, p.zoom
		det := detector{dose: 1, noise: 0.01}
		v.expose(d, &det)
		a := acquisition(c, det)
		for _, x := range []struct {
			v      float64
			lo, hi *float64
		}{{a.Rotation, &lo.Rotation, &hi.Rotation}, {a.ShiftX, &lo.ShiftX, &hi.ShiftX}, {a.ShiftY, &lo.ShiftY, &hi.ShiftY},
			{a.Zoom, &lo.Zoom, &hi.Zoom}, {a.Exposure, &lo.Exposure, &hi.Exposure}, {a.Noise, &lo.Noise, &hi.Noise}} {
			*x.lo, *x.hi = min(*x.lo, x.v), max(*x.hi, x.v)
		}
		for _, m := range a.Collimation {
			maxColl = max(maxColl, m)
		}
		if d.markers < v.Markers {
			markers++
		}
		if d.text < v.Text {
			text++
		}
	}
	t.Logf("over %d draws: low %+v, high %+v, collimation up to %.3f, markers %d, text %d", n, lo, hi, maxColl, markers, text)
	for _, r := range []struct {
		name           string
		lo, hi, bound  float64
		centre, spread float64
	}{
		{"rotation", lo.Rotation, hi.Rotation, v.Rotate, 0, v.Rotate},
		{"shift x", lo.ShiftX, hi.ShiftX, v.Shift, 0, v.Shift},
		{"shift y", lo.ShiftY, hi.ShiftY, v.Shift, 0, v.Shift},
		{"zoom", lo.Zoom, hi.Zoom, v.Zoom, 1, v.Zoom},
		{"exposure", lo.Exposure, hi.Exposure, v.Exposure, 0, v.Exposure},
	} {
		if r.lo < r.centre-r.bound-1e-9 || r.hi > r.centre+r.bound+1e-9 || r.lo > r.centre-0.95*r.spread || r.hi < r.centre+0.95*r.spread {
			t.Errorf("%s drawn %.4f-%.4f, preset %.4f +- %.4f", r.name, r.lo, r.hi, r.centre, r.bound)
		}
	}
	if lo.Noise < minNoise || hi.Noise > v.Noise || hi.Noise < 0.9*v.Noise || maxColl > v.Collimation || maxColl < 0.9*v.Collimation {
		t.Errorf("noise %.4f-%.4f, collimation up to %.3f", lo.Noise, hi.Noise, maxColl)
	}
	if math.Abs(float64(markers)/n-v.Markers) > 0.04 || math.Abs(float64(text)/n-v.Text) > 0.04 {
		t.Errorf("markers on %d, text on %d of %d", markers, text, n)
	}

	// Rendered cases: the recorded values within the preset, the hip
	// centres on the image, and some hips partly collimated.
	var cut int
	for i := range 24 {
		pc := varied(t, 20, i, v)
		a := pc.Acquisition
		if math.Abs(a.Rotation) > v.Rotate || math.Abs(a.ShiftX) > v.Shift || math.Abs(a.ShiftY) > v.Shift || math.Abs(a.Zoom-1) > v.Zoom {
			t.Errorf("case %d: acquisition %+v outside the preset", i, a)
		}
		for _, h := range []Hip{pc.Right, pc.Left} {
			j := h.Joint
			if j.Open < 1 {
				cut++
			}
			if j.Box[0] > j.Centre[0] || j.Box[0]+j.Box[2] < j.Centre[0] || j.Box[1] > j.Centre[1] || j.Box[1]+j.Box[3] < j.Centre[1] {
				t.Errorf("case %d: head centre %v outside the joint box %v", i, j.Centre, j.Box)
			}
			if j.Radius < 10 || j.Radius > 60 || j.Box[2] < 3*j.Radius || j.Box[3] < 3*j.Radius {
				t.Errorf("case %d: head radius %.1f px, box %v", i, j.Radius, j.Box)
			}
		}
	}
	if cut == 0 {
		t.Error("the clinical preset never cut part of a hip in 24 images")
	}
}

// The spine takes the same variation: its vertebra boxes move with the
// patient, and the acquisition is recorded on every row.
func TestSpineVaried(t *testing.T) {
	v := ClinicalVariation()
	for i := range 4 {
		d := Spine(13, i)
		a, err := SpineVaried(13, i, v)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := SpineVaried(13, i, v)
		if !slices.Equal(a.Image.Stored, b.Image.Stored) || !slices.Equal(a.Vertebrae, b.Vertebrae) {
			t.Fatalf("case %d: not deterministic", i)
		}
		if a.Clinical != d.Clinical {
			t.Errorf("case %d: clinical data %+v, default %+v", i, a.Clinical, d.Clinical)
		}
		byLevel := map[string]Vertebra{}
		for _, x := range d.Vertebrae {
			byLevel[x.Level] = x
		}
		moved := 0
		for _, x := range a.Vertebrae {
			if y, ok := byLevel[x.Level]; ok {
				if x.Fracture != y.Fracture || x.Difficulty != y.Difficulty {
					t.Errorf("case %d %s: %s/%s varied, %s/%s default", i, x.Level, x.Fracture, x.Difficulty, y.Fracture, y.Difficulty)
				}
				if x.Box != y.Box {
					moved++
				}
			}
			if x.Open < 0 || x.Open > 1 {
				t.Errorf("case %d %s: open %v", i, x.Level, x.Open)
			}
		}
		if moved == 0 {
			t.Errorf("case %d: no vertebra moved", i)
		}
		for _, row := range a.Rows("x.dcm") {
			if len(row) != len(SpineHeader) || row[len(row)-len(AcquisitionHeader)] != decimal(a.Acquisition.Rotation, 3) {
				t.Fatalf("case %d: row %v", i, row)
			}
		}
	}
}
