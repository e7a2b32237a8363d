package probe

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// lqResponder is a hubmon echo responder for tests (the agent does not import
// the collector's). rule decides, for the n-th request (from 0), how many
// replies to send (0: drop, 2: a duplicate) and after what delay.
type lqResponder struct {
	addr string
	pc   net.PacketConn

	mu       sync.Mutex
	n        int // requests received
	answered int // requests answered without delay
	rule     func(n int) (copies int, delay time.Duration)
}

func startLQResponder(tb testing.TB) *lqResponder {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &lqResponder{addr: pc.LocalAddr().String(), pc: pc}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := buf[:n]
			if !strings.HasPrefix(string(req), lqEchoRequest) {
				continue
			}
			reply := append([]byte(lqEchoReply), req[len(lqEchoRequest):]...)
			r.mu.Lock()
			copies, delay := 1, time.Duration(0)
			if r.rule != nil {
				copies, delay = r.rule(r.n)
			}
			r.n++
			if copies > 0 && delay == 0 {
				r.answered++
			}
			r.mu.Unlock()
			for range copies {
				if delay == 0 {
					_, _ = pc.WriteTo(reply, from)
				} else {
					time.AfterFunc(delay, func() { _, _ = pc.WriteTo(reply, from) })
				}
			}
		}
	}()
	tb.Cleanup(func() { _ = pc.Close(); <-done })
	return r
}

func (r *lqResponder) setRule(rule func(n int) (int, time.Duration)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rule = rule
}

func (r *lqResponder) counts() (received, answered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, r.answered
}

// gatewayStub is an injected gateway checker that counts its calls.
type gatewayStub struct {
	cause string
	calls atomic.Int64
}

func (g *gatewayStub) check(context.Context) string { g.calls.Add(1); return g.cause }

// testLQ returns a UDP line-quality prober with short intervals, an injected
// gateway checker (none: NoGatewayCheck) and a resolver that refuses to look
// anything up: no test sends anything to the real gateway or resolver.
func testLQ(tb testing.TB, target string, period time.Duration, gw *gatewayStub) *lineQuality {
	tb.Helper()
	p := NewLineQuality(LineQualityConfig{
		UDPTarget:      target,
		SendInterval:   20 * time.Millisecond,
		Timeout:        250 * time.Millisecond,
		Period:         period,
		NoGatewayCheck: true,
	}).(*lineQuality)
	p.resolver = noLookup(tb)
	if gw != nil {
		p.checkGateway = gw.check
	}
	return p
}

// noLookup is a resolver that fails the test if it is asked anything.
func noLookup(tb testing.TB) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(_ context.Context, _, address string) (net.Conn, error) {
		tb.Errorf("a DNS lookup was attempted (to %s)", address)
		return nil, errors.New("no lookups in this test")
	}}
}

// checkLQWire checks that a result makes a valid wire measurement.
func checkLQWire(tb testing.TB, res Result, err error) {
	tb.Helper()
	if res.Kind != wire.KindLineQuality || res.LineQuality == nil {
		tb.Fatalf("result kind %q, line quality %v", res.Kind, res.LineQuality)
	}
	m := wire.Measurement{
		Version: wire.Version, MessageID: "MSG-0000001", Site: "test-site", AgentID: "AGENT-0001",
		Seq: 1, Probe: "line", Kind: res.Kind, MeasuredAt: time.Now().UTC(), DurationSeconds: 1,
		Success: err == nil, LineQuality: res.LineQuality,
	}
	if err != nil {
		m.Error = err.Error()
	}
	if verr := m.Validate("test-site", time.Now()); verr != nil {
		tb.Errorf("result is not a valid measurement: %v", verr)
	}
}

func probeLQ(tb testing.TB, p Prober) *wire.LineQuality {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.Probe(ctx)
	if err != nil {
		tb.Fatalf("Probe: %v", err)
	}
	checkLQWire(tb, res, err)
	return res.LineQuality
}

func secs(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}

