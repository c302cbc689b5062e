package inference

import (
	"fmt"
	"image"
	"math"

	"golang.org/x/image/draw"
)

// resampler returns the x/image/draw kernel for a manifest filter name. Its
// Scale widens the kernel when shrinking, so downsampling is antialiased.
func resampler(name string) (draw.Scaler, error) {
	switch name {
	case "catmull-rom":
		return draw.CatmullRom, nil
	case "bilinear":
		return draw.BiLinear, nil
	case "approx-bilinear":
		return draw.ApproxBiLinear, nil
	}
	return nil, fmt.Errorf("unknown filter %q (catmull-rom, bilinear, approx-bilinear)", name)
}

// MaxCropSide bounds a crop's side in source pixels (a region of a very wide
// image would otherwise allocate gigabytes): 4096 pixels is a 400 mm field
// at 0.1 mm per pixel.
const MaxCropSide = 4096

// Crop is where a region was taken from the radiograph, in source pixels,
// so that activation maps can be mapped back: a square of Side pixels
// around Centre whose horizontal axis is at Angle radians from the image's
// (clockwise on the displayed image, y pointing down), sampled upright and
// mirrored left-right when Mirror is set.
type Crop struct {
	Region Region
	// Box is the crop's bounding box in source pixels (may overhang the
	// image): for an unrotated crop, the square itself.
	Box    image.Rectangle
	Centre [2]float64 // x, y in source pixels
	Side   float64
	Angle  float64
	Mirror bool
}

// fixedCrop is the crop of an axis-aligned square.
func fixedCrop(r Region, box image.Rectangle) Crop {
	return Crop{Region: r, Box: box, Centre: [2]float64{float64(box.Min.X+box.Max.X) / 2, float64(box.Min.Y+box.Max.Y) / 2},
		Side: float64(box.Dx()), Mirror: r.Mirror}
}

// Prepare writes one normalised NCHW plane per manifest region into dst,
// which must hold len(Regions)*height*width values: the crop of the
// display-ready grayscale pixels (rows x cols, values in [0,1]), mirrored
// where the region says so, resized with the manifest's filter and
// normalised. Parts of a crop outside the image are black (0).
func (p Preprocess) Prepare(pixels []float32, rows, cols int, dst []float32) ([]Crop, error) {
	w, h := p.Resize.Width, p.Resize.Height
	if !holds(pixels, rows, cols) {
		return nil, fmt.Errorf("inference: %d pixels for %dx%d", len(pixels), cols, rows)
	}
	if len(dst) != len(p.Regions)*w*h {
		return nil, fmt.Errorf("inference: destination holds %d values, want %d", len(dst), len(p.Regions)*w*h)
	}
	crops := make([]Crop, len(p.Regions))
	for i, r := range p.Regions {
		side := max(1, int(math.Round(r.Size*float64(cols))))
		if side > MaxCropSide {
			return nil, fmt.Errorf("inference: region %s of a %d-pixel-wide image is %d pixels square, limit %d", r.Name, cols, side, MaxCropSide)
		}
		x0 := int(math.Round(r.Cx*float64(cols))) - side/2
		y0 := int(math.Round(r.Cy*float64(rows))) - side/2
		box := image.Rect(x0, y0, x0+side, y0+side)
		crops[i] = fixedCrop(r, box)
		if err := p.CropResize(pixels, rows, cols, box, r.Mirror, w, h, dst[i*w*h:(i+1)*w*h]); err != nil {
			return nil, err
		}
	}
	return crops, nil
}

