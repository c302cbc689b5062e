package inference

import (
	"image"
	"image/color"
	"math"
)

// Output is the model's answer for one crop.
type Output struct {
	Probabilities []float64 // softmax of logits / temperature, in label order
	Logits        []float32 // the model's raw logits, in label order (the temperature fit needs them); nil when the classifier gives none
	CAM           []float32 // labels x h x w activation maps, nil when the model has none
	CAMSize       [2]int    // h, w
	Features      []float32 // the pooled deep features, nil when the model has none
}

// Softmax returns the probabilities of logits divided by temperature,
// computed stably in float64.
func Softmax(logits []float32, temperature float64) []float64 {
	if !(temperature > 0) {
		temperature = 1
	}
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v)/temperature)
	}
	out := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		out[i] = math.Exp(float64(v)/temperature - mx)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// Finding is the model's reading of one region (one hip).
type Finding struct {
	Region      string  `json:"region"`
	Laterality  string  `json:"laterality"`
	Class       string  `json:"class"` // the most probable label's key
	Display     string  `json:"display"`
	Probability float64 `json:"probability"`
	// Reported is true when the top class reaches its manifest threshold.
	Reported bool   `json:"reported"`
	Priority string `json:"priority,omitempty"` // from the manifest's triage rules; empty: none matched
	// PriorityClass is the label whose probability triggered Priority; it
	// may differ from Class (a hip read as normal with a 35% fracture
	// probability is still flagged when the rule's minimum is 30%).
	PriorityClass string             `json:"priorityClass,omitempty"`
	Probabilities map[string]float64 `json:"probabilities"`
	Box           image.Rectangle    `json:"-"` // the crop's bounding box in image pixels
	// Crop is where the region was taken from (centre, side, angle, mirror).
	Crop       Crop `json:"-"`
	classIndex int
}

// Interpret turns one output into a finding: the top class, its threshold
// and the triage priority of the manifest's first matching rule.
func (m *Manifest) Interpret(o Output, c Crop) Finding {
	if c.Side == 0 && !c.Box.Empty() {
		c = fixedCrop(c.Region, c.Box) // a crop given only as its square
	}
	top := 0
	for i, p := range o.Probabilities {
		if p > o.Probabilities[top] {
			top = i
		}
	}
	f := Finding{
		Region: c.Region.Name, Laterality: c.Region.Laterality, Box: c.Box, Crop: c, classIndex: top,
		Class: m.Labels[top].Key, Display: m.Labels[top].Display, Probability: o.Probabilities[top],
		Probabilities: make(map[string]float64, len(m.Labels)),
	}
	for i, l := range m.Labels {
		f.Probabilities[l.Key] = o.Probabilities[i]
	}
	th, ok := m.Thresholds[f.Class]
	f.Reported = !ok || f.Probability >= th
	f.Priority, f.PriorityClass = m.Priority(o.Probabilities)
	return f
}

// Priority applies the triage rules in order: the first rule with any of
// its classes at or above its minimum probability gives the priority, and
// the most probable of that rule's qualifying classes is returned with it.
func (m *Manifest) Priority(probs []float64) (priority, class string) {
	for _, r := range m.Triage {
		best := -1
		for _, c := range r.Classes {
			if i := m.LabelIndex(c); i >= 0 && i < len(probs) && probs[i] >= r.MinProbability && (best < 0 || probs[i] > probs[best]) {
				best = i
			}
		}
		if best >= 0 {
			return r.Priority, m.Labels[best].Key
		}
	}
	return "", ""
}

// Heat is an activation map in image coordinates: one value in [0,1] per
// pixel of Box (row major).
type Heat struct {
	Box    image.Rectangle
	Values []float32
}

// ActivationMap maps the top class's activation map of o back onto the
// image: the map is rectified and scaled to [0,1], and each pixel of the
// crop's bounding box takes the bilinear value of the map at its place in
// the crop (rotated and mirrored back as the crop was), 0 outside the crop.
// It returns nil when the model has no activation output.
func (f Finding) ActivationMap(o Output) *Heat {
	at := f.HeatAt(o)
	if at == nil {
		return nil
	}
	bw, bh := f.Box.Dx(), f.Box.Dy()
	out := &Heat{Box: f.Box, Values: make([]float32, bw*bh)}
	for y := range bh {
		for x := range bw {
			out.Values[y*bw+x] = at(f.Box.Min.X+x, f.Box.Min.Y+y)
		}
	}
	return out
}

// HeatAt is a heat value in [0,1] at image pixel (x, y).
type HeatAt func(x, y int) float32