func TestLineQualityCounts(t *testing.T) {
	const period = 400 * time.Millisecond
	maxSent := int64(math.Ceil(float64(period) / float64(20*time.Millisecond)))
	cases := []struct {
		name     string
		rule     func(n int) (int, time.Duration)
		wantLost func(requests int) int64
	}{
		{"all answered", nil, func(int) int64 { return 0 }},
		{"duplicates ignored", func(int) (int, time.Duration) { return 2, 0 }, func(int) int64 { return 0 }},
		{"every third dropped", func(n int) (int, time.Duration) {
			if n%3 == 2 {
				return 0, 0
			}
			return 1, 0
		}, func(requests int) int64 { return int64(requests / 3) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := startLQResponder(t)
			r.setRule(tc.rule)
			gw := &gatewayStub{cause: wire.CauseWAN}
			lq := probeLQ(t, testLQ(t, r.addr, period, gw))
			requests, answered := r.counts()

			if lq.Method != "udp" || lq.Target != r.addr {
				t.Errorf("method %q target %q", lq.Method, lq.Target)
			}
			if lq.Sent != int64(requests) || lq.Received != int64(answered) {
				t.Errorf("sent %d received %d; responder saw %d, answered %d", lq.Sent, lq.Received, requests, answered)
			}
			if lost := lq.Sent - lq.Received; lost != tc.wantLost(requests) {
				t.Errorf("lost %d, want %d", lost, tc.wantLost(requests))
			}
			if lq.Sent < 3 || lq.Sent > maxSent {
				t.Errorf("sent %d, want 3 to %d (never faster than the send interval)", lq.Sent, maxSent)
			}
			if lq.IntervalSeconds < period.Seconds() {
				t.Errorf("interval %.3fs, shorter than the period", lq.IntervalSeconds)
			}
			mn, p50, p95, mx := secs(lq.RTTMinSeconds), secs(lq.RTTP50Seconds), secs(lq.RTTP95Seconds), secs(lq.RTTMaxSeconds)
			if !(0 <= mn && mn <= p50 && p50 <= p95 && p95 <= mx && mx < 0.25) {
				t.Errorf("RTT min %v p50 %v p95 %v max %v: want 0 <= min <= p50 <= p95 <= max < timeout", mn, p50, p95, mx)
			}
			if j := secs(lq.JitterSeconds); !(j >= 0 && j <= mx-mn) {
				t.Errorf("jitter %v, want between 0 and max-min", j)
			}
			if len(lq.Outages) != 0 || lq.OutageSince != nil || gw.calls.Load() != 0 {
				t.Errorf("outages %+v since %v, gateway checked %d times; want none", lq.Outages, lq.OutageSince, gw.calls.Load())
			}
		})
	}
}

// TestLineQualityOutage: the responder is silent for probes 5-14, then
// answers again: one disconnection of 10 probes, with the injected cause.
func TestLineQualityOutage(t *testing.T) {
	for _, cause := range []string{wire.CauseWAN, wire.CauseLAN, wire.CauseUnknown} {
		t.Run(cause, func(t *testing.T) {
			r := startLQResponder(t)
			r.setRule(func(n int) (int, time.Duration) {
				if n >= 5 && n < 15 {
					return 0, 0
				}
				return 1, 0
			})
			gw := &gatewayStub{cause: cause}
			start := time.Now()
			lq := probeLQ(t, testLQ(t, r.addr, 600*time.Millisecond, gw))
			requests, _ := r.counts()
			if requests < 17 {
				t.Fatalf("only %d probes sent; the test needs 17", requests)
			}
			if lq.Sent != int64(requests) || lq.Sent-lq.Received != 10 {
				t.Errorf("sent %d received %d, want %d and 10 lost", lq.Sent, lq.Received, requests)
			}
			if len(lq.Outages) != 1 {
				t.Fatalf("outages %+v, want one", lq.Outages)
			}
			o := lq.Outages[0]
			if o.LostProbes != 10 || o.Cause != cause {
				t.Errorf("outage lost %d cause %q, want 10 and %q", o.LostProbes, o.Cause, cause)
			}
			// From the sending of probe 5 to that of probe 15: ten intervals
			// at least, as the prober never sends faster.
			if o.DurationSeconds < 0.2 || o.DurationSeconds > 5 {
				t.Errorf("duration %.3fs, want at least 10 x 20ms", o.DurationSeconds)
			}
			if got := o.End.Sub(o.Start).Seconds(); math.Abs(got-o.DurationSeconds) > 1e-6 {
				t.Errorf("end - start = %v, duration %v", got, o.DurationSeconds)
			}
			if o.Start.Before(start.Add(-time.Second)) || o.End.After(time.Now()) {
				t.Errorf("outage %v - %v outside the run", o.Start, o.End)
			}
			if lq.OutageSince != nil {
				t.Errorf("outage since %v, want none: it ended", lq.OutageSince)
			}
			if gw.calls.Load() != 1 {
				t.Errorf("gateway checked %d times, want once", gw.calls.Load())
			}
		})
	}
}

