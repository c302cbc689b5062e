//go:build !linux

package testenv

import (
	"os"
	"os/exec"
)

// bindToParent does nothing here: only Linux can tie a process's life to
// its parent's (Pdeathsig), so elsewhere a server outlives a test binary
// that dies without running its cleanups.
func bindToParent(*exec.Cmd) {}

// killGroup kills p.
func killGroup(p *os.Process) { _ = p.Kill() }
