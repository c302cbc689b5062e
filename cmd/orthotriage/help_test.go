package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/orthotriage/orthotriage/config"
)

// Every command's --help prints its usage and ends as main exits 0: no
// error, or config.ErrHelp (flag.ErrHelp), which main does not report.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"help"},
		{"serve", "--help"}, {"version", "--help"},
		{"inspect", "--help"}, {"inspect", "-h"},
		{"phantom", "--help"}, {"phantom", "-h"}, {"phantom", "help"}, {"phantom", "pelvis", "--help"}, {"phantom", "spine", "-h"},
		{"analyze", "--help"},
		{"eval", "--help"}, {"eval", "-h"},
		{"sandbox", "--help"}, {"sandbox", "seed", "--help"}, {"sandbox", "keys", "--help"}, {"sandbox", "check", "--help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr)
			if err != nil && !errors.Is(err, config.ErrHelp) {
				t.Fatalf("error %v: main would exit 1\n%s", err, stderr.String())
			}
			if out := stdout.String() + stderr.String(); !strings.Contains(strings.ToLower(out), "usage") {
				t.Errorf("no usage printed:\n%s", out)
			}
		})
	}
	// Without a kind, phantom is still an error.
	var out bytes.Buffer
	if err := run(t.Context(), []string{"phantom"}, func(string) string { return "" }, &out, &out); err == nil || errors.Is(err, config.ErrHelp) {
		t.Errorf("phantom with no kind: %v", err)
	}
}
