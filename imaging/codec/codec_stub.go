//go:build !cgo || nocodecs

package codec

// JPEG decodes a JPEG stream (see the package doc); this build has no codecs.
func JPEG(src []byte, accept func(Info) error) (*Frame, error) { return nil, ErrNotBuilt }

// JPEGLS decodes a JPEG-LS stream; this build has no codecs.
func JPEGLS(src []byte, accept func(Info) error) (*Frame, error) { return nil, ErrNotBuilt }

// JPEG2000 decodes a JPEG 2000 or HTJ2K stream; this build has no codecs.
func JPEG2000(src []byte, accept func(Info) error) (*Frame, error) { return nil, ErrNotBuilt }

// Built reports whether this build has the codec libraries.
func Built() bool { return false }

// HTSafe reports whether High-Throughput JPEG 2000 is decoded; not in this build.
func HTSafe() bool { return false }
