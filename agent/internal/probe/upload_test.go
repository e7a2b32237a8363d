package probe

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countedConn counts the bytes the server read from one connection.
type countedConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

type countedListener struct{ net.Listener }

func (l countedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c}, nil
}

type connKey struct{}

// answerLog is an upload.php that records, for every answer, how many bytes
// the server had read from the connection: what the answer confirms.
type answerLog struct {
	mu      sync.Mutex
	answers map[*countedConn][]int64
}

func startAnswerLog(tb testing.TB) (*answerLog, string) {
	tb.Helper()
	a := &answerLog{answers: make(map[*countedConn][]int64)}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		c := r.Context().Value(connKey{}).(*countedConn)
		a.mu.Lock()
		a.answers[c] = append(a.answers[c], c.read.Load())
		a.mu.Unlock()
		fmt.Fprintf(w, "size=%d", n)
	}))
	ts.Listener = countedListener{ts.Listener}
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	ts.Start()
	tb.Cleanup(ts.Close)
	return a, ts.URL + "/speedtest/upload.php?token=abc"
}

// TestUploadCountsConfirmedBytes: every confirmation of a stream counts
// exactly the bytes the server had read when it answered (request heads
// included), no more: nothing still in the agent's socket buffer.
func TestUploadCountsConfirmedBytes(t *testing.T) {
	a, target := startAnswerLog(t)
	s := newStream(nil)
	ctx, cancel := context.WithCancel(context.Background())
	var stats reqStats
	done := make(chan struct{})
	go func() {
		defer close(done)
		uploadStream(ctx, s, target, newRandom(), &stats)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.log()) < 20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	s.close()

	log := s.log()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.answers) != 1 {
		t.Fatalf("the stream used %d connections, want 1", len(a.answers))
	}
	var answers []int64
	for _, v := range a.answers {
		answers = v
	}
	if len(log) < 20 || len(answers) < len(log) {
		t.Fatalf("%d confirmations, %d answers: want at least 20, and an answer for each", len(log), len(answers))
	}
	for i, c := range log {
		got, want := c.bytes, answers[i]
		if i == len(log)-1 && got != want {
			// The last piece's head may be taken from the one before.
			if d := got - want; d < -8 || d > 8 {
				t.Errorf("last confirmation: %d bytes, the server had read %d", got, want)
			}
			continue
		}
		if got != want {
			t.Errorf("confirmation %d: %d bytes, the server had read %d", i, got, want)
		}
	}
	if st := stats.get(); st.failed != 0 || st.badStatus != 0 {
		t.Errorf("stats %+v, want no failures", st)
	}
	t.Logf("%d pieces, last %d bytes in total", len(log), log[len(log)-1].bytes)
}

func TestUploadRate(t *testing.T) {
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	// every builds a log of pieces of size bytes answered every period
	// seconds, the first at first.
	every := func(first, period float64, n int, size int64) streamLog {
		l := streamLog{start: base}
		for i := 0; i < n; i++ {
			l.confirms = append(l.confirms, confirmation{at: at(first + float64(i)*period), bytes: int64(i+1) * size})
		}
		return l
	}
	for _, tt := range []struct {
		name        string
		logs        []streamLog
		t0, t1, end float64
		want        float64 // bytes per second
		wantStalled int
	}{
		{"steady, windows on answers", []streamLog{every(0.1, 0.1, 100, 1000)}, 2, 4, 10, 10000, 0},
		{"steady, windows between answers", []streamLog{every(0.1, 0.1, 100, 1000)}, 2.03, 4.07, 10, 10000, 0},
		{"two streams out of phase", []streamLog{every(0.1, 0.1, 100, 1000), every(0.25, 0.5, 20, 2500)}, 1.33, 6.71, 10, 15000, 0},
		// one piece of 2000 bytes over [0.5, 1.5]: a quarter of it is in [1, 1.25]
		{"window inside one piece", []streamLog{{start: base, confirms: []confirmation{{at(0.5), 1000}, {at(1.5), 3000}}}}, 1, 1.25, 1.5, 2000, 0},
		// the piece in flight at t0 counts for its part in the window
		{"first piece straddles t0", []streamLog{{start: base, confirms: []confirmation{{at(4), 4000}, {at(5), 5000}}}}, 2, 5, 5, 1000, 0},
		{"no answers yet", []streamLog{{start: base}}, 1, 2, 2.5, 0, 0},
		{"never answered", []streamLog{{start: base}}, 2, 4, 5, 0, 1},
		// one stream's only answer came in the warm-up, another's never
		{"server stopped in the warm-up", []streamLog{every(0.1, 0.1, 2, 1000), {start: base}}, 2, 5, 6, 0, 2},
		// answers until 3 s, then silence until the end at 12 s
		{"stalled stream", []streamLog{every(0.1, 0.1, 30, 1000)}, 2, 10, 12, 1000.0 * 10 / 8, 1},
		{"stalled and working", []streamLog{every(0.1, 0.1, 30, 1000), every(0.1, 0.1, 120, 1000)}, 2, 10, 12, 1000.0*10/8 + 10000, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, stalled := uploadRate(tt.logs, at(tt.t0), at(tt.t1), at(tt.end))
			if math.Abs(got-tt.want) > 1e-6*tt.want+1e-9 || stalled != tt.wantStalled {
				t.Errorf("uploadRate = %.3f B/s, %d stalled; want %.3f, %d", got, stalled, tt.want, tt.wantStalled)
			}
		})
	}
}

