// Package testenv starts the real servers that integration tests talk to:
// Redis, the FHIR R4 test server (Medplum's in-memory router under Node) and
// Orthanc. `make setup` installs them; a test that cannot start one fails
// with a message saying how to install it, it never skips. Every server is
// stopped when its test ends, and on Linux it also dies with the test
// binary when that ends without cleanups (a test timeout, a kill).
package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot returns the repository root: the nearest parent holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Redis starts a private redis-server on a free loopback port, keeping
// nothing on disk, and returns its URL. It is stopped when the test ends.
func Redis(t testing.TB) string {
	t.Helper()
	return RedisOnPort(t, FreePort(t))
}

// RedisOnPort is Redis on a given port, for tests that start Redis late.
func RedisOnPort(t testing.TB, port int) string {
	t.Helper()
	url, _ := StoppableRedis(t, port)
	return url
}

// StoppableRedis is RedisOnPort that can also be stopped mid-test.
func StoppableRedis(t testing.TB, port int) (url string, stop func()) {
	t.Helper()
	r := StartRedis(t, port)
	return r.URL, r.Stop
}

// RedisServer is a private redis-server of one test, which the test can
// pause (SIGSTOP: a Redis that hangs, connections open, no answers), resume
// and stop. It is stopped when the test ends, paused or not.
type RedisServer struct {
	URL  string // redis://127.0.0.1:port/0
	Addr string // 127.0.0.1:port
	cmd  *exec.Cmd
	stop func()
}

// StartRedis starts a RedisServer on port, keeping nothing on disk, and
// waits until it answers PING.
func StartRedis(t testing.TB, port int) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("testenv: redis-server not found; run `make setup` (installs Debian's redis-server)")
	}
	r := &RedisServer{Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	r.URL = "redis://" + r.Addr + "/0"
	r.cmd = exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	stop := start(t, r.cmd)
	// A paused server would not see the interrupt that stops it.
	r.stop = func() { _ = r.cmd.Process.Signal(syscall.SIGCONT); stop() }
	t.Cleanup(r.stop)
	deadline := time.Now().Add(10 * time.Second)
	for !pingRedis(r.Addr) {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: redis-server on %s did not answer PING within 10s", r.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// Pause freezes the server (SIGSTOP): it keeps its connections and answers
// nothing, as a hung Redis does.
func (r *RedisServer) Pause() error { return r.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume lets a paused server go on (SIGCONT).
func (r *RedisServer) Resume() error { return r.cmd.Process.Signal(syscall.SIGCONT) }

// Stop stops the server for good, paused or not, and waits for it.
func (r *RedisServer) Stop() { r.stop() }

// Answers reports whether the server answers PING now.
func (r *RedisServer) Answers() bool { return pingRedis(r.Addr) }

func pingRedis(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// FHIRServer starts the FHIR R4 test server (testdata/fhirserver) on a free
// port and returns its base URL. With token set, the server demands it as a
// bearer token.
func FHIRServer(t testing.TB, token string) string {
	t.Helper()
	root := RepoRoot(t)
	dir := filepath.Join(root, "testdata", "fhirserver")
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal("testenv: the FHIR test server's packages are not installed; run `make setup`")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("testenv: node not found; run `make setup` (installs Debian's nodejs)")
	}
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT=0", "FHIR_TOKEN="+token)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				select {
				case found <- u:
				default:
				}
			}
		}
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(60 * time.Second):
		t.Fatal("testenv: the FHIR test server did not print its address within 60s")
		return ""
	}
}

// Start starts cmd so that it cannot outlive the test: when the test ends
// (its cleanups run) or the test binary dies without running them (a test
// timeout panics the binary; it may also be killed), the kernel kills the
// process (on Linux; see bindToParent). Stopping it earlier and waiting for
// it stay with the caller.
func Start(t testing.TB, cmd *exec.Cmd) error {
	t.Helper()
	bindToParent(cmd)
	// Pdeathsig fires when the OS thread that forked the child exits, not
	// the process, and the Go runtime ends a thread whenever a goroutine
	// that locked it returns. So the child is started from a thread of its
	// own, locked until the test's cleanups have run; this goroutine then
	// returns still locked, its thread exits and takes the child (if
	// anything still runs) with it.
	started := make(chan error, 1)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		started <- cmd.Start()
		<-release
	}()
	if err := <-started; err != nil {
		close(release)
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	t.Cleanup(func() { close(release) })
	return nil
}

// start runs cmd with stderr passed through, bound to the test process (see
// Start), and stops it when the test ends; the returned function stops it
// earlier.
func start(t testing.TB, cmd *exec.Cmd) (stop func()) {
	t.Helper()
	cmd.Stderr = os.Stderr
	if err := Start(t, cmd); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				killGroup(cmd.Process)
				<-done
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Orthanc starts Debian's Orthanc with its DICOMweb plugin on a
// free loopback port, storing in a temporary folder, and returns its HTTP
// base URL (DICOMweb under /dicom-web). With a user and password, HTTP basic
// authentication is required. Remote access stays disallowed.
func Orthanc(t testing.TB, user, password string) string {
	t.Helper()
	bin := "/usr/sbin/Orthanc"
	// Orthanc's built-in DCMTK codecs transcode JPEG-LS and JPEG lossless.
	// Debian 12's GDCM plugin (orthanc-gdcm 1.5) is not loaded: it crashed
	// Orthanc in about one in five transcodes.
	plugins := []string{"/usr/share/orthanc/plugins/libOrthancDicomWeb.so"}
	for _, p := range append([]string{bin}, plugins...) {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("testenv: %s not found; run `make setup` (installs Debian's orthanc and orthanc-dicomweb)", p)
		}
	}
	dir := t.TempDir()
	port := FreePort(t)
	cfg := map[string]any{
		"Name":                   "orthotriage-test",
		"StorageDirectory":       filepath.Join(dir, "db"),
		"IndexDirectory":         filepath.Join(dir, "db"),
		"Plugins":                plugins,
		"HttpPort":               port,
		"DicomServerEnabled":     false,
		"RemoteAccessAllowed":    false,
		"OrthancExplorerEnabled": false,
		"WebDavEnabled":          false,
		"AuthenticationEnabled":  user != "",
		"DicomWeb":               map[string]any{"Enable": true, "Root": "/dicom-web/"},
	}
	if user != "" {
		cfg["RegisteredUsers"] = map[string]string{user: password}
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--logdir="+dir, path)
	start(t, cmd)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/system", nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: Orthanc on port %d did not answer within 30s (logs in %s)", port, dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
