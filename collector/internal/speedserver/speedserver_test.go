package speedserver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/showwin/speedtest-go/speedtest"
	"github.com/showwin/speedtest-go/speedtest/transport"
)

// testServer is a Server listening on 127.0.0.1, TCP and UDP on one port.
type testServer struct {
	*Server
	addr     string // host:port
	url      string // http://host:port
	serveErr chan error
}

func startServer(tb testing.TB, opts Options) *testServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		_ = ln.Close()
		tb.Fatalf("udp on the port of tcp: %v", err)
	}
	ts := &testServer{
		Server:   New(opts),
		addr:     ln.Addr().String(),
		url:      "http://" + ln.Addr().String(),
		serveErr: make(chan error, 2),
	}
	go func() { ts.serveErr <- ts.Serve(ln) }()
	go func() { ts.serveErr <- ts.ServePacket(pc) }()
	tb.Cleanup(func() {
		if err := ts.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		for range 2 {
			if err := <-ts.serveErr; err != nil {
				tb.Errorf("Serve after Close: %v", err)
			}
		}
	})
	return ts
}

func httpClient(tb testing.TB) *http.Client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   16,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// newSpeedtestClient builds a speedtest-go client the way the agent does: a
// new client per test with our own http.Client (WithDoer last).
//
// Reset is called between download and upload, never after an upload:
// speedtest-go v1.7.11 leaves its adaptUploadWorkers goroutine running for
// up to a second after UploadTestContext returns, and Reset then races with
// it (go test -race reports it).
func newSpeedtestClient(tb testing.TB, mode speedtest.Proto) *speedtest.Speedtest {
	tb.Helper()
	c := speedtest.New(
		speedtest.WithUserConfig(&speedtest.UserConfig{PingMode: mode, MaxConnections: 2}),
		speedtest.WithDoer(httpClient(tb)),
	)
	c.SetCaptureTime(time.Second)
	c.SetNThread(2)
	return c
}

func TestSpeedtestGoClient(t *testing.T) {
	ts := startServer(t, Options{DownloadBytes: 4 << 20})
	c := newSpeedtestClient(t, speedtest.HTTP)
	srv, err := c.CustomServer(ts.url + "/?token=abc")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	if err := srv.PingTestContext(ctx, nil); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if srv.Latency <= 0 {
		t.Errorf("latency = %v, want > 0", srv.Latency)
	}

	if err := srv.DownloadTestContext(ctx); err != nil {
		t.Fatalf("download: %v", err)
	}
	if srv.DLSpeed <= 0 || c.GetTotalDownload() <= 0 {
		t.Errorf("download: rate %v B/s, %d bytes; want both > 0", float64(srv.DLSpeed), c.GetTotalDownload())
	}
	// the handler counts a chunk when its write returns, which can be after
	// the client has read it: wait a little for the count to catch up
	for deadline := time.Now().Add(5 * time.Second); ts.BytesSent() < c.GetTotalDownload() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got, min := ts.BytesSent(), c.GetTotalDownload(); got < min {
		t.Errorf("BytesSent = %d, want at least the %d bytes the client read", got, min)
	}

	dlSpeed, dlBytes := srv.DLSpeed, c.GetTotalDownload()
	c.Reset()

	if err := srv.UploadTestContext(ctx); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if srv.ULSpeed <= 0 || c.GetTotalUpload() <= 0 {
		t.Errorf("upload: rate %v B/s, %d bytes; want both > 0", float64(srv.ULSpeed), c.GetTotalUpload())
	}
	if got, min := ts.BytesReceived(), c.GetTotalUpload(); got < min {
		t.Errorf("BytesReceived = %d, want at least the %d bytes the client had confirmed", got, min)
	}
	t.Logf("latency %v, download %.1f Mbit/s (%d B), upload %.1f Mbit/s (%d B)",
		srv.Latency, dlSpeed.Mbps(), dlBytes, srv.ULSpeed.Mbps(), c.GetTotalUpload())
}

