package probe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// ookla is a test-only Ookla-compatible server (the agent must not import
// the collector's speedserver). It serves on 127.0.0.1 only.
type ookla struct {
	token          string // required ?token= when set
	uploadStatus   int    // answer to upload.php when not 0
	downloadStatus int    // answer to random*.jpg when not 0
	// answerUploads, when not 0, is how many uploads are answered: later
	// ones are read and never answered (a server that stops answering).
	answerUploads int64
	// sendPerDownload, when not 0, is how many bytes each download
	// response carries before the server stops sending (and hangs).
	sendPerDownload int

	random        []byte
	downloadStart chan struct{} // closed at the first download request
	uploadStart   chan struct{} // closed at the first upload request
	startOnce     sync.Once
	uploadOnce    sync.Once
	badToken      atomic.Int64
	requests      atomic.Int64
	uploads       atomic.Int64
	// release ends every request left hanging (at the end of the test).
	release chan struct{}
}

const maxResponseBytes = 64 << 20 // per download response; the client asks again

func startOokla(tb testing.TB, o *ookla) (*ookla, *httptest.Server) {
	tb.Helper()
	o.random = make([]byte, 1<<20)
	_, _ = rand.Read(o.random)
	o.downloadStart = make(chan struct{})
	o.uploadStart = make(chan struct{})
	o.release = make(chan struct{})
	ts := httptest.NewServer(o)
	tb.Cleanup(ts.Close)
	tb.Cleanup(func() { close(o.release) }) // before ts.Close, which waits for handlers
	return o, ts
}

// hang blocks until the client goes away or the test ends.
func (o *ookla) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-o.release:
	}
}

func (o *ookla) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	if o.token != "" && r.URL.Query().Get("token") != o.token {
		o.badToken.Add(1)
		http.Error(w, "bad token", http.StatusForbidden)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/speedtest/latency.txt":
		_, _ = io.WriteString(w, "test=test\n")
	case strings.HasPrefix(p, "/speedtest/random") && strings.HasSuffix(p, ".jpg"):
		o.startOnce.Do(func() { close(o.downloadStart) })
		if o.downloadStatus != 0 {
			http.Error(w, "no", o.downloadStatus)
			return
		}
		if o.sendPerDownload > 0 {
			_, _ = w.Write(o.random[:o.sendPerDownload])
			_ = http.NewResponseController(w).Flush()
			o.hang(r)
			return
		}
		for sent := 0; sent < maxResponseBytes; sent += len(o.random) {
			if _, err := w.Write(o.random); err != nil {
				return
			}
		}
	case p == "/speedtest/upload.php" && r.Method == http.MethodPost:
		o.uploadOnce.Do(func() { close(o.uploadStart) })
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 8<<20))
		if k := o.uploads.Add(1); o.answerUploads > 0 && k > o.answerUploads {
			o.hang(r)
			return
		}
		if o.uploadStatus != 0 {
			http.Error(w, "no", o.uploadStatus)
			return
		}
		_, _ = fmt.Fprintf(w, "size=%d", n)
	default:
		http.NotFound(w, r)
	}
}

// closedPort returns 127.0.0.1:port where nothing listens.
func closedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func quickConfig(serverURL string) SpeedtestConfig {
	return SpeedtestConfig{ServerURL: serverURL, Connections: 2, Duration: time.Second}
}

// checkWire checks that the result makes a valid wire message.
func checkWire(tb testing.TB, res Result, err error) {
	tb.Helper()
	m := wire.Measurement{
		Version: wire.Version, MessageID: "MSG-0000001", Site: "test-site", AgentID: "AGENT-0001",
		Seq: 1, Probe: "local", Kind: res.Kind, MeasuredAt: time.Now().UTC(), DurationSeconds: 5,
		Success: err == nil, Speedtest: res.Speedtest,
	}
	if err != nil {
		m.Error = err.Error()
	}
	if verr := m.Validate("test-site", time.Now()); verr != nil {
		tb.Errorf("result is not a valid measurement: %v", verr)
	}
}

