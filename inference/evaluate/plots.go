package evaluate

import (
	"fmt"
	"image"
	"image/color"
	"path/filepath"
	"sort"

	"github.com/orthotriage/orthotriage/imaging"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// WritePlots writes confusion.png (row-normalised heat map with counts),
// roc.png (one-versus-rest ROC curve per class) and reliability.png (the
// reliability diagram) into dir.
func WritePlots(dir string, r *Report, cases []Case) error {
	if err := imaging.SavePNG(filepath.Join(dir, "confusion.png"), confusionImage(r)); err != nil {
		return err
	}
	if err := imaging.SavePNG(filepath.Join(dir, "roc.png"), rocImage(r, cases)); err != nil {
		return err
	}
	return imaging.SavePNG(filepath.Join(dir, "reliability.png"), reliabilityImage(r))
}

// reliabilityImage is the reliability diagram: per confidence bin, a bar
// up to the share classified correctly, the gap to the bin's mean
// confidence shaded, the bin's count above it, and the diagonal of
// perfect calibration.
func reliabilityImage(r *Report) *image.RGBA {
	const size, margin, bottom = 420, 48, 40
	img := image.NewRGBA(image.Rect(0, 0, size+2*margin, size+margin+bottom+16))
	fill(img, img.Bounds(), color.White)
	top := margin + 16
	px := func(x, y float64) (int, int) { return margin + int(x*size), top + size - int(y*size) }
	bar := color.RGBA{31, 119, 180, 255}
	gap := color.RGBA{230, 40, 40, 255}
	for _, b := range r.Reliability {
		if b.N == 0 {
			continue
		}
		x0, _ := px(b.Lower, 0)
		x1, y0 := px(b.Upper, 0)
		_, ya := px(0, b.Accuracy)
		_, yc := px(0, b.Confidence)
		fill(img, image.Rect(x0+1, ya, x1-1, y0), bar)
		// The gap, over the bar or above it, half red.
		for y := min(ya, yc); y < max(ya, yc); y++ {
			for x := x0 + 1; x < x1-1; x++ {
				c := img.RGBAAt(x, y)
				img.SetRGBA(x, y, color.RGBA{uint8((int(c.R) + int(gap.R)) / 2), uint8((int(c.G) + int(gap.G)) / 2), uint8((int(c.B) + int(gap.B)) / 2), 255})
			}
		}
		label := fmt.Sprint(b.N)
		text(img, (x0+x1)/2-len(label)*7/2, min(ya, yc)-3, label, color.Black)
	}
	for t := 0; t <= size; t++ {
		img.Set(margin+t, top+size, color.Black)
		img.Set(margin, top+t, color.Black)
		if t%3 == 0 {
			img.Set(margin+t, top+size-t, color.Gray{90})
		}
	}
	for _, v := range []float64{0, 0.5, 1} {
		x, y := px(v, v)
		text(img, x-8, top+size+14, fmt.Sprintf("%.1f", v), color.Black)
		text(img, 4, y+4, fmt.Sprintf("%.1f", v), color.Black)
	}
	text(img, margin, 16, fmt.Sprintf("reliability: %d bins, ECE %s", len(r.Reliability), ece(r.ECE)), color.Black)
	text(img, margin, 32, "blue: accuracy; red: gap to mean confidence; n above", color.Black)
	text(img, margin+size/2-90, top+size+30, "confidence (top-class probability)", color.Black)
	text(img, 4, top-6, "accuracy", color.Black)
	return img
}

func ece(e Estimate) string {
	if !finite(e.Value) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", e.Value)
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Set(x, y, c)
		}
	}
}

func confusionImage(r *Report) *image.RGBA {
	k := len(r.Labels)
	const cell, left, top = 56, 80, 40
	img := image.NewRGBA(image.Rect(0, 0, left+k*cell+10, top+k*cell+30))
	fill(img, img.Bounds(), color.White)
	text(img, 4, 14, "confusion matrix: rows truth, columns predicted", color.Black)
	for i, row := range r.Confusion {
		total := 0
		for _, v := range row {
			total += v
		}
		text(img, 4, top+i*cell+cell/2+4, r.Labels[i], color.Black)
		text(img, left+i*cell+4, top-6, r.Labels[i], color.Black)
		for j, v := range row {
			share := 0.0
			if total > 0 {
				share = float64(v) / float64(total)
			}
			shade := uint8(255 - 200*share)
			rect := image.Rect(left+j*cell, top+i*cell, left+(j+1)*cell-1, top+(i+1)*cell-1)
			fill(img, rect, color.RGBA{shade, shade, 255, 255})
			ink := color.Color(color.Black)
			if share > 0.6 {
				ink = color.White
			}
			text(img, rect.Min.X+6, rect.Min.Y+cell/2+4, fmt.Sprint(v), ink)
		}
	}
	return img
}

var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
}

func rocImage(r *Report, cases []Case) *image.RGBA {
	const size, margin = 400, 40
	img := image.NewRGBA(image.Rect(0, 0, size+2*margin+150, size+2*margin))
	fill(img, img.Bounds(), color.White)
	px := func(fpr, tpr float64) (int, int) {
		return margin + int(fpr*size), margin + size - int(tpr*size)
	}
	// Axes, the diagonal and labels.
	for t := 0; t <= size; t++ {
		img.Set(margin+t, margin+size, color.Black)
		img.Set(margin, margin+t, color.Black)
		if t%4 == 0 {
			img.Set(margin+t, margin+size-t, color.Gray{180})
		}
	}
	text(img, margin, margin-10, "ROC, one class versus the rest", color.Black)
	text(img, margin+size/2-60, margin+size+28, "1 - specificity", color.Black)
	text(img, 2, margin+size/2, "sens.", color.Black)
	for c, label := range r.Labels {
		col := palette[c%len(palette)]
		pts := rocPoints(cases, c)
		for i := 1; i < len(pts); i++ {
			line(img, px, pts[i-1], pts[i], col)
		}
		text(img, margin+size+12, margin+16+c*16, fmt.Sprintf("%s %.3f", label, r.PerClass[c].AUC.Value), col)
	}
	return img
}

// rocPoints are the (FPR, TPR) points of class c, sweeping the threshold.
func rocPoints(cases []Case, c int) [][2]float64 {
	type sv struct {
		v   float64
		pos bool
	}
	var all []sv
	var np, nn float64
	for _, x := range cases {
		p := x.Truth == c
		all = append(all, sv{x.Probabilities[c], p})
		if p {
			np++
		} else {
			nn++
		}
	}
	if np == 0 || nn == 0 {
		return nil
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	pts := [][2]float64{{0, 0}}
	var tp, fp float64
	for i, s := range all {
		if s.pos {
			tp++
		} else {
			fp++
		}
		if i+1 == len(all) || all[i+1].v != s.v {
			pts = append(pts, [2]float64{fp / nn, tp / np})
		}
	}
	return pts
}

func line(img *image.RGBA, px func(float64, float64) (int, int), a, b [2]float64, c color.Color) {
	x0, y0 := px(a[0], a[1])
	x1, y1 := px(b[0], b[1])
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		x := x0 + (x1-x0)*i/n
		y := y0 + (y1-y0)*i/n
		img.Set(x, y, c)
		img.Set(x, y+1, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
