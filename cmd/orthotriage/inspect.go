package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/orthotriage/orthotriage/imaging"
)

// inspect decodes one DICOM file or URL and prints what the pipeline sees.
func inspect(ctx context.Context, args []string, lim imaging.Limits, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pngOut := fs.String("png", "", "also write the decoded image as a 16-bit grayscale PNG to `FILE`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: orthotriage inspect [--png OUT] FILE.dcm|URL")
		fs.PrintDefaults()
	}
	if len(args) > 1 && !strings.HasPrefix(args[0], "-") {
		args = append(args[1:], args[0]) // FILE before the flags
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("inspect: want one FILE.dcm or URL")
	}
	src := imaging.SourceName(fs.Arg(0)) // errors and the report never show a password
	data, err := imaging.ReadSource(ctx, fs.Arg(0), lim.MaxBytes)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", src, err)
	}
	img, err := imaging.Decode(data, lim)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", src, err)
	}
	if *pngOut != "" {
		if err := imaging.SavePNG(*pngOut, img.Gray16()); err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(imaging.Inspect(src, img))
}
