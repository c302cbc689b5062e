// Package web holds orthotriage's SMART on FHIR app: the launch page, the
// study viewer and the worklist, which orthotriage serves under /app/.
//
// The pages are written in web/src and built into web/dist by
// `scripts/setup.sh web` (npm ci && node build.mjs, run by `make build`
// and `make setup`); dist is not committed but for its README, so a
// binary built without that step embeds no app and Built reports false.
package web

import (
	"embed"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// FS returns the built app with dist as its root: launch.html, viewer.html,
// worklist.html, their scripts and app.css.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("web: embedded dist missing: " + err.Error()) // cannot happen: go:embed checked it
	}
	return sub
}

// Built reports whether the app was built before the binary was, that is
// whether the embedded dist has the viewer's script.
func Built() bool {
	_, err := fs.Stat(dist, "dist/viewer.js")
	return err == nil
}
