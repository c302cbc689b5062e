package imaging

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"mime"
)

// DecodeRaster decodes a PNG or JPEG attachment or rendered frame to gray.
// Such images have no calibration: gray levels are taken as display values,
// 8 or 16 bits; JPEG is marked lossy.
func DecodeRaster(data []byte, contentType string, lim Limits) (*Image, error) {
	if lim == (Limits{}) {
		lim = DefaultLimits()
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: image of %d bytes, limit %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	var decode func([]byte) (image.Image, error)
	var config func([]byte) (image.Config, error)
	switch mt {
	case "image/png":
		decode = func(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }
		config = func(b []byte) (image.Config, error) { return png.DecodeConfig(bytes.NewReader(b)) }
	case "image/jpeg":
		decode = func(b []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(b)) }
		config = func(b []byte) (image.Config, error) { return jpeg.DecodeConfig(bytes.NewReader(b)) }
	default:
		return nil, fmt.Errorf("%w: content type %q (want image/png or image/jpeg)", ErrNotImage, contentType)
	}
	cfg, err := config(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, mt, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > lim.MaxColumns || cfg.Height > lim.MaxRows {
		return nil, fmt.Errorf("%w: %d x %d pixels, limit %d x %d", ErrTooLarge, cfg.Height, cfg.Width, lim.MaxRows, lim.MaxColumns)
	}
	im, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, mt, err)
	}
	b := im.Bounds()
	img := &Image{
		Pixels: make([]float32, 0, b.Dx()*b.Dy()),
		Meta: Metadata{Rows: b.Dy(), Columns: b.Dx(), Photometric: "MONOCHROME2", SamplesPerPixel: 1,
			BitsAllocated: 8, BitsStored: 8, Lossy: mt == "image/jpeg", VOI: "none"},
	}
	sixteen := false
	if g, ok := im.(*image.Gray16); ok && g != nil {
		sixteen = true
		img.Meta.BitsAllocated, img.Meta.BitsStored = 16, 16
	}
	var stored8 []byte
	var stored16 []uint16
	if sixteen {
		stored16 = make([]uint16, 0, b.Dx()*b.Dy())
	} else {
		stored8 = make([]byte, 0, b.Dx()*b.Dy())
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			g := color.Gray16Model.Convert(im.At(x, y)).(color.Gray16).Y
			if sixteen {
				stored16 = append(stored16, g)
			} else {
				stored8 = append(stored8, uint8(g>>8))
			}
			img.Pixels = append(img.Pixels, float32(g)/65535)
		}
	}
	if sixteen {
		img.Stored = storedOf(wordSamples(stored16), 16, false)
	} else {
		img.Stored = storedOf(bytesSamples(stored8), 8, false)
	}
	img.Stats = stats(img.Stored)
	return img, nil
}
