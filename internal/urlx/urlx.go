// Package urlx holds the one check behind every "does this URL lie on the
// EHR's FHIR server, or under a registered DICOMweb base?" question: next
// links, absolute references, Endpoint addresses, attachment urls and
// redirects are all judged by Under, so a link to /fhir-admin is never taken
// for one under /fhir, and the EHR's token never follows it there.
//
// It also keeps request URLs out of error texts (WithoutURL): their paths and
// queries may name patients.
package urlx

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// parsed is an absolute http(s) URL reduced to what containment compares.
type parsed struct {
	origin  string   // scheme://host[:port], lower case, default port left out
	escaped []string // path segments as written (percent-encoded)
	decoded []string // the same segments decoded
}

// parse accepts an absolute http or https URL with a host and no userinfo
// whose path has no dot segments ("." or "..", also percent-encoded or with
// ";" parameters) and no encoded "/" or "\" inside a segment: anything a
// server might normalise into another path is refused, not guessed at.
func parse(s string) (parsed, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return parsed{}, false
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.ContainsAny(host, `\%@/ `) {
		return parsed{}, false
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return parsed{}, false
		}
		port = strconv.Itoa(n)
	}
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	origin := u.Scheme + "://" + host
	if strings.Contains(host, ":") { // IPv6
		origin = u.Scheme + "://[" + host + "]"
	}
	if port != "" {
		origin += ":" + port
	}
	p := parsed{origin: origin}
	path := u.EscapedPath()
	if path == "" {
		return p, true
	}
	if !strings.HasPrefix(path, "/") {
		return parsed{}, false
	}
	for _, seg := range strings.Split(path[1:], "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil || strings.ContainsAny(dec, `/\`) {
			return parsed{}, false
		}
		name, _, _ := strings.Cut(dec, ";")
		if name == "." || name == ".." {
			return parsed{}, false
		}
		p.escaped = append(p.escaped, seg)
		p.decoded = append(p.decoded, dec)
	}
	return p, true
}

// Under reports whether target lies under base: both are acceptable
// absolute http(s) URLs (see Origin), of one origin (scheme, host and port,
// compared case-insensitively with default ports left out), and base's path
// segments are the first whole segments of target's ("/fhir" holds "/fhir"
// and "/fhir/Patient/1", never "/fhir-admin" or "/fhirx"). Percent-encoding
// of unreserved characters does not matter; queries and fragments are not
// compared. rest is the part of target's path below base, as written and
// without a leading "/" ("Patient/1"; "" for base itself).
func Under(base, target string) (rest string, ok bool) {
	b, okb := parse(base)
	t, okt := parse(target)
	if !okb || !okt || b.origin != t.origin {
		return "", false
	}
	bs := b.decoded
	if n := len(bs); n > 0 && bs[n-1] == "" { // a trailing slash
		bs = bs[:n-1]
	}
	if len(t.decoded) < len(bs) {
		return "", false
	}
	for i, seg := range bs {
		if t.decoded[i] != seg {
			return "", false
		}
	}
	return strings.Join(t.escaped[len(bs):], "/"), true
}

// SameOrigin reports whether a and b are acceptable absolute http(s) URLs
// (see Origin) of one origin.
func SameOrigin(a, b string) bool {
	pa, oka := parse(a)
	pb, okb := parse(b)
	return oka && okb && pa.origin == pb.origin
}

// Origin returns s's normalised origin ("https://pacs.example.org:8443"),
// the part of a URL that may appear in logs and errors, or "" when s is not
// an acceptable absolute http(s) URL: one with userinfo, dot segments or an
// encoded "/" or "\" in its path is not.
func Origin(s string) string {
	p, ok := parse(s)
	if !ok {
		return ""
	}
	return p.origin
}

// Error is a failed HTTP round trip without its URL: net/http's *url.Error
// names the whole request URL, whose path and query may hold patient ids.
// The cause is kept for errors.Is and errors.As (a *net.OpError names only
// the address dialled).
type Error struct {
	Op     string // "Get", "Post"
	Origin string // scheme://host[:port] of the request
	Err    error
	scrub  []string // path and query of the request, cut from Err's text
}

// Error implements the error interface.
func (e *Error) Error() string {
	msg := e.Err.Error()
	for _, s := range e.scrub {
		msg = strings.ReplaceAll(msg, s, "...")
	}
	return e.Op + " " + e.Origin + ": " + msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the cause was a timeout, as *url.Error does.
func (e *Error) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}

// WithoutURL returns err with a *url.Error at its top replaced by an
// *Error; other errors are returned as they are.
func WithoutURL(err error) error {
	ue, ok := err.(*url.Error)
	if !ok {
		return err
	}
	e := &Error{Op: ue.Op, Origin: "(bad URL)", Err: ue.Err}
	if u, perr := url.Parse(ue.URL); perr == nil {
		if u.Host != "" {
			e.Origin = u.Scheme + "://" + u.Host
		}
		for _, s := range []string{u.RawQuery, u.EscapedPath(), u.Path} {
			if len(s) > 1 {
				e.scrub = append(e.scrub, s)
			}
		}
	}
	if e.Err == nil {
		e.Err = errors.New("request failed")
	}
	return e
}
