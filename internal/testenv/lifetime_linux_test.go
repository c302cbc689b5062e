//go:build linux

package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lifetimeHelperEnv, when set, makes TestServersDieWithTheTestProcess the
// helper: it starts the servers named in it (comma-separated), prints the
// pids of its children and waits to be killed or to time out.
const lifetimeHelperEnv = "ORTHOTRIAGE_TESTENV_LIFETIME_HELPER"

// A server started for a test dies with the test binary, even when the
// binary ends without running its cleanups: killed, or panicking on a test
// timeout (the way an orphaned Orthanc was once left running).
func TestServersDieWithTheTestProcess(t *testing.T) {
	if servers := os.Getenv(lifetimeHelperEnv); servers != "" {
		lifetimeHelper(t, strings.Split(servers, ","))
		return
	}
	tests := []struct {
		name    string
		servers string
		args    []string // extra test flags for the helper
		kill    bool     // SIGKILL the helper once its servers run
	}{
		{name: "killed", servers: "redis,fhir,orthanc", args: []string{"-test.timeout=5m"}, kill: true},
		// The helper's timeout must leave its servers time to start on a
		// busy machine; the wait costs no CPU.
		{name: "timed out", servers: "redis", args: []string{"-test.timeout=10s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A file, not a pipe: a leaked server holding a pipe's write
			// end open would make Wait hang instead of the test failing.
			logPath := filepath.Join(t.TempDir(), "helper.log")
			log, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			args := append([]string{"-test.run=^TestServersDieWithTheTestProcess$", "-test.count=1"}, tc.args...)
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), lifetimeHelperEnv+"="+tc.servers)
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			pids, err := waitForChildren(logPath, exited, 2*time.Minute)
			if err != nil {
				_ = cmd.Process.Kill()
				out, _ := os.ReadFile(logPath)
				t.Fatalf("helper: %v\n%s", err, out)
			}
			if want := len(strings.Split(tc.servers, ",")); len(pids) < want {
				_ = cmd.Process.Kill()
				t.Fatalf("helper reported %d child processes %v, want at least %d (one per server)", len(pids), pids, want)
			}
			if tc.kill {
				_ = cmd.Process.Kill()
			}
			select {
			case <-exited:
			case <-time.After(2 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatal("the helper did not exit")
			}
			deadline := time.Now().Add(10 * time.Second)
			for _, pid := range pids {
				for alive(pid) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if alive(pid) {
					t.Errorf("server process %d (%s) outlived its test binary", pid, comm(pid))
					_ = syscall.Kill(pid, syscall.SIGKILL) // do not leak it from this test either
				}
			}
		})
	}
}

// lifetimeHelper starts servers, prints its children and waits.
func lifetimeHelper(t *testing.T, servers []string) {
	for _, s := range servers {
		switch s {
		case "redis":
			Redis(t)
		case "fhir":
			FHIRServer(t, "")
		case "orthanc":
			Orthanc(t, "", "")
		default:
			t.Fatalf("unknown server %q", s)
		}
	}
	fmt.Printf("children %s\n", strings.Trim(fmt.Sprint(children(os.Getpid())), "[]"))
	time.Sleep(time.Hour) // until killed or timed out
}

// waitForChildren reads the helper's "children" line from its log.
func waitForChildren(logPath string, exited <-chan error, limit time.Duration) ([]int, error) {
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile(logPath)
		for line := range bytes.Lines(b) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(string(line)), "children"); ok {
				var pids []int
				for _, f := range strings.Fields(rest) {
					pid, err := strconv.Atoi(f)
					if err != nil {
						return nil, fmt.Errorf("children line %q: %w", line, err)
					}
					pids = append(pids, pid)
				}
				return pids, nil
			}
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("exited before its servers ran: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no children line within %v", limit)
		}
	}
}

// stat returns the fields of /proc/pid/stat after the command name: the
// state first, then the parent pid.
func stat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// children lists the pids whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := stat(p); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// alive says whether pid runs: a zombie waiting for its reaper has died.
func alive(pid int) bool {
	f := stat(pid)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// comm is pid's command name, for messages.
func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}
