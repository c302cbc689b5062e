package inference

import (
	"fmt"
	"image"
	"math"
)

// Body is one vertebral body the localiser found.
type Body struct {
	Level    string          `json:"level"`
	Presence float64         `json:"presence"`
	Box      image.Rectangle `json:"box"` // in image pixels, clipped to the image
}

// LocaliserInput writes the localiser's input plane for an image: the
// whole image resized to the localiser's size with the manifest's filter
// and normalisation. dst holds Width x Height values. The localiser's
// session (inference/onnx) reads it; the training data writer writes it.
func LocaliserInput(l Localiser, pre Preprocess, pixels []float32, rows, cols int, dst []float32) error {
	return pre.CropResize(pixels, rows, cols, image.Rect(0, 0, cols, rows), false, l.Width, l.Height, dst)
}

// DecodeBodies turns the localiser's [levels x 5] output for an image of
// rows x cols into boxes. Levels below the presence threshold and boxes of
// under 4 pixels a side are left out; boxes are clipped to the image.
func DecodeBodies(l Localiser, out []float32, rows, cols int) ([]Body, error) {
	if len(out) != 5*len(l.Levels) {
		return nil, fmt.Errorf("inference: localiser gave %d values for %d levels", len(out), len(l.Levels))
	}
	var bodies []Body
	for k, level := range l.Levels {
		v := out[5*k : 5*k+5]
		p := float64(v[0])
		if !(p >= l.MinPresence) { // also NaN
			continue
		}
		cx, cy, w, h := float64(v[1])*float64(cols), float64(v[2])*float64(rows), float64(v[3])*float64(cols), float64(v[4])*float64(rows)
		if !(w >= 4 && h >= 4) || math.IsNaN(cx) || math.IsNaN(cy) {
			continue
		}
		box := image.Rect(int(math.Round(cx-w/2)), int(math.Round(cy-h/2)), int(math.Round(cx+w/2)), int(math.Round(cy+h/2)))
		box = box.Intersect(image.Rect(0, 0, cols, rows))
		if box.Dx() < 4 || box.Dy() < 4 {
			continue
		}
		bodies = append(bodies, Body{Level: level, Presence: math.Round(p*1e4) / 1e4, Box: box})
	}
	return bodies, nil
}

// ROIBox is the square the network reads around a body's box: side
// Scale x the longer side, centred on the box.
func (r ROI) ROIBox(box image.Rectangle) image.Rectangle {
	side := int(math.Round(r.Scale * float64(max(box.Dx(), box.Dy()))))
	side = max(side, 1)
	c := box.Min.Add(box.Max).Div(2)
	return image.Rect(c.X-side/2, c.Y-side/2, c.X-side/2+side, c.Y-side/2+side)
}

// RadiomicsBox is the box inset by Inset of its size on each side, the
// radiomics region of interest.
func (r ROI) RadiomicsBox(box image.Rectangle) image.Rectangle {
	dx, dy := int(math.Round(r.Inset*float64(box.Dx()))), int(math.Round(r.Inset*float64(box.Dy())))
	in := image.Rect(box.Min.X+dx, box.Min.Y+dy, box.Max.X-dx, box.Max.Y-dy)
	if in.Empty() {
		return box
	}
	return in
}