// HeatAt is ActivationMap read at one pixel at a time (the same value
// ActivationMap gives there, 0 outside the crop), for pictures that sample
// only some of the box's pixels. It returns nil when the model has no
// activation output.
func (f Finding) HeatAt(o Output) HeatAt {
	h, w := o.CAMSize[0], o.CAMSize[1]
	c := f.Crop
	// Each bound checked by division, so that no product can overflow.
	if h <= 0 || w <= 0 || f.classIndex < 0 || len(o.CAM)/w < h || len(o.CAM)/(h*w) <= f.classIndex || f.Box.Empty() || !(c.Side > 0) {
		return nil
	}
	m := o.CAM[f.classIndex*h*w : (f.classIndex+1)*h*w]
	var hi float32
	for _, v := range m {
		hi = max(hi, v)
	}
	if hi <= 0 {
		return func(int, int) float32 { return 0 }
	}
	cell := func(y, x int) float32 { return max(0, m[y*w+x]) / hi }
	cos, sin := math.Cos(c.Angle), math.Sin(c.Angle)
	return func(x, y int) float32 {
		dx, dy := float64(x)+0.5-c.Centre[0], float64(y)+0.5-c.Centre[1]
		// The pixel centre in the crop, as fractions of its side.
		u, v := (dx*cos+dy*sin)/c.Side+0.5, (-dx*sin+dy*cos)/c.Side+0.5
		if c.Mirror {
			u = 1 - u
		}
		if !(u >= 0 && u < 1 && v >= 0 && v < 1) {
			return 0
		}
		// Map coordinates, cell centres at 0.5.
		fx, fy := u*float64(w)-0.5, v*float64(h)-0.5
		x0, y0 := int(math.Floor(fx)), int(math.Floor(fy))
		tx, ty := float32(fx-float64(x0)), float32(fy-float64(y0))
		x0c, x1c, y0c, y1c := clamp(x0, w), clamp(x0+1, w), clamp(y0, h), clamp(y0+1, h)
		return (1-ty)*((1-tx)*cell(y0c, x0c)+tx*cell(y0c, x1c)) + ty*((1-tx)*cell(y1c, x0c)+tx*cell(y1c, x1c))
	}
}

func clamp(v, n int) int { return max(0, min(n-1, v)) }

// Overlay renders the display-ready grayscale image with heat maps blended
// in (blue to red, transparent where the heat is low), for viewers and
// reports.
func Overlay(pixels []float32, rows, cols int, heats []*Heat) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, cols, rows))
	for i, v := range pixels {
		g := uint8(math.Round(float64(max(0, min(1, v))) * 255))
		o := 4 * i
		img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = g, g, g, 255
	}
	for _, h := range heats {
		if h == nil {
			continue
		}
		bw := h.Box.Dx()
		for y := h.Box.Min.Y; y < h.Box.Max.Y; y++ {
			if y < 0 || y >= rows {
				continue
			}
			for x := h.Box.Min.X; x < h.Box.Max.X; x++ {
				if x < 0 || x >= cols {
					continue
				}
				o := img.PixOffset(x, y)
				blend(img.Pix[o:o+3], h.Values[(y-h.Box.Min.Y)*bw+(x-h.Box.Min.X)])
			}
		}
	}
	return img
}

// blend lays heat v over one RGB pixel: transparent below 0.35, then up to
// 60% of the heat colour.
func blend(rgb []uint8, v float32) {
	if !(v >= 0.35) {
		return
	}
	c := heatColor(v)
	a := 0.6 * float64(v-0.35) / 0.65
	for k, cv := range []uint8{c.R, c.G, c.B} {
		rgb[k] = uint8(math.Round((1-a)*float64(rgb[k]) + a*float64(cv)))
	}
}

// Thumbnail renders the part of the image in box (a finding's crop) as a
// side x side picture with heat blended in, for reports and cards: nearest
// sampling, black outside the image. Heat is read only at the pixels
// sampled and must be that of the finding whose Box is box (its HeatAt); a
// nil heat gives the plain crop of box.
func Thumbnail(pixels []float32, rows, cols int, box image.Rectangle, heat HeatAt, side int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	if box.Empty() || side <= 0 || !holds(pixels, rows, cols) {
		return img
	}
	bw, bh := box.Dx(), box.Dy()
	for ty := range side {
		y := box.Min.Y + (2*ty+1)*bh/(2*side)
		for tx := range side {
			x := box.Min.X + (2*tx+1)*bw/(2*side)
			o := img.PixOffset(tx, ty)
			var g uint8
			if y >= 0 && y < rows && x >= 0 && x < cols {
				g = uint8(math.Round(float64(max(0, min(1, pixels[y*cols+x]))) * 255))
			}
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = g, g, g, 255
			if heat != nil {
				blend(img.Pix[o:o+3], heat(x, y))
			}
		}
	}
	return img
}

// heatColor maps [0,1] from blue through green and yellow to red.
func heatColor(v float32) color.RGBA {
	t := float64(max(0, min(1, v)))
	r := math.Min(1, math.Max(0, 1.5-math.Abs(4*t-3)))
	g := math.Min(1, math.Max(0, 1.5-math.Abs(4*t-2)))
	b := math.Min(1, math.Max(0, 1.5-math.Abs(4*t-1)))
	return color.RGBA{uint8(r * 255), uint8(g * 255), uint8(b * 255), 255}
}
