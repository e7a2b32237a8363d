package probe

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The agent's own download and upload measurements (speedtest-go is used only
// to pick the server and for the idle ping; see speedtest.go).
//
// A direction runs cfg.Connections load streams, each on its own keep-alive
// TCP connection, plus a latency stream (GET latency.txt every
// loadedPingEvery on one more connection), for a warm-up (slow start, the
// upload pieces finding their size) and then a measured window of
// cfg.Duration. The rate is the bytes in the window over the window's
// length, where a byte belongs to the window when the server has it:
//
//   - download: the bytes the agent read from its sockets, sampled at the
//     start and at the end of the window;
//   - upload: the bytes of the requests the server answered 2xx, spread
//     over the time each took (see uploadRate), so the upload may run on
//     for a moment after the window until the pieces in flight at its end
//     are answered.
//
// Both count the whole TCP payload, request and response heads included,
// and the latency stream, which shares the line: so the rate compares with
// iperf3's TCP goodput, and a small piece costs only its packet overhead.
// The latency under load is the median round trip of the latency requests
// sent inside the window.

// Tunables of a loaded direction.
const (
	// defaultWarmUp is excluded from the rate: it absorbs TCP slow start
	// and the growth of the upload pieces. At most half the duration.
	defaultWarmUp = 2 * time.Second
	// loadedPingEvery is the interval of latency requests under load; on
	// a slow line it stretches so that they take at most pingShare of the
	// line (about pingWireBytes each, with the packet headers and the
	// acknowledgement of the answer), up to pingEveryMax: from 200 ms at
	// 2.4 Mbit/s to 1 s at 0.5 Mbit/s.
	loadedPingEvery = 200 * time.Millisecond
	pingEveryMax    = time.Second
	pingShare       = 0.005
	pingWireBytes   = 300
	// loadBufferBytes is the socket read and write buffer size of the
	// transports: fewer system calls at 500 Mbit/s.
	loadBufferBytes = 64 << 10
	// randomBytes of random data is the content of every upload (cycled):
	// incompressible for any middlebox.
	randomBytes = 1 << 20
	// answerLimit bounds the answer to an upload or a latency request that
	// is read (an Ookla server answers "size=N" or "test=test").
	answerLimit = 64 << 10
)

// loadConfig is one direction of a run.
type loadConfig struct {
	serverURL string // the server's upload.php URL, with its query (a token)
	conns     int
	warmUp    time.Duration
	duration  time.Duration
	pingEvery time.Duration
}

// resource returns the URL of name next to upload.php, keeping the query.
func (lc loadConfig) resource(name string) (string, error) {
	u, err := url.Parse(lc.serverURL)
	if err != nil {
		return "", fmt.Errorf("server URL: %w", err)
	}
	u.Path = path.Join(path.Dir(u.Path), name)
	u.RawPath = ""
	return u.String(), nil
}

// loadResult is what one direction measured.
type loadResult struct {
	// bitsPerSecond is the rate over the window; 0 when none was measured.
	bitsPerSecond float64
	// bytes moved on the line for this direction, warm-up and unconfirmed
	// pieces included: the test's cost.
	bytes int64
	// elapsed is how long the direction loaded the line (warm-up included).
	elapsed time.Duration
	// rtts are the latency samples whose request left inside the window.
	rtts []time.Duration
	// confirmed is the number of upload bytes the server confirmed.
	confirmed int64
	// stalled is the number of load streams the server stopped answering.
	stalled int
	stats   kindStats
}

// loadedLatency is the median latency under load, false without samples.
func (r loadResult) loadedLatency() (time.Duration, bool) {
	return median(r.rtts)
}

// stream is one connection slot of a direction: its own transport (one TCP
// connection at a time), counting the bytes written to and read from its
// connections, TLS records included. Requests on it are made by one
// goroutine; the counters may be read by any.
type stream struct {
	client   *http.Client
	tr       *http.Transport
	written  atomic.Int64
	read     atomic.Int64
	lastRead atomic.Int64                 // when bytes were last read, Unix nanoseconds
	conn     atomic.Pointer[countingConn] // the latest connection

	mu       sync.Mutex
	confirms []confirmation // requests answered 2xx, in order
	// pending is the index in confirms of the last confirmed request
	// while its size is not known yet (see gotConn), else -1.
	pending     int
	pendingFrom int64 // written when that request got its connection
	lastHead    int64 // bytes of the last request beyond its body
}