// TestLineQualityOutageSpansRuns: a disconnection begins in one summary and
// ends in the next.
func TestLineQualityOutageSpansRuns(t *testing.T) {
	r := startLQResponder(t)
	r.setRule(func(n int) (int, time.Duration) {
		if n >= 5 {
			return 0, 0
		}
		return 1, 0
	})
	gw := &gatewayStub{cause: wire.CauseWAN}
	p := testLQ(t, r.addr, 300*time.Millisecond, gw)

	first := probeLQ(t, p)
	c, _ := r.counts()
	if c < 8 {
		t.Fatalf("only %d probes sent in the first run", c)
	}
	if first.OutageSince == nil || len(first.Outages) != 0 {
		t.Fatalf("first run: since %v outages %+v; want an outage going on", first.OutageSince, first.Outages)
	}
	if first.Sent != int64(c) || first.Received != 5 {
		t.Errorf("first run: sent %d received %d, want %d and 5", first.Sent, first.Received, c)
	}

	// The next run's first three probes are lost too, then the line is back.
	r.setRule(func(n int) (int, time.Duration) {
		if n >= 5 && n < c+3 {
			return 0, 0
		}
		return 1, 0
	})
	second := probeLQ(t, p)
	if second.OutageSince != nil || len(second.Outages) != 1 {
		t.Fatalf("second run: since %v outages %+v; want one ended outage", second.OutageSince, second.Outages)
	}
	o := second.Outages[0]
	if want := int64(c - 5 + 3); o.LostProbes != want {
		t.Errorf("lost probes %d, want %d", o.LostProbes, want)
	}
	if d := o.Start.Sub(*first.OutageSince); d < -10*time.Millisecond || d > 10*time.Millisecond {
		t.Errorf("outage start %v, first run said since %v", o.Start, *first.OutageSince)
	}
	if o.Cause != wire.CauseWAN || gw.calls.Load() != 1 {
		t.Errorf("cause %q after %d checks, want wan after one", o.Cause, gw.calls.Load())
	}
	if second.Sent-second.Received != 3 {
		t.Errorf("second run: sent %d received %d, want 3 lost", second.Sent, second.Received)
	}
}

// TestLineQualityLateReplies: replies that come after the timeout count as
// lost, and are ignored when they come.
func TestLineQualityLateReplies(t *testing.T) {
	r := startLQResponder(t)
	r.setRule(func(n int) (int, time.Duration) {
		if n >= 3 && n < 6 {
			return 1, 500 * time.Millisecond // twice the timeout
		}
		return 1, 0
	})
	gw := &gatewayStub{cause: wire.CauseWAN}
	lq := probeLQ(t, testLQ(t, r.addr, 800*time.Millisecond, gw))
	requests, answered := r.counts()
	if lq.Sent != int64(requests) || lq.Received != int64(answered) || lq.Sent-lq.Received != 3 {
		t.Errorf("sent %d received %d (responder saw %d, answered %d in time), want 3 lost", lq.Sent, lq.Received, requests, answered)
	}
	if mx := secs(lq.RTTMaxSeconds); mx >= 0.25 {
		t.Errorf("max RTT %v: a late reply was counted", mx)
	}
	if len(lq.Outages) != 1 || lq.Outages[0].LostProbes != 3 {
		t.Errorf("outages %+v, want one of 3 probes", lq.Outages)
	}
}

