package testenv

import (
	"os"
	"os/exec"
	"syscall"
)

// bindToParent makes the kernel kill cmd's process when the OS thread that
// starts it exits (Pdeathsig), which includes every way the test binary can
// die: a failed test, the panic of a test timeout, SIGKILL. The process
// gets its own process group, so that killGroup also reaches anything it
// forks.
func bindToParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// killGroup kills the process group that bindToParent gave p.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}