// confirmation says that at time at the server answered 2xx to a request
// of bytes bytes (head and body). log returns them cumulated.
type confirmation struct {
	at    time.Time
	bytes int64
}

func newStream(wrap func(http.RoundTripper) http.RoundTripper) *stream {
	s := &stream{pending: -1}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	s.tr = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cc := &countingConn{Conn: c, written: &s.written, read: &s.read, lastRead: &s.lastRead}
			s.conn.Store(cc)
			return cc, nil
		},
		TLSHandshakeTimeout: tlsHandshakeTimeout,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     loadBufferBytes,
		ReadBufferSize:      loadBufferBytes,
		Protocols:           protocols,
	}
	var rt http.RoundTripper = s.tr
	if wrap != nil {
		rt = wrap(rt)
	}
	// No client timeout: the direction's context ends every request.
	s.client = &http.Client{Transport: rt}
	return s
}

// arrived is the number of bytes received on the stream's connections:
// read by the agent, or waiting in the kernel to be read. Unlike the bytes
// read, it does not depend on when the agent's goroutines get to run.
func (s *stream) arrived() int64 {
	n := s.read.Load()
	if c := s.conn.Load(); c != nil {
		n += socketUnread(c.Conn)
	}
	return n
}

// close ends the stream: idle connections are closed, and the size of a
// confirmed request still pending is taken as its body and the head of the
// one before.
func (s *stream) close() {
	s.tr.CloseIdleConnections()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending >= 0 {
		s.confirms[s.pending].bytes += s.lastHead
		s.pending = -1
	}
}

// gotConn is called as a request gets its connection, written bytes having
// been written so far. The transport hands out a kept-alive connection only
// once the previous request on it was written and flushed whole, so this is
// where the size of that request becomes known.
func (s *stream) gotConn(written int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending >= 0 {
		c := &s.confirms[s.pending]
		if n := written - s.pendingFrom; n >= c.bytes {
			s.lastHead = n - c.bytes
			c.bytes = n
		} else { // a new connection took over mid-write: the body at least
			c.bytes += s.lastHead
		}
		s.pending = -1
	}
	s.pendingFrom = written
}

// confirm records the server's 2xx answer, at time at, to the request that
// got its connection last, of a body of body bytes. Its full size (the head
// too) is known when the next request gets its connection.
func (s *stream) confirm(at time.Time, body int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.confirms = append(s.confirms, confirmation{at: at, bytes: max(body, 0)})
	s.pending = len(s.confirms) - 1
}

// confirmedAfter reports whether the server answered a request after t.
func (s *stream) confirmedAfter(t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.confirms)
	return n > 0 && s.confirms[n-1].at.After(t)
}

// confirmedBytes is the number of bytes the server confirmed so far.
func (s *stream) confirmedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, c := range s.confirms {
		n += c.bytes
	}
	return n
}

// log returns the confirmations with cumulative byte counts.
func (s *stream) log() []confirmation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.confirms)
	for i := 1; i < len(out); i++ {
		out[i].bytes += out[i-1].bytes
	}
	return out
}

// exchange sends req on s, reads the answer (at most answerLimit bytes) and
// closes it. reused tells whether the connection was already open (a latency
// sample is then one round trip). On a 2xx answer the caller calls confirm.
func (s *stream) exchange(req *http.Request) (status int, reused bool, err error) {
	trace := &httptrace.ClientTrace{
		// GotConn runs in this goroutine, before the request is written.
		GotConn: func(info httptrace.GotConnInfo) {
			s.gotConn(s.written.Load())
			reused = info.Reused
		},
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, answerLimit))
	_ = resp.Body.Close()
	return resp.StatusCode, reused, err
}