// TestSpeedtestGoTCP runs the library's own text-protocol client: TCP ping,
// version and packet loss with real UDP datagrams.
func TestSpeedtestGoTCP(t *testing.T) {
	ts := startServer(t, Options{})
	c := newSpeedtestClient(t, speedtest.TCP)
	srv, err := c.CustomServer(ts.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.PingTestContext(context.Background(), nil); err != nil {
		t.Fatalf("tcp ping: %v", err)
	}
	if srv.Latency <= 0 {
		t.Errorf("tcp latency = %v, want > 0", srv.Latency)
	}

	dialer := &net.Dialer{Timeout: 5 * time.Second}
	client, err := transport.NewClient(dialer)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Connect(context.Background(), ts.addr); err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect()
	if v := client.Version(); v != "2.11 (2.11.0) 2026-11-01.1" {
		t.Errorf("version = %q", v)
	}
	if err := client.InitPacketLoss(); err != nil {
		t.Fatal(err)
	}
	sender, err := transport.NewPacketLossSender(client.ID(), dialer)
	if err != nil {
		t.Fatal(err)
	}
	// InitPacketLoss sends HI <uuid> and INITPLOSS without reading the
	// replies; read them before the PLOSS replies.
	for _, want := range []string{helloLine, "OK\n"} {
		if line, err := client.Read(); err != nil || string(line) != want {
			t.Fatalf("InitPacketLoss reply %q, %v; want %q", line, err, want)
		}
	}
	if err := sender.Connect(context.Background(), ts.addr); err != nil {
		t.Fatal(err)
	}
	for order := range 5 {
		if err := sender.Send(order); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pl, err := client.PacketLoss()
		if err != nil || pl == nil {
			t.Fatalf("PLOSS: %v, %v", pl, err)
		}
		if pl.Sent == 5 {
			if pl.Dup != 0 || pl.Max != 4 || pl.Loss() != 0 {
				t.Errorf("PLOSS = %+v, loss %v; want 5 0 4, loss 0", *pl, pl.Loss())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PLOSS = %+v after 10 s, want 5 datagrams", *pl)
		}
		time.Sleep(10 * time.Millisecond) // poll: UDP arrives on its own schedule
	}
}

// textConn is a raw connection to the text protocol.
type textConn struct {
	tb testing.TB
	c  net.Conn
	r  *bufio.Reader
}

func dialText(tb testing.TB, addr string) *textConn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &textConn{tb: tb, c: c, r: bufio.NewReader(c)}
}

func (tc *textConn) send(s string) {
	tc.tb.Helper()
	if _, err := io.WriteString(tc.c, s); err != nil {
		tc.tb.Fatalf("write %q: %v", s, err)
	}
}

func (tc *textConn) roundTrip(s string) string {
	tc.tb.Helper()
	tc.send(s)
	line, err := tc.r.ReadString('\n')
	if err != nil {
		tc.tb.Fatalf("reply to %q: %q, %v", s, line, err)
	}
	return line
}

// wantClosed checks that the server closed the connection: end of stream,
// or a reset when the server closed it with our bytes still unread.
func (tc *textConn) wantClosed() {
	tc.tb.Helper()
	b, err := io.ReadAll(tc.r)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	if err != nil || len(b) != 0 {
		tc.tb.Errorf("want the server to close the connection; read %q, %v", b, err)
	}
}

func TestTextProtocol(t *testing.T) {
	ts := startServer(t, Options{})
	const uuid = "0E5B6A2C-1D2F-4A3B-8C4D-5E6F7A8B9C0D"
	tc := dialText(t, ts.addr)

	before := time.Now().UnixMilli()
	pong := tc.roundTrip("PING 1764158283250000000\n")
	if !regexp.MustCompile(`^PONG \d{13}\n$`).MatchString(pong) {
		t.Fatalf("PING reply %q, want PONG and 13 digits (19 bytes)", pong)
	}
	if ms, _ := strconv.ParseInt(pong[5:18], 10, 64); ms < before || ms > time.Now().UnixMilli() {
		t.Errorf("PONG time %d not between %d and now", ms, before)
	}
	if got := tc.roundTrip("HI\r\n"); got != helloLine {
		t.Errorf("HI reply %q, want %q", got, helloLine)
	}
	if got := tc.roundTrip("PLOSS\n"); got != "PLOSS 0 0 0\n" {
		t.Errorf("PLOSS before INITPLOSS: %q", got)
	}
	if got := tc.roundTrip("HI " + uuid + "\n"); got != helloLine {
		t.Errorf("HI reply %q", got)
	}
	if got := tc.roundTrip("INITPLOSS\n"); got != "OK\n" {
		t.Errorf("INITPLOSS reply %q", got)
	}

	udp, err := net.Dial("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, d := range []string{
		"LOSS 123 0 " + strings.ToLower(uuid),
		"LOSS 123 1 " + uuid,
		"LOSS 123 1 " + uuid, // duplicate
		"LOSS 123 3 " + uuid, // 2 lost
		"LOSS 123 9 another-uuid",
		"LOSS x 7 " + uuid,
		"LOSS 123 -1 " + uuid,
		"garbage",
	} {
		if _, err := udp.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := tc.roundTrip("PLOSS\n")
		if got == "PLOSS 4 1 3\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PLOSS = %q after 10 s, want PLOSS 4 1 3", got)
		}
		time.Sleep(10 * time.Millisecond) // poll: UDP arrives on its own schedule
	}
	tc.send("QUIT\n")
	tc.wantClosed()
}

