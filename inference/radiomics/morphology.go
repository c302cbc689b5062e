package radiomics

import (
	"math"
	"slices"
)

// Morphology returns 2D shape features of a slice's ROI, with pixel
// spacing sx, sy in mm (1, 1 for pixel units). IBSI defines morphology in
// 3D only (mesh volume, surface, ...); these are its 2D counterparts, and
// the IBSI phantom has no 2D reference values for them, so they are tested
// on shapes with known answers instead:
//
//   - Area (pixel counting): ROI pixels x pixel area.
//   - Area (mesh) and Perimeter (mesh): of the ROI's outline traced by
//     marching squares at half height between ROI and background (the 2D
//     analogue of IBSI's mesh); opposite-corner cells are read as two
//     separate corners, as with 4-connected regions.
//     Its segments run at 0°, 45° and 90° only, so a digitised circle's
//     perimeter comes out about 6% long (circularity about 0.88), as IBSI's
//     3D mesh surface is biased likewise.
//   - Perimeter to area ratio, and Circularity 4 pi A / P^2.
//   - Major and Minor axis length: 4 sqrt(lambda) of the principal
//     components of the pixel centres (IBSI's definition in 2D); Elongation
//     sqrt(lambda_minor / lambda_major).
//   - Maximum diameter: the largest distance between outline vertices.
func Morphology(s Slice, sx, sy float64) (Features, error) {
	n, err := s.check()
	if err != nil {
		return nil, err
	}
	if !(sx > 0) || !(sy > 0) {
		sx, sy = 1, 1
	}
	in := func(x, y int) bool { return x >= 0 && y >= 0 && x < s.W && y < s.H && s.Mask[y*s.W+x] }
	// Marching squares over cells whose corners are pixel centres (x, y),
	// (x+1, y), (x, y+1), (x+1, y+1), padded by one pixel of background.
	var perimeter, meshArea float64
	var pts [][2]float64
	diag := math.Hypot(sx/2, sy/2)
	for y := -1; y < s.H; y++ {
		for x := -1; x < s.W; x++ {
			a, b, c, d := in(x, y), in(x+1, y), in(x, y+1), in(x+1, y+1) // top-left, top-right, bottom-left, bottom-right
			k := 0
			for _, v := range []bool{a, b, c, d} {
				if v {
					k++
				}
			}
			switch {
			case k == 0:
				continue
			case k == 4:
				meshArea += sx * sy
				continue
			case k == 1:
				perimeter += diag
				meshArea += sx * sy / 8
			case k == 3:
				perimeter += diag
				meshArea += sx * sy * 7 / 8
			case a == d: // two opposite corners: two separate corners
				perimeter += 2 * diag
				meshArea += sx * sy / 4
			case a == b: // top or bottom pair: a horizontal edge
				perimeter += sx
				meshArea += sx * sy / 2
			default: // left or right pair: a vertical edge
				perimeter += sy
				meshArea += sx * sy / 2
			}
			// The outline's vertices are the midpoints of cell edges
			// between an ROI corner and a background corner.
			cx, cy := float64(x)*sx, float64(y)*sy
			if a != b {
				pts = append(pts, [2]float64{cx + sx/2, cy})
			}
			if c != d {
				pts = append(pts, [2]float64{cx + sx/2, cy + sy})
			}
			if a != c {
				pts = append(pts, [2]float64{cx, cy + sy/2})
			}
			if b != d {
				pts = append(pts, [2]float64{cx + sx, cy + sy/2})
			}
		}
	}
	// Principal components of the pixel centres.
	var mx, my float64
	for i, v := range s.Mask {
		if v {
			mx += float64(i%s.W) * sx
			my += float64(i/s.W) * sy
		}
	}
	mx, my = mx/float64(n), my/float64(n)
	var cxx, cyy, cxy float64
	for i, v := range s.Mask {
		if v {
			dx, dy := float64(i%s.W)*sx-mx, float64(i/s.W)*sy-my
			cxx += dx * dx
			cyy += dy * dy
			cxy += dx * dy
		}
	}
	cxx, cyy, cxy = cxx/float64(n), cyy/float64(n), cxy/float64(n)
	tr, det := cxx+cyy, cxx*cyy-cxy*cxy
	disc := math.Sqrt(math.Max(0, tr*tr/4-det))
	l1, l2 := tr/2+disc, math.Max(0, tr/2-disc)
	area := float64(n) * sx * sy
	f := Features{
		"Area (pixel counting)":   area,
		"Area (mesh)":             meshArea,
		"Perimeter (mesh)":        perimeter,
		"Perimeter to area ratio": perimeter / meshArea,
		"Circularity":             4 * math.Pi * meshArea / (perimeter * perimeter),
		"Major axis length":       4 * math.Sqrt(l1),
		"Minor axis length":       4 * math.Sqrt(l2),
		"Maximum diameter":        maxDiameter(pts),
	}
	if l1 > 0 {
		f["Elongation"] = math.Sqrt(l2 / l1)
	}
	return f, nil
}

// maxDiameter is the largest distance between points: over their convex
// hull (monotone chain), so large outlines stay cheap.
func maxDiameter(pts [][2]float64) float64 {
	slices.SortFunc(pts, func(a, b [2]float64) int {
		if a[0] != b[0] {
			return cmpFloat(a[0], b[0])
		}
		return cmpFloat(a[1], b[1])
	})
	pts = slices.Compact(pts)
	cross := func(o, a, b [2]float64) float64 { return (a[0]-o[0])*(b[1]-o[1]) - (a[1]-o[1])*(b[0]-o[0]) }
	var hull [][2]float64
	for pass := 0; pass < 2; pass++ {
		start := len(hull)
		for _, p := range pts {
			for len(hull) >= start+2 && cross(hull[len(hull)-2], hull[len(hull)-1], p) <= 0 {
				hull = hull[:len(hull)-1]
			}
			hull = append(hull, p)
		}
		hull = hull[:len(hull)-1]
		slices.Reverse(pts)
	}
	if len(hull) == 0 && len(pts) > 0 {
		hull = pts
	}
	var best float64
	for i := range hull {
		for j := i + 1; j < len(hull); j++ {
			best = math.Max(best, math.Hypot(hull[i][0]-hull[j][0], hull[i][1]-hull[j][1]))
		}
	}
	return best
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