// countingConn counts the bytes written to and read from a connection.
type countingConn struct {
	net.Conn
	written, read, lastRead *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.read.Add(int64(n))
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// rttSample is one latency request: when it left and how long the answer took.
type rttSample struct {
	at  time.Time
	rtt time.Duration
}

// pinger sends GET latency.txt on its own kept-alive connection every
// interval until ctx ends. Only requests on an open connection make a sample
// (a new connection costs a handshake). Its requests are confirmed like
// upload pieces, so the upload rate can count them: they share the line.
type pinger struct {
	s     *stream
	url   string
	every time.Duration
	// rate is the direction's rate so far, bytes per second (0: unknown).
	rate func() float64

	mu      sync.Mutex
	samples []rttSample
}

func (p *pinger) run(ctx context.Context) {
	for ctx.Err() == nil {
		sent := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
		if err != nil {
			return
		}
		req.Header.Set("User-Agent", userAgent)
		status, reused, err := p.s.exchange(req)
		done := time.Now()
		if ctx.Err() != nil {
			return
		}
		if err == nil && status/100 == 2 {
			p.s.confirm(done, 0)
			if reused {
				p.mu.Lock()
				p.samples = append(p.samples, rttSample{at: sent, rtt: done.Sub(sent)})
				p.mu.Unlock()
			}
		}
		wait := pingInterval(p.every, p.rate()) - done.Sub(sent)
		if err != nil || status/100 != 2 {
			wait = max(wait, failureBackoff)
		}
		if !sleepCtx(ctx, wait) {
			return
		}
	}
}

// pingInterval is the time between latency requests on a line moving
// bytesPerSecond (see loadedPingEvery).
func pingInterval(every time.Duration, bytesPerSecond float64) time.Duration {
	if !(bytesPerSecond > 0) {
		return every
	}
	share := time.Duration(pingWireBytes / (pingShare * bytesPerSecond) * float64(time.Second))
	return max(every, min(share, pingEveryMax))
}

// within returns the latencies of the requests sent in [from, to].
func (p *pinger) within(from, to time.Time) []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Duration
	for _, s := range p.samples {
		if !s.at.Before(from) && !s.at.After(to) {
			out = append(out, s.rtt)
		}
	}
	return out
}

// reqStats counts the requests of a direction; safe for concurrent use.
type reqStats struct {
	mu sync.Mutex
	s  kindStats
}

// add counts one request: err for a transport error, else its status.
func (r *reqStats) add(status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.requests++
	switch {
	case err != nil:
		r.s.failed++
		r.s.lastErr = err
	case status/100 != 2:
		r.s.badStatus++
		r.s.lastBad = fmt.Sprintf("%d %s", status, http.StatusText(status))
	}
}

func (r *reqStats) get() kindStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.s
}

// sleepCtx sleeps for d; it reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sleepUntil sleeps until t; it reports false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	return sleepCtx(ctx, time.Until(t))
}

// newRandom returns the content of the upload pieces.
func newRandom() []byte {
	b := make([]byte, randomBytes)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return b
}

// median of ds, false when ds is empty.
func median(ds []time.Duration) (time.Duration, bool) {
	if len(ds) == 0 {
		return 0, false
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// addedLatency is the latency under load above the idle latency, never
// negative (a loaded median a little under the idle one is noise: nothing
// was added).
func addedLatency(loaded, idle time.Duration) time.Duration {
	return max(loaded-idle, 0)
}

// bufferbloatGrade grades the added latency under load on the
// DSLReports/Waveform scale (REFERENCE.md): A+ < 5 ms, A < 30 ms, B < 60 ms,
// C < 200 ms, D < 400 ms, else F. Callers pass the larger of the two
// directions.
func bufferbloatGrade(added time.Duration) string {
	for _, g := range []struct {
		below time.Duration
		grade string
	}{
		{5 * time.Millisecond, "A+"},
		{30 * time.Millisecond, "A"},
		{60 * time.Millisecond, "B"},
		{200 * time.Millisecond, "C"},
		{400 * time.Millisecond, "D"},
	} {
		if added < g.below {
			return g.grade
		}
	}
	return "F"
}