func TestSpeedtestSelfHosted(t *testing.T) {
	o, ts := startOokla(t, &ookla{token: "s3cret"})
	res, err := NewSpeedtest(quickConfig(ts.URL + "/?token=s3cret")).Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	st := res.Speedtest
	if res.Kind != wire.KindSpeedtest || st == nil {
		t.Fatalf("result %+v", res)
	}
	host := strings.TrimPrefix(ts.URL, "http://")
	if st.ServerID != "Custom" || st.ServerHost != host || st.ServerName != host || st.ServerDistanceKM != nil {
		t.Errorf("server = %q %q %q %v, want Custom %s %s no distance", st.ServerID, st.ServerName, st.ServerHost, st.ServerDistanceKM, host, host)
	}
	for name, v := range map[string]*float64{
		"latency": st.LatencySeconds, "download": st.DownloadBitsPerSecond, "upload": st.UploadBitsPerSecond,
	} {
		if v == nil || !(*v > 0) {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if st.JitterSeconds == nil || *st.JitterSeconds < 0 {
		t.Errorf("jitter = %v, want >= 0", st.JitterSeconds)
	}
	if st.DownloadBytes <= 0 || st.UploadBytes <= 0 {
		t.Errorf("bytes down %d up %d, want > 0", st.DownloadBytes, st.UploadBytes)
	}
	for name, v := range map[string]*float64{
		"download duration": st.DownloadDurationSeconds, "upload duration": st.UploadDurationSeconds,
		"latency under download": st.LatencyUnderDownloadSeconds, "latency under upload": st.LatencyUnderUploadSeconds,
	} {
		if v == nil || !(*v > 0) {
			t.Errorf("%s = %s, want > 0", name, describeFloat(v))
		}
	}
	for name, v := range map[string]*float64{
		"added latency under download": st.AddedLatencyUnderDownloadSeconds, "added latency under upload": st.AddedLatencyUnderUploadSeconds,
	} {
		if v == nil || *v < 0 {
			t.Errorf("%s = %s, want >= 0", name, describeFloat(v))
		}
	}
	if st.BufferbloatGrade == "" {
		t.Error("no bufferbloat grade")
	}
	if n := o.badToken.Load(); n != 0 {
		t.Errorf("%d of %d requests came without the token", n, o.requests.Load())
	}
	checkWire(t, res, err)
	t.Logf("latency %.2f ms, jitter %.2f ms, down %.0f Mbit/s (%d B), up %.0f Mbit/s (%d B), grade %s",
		*st.LatencySeconds*1e3, *st.JitterSeconds*1e3, *st.DownloadBitsPerSecond/1e6, st.DownloadBytes,
		*st.UploadBitsPerSecond/1e6, st.UploadBytes, st.BufferbloatGrade)
}

func TestSpeedtestUploadFails(t *testing.T) {
	_, ts := startOokla(t, &ookla{uploadStatus: http.StatusNotFound})
	res, err := NewSpeedtest(quickConfig(ts.URL)).Probe(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "upload: ") || !strings.Contains(err.Error(), "0 bytes confirmed") {
		t.Fatalf("err = %v, want an upload error with 0 bytes confirmed", err)
	}
	st := res.Speedtest
	if st.DownloadBitsPerSecond == nil || *st.DownloadBitsPerSecond <= 0 || st.LatencySeconds == nil {
		t.Errorf("download %v, latency %v: want both kept", st.DownloadBitsPerSecond, st.LatencySeconds)
	}
	if st.UploadBitsPerSecond != nil || st.LatencyUnderUploadSeconds != nil || st.BufferbloatGrade != "" {
		t.Errorf("upload %s, latency under upload %s, grade %q: want none", describeFloat(st.UploadBitsPerSecond),
			describeFloat(st.LatencyUnderUploadSeconds), st.BufferbloatGrade)
	}
	if st.UploadBytes <= 0 || st.UploadDurationSeconds == nil {
		t.Errorf("upload bytes %d, duration %s: want the cost of the attempt", st.UploadBytes, describeFloat(st.UploadDurationSeconds))
	}
	checkWire(t, res, err)
	t.Logf("error: %v", err)
}

// TestSpeedtestUploadStalls: a server that confirms a few pieces and then
// stops answering makes an upload error, not a rate frozen at the figure of
// the first pieces; the figures measured so far are kept.
func TestSpeedtestUploadStalls(t *testing.T) {
	_, ts := startOokla(t, &ookla{answerUploads: 4})
	cfg := quickConfig(ts.URL)
	cfg.Duration = 3 * time.Second // silence of more than stallMin before the end
	res, err := NewSpeedtest(cfg).Probe(context.Background())
	// Which of the two reasons depends on how fast the first pieces went
	// (a loaded machine is slower): either way the upload is an error with
	// no rate, never the rate of the first pieces.
	if err == nil || !(strings.HasPrefix(err.Error(), "upload: server stopped answering") ||
		strings.HasPrefix(err.Error(), "upload: no data confirmed by the server")) {
		t.Fatalf("err = %v, want upload: server stopped answering (or: no data confirmed)", err)
	}
	st := res.Speedtest
	if st.DownloadBitsPerSecond == nil || st.LatencySeconds == nil {
		t.Errorf("download %s, latency %s: want both kept", describeFloat(st.DownloadBitsPerSecond), describeFloat(st.LatencySeconds))
	}
	if st.UploadBitsPerSecond != nil {
		t.Errorf("upload = %v, want nil", *st.UploadBitsPerSecond)
	}
	if st.UploadBytes <= 0 || st.UploadDurationSeconds == nil {
		t.Errorf("upload bytes %d, duration %s: want the cost of the attempt", st.UploadBytes, describeFloat(st.UploadDurationSeconds))
	}
	checkWire(t, res, err)
	t.Logf("error: %v", err)
}

// TestSpeedtestDownloadStalls: a server that sends the start of each
// download and then nothing makes a download error.
func TestSpeedtestDownloadStalls(t *testing.T) {
	_, ts := startOokla(t, &ookla{sendPerDownload: 64 << 10})
	cfg := quickConfig(ts.URL)
	cfg.Duration = 3 * time.Second
	res, err := NewSpeedtest(cfg).Probe(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "download: server stopped sending") {
		t.Fatalf("err = %v, want download: server stopped sending", err)
	}
	st := res.Speedtest
	if st.DownloadBitsPerSecond != nil || st.UploadBitsPerSecond == nil {
		t.Errorf("download %s, upload %s: want no download, an upload", describeFloat(st.DownloadBitsPerSecond), describeFloat(st.UploadBitsPerSecond))
	}
	if st.DownloadBytes < 64<<10 {
		t.Errorf("download bytes %d, want at least what the server sent", st.DownloadBytes)
	}
	checkWire(t, res, err)
	t.Logf("error: %v", err)
}

// TestSpeedtestDownloadErrorPages: speedtest-go counts the body of a 404 as
// downloaded data; the probe must not.
func TestSpeedtestDownloadErrorPages(t *testing.T) {
	_, ts := startOokla(t, &ookla{downloadStatus: http.StatusNotFound})
	res, err := NewSpeedtest(quickConfig(ts.URL)).Probe(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "download: ") || !strings.Contains(err.Error(), "404 Not Found") {
		t.Fatalf("err = %v, want a download error naming the 404", err)
	}
	st := res.Speedtest
	if st.DownloadBitsPerSecond != nil {
		t.Errorf("download = %v bit/s from error pages, want nil", *st.DownloadBitsPerSecond)
	}
	if st.UploadBitsPerSecond == nil {
		t.Error("upload = nil, want measured")
	}
	checkWire(t, res, err)
	t.Logf("error: %v", err)
}

func TestSpeedtestServerDown(t *testing.T) {
	addr := closedPort(t)
	res, err := NewSpeedtest(quickConfig("http://" + addr + "?token=hidden-token")).Probe(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "ping: server unreachable") {
		t.Fatalf("err = %v, want ping: server unreachable", err)
	}
	if strings.Contains(err.Error(), "hidden-token") {
		t.Errorf("error reveals the token: %v", err)
	}
	st := res.Speedtest
	if st.LatencySeconds != nil || st.JitterSeconds != nil || st.DownloadBitsPerSecond != nil || st.UploadBitsPerSecond != nil ||
		st.DownloadBytes != 0 || st.UploadBytes != 0 {
		t.Errorf("figures %+v, want none", *st)
	}
	if st.ServerHost != addr {
		t.Errorf("server host %q, want %q", st.ServerHost, addr)
	}
	checkWire(t, res, err)
	t.Logf("error: %v", err)
}

func TestSpeedtestCancelDuringDownload(t *testing.T) {
	o, ts := startOokla(t, &ookla{})
	cfg := quickConfig(ts.URL)
	cfg.Duration = 20 * time.Second // the library would run this long if not abandoned
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := NewSpeedtest(cfg).Probe(ctx)
		done <- outcome{res, err}
	}()
	select {
	case <-o.downloadStart:
	case <-time.After(30 * time.Second):
		t.Fatal("download did not start in 30 s")
	}
	cancel()
	select {
	case out := <-done:
		if out.err == nil || !strings.HasPrefix(out.err.Error(), "cancelled during download") || !errors.Is(out.err, context.Canceled) {
			t.Errorf("err = %v, want cancelled during download (context.Canceled)", out.err)
		}
		st := out.res.Speedtest
		if st.LatencySeconds == nil || st.DownloadBitsPerSecond != nil || st.UploadBitsPerSecond != nil {
			t.Errorf("figures %+v: want latency only", *st)
		}
		checkWire(t, out.res, out.err)
	case <-time.After(5 * time.Second): // generous: Probe returns at once
		t.Fatal("Probe did not return within 5 s of cancellation")
	}
}

// TestSpeedtestCancelDuringUpload: a cancelled upload ends at once, keeps
// the download, and leaves no goroutine behind.
func TestSpeedtestCancelDuringUpload(t *testing.T) {
	before := runtime.NumGoroutine()
	o, ts := startOokla(t, &ookla{})
	cfg := quickConfig(ts.URL)
	cfg.Duration = 2 * time.Second // the upload is cancelled at its first piece
	p := NewSpeedtest(cfg).(*speedtestProber)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := p.Probe(ctx)
		done <- outcome{res, err}
	}()
	select {
	case <-o.uploadStart:
	case <-time.After(60 * time.Second):
		t.Fatal("upload did not start in 60 s")
	}
	cancel()
	select {
	case out := <-done:
		if out.err == nil || !strings.HasPrefix(out.err.Error(), "cancelled during upload") || !errors.Is(out.err, context.Canceled) {
			t.Errorf("err = %v, want cancelled during upload (context.Canceled)", out.err)
		}
		st := out.res.Speedtest
		if st.LatencySeconds == nil || st.DownloadBitsPerSecond == nil || st.UploadBitsPerSecond != nil {
			t.Errorf("figures %+v: want latency and download only", *st)
		}
		checkWire(t, out.res, out.err)
	case <-time.After(10 * time.Second): // generous: Probe returns at once
		t.Fatal("Probe did not return within 10 s of cancellation")
	}
	ts.Close()
	checkGoroutines(t, before)
}

