package imaging

import (
	"image"
	"math"
)

// Gray renders the display-ready pixels as 8-bit grey, scaled down (box
// average) so that the longer side is at most maxSide (0: no limit); it is
// how the SMART app is shown the radiograph. Boxes in image pixels scale by
// the returned image's width over Meta.Columns.
func (img *Image) Gray(maxSide int) *image.Gray {
	rows, cols := img.Meta.Rows, img.Meta.Columns
	if rows <= 0 || cols <= 0 || len(img.Pixels) != rows*cols {
		return image.NewGray(image.Rect(0, 0, 0, 0))
	}
	f := 1
	for maxSide > 0 && (rows+f-1)/f > maxSide || maxSide > 0 && (cols+f-1)/f > maxSide {
		f++
	}
	h, w := (rows+f-1)/f, (cols+f-1)/f
	out := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var sum float64
			n := 0
			for dy := 0; dy < f && y*f+dy < rows; dy++ {
				row := (y*f + dy) * cols
				for dx := 0; dx < f && x*f+dx < cols; dx++ {
					sum += float64(max(0, min(1, img.Pixels[row+x*f+dx])))
					n++
				}
			}
			out.Pix[y*out.Stride+x] = uint8(math.Round(sum / float64(n) * 255))
		}
	}
	return out
}
