// Package testenv starts the real servers that integration tests talk to:
// Redis and the FHIR R4 test server (Medplum's in-memory router under Node).
// `make setup` installs them; a test that cannot start one fails with a
// message saying how to install it, it never skips.
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
	"strings"
	"sync"
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
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("testenv: redis-server not found; run `make setup` (installs Debian's redis-server)")
	}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	stop = start(t, cmd)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pingRedis(addr) {
			return "redis://" + addr + "/0", stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: redis-server on %s did not answer PING within 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

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

// start runs cmd with stderr passed through, and stops it when the test
// ends; the returned function stops it earlier.
func start(t testing.TB, cmd *exec.Cmd) (stop func()) {
	t.Helper()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", cmd.Path, err)
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
				_ = cmd.Process.Kill()
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