// checkGoroutines waits for the number of goroutines to fall back to
// before, and fails with their stacks if it does not.
func checkGoroutines(tb testing.TB, before int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			tb.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSpeedtestCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := NewSpeedtest(quickConfig("http://" + closedPort(t))).Probe(ctx)
	if err == nil || !errors.Is(err, context.Canceled) || res.Speedtest == nil {
		t.Errorf("Probe = %+v, %v; want a cancelled error", res, err)
	}
}

func TestSpeedtestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  SpeedtestConfig
		want string
	}{
		{"url and ids", SpeedtestConfig{ServerURL: "http://127.0.0.1:1", ServerIDs: []string{"1"}}, "find server: both a server URL and server ids"},
		{"bad scheme", SpeedtestConfig{ServerURL: "ftp://127.0.0.1:1?token=abc"}, `find server: server URL "ftp://127.0.0.1:1": want http(s)`},
		{"no host", SpeedtestConfig{ServerURL: "http:///x"}, "find server: server URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSpeedtest(tt.cfg).Probe(context.Background())
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	p := NewSpeedtest(SpeedtestConfig{ServerURL: "http://127.0.0.1:8080/?token=abc123xyz"}).(*speedtestProber)
	inner := &url.Error{Op: "Get", URL: "http://127.0.0.1:8080/speedtest/latency.txt?token=abc123xyz", Err: context.DeadlineExceeded}
	err := p.redact(fmt.Errorf("ping: %w", inner))
	if strings.Contains(err.Error(), "abc123xyz") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("redact = %v (Is DeadlineExceeded %v)", err, errors.Is(err, context.DeadlineExceeded))
	}
}