func TestTextProtocolBadInput(t *testing.T) {
	ts := startServer(t, Options{})
	for _, tt := range []struct{ name, input string }{
		{"unknown command", "DOWNLOAD 1000\n"},
		{"garbage", "\x00\xff\x13garbage\n"},
		{"over-long line without newline", "PING " + strings.Repeat("9", 300)},
		{"over-long line", strings.Repeat("A", maxLineBytes+1) + "\n"},
		{"bad uuid", "HI not/a uuid\n"},
		{"lower-case http", "get / HTTP/1.1\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := dialText(t, ts.addr)
			tc.send(tt.input)
			tc.wantClosed()
		})
	}
	// The server still serves after all that.
	if got := dialText(t, ts.addr).roundTrip("HI\n"); got != helloLine {
		t.Errorf("HI after bad input: %q", got)
	}
}

func TestHTTP(t *testing.T) {
	ts := startServer(t, Options{MaxUploadBytes: 1000, DownloadBytes: 100_000})
	hc := httpClient(t)
	do := func(t *testing.T, method, path string, body io.Reader, contentLength int64) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.url+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if contentLength != 0 {
			req.ContentLength = contentLength
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: read body: %v", method, path, err)
		}
		return resp.StatusCode, string(b)
	}
	chunked := func(n int) io.Reader { return io.MultiReader(strings.NewReader(strings.Repeat("x", n))) }

	for _, tt := range []struct {
		name, method, path string
		body               io.Reader
		contentLength      int64 // -1: chunked
		wantCode           int
		wantBody           string // "" = don't check
	}{
		{"latency", "GET", "/speedtest/latency.txt", nil, 0, 200, "test=test\n"},
		{"latency with query", "GET", "/speedtest/latency.txt?x=1&token=abc", nil, 0, 200, "test=test\n"},
		{"upload", "POST", "/speedtest/upload.php?x=2", strings.NewReader(strings.Repeat("u", 1000)), 0, 200, "size=1000"},
		{"upload chunked", "POST", "/speedtest/upload.php", chunked(999), -1, 200, "size=999"},
		{"upload too large", "POST", "/speedtest/upload.php", strings.NewReader(strings.Repeat("u", 4000)), 0, 413, ""},
		{"upload chunked too large", "POST", "/speedtest/upload.php", chunked(4000), -1, 413, ""},
		{"root", "GET", "/", nil, 0, 404, ""},
		{"other file", "GET", "/speedtest/speedtest.js", nil, 0, 404, ""},
		{"random without size", "GET", "/speedtest/random.jpg", nil, 0, 404, ""},
		{"random with bad size", "GET", "/speedtest/random1000x.jpg", nil, 0, 404, ""},
		{"random outside speedtest", "GET", "/random350x350.jpg", nil, 0, 404, ""},
		{"get upload", "GET", "/speedtest/upload.php", nil, 0, 405, ""},
		{"post latency", "POST", "/speedtest/latency.txt", strings.NewReader("x"), 0, 405, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, tt.method, tt.path, tt.body, tt.contentLength)
			if code != tt.wantCode || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}

	t.Run("download", func(t *testing.T) {
		sentBefore := ts.BytesSent()
		code, body := do(t, "GET", "/speedtest/random4000x4000.jpg?x=3", nil, 0)
		if code != 200 || len(body) != 100_000 {
			t.Fatalf("download = %d, %d bytes; want 200, 100000 bytes", code, len(body))
		}
		distinct := map[byte]bool{}
		for i := range len(body) {
			distinct[body[i]] = true
		}
		if len(distinct) < 200 {
			t.Errorf("download has %d distinct byte values, want random data", len(distinct))
		}
		if got := ts.BytesSent() - sentBefore; got != 100_000 {
			t.Errorf("BytesSent grew by %d, want 100000", got)
		}
	})
	if got := ts.BytesReceived(); got < 1999 {
		t.Errorf("BytesReceived = %d, want at least the 1999 bytes of the accepted uploads", got)
	}
}