// CropResize writes one normalised plane of w x h values into dst: the box
// of the display-ready pixels (rows x cols, values in [0,1]; the box may
// overhang the image, which is black there), mirrored left-right when
// mirror is set, resized with the manifest's filter and normalised.
func (p Preprocess) CropResize(pixels []float32, rows, cols int, box image.Rectangle, mirror bool, w, h int, dst []float32) error {
	if !holds(pixels, rows, cols) {
		return fmt.Errorf("inference: %d pixels for %dx%d", len(pixels), cols, rows)
	}
	bw, bh := box.Dx(), box.Dy()
	// Empty also refuses corners out of order, whose Dx can wrap round.
	if box.Empty() || bw < 1 || bh < 1 || bw > MaxCropSide || bh > MaxCropSide {
		return fmt.Errorf("inference: a %dx%d crop is outside 1-%d pixels", bw, bh, MaxCropSide)
	}
	if w < 1 || h < 1 || len(dst) != w*h {
		return fmt.Errorf("inference: destination holds %d values, want %dx%d", len(dst), w, h)
	}
	scaler, err := resampler(p.Resize.Filter)
	if err != nil {
		return err
	}
	// The crop as 16-bit gray, as x/image/draw would read it, row by row.
	inside := box.Min.X >= 0 && box.Max.X <= cols
	load := func(y int, row []float64) {
		sy := box.Min.Y + y
		if sy < 0 || sy >= rows {
			clear(row)
			return
		}
		line := pixels[sy*cols : (sy+1)*cols]
		if inside && !mirror { // a whole radiograph into a localiser's input
			for x, v := range line[box.Min.X:box.Max.X] {
				row[x] = float64(quantize(v))
			}
			return
		}
		clear(row)
		for x := range bw {
			sx := box.Min.X + x
			if mirror {
				sx = box.Max.X - 1 - x
			}
			if sx < 0 || sx >= cols {
				continue
			}
			row[x] = float64(quantize(line[sx]))
		}
	}
	p.resizeLoaded(scaler, load, bw, bh, w, h, dst)
	return nil
}

// resizeLoaded resizes the bw x bh 16-bit crop that load reads, a row at a
// time, to w x h with scaler and normalises it into dst. A kernel reads the
// rows as it goes; another scaler gets the crop as an image.
func (p Preprocess) resizeLoaded(scaler draw.Scaler, load rowLoader, bw, bh, w, h int, dst []float32) {
	resized := make([]uint16, w*h)
	if kernel, ok := scaler.(*draw.Kernel); ok {
		newKernelResizer(kernel, w, h, bw, bh).resizeRows(resized, load)
		p.normalizeInto(dst, resized)
		return
	}
	in := image.NewGray16(image.Rect(0, 0, bw, bh))
	row := make([]float64, bw)
	for y := range bh {
		load(y, row)
		for x, v := range row {
			o := in.PixOffset(x, y)
			in.Pix[o], in.Pix[o+1] = byte(uint16(v)>>8), byte(uint16(v))
		}
	}
	out := image.NewGray16(image.Rect(0, 0, w, h))
	scaler.Scale(out, out.Bounds(), in, in.Bounds(), draw.Src, nil)
	for j := range resized {
		resized[j] = uint16(out.Pix[2*j])<<8 | uint16(out.Pix[2*j+1])
	}
	p.normalizeInto(dst, resized)
}

// quantize is a display value as 16-bit gray: [0,1] to [0, 0xffff],
// rounded; below 0 (and NaN) is 0, above 1 is 0xffff.
func quantize(v float32) uint16 {
	if !(v > 0) {
		return 0
	} else if v > 1 {
		v = 1
	}
	return uint16(v*65535 + 0.5)
}

// normalizeInto writes the normalised values of a resized 16-bit plane.
func (p Preprocess) normalizeInto(dst []float32, resized []uint16) {
	mean, inv := float32(p.Normalize.Mean), float32(1/p.Normalize.Std)
	for j, q := range resized {
		dst[j] = (float32(q)/65535 - mean) * inv
	}
}

// holds reports whether pixels is exactly a rows x cols image, without a
// product that could overflow.
func holds(pixels []float32, rows, cols int) bool {
	return rows > 0 && cols > 0 && len(pixels)%cols == 0 && len(pixels)/cols == rows
}