func TestLineQualityCancel(t *testing.T) {
	r := startLQResponder(t)
	gw := &gatewayStub{cause: wire.CauseWAN}
	p := testLQ(t, r.addr, time.Minute, gw)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := p.Probe(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Probe took %v after cancellation", took)
	}
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("err = %v, want a cut-short run", err)
	}
	checkLQWire(t, res, err)
	lq := res.LineQuality
	if lq.Sent < 1 || lq.Received != lq.Sent {
		t.Errorf("cut-short run: sent %d received %d; want what was gathered", lq.Sent, lq.Received)
	}

	// Cancelled before it starts.
	done, stop := context.WithCancel(context.Background())
	stop()
	if _, err := p.Probe(done); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: err = %v", err)
	}

	// The prober still works, also with two runs at once (serialised).
	p.period = 100 * time.Millisecond
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if lq := probeLQ(t, p); lq.Sent == 0 || lq.Received != lq.Sent {
				t.Errorf("after cancellation: sent %d received %d", lq.Sent, lq.Received)
			}
		})
	}
	wg.Wait()
}

// TestLineQualityCancelDuringOutage: cancellation is prompt even while a
// gateway check hangs.
func TestLineQualityCancelDuringOutage(t *testing.T) {
	r := startLQResponder(t)
	r.setRule(func(int) (int, time.Duration) { return 0, 0 })
	p := testLQ(t, r.addr, time.Minute, nil)
	p.checkGateway = func(ctx context.Context) string { <-ctx.Done(); return wire.CauseUnknown }

	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := p.Probe(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Probe took %v after cancellation", took)
	}
	if err == nil {
		t.Fatal("want a cut-short error")
	}
	checkLQWire(t, res, err)
	lq := res.LineQuality
	if lq.Sent < 2 || lq.Received != 0 || lq.OutageSince == nil {
		t.Errorf("sent %d received %d since %v; want total loss and an outage going on", lq.Sent, lq.Received, lq.OutageSince)
	}
}

// TestLineQualityTotalLoss: nothing answers (no responder at all): not an
// error, the data.
func TestLineQualityTotalLoss(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := pc.LocalAddr().String()
	_ = pc.Close() // ICMP port unreachable from now on
	gw := &gatewayStub{cause: wire.CauseLAN}
	lq := probeLQ(t, testLQ(t, target, 300*time.Millisecond, gw))
	if lq.Sent < 2 || lq.Received != 0 || lq.RTTP50Seconds != nil || lq.JitterSeconds != nil {
		t.Errorf("sent %d received %d p50 %v jitter %v; want total loss, no RTT figures", lq.Sent, lq.Received, lq.RTTP50Seconds, lq.JitterSeconds)
	}
	if lq.OutageSince == nil || len(lq.Outages) != 0 {
		t.Errorf("since %v outages %+v, want an outage going on", lq.OutageSince, lq.Outages)
	}
}

// TestLineQualityInvalidTarget: a target invalid in itself fails the run
// without a lookup.
func TestLineQualityInvalidTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:echo", ":9471",
		"bad host:9471", "-dash.example:9471", "under..dots:9471", "999.1.2.3:9471", strings.Repeat("a", 64) + ".example:9471"} {
		t.Run(target, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p := NewLineQuality(LineQualityConfig{UDPTarget: target, NoGatewayCheck: true}).(*lineQuality)
			p.resolver = noLookup(t)
			res, err := p.Probe(ctx)
			if err == nil || !errors.Is(err, errLQTarget) {
				t.Fatalf("err = %v, want an invalid-target error", err)
			}
			checkLQWire(t, res, err)
			if res.LineQuality.Sent != 0 {
				t.Errorf("sent %d", res.LineQuality.Sent)
			}
		})
	}
}