// publicSpeedtest fakes the speedtest.net endpoints the library calls, on
// 127.0.0.1; redirect sends the library's requests for www.speedtest.net
// there and refuses any host but 127.0.0.1. A run wraps each of its
// transports in a redirect of its own.
type redirect struct {
	next    http.RoundTripper
	target  string // host:port
	refused *atomic.Int64
}

func (rt *redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Hostname() {
	case "www.speedtest.net":
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = "http", rt.target, ""
		return rt.next.RoundTrip(r)
	case "127.0.0.1":
		return rt.next.RoundTrip(req)
	}
	rt.refused.Add(1)
	return nil, fmt.Errorf("test: refused request to %s", req.URL.Host)
}

func publicSpeedtest(tb testing.TB, good, dead string, fail bool) *httptest.Server {
	tb.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/js/servers", func(w http.ResponseWriter, r *http.Request) {
		if fail {
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `[
 {"url":"http://%[1]s/speedtest/upload.php","lat":"53.80","lon":"-1.55","name":"Leeds","country":"United Kingdom","sponsor":"Dead ISP","id":"1111","host":"%[1]s","distance":3},
 {"url":"http://%[2]s/speedtest/upload.php","lat":"53.48","lon":"-2.24","name":"Manchester","country":"United Kingdom","sponsor":"Council","id":"2222","host":"%[2]s","distance":12.5}
]`, dead, good)
	})
	mux.HandleFunc("GET /api/ios-config.php", func(w http.ResponseWriter, r *http.Request) {
		servers := ""
		switch r.URL.Query().Get("serverid") {
		case "2222":
			servers = fmt.Sprintf(`<server url="http://%[1]s/speedtest/upload.php" lat="53.48" lon="-2.24" name="Manchester" country="United Kingdom" sponsor="Council" id="2222" host="%[1]s"/>`, good)
		case "1111":
			servers = fmt.Sprintf(`<server url="http://%[1]s/speedtest/upload.php" lat="53.80" lon="-1.55" name="Leeds" country="United Kingdom" sponsor="Dead ISP" id="1111" host="%[1]s"/>`, dead)
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = fmt.Fprintf(w, `<settings><client ip="127.0.0.1" lat="53.80" lon="-1.55" isp="Test"/><servers>%s</servers></settings>`, servers)
	})
	ts := httptest.NewServer(mux)
	tb.Cleanup(ts.Close)
	return ts
}