// TestUploadRateUnbiased simulates streams whose pieces mostly take 0.2 s
// and sometimes 3 s (a retransmission timeout), and estimates their rate
// over many windows placed independently of the pieces: the mean estimate
// must be the rate of the whole run. (Measuring each stream from its first
// answer in the window to its last reads about 20 % high on this process.)
func TestUploadRateUnbiased(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	sec := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	const (
		piece   = 8192
		streams = 4
		horizon = 2000.0 // seconds simulated
		window  = 10.0
		windows = 1000
	)
	logs := make([]streamLog, streams)
	var truth float64 // bytes per second over whole pieces in [50, horizon-50]
	for i := range logs {
		logs[i].start = base
		tm, total := 0.0, int64(0)
		var first, last confirmation
		for tm < horizon {
			if rng.Float64() < 0.1 {
				tm += 3
			} else {
				tm += 0.2
			}
			total += piece
			c := confirmation{at: sec(tm), bytes: total}
			logs[i].confirms = append(logs[i].confirms, c)
			if first.bytes == 0 && tm >= 50 {
				first = c
			}
			if tm <= horizon-50 {
				last = c
			}
		}
		truth += float64(last.bytes-first.bytes) / last.at.Sub(first.at).Seconds()
	}
	var sum float64
	for i := 0; i < windows; i++ {
		from := sec(50 + rng.Float64()*(horizon-100-window))
		to := from.Add(time.Duration(window * float64(time.Second)))
		got, _ := uploadRate(logs, from, to, to.Add(5*time.Second))
		sum += got
	}
	mean := sum / windows
	if math.Abs(mean/truth-1) > 0.01 {
		t.Errorf("mean estimate %.0f B/s, rate of the run %.0f B/s (ratio %.4f), want within 1 %%", mean, truth, mean/truth)
	}
	t.Logf("mean estimate / rate of the run = %.4f over %d windows", mean/truth, windows)
}

func TestNextPiece(t *testing.T) {
	for _, tt := range []struct {
		size  int64
		took  time.Duration
		limit int64
		want  int64
	}{
		{64 << 10, 50 * time.Millisecond, maxPiece, 256 << 10},   // quick: grow 4x at most
		{64 << 10, 100 * time.Millisecond, maxPiece, 128 << 10},  // toward the target
		{64 << 10, pieceTarget, maxPiece, 64 << 10},              // on target
		{64 << 10, 2 * time.Second, maxPiece, 32 << 10},          // slow: halve at most
		{minPiece, 5 * time.Second, maxPiece, minPiece},          // never below minPiece
		{4 << 20, time.Millisecond, maxPiece, maxPiece},          // never above the limit
		{4 << 20, time.Millisecond, 1 << 20, 1 << 20},            // a lowered limit (413)
		{10000, 100 * time.Millisecond, maxPiece, 19 << 10},      // whole KiB
		{64 << 10, 0, maxPiece, 256 << 10},                       // a zero duration is quick
		{100 << 10, 150 * time.Millisecond, maxPiece, 133 << 10}, // 100 KiB * 4/3, rounded down
	} {
		if got := nextPiece(tt.size, tt.took, tt.limit); got != tt.want {
			t.Errorf("nextPiece(%d, %s, %d) = %d, want %d", tt.size, tt.took, tt.limit, got, tt.want)
		}
	}
}

func TestPieceReader(t *testing.T) {
	buf := []byte("0123456789")
	for _, n := range []int64{0, 3, 10, 25} {
		got, err := io.ReadAll(&pieceReader{buf: buf, left: n})
		want := bytes.Repeat(buf, 3)[:n]
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("piece of %d: %q, %v; want %q", n, got, err, want)
		}
	}
}
