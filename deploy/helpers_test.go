package deploy

// Helpers: the builds (once per test run, through the Makefile, so that what
// is tested is what `make dist` and `make deb` make), the tools they need,
// processes and /metrics.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The builds are stamped with these, to check the stamping.
const (
	testVersion  = "9.9.9-disttest"
	testRevision = "disttest"
	// the Debian version the Makefile makes of testVersion
	testDebVersion = "9.9.9+disttest"
)

// requireEnv makes a missing tool fatal instead of a reason to skip.
const requireEnv = "HUBMON_REQUIRE_DIST"

// need skips the test, or fails it when HUBMON_REQUIRE_DIST is set, if any of
// the programs is not on PATH.
func need(tb testing.TB, programs ...string) {
	tb.Helper()
	var missing []string
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		unavailable(tb, "%s not installed (Debian: see .ci/run)", strings.Join(missing, ", "))
	}
}

// unavailable skips the test, or fails it when HUBMON_REQUIRE_DIST is set.
func unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireEnv) != "" {
		tb.Fatalf("%s; %s is set, so this fails rather than skips", msg, requireEnv)
	}
	tb.Skipf("%s; set %s=1 to make this a failure", msg, requireEnv)
}

// The cross compilers `make dist` uses (see its CC_* variables).
var crossCompilers = []string{"make", "x86_64-linux-gnu-gcc", "aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc", "arm-linux-gnueabi-gcc"}

var (
	outDir   string // every build of this test run
	outErr   error
	outOnce  sync.Once
	distOnce sync.Once
	distErr  error
	debOnce  sync.Once
	debErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if outDir != "" {
		os.RemoveAll(outDir)
	}
	os.Exit(code)
}

// make runs a target of the Makefile at the root with DIST set to this test
// run's directory. Linker warnings (a static glibc that would want shared
// objects at run time, for getaddrinfo or dlopen) are errors.
func runMake(target string) error {
	outOnce.Do(func() { outDir, outErr = os.MkdirTemp("", "hubmon-dist-test-") })
	if outErr != nil {
		return outErr
	}
	cmd := exec.Command("make", "-s", "-C", "..", target, "DIST="+outDir, "VERSION="+testVersion, "REVISION="+testRevision)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make %s: %v\n%s", target, err, out)
	}
	// e.g. "warning: Using 'getaddrinfo' in statically linked applications
	// requires at runtime the shared libraries from the glibc version used
	// for linking"
	if bytes.Contains(out, []byte("warning:")) {
		return fmt.Errorf("make %s warned:\n%s", target, out)
	}
	return nil
}

// dist runs `make dist` once per test run and returns the directory of the
// binaries.
func dist(tb testing.TB) string {
	tb.Helper()
	need(tb, crossCompilers...)
	distOnce.Do(func() {
		t0 := time.Now()
		distErr = runMake("dist")
		fmt.Fprintf(os.Stderr, "deploy: make dist took %s\n", time.Since(t0).Round(time.Second))
	})
	if distErr != nil {
		tb.Fatal(distErr)
	}
	return outDir
}

// debs runs `make deb` once per test run and returns the directory of the
// packages (and binaries).
func debs(tb testing.TB) string {
	tb.Helper()
	dist(tb)
	debOnce.Do(func() {
		t0 := time.Now()
		debErr = runMake("deb")
		fmt.Fprintf(os.Stderr, "deploy: make deb took %s\n", time.Since(t0).Round(time.Second))
	})
	if debErr != nil {
		tb.Fatal(debErr)
	}
	return outDir
}

func freePort(tb testing.TB) int {
	tb.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// the speed-test server takes the same UDP port
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			pc.Close()
			return p
		}
	}
	tb.Fatal("no free TCP+UDP port")
	return 0
}

// proc is a running program whose output goes to a file, shown when the test
// fails.
type proc struct {
	tb   testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(tb testing.TB, name string, env []string, prog string, args ...string) *proc {
	tb.Helper()
	p := &proc{tb: tb, name: name, log: filepath.Join(tb.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		tb.Fatal(err)
	}
	p.cmd = exec.Command(prog, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.kill()
		if tb.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 6000 {
				b = append([]byte("..."), b[len(b)-6000:]...)
			}
			tb.Logf("---- %s log ----\n%s", name, b)
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) kill() {
	if p.running() {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// stop sends SIGTERM and fails the test unless the program exits cleanly
// within d.
func (p *proc) stop(d time.Duration) {
	p.tb.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		p.kill()
		p.tb.Fatalf("%s did not stop within %s of SIGTERM", p.name, d)
	}
	if p.err != nil {
		p.tb.Fatalf("%s exited with %v after SIGTERM", p.name, p.err)
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// scrape reads a /metrics page; nil if it cannot be read.
func scrape(url string) map[string]*dto.MetricFamily {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil
	}
	return mfs
}

// sample returns the value of the first series of family name whose labels
// include want, and whether there is one.
func sample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}
