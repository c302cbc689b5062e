package inference

import (
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/orthotriage/orthotriage/internal/parallel"
)

// MaxUprightAngle bounds the rotation of an upright crop: a pelvis tilted
// further is not an AP pelvis the crops could follow.
const MaxUprightAngle = math.Pi / 4

// HipJoints is what a hip localiser found on one image: each level's
// presence (always set) and box (empty when the level is below the
// presence threshold or its box under 4 pixels a side).
type HipJoints struct {
	Right, Left, Pelvis Body
}

// DecodeHips turns a hip localiser's [3 x 5] output (levels right, left,
// pelvis) for an image of rows x cols into its joints.
func DecodeHips(l Localiser, out []float32, rows, cols int) (HipJoints, error) {
	if len(l.Levels) != 3 || len(out) != 15 {
		return HipJoints{}, fmt.Errorf("inference: hip localiser gave %d values for %d levels, want 3 levels right, left, pelvis", len(out), len(l.Levels))
	}
	found, err := DecodeBodies(l, out, rows, cols)
	if err != nil {
		return HipJoints{}, err
	}
	var h HipJoints
	for k, b := range []*Body{&h.Right, &h.Left, &h.Pelvis} {
		p := float64(out[5*k])
		if math.IsNaN(p) || math.IsInf(p, 0) {
			p = 0
		}
		*b = Body{Level: HipLevels[k], Presence: math.Round(p*1e4) / 1e4}
		for _, f := range found {
			if f.Level == HipLevels[k] {
				b.Box = f.Box
			}
		}
	}
	return h, nil
}

// Found reports whether a level's box was found.
func (b Body) Found() bool { return !b.Box.Empty() }

// ErrNoJoint is returned by Complete when the crops cannot be placed.
var ErrNoJoint = errors.New("no hip joint found")

// Complete returns both joints' boxes: a joint the localiser missed is
// the mirror image of the other across the pelvis box's vertical centre
// line (same size), which needs the pelvis; with neither joint, or one and
// no pelvis, it fails with ErrNoJoint. inferred names the side placed so.
func (h HipJoints) Complete() (right, left image.Rectangle, inferred string, err error) {
	right, left = h.Right.Box, h.Left.Box
	switch {
	case h.Right.Found() && h.Left.Found():
		return right, left, "", nil
	case !h.Right.Found() && !h.Left.Found(), !h.Pelvis.Found():
		return image.Rectangle{}, image.Rectangle{}, "", ErrNoJoint
	}
	axis := h.Pelvis.Box.Min.X + h.Pelvis.Box.Max.X // twice the centre line
	mirror := func(b image.Rectangle) image.Rectangle {
		return image.Rect(axis-b.Max.X, b.Min.Y, axis-b.Min.X, b.Max.Y)
	}
	if h.Right.Found() {
		return right, mirror(right), "left", nil
	}
	return mirror(left), left, "right", nil
}

// JointCrops places the manifest's regions on the joints' boxes (image
// pixels): each crop is a square of CropScale x its box's longer side
// around the box's centre, rotated by the angle of the line from the right
// joint's centre to the left's when Upright (within MaxUprightAngle), and
// mirrored as its region says.
func (p Preprocess) JointCrops(right, left image.Rectangle) ([]Crop, error) {
	centre := func(b image.Rectangle) [2]float64 {
		return [2]float64{float64(b.Min.X+b.Max.X) / 2, float64(b.Min.Y+b.Max.Y) / 2}
	}
	rc, lc := centre(right), centre(left)
	angle := 0.0
	if p.Upright {
		angle = math.Atan2(lc[1]-rc[1], lc[0]-rc[0])
		angle = max(-MaxUprightAngle, min(MaxUprightAngle, angle))
	}
	crops := make([]Crop, 0, len(p.Regions))
	for _, r := range p.Regions {
		b, c := right, rc
		if r.Laterality == "left" {
			b, c = left, lc
		}
		if b.Empty() {
			return nil, fmt.Errorf("inference: region %s: %w", r.Name, ErrNoJoint)
		}
		cr, err := rotatedCrop(r, c, p.CropScale*float64(max(b.Dx(), b.Dy())), angle)
		if err != nil {
			return nil, err
		}
		crops = append(crops, cr)
	}
	return crops, nil
}