// TestCloseClosesConnections checks that Close ends an idle text connection,
// an idle HTTP keep-alive connection and a connection that never spoke.
func TestCloseClosesConnections(t *testing.T) {
	ts := startServer(t, Options{})
	text := dialText(t, ts.addr)
	if got := text.roundTrip("HI\n"); got != helloLine {
		t.Fatalf("HI: %q", got)
	}
	web := dialText(t, ts.addr)
	web.send("GET /speedtest/latency.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(web.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	silent := dialText(t, ts.addr)
	half := dialText(t, ts.addr)
	half.send("GE") // a prefix of an HTTP method: still sniffing

	done := make(chan error, 1)
	go func() { done <- ts.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return in 10 s")
	}
	for name, tc := range map[string]*textConn{"text": text, "http": web, "silent": silent, "half": half} {
		t.Run(name, func(t *testing.T) { tc.wantClosed() })
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Error("listener still accepts after Close")
	}
}

func TestServePacketNil(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	if err := s.ServePacket(nil); err != nil {
		t.Errorf("ServePacket(nil) = %v", err)
	}
}

func TestSniffHTTP(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\n", true},
		{"POST /x", true},
		{"HEAD /x", true},
		{"HI\n", false},
		{"HELLO\n", false},
		{"PING 1\n", false},
		{"PLOSS\n", false},
		{"GETX", false},
		{"PUT /x", false},
	} {
		got, err := sniffHTTP(bufio.NewReader(strings.NewReader(tt.in)))
		if err != nil || got != tt.want {
			t.Errorf("sniffHTTP(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func BenchmarkDownload(b *testing.B) {
	ts := startServer(b, Options{DownloadBytes: 8 << 20})
	hc := httpClient(b)
	b.SetBytes(8 << 20)
	for b.Loop() {
		resp, err := hc.Get(ts.url + "/speedtest/random350x350.jpg")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}

func TestTokenAndConnectionLimit(t *testing.T) {
	s := New(Options{Token: "s3cret"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Close()
	base := "http://" + ln.Addr().String() + "/speedtest/latency.txt"
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, tt := range []struct {
		query string
		code  int
	}{{"", 403}, {"?token=wrong", 403}, {"?token=s3cret", 200}} {
		resp, err := client.Get(base + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s = %d, want %d", tt.query, resp.StatusCode, tt.code)
		}
	}
	// two idle connections fill a server; a third is closed at once
	s = New(Options{MaxConnections: 2})
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Close()
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, rerr := c.Read(make([]byte, 1))
		c.Close()
		if rerr == io.EOF && s.Refused() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("third connection not refused (refused=%d, read err %v)", s.Refused(), rerr)
		}
	}
}
