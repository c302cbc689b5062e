package imaging

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
)

// Gray8 is the display-ready image as 8-bit grayscale, for previews.
func (img *Image) Gray8() *image.Gray {
	m := img.Meta
	g := image.NewGray(image.Rect(0, 0, m.Columns, m.Rows))
	for i, v := range img.Pixels {
		g.Pix[i] = uint8(math.Round(float64(max(0, min(1, v))) * 255))
	}
	return g
}

// Gray16 is the display-ready image as 16-bit grayscale.
func (img *Image) Gray16() *image.Gray16 {
	g := image.NewGray16(image.Rect(0, 0, img.Meta.Columns, img.Meta.Rows))
	for i, v := range img.Pixels {
		g.SetGray16(i%img.Meta.Columns, i/img.Meta.Columns, color.Gray16{Y: uint16(math.Round(float64(v) * 65535))})
	}
	return g
}

// SavePNG writes img to path as PNG.
func SavePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