// rotatedCrop is the crop of side pixels around c at angle, checked
// against the limits.
func rotatedCrop(r Region, c [2]float64, side, angle float64) (Crop, error) {
	if !(side >= 1 && side <= MaxCropSide) {
		return Crop{}, fmt.Errorf("inference: region %s: a crop of %v pixels is outside 1-%d", r.Name, side, MaxCropSide)
	}
	const far = 1 << 20
	if !(math.Abs(c[0]) < far && math.Abs(c[1]) < far) || math.IsNaN(angle) {
		return Crop{}, fmt.Errorf("inference: region %s: crop centre %v or angle %v out of range", r.Name, c, angle)
	}
	e := side / 2 * (math.Abs(math.Cos(angle)) + math.Abs(math.Sin(angle)))
	box := image.Rect(int(math.Floor(c[0]-e)), int(math.Floor(c[1]-e)), int(math.Ceil(c[0]+e)), int(math.Ceil(c[1]+e)))
	return Crop{Region: r, Box: box, Centre: c, Side: side, Angle: angle, Mirror: r.Mirror}, nil
}

// PrepareCrops writes one normalised NCHW plane per crop into dst, which
// must hold len(crops)*height*width values: each crop sampled upright
// (bilinear in source pixels, black outside the image), mirrored where it
// says so, resized with the manifest's filter and normalised. An
// unrotated crop on whole pixels is cut exactly as CropResize cuts it.
func (p Preprocess) PrepareCrops(pixels []float32, rows, cols int, crops []Crop, dst []float32) error {
	w, h := p.Resize.Width, p.Resize.Height
	if !holds(pixels, rows, cols) {
		return fmt.Errorf("inference: %d pixels for %dx%d", len(pixels), cols, rows)
	}
	if len(dst) != len(crops)*w*h {
		return fmt.Errorf("inference: destination holds %d values, want %d", len(dst), len(crops)*w*h)
	}
	// The crops (a pelvis's two hips) are sampled side by side.
	errs := make([]error, len(crops))
	parallel.Each(len(crops), func(i int) {
		errs[i] = p.sampleCrop(pixels, rows, cols, crops[i], dst[i*w*h:(i+1)*w*h])
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (p Preprocess) sampleCrop(pixels []float32, rows, cols int, c Crop, dst []float32) error {
	w, h := p.Resize.Width, p.Resize.Height
	if !(c.Side >= 1 && c.Side <= MaxCropSide) {
		return fmt.Errorf("inference: a crop of %v pixels is outside 1-%d", c.Side, MaxCropSide)
	}
	if !(math.Abs(c.Centre[0]) < 1<<20 && math.Abs(c.Centre[1]) < 1<<20) || math.IsNaN(c.Angle) || math.IsInf(c.Angle, 0) {
		return fmt.Errorf("inference: crop centre %v or angle %v out of range", c.Centre, c.Angle)
	}
	n := int(math.Round(c.Side))
	x0, y0 := c.Centre[0]-float64(n)/2, c.Centre[1]-float64(n)/2
	if c.Angle == 0 && float64(n) == c.Side && x0 == math.Trunc(x0) && y0 == math.Trunc(y0) {
		return p.CropResize(pixels, rows, cols, image.Rect(int(x0), int(y0), int(x0)+n, int(y0)+n), c.Mirror, w, h, dst)
	}
	scaler, err := resampler(p.Resize.Filter)
	if err != nil {
		return err
	}
	at := func(y, x int) float64 {
		if y < 0 || y >= rows || x < 0 || x >= cols {
			return 0
		}
		return unit(pixels[y*cols+x])
	}
	cos, sin := math.Cos(c.Angle), math.Sin(c.Angle)
	step := c.Side / float64(n)
	// Row j of the upright crop, bilinear samples as 16-bit gray, made as
	// the resizer reads it.
	load := func(j int, row []float64) {
		dv := (float64(j)+0.5)*step - c.Side/2
		for i := range row[:n] {
			du := (float64(i)+0.5)*step - c.Side/2
			if c.Mirror {
				du = -du
			}
			// The sample's position, with pixel k's centre at k+0.5.
			sx := c.Centre[0] + du*cos - dv*sin - 0.5
			sy := c.Centre[1] + du*sin + dv*cos - 0.5
			fx, fy := math.Floor(sx), math.Floor(sy)
			tx, ty := sx-fx, sy-fy
			ix, iy := int(fx), int(fy)
			var v float64
			if ix >= 0 && iy >= 0 && ix+1 < cols && iy+1 < rows {
				// Inside the image, as nearly every sample is: the four
				// neighbours read directly (the same values as at).
				top, bottom := pixels[iy*cols+ix:iy*cols+ix+2], pixels[(iy+1)*cols+ix:(iy+1)*cols+ix+2]
				v = (1-ty)*((1-tx)*unit(top[0])+tx*unit(top[1])) + ty*((1-tx)*unit(bottom[0])+tx*unit(bottom[1]))
			} else {
				v = (1-ty)*((1-tx)*at(iy, ix)+tx*at(iy, ix+1)) + ty*((1-tx)*at(iy+1, ix)+tx*at(iy+1, ix+1))
			}
			row[i] = float64(uint16(v*65535 + 0.5))
		}
	}
	p.resizeLoaded(scaler, load, n, n, w, h, dst)
	return nil
}