func TestValidDNSName(t *testing.T) {
	for name, want := range map[string]bool{
		"collector.example.gov.uk": true, "collector.example.gov.uk.": true, "localhost": true, "a-b_c.x1": true,
		"1.example": true, strings.Repeat("a", 63) + ".uk": true,
		"": false, ".": false, "a..b": false, "-a.uk": false, "a-.uk": false, "a b": false, "a/b": false, "é.uk": false,
		"1.2.3.999": false, strings.Repeat("a", 64) + ".uk": false, strings.Repeat("a.", 127) + "uk": false,
	} {
		if got := validDNSName(name); got != want {
			t.Errorf("validDNSName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestLineQualityUnresolvable: when the name cannot be resolved and no
// address is known, every probe of the period counts as sent and lost, so
// the outage is seen; the run does not fail.
func TestLineQualityUnresolvable(t *testing.T) {
	dns := startDNSServer(t, nil) // NXDOMAIN for everything
	gw := &gatewayStub{cause: wire.CauseLAN}
	p := testLQ(t, "echo.hubmon.test:9471", 300*time.Millisecond, gw)
	p.resolver = testResolver(dns.addr)
	lq := probeLQ(t, p)
	if lq.Sent < 5 || lq.Received != 0 || lq.OutageSince == nil {
		t.Errorf("sent %d received %d since %v; want every probe lost and an outage going on", lq.Sent, lq.Received, lq.OutageSince)
	}
	if dns.queries.Load() == 0 {
		t.Error("the DNS stub was not asked")
	}
	if gw.calls.Load() != 1 {
		t.Errorf("gateway checked %d times, want once", gw.calls.Load())
	}
	if lq.IntervalSeconds < 0.3 || lq.IntervalSeconds > 1 {
		t.Errorf("interval %.3fs, want the period", lq.IntervalSeconds)
	}
}

// TestLineQualityLookupFallback: when the target's name cannot be resolved,
// the last address found is used.
func TestLineQualityLookupFallback(t *testing.T) {
	r := startLQResponder(t)
	dns := startDNSServer(t, nil) // NXDOMAIN for everything
	p := testLQ(t, "echo.hubmon.test:9471", 200*time.Millisecond, nil)
	p.resolver = testResolver(dns.addr)
	p.cached = netip.MustParseAddrPort(r.addr)
	lq := probeLQ(t, p)
	if lq.Sent == 0 || lq.Received != lq.Sent || lq.Target != "echo.hubmon.test:9471" {
		t.Errorf("sent %d received %d target %q", lq.Sent, lq.Received, lq.Target)
	}
	if dns.queries.Load() == 0 {
		t.Error("the DNS stub was not asked")
	}
	if p.cached != netip.MustParseAddrPort(r.addr) {
		t.Errorf("cached %v after a failed lookup", p.cached)
	}
}

// TestLineQualityLookup: a name is resolved (through the stub), and a known
// address is used at once while the lookup that refreshes it runs: a lookup
// that never returns costs the run nothing.
func TestLineQualityLookup(t *testing.T) {
	r := startLQResponder(t)
	ap := netip.MustParseAddrPort(r.addr)
	dns := startDNSServer(t, map[string][]net.IP{"echo.hubmon.test.": {net.IPv4(127, 0, 0, 1)}})

	p := testLQ(t, net.JoinHostPort("echo.hubmon.test", strconv.Itoa(int(ap.Port()))), 200*time.Millisecond, nil)
	p.resolver = testResolver(dns.addr)
	if lq := probeLQ(t, p); lq.Sent == 0 || lq.Received != lq.Sent {
		t.Errorf("resolved: sent %d received %d", lq.Sent, lq.Received)
	}
	if p.cached != ap {
		t.Errorf("cached %v, want %v", p.cached, ap)
	}

	// The DNS server stops answering ("slow." names get no reply).
	p = testLQ(t, "slow.hubmon.test:9471", 300*time.Millisecond, nil)
	p.resolver = testResolver(dns.addr)
	p.cached = ap
	start := time.Now()
	lq := probeLQ(t, p)
	if took := time.Since(start); took > 300*time.Millisecond+250*time.Millisecond+200*time.Millisecond {
		t.Errorf("run took %v: it waited for the lookup", took)
	}
	if lq.Sent < 5 || lq.Received != lq.Sent {
		t.Errorf("slow DNS: sent %d received %d; want the known address used from the start", lq.Sent, lq.Received)
	}
}

// TestLineQualityBackToBack: back-to-back runs start at once and keep one
// steady stream: no run takes longer than Period + Timeout (and a little), and
// probes are never closer than SendInterval, across runs too.
func TestLineQualityBackToBack(t *testing.T) {
	const (
		interval = 450 * time.Millisecond
		timeout  = 50 * time.Millisecond
		// Not a multiple of the interval: the cadence carried over falls
		// inside the next run's period, and waiting for it before starting
		// the period (350 ms here) would take more than the slack.
		period = 1000 * time.Millisecond
		slack  = 150 * time.Millisecond
	)
	r := startLQResponder(t)
	var mu sync.Mutex
	var arrivals []time.Time
	r.setRule(func(int) (int, time.Duration) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		return 0, 0 // every probe lost: each run waits out its last one's timeout
	})
	p := NewLineQuality(LineQualityConfig{UDPTarget: r.addr, SendInterval: interval, Timeout: timeout, Period: period, NoGatewayCheck: true}).(*lineQuality)
	gw := &gatewayStub{cause: wire.CauseWAN}
	p.checkGateway = gw.check
	for i := range 3 {
		start := time.Now()
		lq := probeLQ(t, p)
		took := time.Since(start)
		if took > period+timeout+slack {
			t.Errorf("run %d took %v, more than period + timeout + %v", i, took, slack)
		}
		if took < period || lq.IntervalSeconds < period.Seconds() || lq.IntervalSeconds > took.Seconds() {
			t.Errorf("run %d took %v, interval %.3fs; want at least the period", i, took, lq.IntervalSeconds)
		}
		if lq.Sent < 2 || lq.Sent > 3 {
			t.Errorf("run %d sent %d, want 2 or 3", i, lq.Sent)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) < 5 {
		t.Fatalf("%d probes in 3 runs", len(arrivals))
	}
	for i := 1; i < len(arrivals); i++ {
		gap := arrivals[i].Sub(arrivals[i-1])
		if gap < interval-20*time.Millisecond || gap > interval+timeout+slack {
			t.Errorf("gap %d: %v; want about the send interval %v", i, gap, interval)
		}
	}
}

// TestLineQualityUnderLoad: probes sent while Busy reports the agent's own
// load are counted apart: out of sent, received, the RTT figures and the loss
// runs (a lost one neither starts nor extends a disconnection), while an
// answered one ends a disconnection.
func TestLineQualityUnderLoad(t *testing.T) {
	r := startLQResponder(t)
	var busy, drop atomic.Bool
	r.setRule(func(int) (int, time.Duration) {
		if drop.Load() {
			return 0, 0
		}
		return 1, 0
	})
	gw := &gatewayStub{cause: wire.CauseWAN}
	p := testLQ(t, r.addr, 300*time.Millisecond, gw)
	p.busy = busy.Load

	type want struct {
		loadedLost, loadedAnswered, idleLost, idleAnswered bool
		since, ended                                       bool
	}
	check := func(step string, lq *wire.LineQuality, w want) {
		t.Helper()
		if (lq.SentUnderLoad > 0) != (w.loadedLost || w.loadedAnswered) || (lq.ReceivedUnderLoad > 0) != w.loadedAnswered ||
			(w.loadedAnswered && lq.ReceivedUnderLoad != lq.SentUnderLoad) || (w.loadedLost && lq.ReceivedUnderLoad != 0) {
			t.Errorf("%s: under load sent %d received %d", step, lq.SentUnderLoad, lq.ReceivedUnderLoad)
		}
		if (lq.Sent > 0) != (w.idleLost || w.idleAnswered) || (lq.Received > 0) != w.idleAnswered {
			t.Errorf("%s: sent %d received %d", step, lq.Sent, lq.Received)
		}
		if (lq.RTTP50Seconds != nil) != w.idleAnswered {
			t.Errorf("%s: p50 %v", step, lq.RTTP50Seconds)
		}
		if (lq.OutageSince != nil) != w.since || (len(lq.Outages) == 1) != w.ended {
			t.Errorf("%s: since %v outages %+v", step, lq.OutageSince, lq.Outages)
		}
	}

	busy.Store(true)
	drop.Store(true)
	check("lost under load", probeLQ(t, p), want{loadedLost: true})
	if gw.calls.Load() != 0 {
		t.Fatalf("losses under load started a disconnection (%d gateway checks)", gw.calls.Load())
	}

	busy.Store(false)
	idle := probeLQ(t, p)
	check("lost, idle", idle, want{idleLost: true, since: true})

	busy.Store(true)
	loaded := probeLQ(t, p)
	check("lost under load, during the outage", loaded, want{loadedLost: true, since: true})
	if loaded.OutageSince == nil || loaded.OutageSince.Sub(*idle.OutageSince).Abs() > 10*time.Millisecond {
		t.Errorf("outage since %v, was %v", loaded.OutageSince, idle.OutageSince)
	}

	drop.Store(false)
	back := probeLQ(t, p)
	check("answered under load", back, want{loadedAnswered: true, ended: true})
	if len(back.Outages) == 1 && back.Outages[0].LostProbes != idle.Sent {
		t.Errorf("outage of %d lost probes, want the %d lost while idle", back.Outages[0].LostProbes, idle.Sent)
	}
	if gw.calls.Load() != 1 {
		t.Errorf("gateway checked %d times, want once", gw.calls.Load())
	}

	busy.Store(false)
	check("idle again", probeLQ(t, p), want{idleAnswered: true})
}

// TestLineQualityGatewayConfig: the gateway check reads cfg.RouteFile and
// cfg.IPv6RouteFile; with no default route there it reports "lan" without
// dialling anything. NoGatewayCheck reads and dials nothing: "unknown".
func TestLineQualityGatewayConfig(t *testing.T) {
	noDefault := routeFile(t, "eth0 192.0.2.0 0.0.0.0 0001 100 255.255.255.0")
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name string
		cfg  LineQualityConfig
		want string
	}{
		{"route files", LineQualityConfig{RouteFile: noDefault, IPv6RouteFile: missing}, wire.CauseLAN},
		{"no gateway check", LineQualityConfig{RouteFile: noDefault, IPv6RouteFile: missing, NoGatewayCheck: true}, wire.CauseUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startLQResponder(t)
			r.setRule(func(n int) (int, time.Duration) {
				if n >= 3 && n < 8 {
					return 0, 0
				}
				return 1, 0
			})
			cfg := tc.cfg
			cfg.UDPTarget, cfg.SendInterval, cfg.Timeout, cfg.Period = r.addr, 20*time.Millisecond, 100*time.Millisecond, 400*time.Millisecond
			p := NewLineQuality(cfg).(*lineQuality)
			if (p.observeGateway == nil) != cfg.NoGatewayCheck {
				t.Errorf("observeGateway set: %v", p.observeGateway != nil)
			}
			lq := probeLQ(t, p)
			if len(lq.Outages) != 1 || lq.Outages[0].Cause != tc.want {
				t.Errorf("outages %+v, want one with cause %q", lq.Outages, tc.want)
			}
		})
	}
}

// TestLineQualityManyOutages: a summary lists the first 64 outages, counts
// the others and sums the durations of all.
func TestLineQualityManyOutages(t *testing.T) {
	p := testLQ(t, "127.0.0.1:9", time.Second, nil)
	done := &lqCheck{done: make(chan struct{}), cause: wire.CauseWAN}
	close(done.done)
	base := time.Now()
	var tally lqTally
	var want float64
	for i := range 70 {
		start := base.Add(time.Duration(i) * time.Second)
		d := time.Duration(i+1) * 10 * time.Millisecond
		tally.ended = append(tally.ended, lqEnded{start: start, end: start.Add(d), lost: 2, check: done})
		want += d.Seconds()
	}
	tally.sent, tally.received = 300, 160
	lq := &wire.LineQuality{Method: "udp", Target: "127.0.0.1:9"}
	p.summarise(context.Background(), lq, tally, time.Now().Add(time.Second))
	if len(lq.Outages) != 64 || lq.OutagesDropped != 6 {
		t.Errorf("%d outages listed, %d dropped; want 64 and 6", len(lq.Outages), lq.OutagesDropped)
	}
	if lq.OutageSecondsTotal == nil || math.Abs(*lq.OutageSecondsTotal-want) > 1e-9 {
		t.Errorf("outage seconds total %v, want %v", secs(lq.OutageSecondsTotal), want)
	}
	checkLQWire(t, Result{Kind: wire.KindLineQuality, LineQuality: lq}, nil)

	// No outages: a total of 0, not absent.
	lq = &wire.LineQuality{Method: "udp", Target: "127.0.0.1:9"}
	p.summarise(context.Background(), lq, lqTally{sent: 3, received: 3}, time.Now())
	if lq.OutageSecondsTotal == nil || *lq.OutageSecondsTotal != 0 || lq.OutagesDropped != 0 {
		t.Errorf("total %v dropped %d, want 0 and 0", secs(lq.OutageSecondsTotal), lq.OutagesDropped)
	}
}

// TestLineQualitySummaryDeadline: a gateway check that has not finished by
// the run's deadline is not waited for: its outage reads "unknown".
func TestLineQualitySummaryDeadline(t *testing.T) {
	p := testLQ(t, "127.0.0.1:9", time.Second, nil)
	hung := &lqCheck{done: make(chan struct{}), cause: wire.CauseUnknown}
	done := &lqCheck{done: make(chan struct{}), cause: wire.CauseLAN}
	close(done.done)
	now := time.Now()
	tally := lqTally{sent: 10, received: 5, ended: []lqEnded{
		{start: now.Add(-2 * time.Second), end: now.Add(-time.Second), lost: 3, check: hung},
		{start: now.Add(-900 * time.Millisecond), end: now.Add(-500 * time.Millisecond), lost: 2, check: done},
	}}
	lq := &wire.LineQuality{Method: "udp", Target: "127.0.0.1:9"}
	start := time.Now()
	p.summarise(context.Background(), lq, tally, start.Add(100*time.Millisecond))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("summarise took %v, past its deadline", took)
	}
	if len(lq.Outages) != 2 || lq.Outages[0].Cause != wire.CauseUnknown || lq.Outages[1].Cause != wire.CauseLAN {
		t.Errorf("outages %+v; want unknown (not waited for) then lan", lq.Outages)
	}
}

func TestLQRTTStats(t *testing.T) {
	const ms = time.Millisecond
	cases := []struct {
		name               string
		rtts               []time.Duration
		min, p50, p95, max time.Duration
		jitter             time.Duration // -1: absent
	}{
		{"one", []time.Duration{7 * ms}, 7 * ms, 7 * ms, 7 * ms, 7 * ms, -1},
		{"two", []time.Duration{10 * ms, 30 * ms}, 10 * ms, 10 * ms, 30 * ms, 30 * ms, 20 * ms},
		// |10-40| + |30-10| + |20-30| = 60, over 3.
		{"four", []time.Duration{40 * ms, 10 * ms, 30 * ms, 20 * ms}, 10 * ms, 20 * ms, 40 * ms, 40 * ms, 20 * ms},
		// 1..19 then 100: 18 x 1 + 81, over 19; p95 is the 19th of 20.
		{"twenty", []time.Duration{1 * ms, 2 * ms, 3 * ms, 4 * ms, 5 * ms, 6 * ms, 7 * ms, 8 * ms, 9 * ms, 10 * ms,
			11 * ms, 12 * ms, 13 * ms, 14 * ms, 15 * ms, 16 * ms, 17 * ms, 18 * ms, 19 * ms, 100 * ms},
			1 * ms, 10 * ms, 19 * ms, 100 * ms, time.Duration(math.Round(float64(99*ms) / 19))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := lqStats{min: tc.min, p50: tc.p50, p95: tc.p95, max: tc.max, jitter: tc.jitter}
			if got := lqRTTStats(tc.rtts); got == nil || *got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
	if lqRTTStats(nil) != nil {
		t.Error("no RTTs: want nil")
	}
}