// TestSpeedtestPublicServers runs the auto and pinned modes against fakes of
// the public endpoints on 127.0.0.1. (The real endpoints, on the internet,
// are not tested.)
func TestSpeedtestPublicServers(t *testing.T) {
	_, good := startOokla(t, &ookla{})
	goodHost, dead := strings.TrimPrefix(good.URL, "http://"), closedPort(t)
	for _, tt := range []struct {
		name     string
		ids      []string
		fail     bool
		wantErr  string
		wantDist func(float64) bool
	}{
		{"auto picks the reachable server", nil, false, "", func(d float64) bool { return d == 12.5 }},
		{"pinned picks the reachable server", []string{"9999", "1111", "2222"}, false, "", func(d float64) bool { return d > 50 && d < 70 }},
		{"pinned none reachable", []string{"1111"}, false, "find server: no pinned server reachable: server 1111", nil},
		{"pinned none found", []string{"9999"}, false, "find server: fetch pinned servers: server 9999: no server available or found", nil},
		{"auto list fails", nil, true, "find server: fetch server list: ", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pub := publicSpeedtest(t, goodHost, dead, tt.fail)
			var refused atomic.Int64
			p := NewSpeedtest(SpeedtestConfig{ServerIDs: tt.ids, Connections: 2, Duration: time.Second}).(*speedtestProber)
			p.wrap = func(next http.RoundTripper) http.RoundTripper {
				return &redirect{next: next, target: strings.TrimPrefix(pub.URL, "http://"), refused: &refused}
			}

			res, err := p.Probe(context.Background())
			if n := refused.Load(); n != 0 {
				t.Errorf("%d requests to hosts other than 127.0.0.1 refused", n)
			}
			checkWire(t, res, err)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				if st := res.Speedtest; st.LatencySeconds != nil || st.DownloadBitsPerSecond != nil {
					t.Errorf("figures %+v, want none", *st)
				}
				return
			}
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			st := res.Speedtest
			if st.ServerID != "2222" || st.ServerName != "Council, Manchester" || st.ServerHost != goodHost {
				t.Errorf("server %q %q %q, want 2222, Council, Manchester, %s", st.ServerID, st.ServerName, st.ServerHost, goodHost)
			}
			if d := st.ServerDistanceKM; d == nil || !tt.wantDist(*d) {
				t.Errorf("distance = %s", describeFloat(d))
			}
			if st.DownloadBitsPerSecond == nil || st.UploadBitsPerSecond == nil {
				t.Errorf("figures %+v, want download and upload", *st)
			}
		})
	}
}

func describeFloat(v *float64) string {
	if v == nil {
		return "nil"
	}
	return fmt.Sprint(*v)
}
