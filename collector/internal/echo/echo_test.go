package echo

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// testServer is a Server answering on a UDP port of 127.0.0.1.
type testServer struct {
	*Server
	addr     *net.UDPAddr
	serveErr chan error
}

func startServer(tb testing.TB, opts Options, now func() time.Time) *testServer {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := New(opts)
	if now != nil {
		s.now = now
	}
	ts := &testServer{Server: s, addr: pc.LocalAddr().(*net.UDPAddr), serveErr: make(chan error, 1)}
	go func() { ts.serveErr <- s.Serve(pc) }()
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		if err := <-ts.serveErr; err != nil {
			tb.Errorf("Serve after Close: %v", err)
		}
	})
	return ts
}

// waitCounts waits for the counters to reach answered and dropped: a reply
// can reach the client just before the server counts it.
func (ts *testServer) waitCounts(tb testing.TB, answered, dropped int64) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		a, d := ts.Answered(), ts.Dropped()
		if a == answered && d == dropped {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("answered %d dropped %d, want %d and %d", a, d, answered, dropped)
		}
		time.Sleep(time.Millisecond)
	}
}

// client is a UDP socket on 127.0.0.1 talking to one server.
type client struct {
	tb   testing.TB
	conn *net.UDPConn
	to   *net.UDPAddr
}

func newClient(tb testing.TB, to *net.UDPAddr) *client {
	tb.Helper()
	return newClientFrom(tb, net.IPv4(127, 0, 0, 1), to)
}

// newClientFrom sends from the local address from (any of 127.0.0.0/8 on Linux).
func newClientFrom(tb testing.TB, from net.IP, to *net.UDPAddr) *client {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: from})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return &client{tb: tb, conn: c, to: to}
}

func (c *client) send(b []byte) {
	c.tb.Helper()
	if _, err := c.conn.WriteToUDP(b, c.to); err != nil {
		c.tb.Fatal(err)
	}
}

// recv returns the next datagram, failing the test after a generous deadline.
func (c *client) recv() []byte {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		c.tb.Fatalf("no reply: %v", err)
	}
	if from.Port != c.to.Port {
		c.tb.Fatalf("reply from %v, want %v", from, c.to)
	}
	return buf[:n]
}

func request(data string) []byte { return []byte(RequestPrefix + data) }
func reply(data string) []byte   { return []byte(ReplyPrefix + data) }

// burstAtOnce lets a new source use a full burst at once, for tests that
// send requests back to back (an agent sends one every 1.5 s).
var burstAtOnce = Options{NewSourceTokens: DefaultBurst}

func TestRoundTrip(t *testing.T) {
	ts := startServer(t, burstAtOnce, nil)
	c := newClient(t, ts.addr)
	for _, data := range []string{"", "x", "\x00\x01\x02\xff seq 42", string(bytes.Repeat([]byte{0xAB}, MaxDataBytes))} {
		c.send(request(data))
		got := c.recv()
		if !bytes.Equal(got, reply(data)) {
			t.Errorf("reply to %q = %q, want %q", request(data), got, reply(data))
		}
		if len(got) != len(request(data)) {
			t.Errorf("reply is %d bytes, request %d", len(got), len(request(data)))
		}
	}
	ts.waitCounts(t, 4, 0)
}

// TestIgnored sends datagrams that must get no answer, each followed by a
// valid request: the first datagram back must be the valid request's reply
// (loopback keeps order), so no waiting for a silence is needed.
func TestIgnored(t *testing.T) {
	cases := []struct {
		name string
		dg   []byte
	}{
		{"empty", []byte{}},
		{"garbage", []byte("GET / HTTP/1.0\r\n\r\n")},
		{"prefix without space", []byte("HUBMON-ECHO1")},
		{"lower case", []byte("hubmon-echo1 abc")},
		{"a reply", reply("abc")},
		{"other version", []byte("HUBMON-ECHO2 abc")},
		{"oversize by one", request(string(bytes.Repeat([]byte("z"), MaxDataBytes+1)))},
		{"oversize", request(string(bytes.Repeat([]byte("z"), 1400)))},
	}
	ts := startServer(t, burstAtOnce, nil)
	c := newClient(t, ts.addr)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.dg)
			c.send(request(tc.name))
			if got := c.recv(); !bytes.Equal(got, reply(tc.name)) {
				t.Errorf("got %q, want only the reply %q", got, reply(tc.name))
			}
			if got := ts.Ignored(); got != int64(i+1) {
				t.Errorf("Ignored = %d, want %d", got, i+1)
			}
		})
	}
	ts.waitCounts(t, int64(len(cases)), 0)
}

// TestLowSourcePort: requests from ports below 1024 get no answer (tested on
// handle, so the test needs no privilege to bind such a port).
func TestLowSourcePort(t *testing.T) {
	s := New(Options{})
	for _, port := range []int{0, 7, 53, 123, 1023} {
		s.handle(nil, request("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	}
	if s.Ignored() != 5 || s.Answered() != 0 || s.Dropped() != 0 {
		t.Errorf("ignored %d answered %d dropped %d, want 5 0 0", s.Ignored(), s.Answered(), s.Dropped())
	}
}

func TestRateLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	ts := startServer(t, Options{RatePerSecond: 10, Burst: 5}, clock)
	c := newClient(t, ts.addr)
	other := newClientFrom(t, net.IPv4(127, 0, 0, 2), ts.addr) // another source address

	// A new source starts with NewSourceTokens (2): 2 answered, 1 dropped.
	for i := range 3 {
		c.send(request(string(rune('0' + i))))
	}
	for i := range 2 {
		if got, want := c.recv(), reply(string(rune('0'+i))); !bytes.Equal(got, want) {
			t.Fatalf("new source, reply %d = %q, want %q", i, got, want)
		}
	}
	other.send(request("warm"))
	if got := other.recv(); !bytes.Equal(got, reply("warm")) {
		t.Fatalf("other source: got %q", got)
	}
	ts.waitCounts(t, 3, 1)
	advance(time.Second) // both buckets fill up to the burst
	ts.waitCounts(t, 3, 1)

	// The clock stands still: a burst of 5 is answered, the rest dropped.
	for i := range 12 {
		c.send(request(string(rune('a' + i))))
	}
	for i := range 5 {
		if got, want := c.recv(), reply(string(rune('a'+i))); !bytes.Equal(got, want) {
			t.Fatalf("reply %d = %q, want %q", i, got, want)
		}
	}
	// Another source has its own bucket; its reply also proves the server
	// has handled (and dropped) the first source's 7 extra requests.
	other.send(request("other"))
	if got := other.recv(); !bytes.Equal(got, reply("other")) {
		t.Fatalf("other source: got %q", got)
	}
	ts.waitCounts(t, 9, 8)

	// 0.3 s at 10/s refills 3 tokens.
	advance(300 * time.Millisecond)
	for i := range 5 {
		c.send(request(string(rune('A' + i))))
	}
	for i := range 3 {
		if got, want := c.recv(), reply(string(rune('A'+i))); !bytes.Equal(got, want) {
			t.Fatalf("after refill, reply %d = %q, want %q", i, got, want)
		}
	}
	other.send(request("other2"))
	if got := other.recv(); !bytes.Equal(got, reply("other2")) {
		t.Fatalf("other source: got %q", got)
	}
	ts.waitCounts(t, 13, 10)
	if ts.DroppedGlobal() != 0 {
		t.Errorf("DroppedGlobal = %d, want 0", ts.DroppedGlobal())
	}
}

// TestGlobalCap: over the global cap nothing is answered, whatever the
// source; the drops are counted apart.
func TestGlobalCap(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	ts := startServer(t, Options{GlobalRatePerSecond: 10, GlobalBurst: 3}, clock)
	var clients []*client
	for i := range 5 {
		clients = append(clients, newClientFrom(t, net.IPv4(127, 0, 0, byte(1+i)), ts.addr))
	}
	// Five sources, one request each, each sent after the previous one was
	// answered or counted: the first three are answered, the cap refuses
	// the others.
	for i, c := range clients {
		c.send(request("x"))
		if i < 3 {
			if got := c.recv(); !bytes.Equal(got, reply("x")) {
				t.Fatalf("source %d: got %q", i, got)
			}
		} else {
			ts.waitCounts(t, 3, int64(i-2))
		}
	}
	if ts.DroppedGlobal() != 2 || ts.Sources() != 3 {
		t.Errorf("DroppedGlobal %d, sources %d; want 2 and 3 (refused requests do not enter the table)", ts.DroppedGlobal(), ts.Sources())
	}
	// 0.1 s at 10/s: one more.
	advance(100 * time.Millisecond)
	clients[4].send(request("y"))
	if got := clients[4].recv(); !bytes.Equal(got, reply("y")) {
		t.Fatalf("after refill: got %q", got)
	}
	ts.waitCounts(t, 4, 2)
}

// testLimiter is a limiter with o's options over the defaults.
func testLimiter(o Options) *limiter { return newLimiter(o.withDefaults()) }

func TestLimiterBoundedTable(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	l := testLimiter(Options{RatePerSecond: 1, Burst: 2, MaxSources: 3, NewSourceTokens: 1})
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	// a new source has one token; a second after, its bucket is full (2).
	if l.allow(a("192.0.2.1"), now) != allowed || l.allow(a("192.0.2.1"), now) != deniedSource {
		t.Fatal("new source: want one token")
	}
	now = now.Add(2 * time.Second)
	for range 2 {
		if l.allow(a("192.0.2.1"), now) != allowed {
			t.Fatal("burst refused")
		}
	}
	if l.allow(a("192.0.2.1"), now) != deniedSource {
		t.Fatal("over burst allowed")
	}
	// A flood of other sources never grows the table past 3 ...
	for i := range 100 {
		l.allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), now)
		if l.len() > 3 {
			t.Fatalf("table grew to %d", l.len())
		}
	}
	// ... and the least recently seen (192.0.2.1) was forgotten: it starts
	// again with NewSourceTokens (1), not a full bucket.
	if l.allow(a("192.0.2.1"), now) != allowed || l.allow(a("192.0.2.1"), now) != deniedSource {
		t.Error("evicted source should start again with one token")
	}
	// The most recently seen are kept: 198.51.100.99 has used its token.
	if l.allow(a("198.51.100.99"), now) != deniedSource {
		t.Error("recent source's bucket not kept")
	}
}

// TestReviewEvictionDefeatsRateLimit is the reviewer's attack: a victim's
// address forged between floods of 10,000 other forged addresses, which
// used to flush it out of the table and bring it back with a full bucket.
func TestReviewEvictionDefeatsRateLimit(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	l := testLimiter(Options{RatePerSecond: 20, Burst: 40, MaxSources: 10_000})
	victim := netip.MustParseAddr("198.51.100.7")
	got := 0
	for round := range 200 {
		if l.allow(victim, now) == allowed {
			got++
		}
		for i := range 10_000 {
			l.allow(netip.AddrFrom4([4]byte{10, byte(round), byte(i >> 8), byte(i)}), now)
		}
	}
	if got > 40 {
		t.Errorf("victim got %d replies; bucket holds 40", got)
	}
}

// TestEvictionGainsLittle: with the global cap out of the way, each time the
// victim is flushed out and comes back it gains NewSourceTokens replies, not
// a burst.
func TestEvictionGainsLittle(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	const rounds, perRound = 50, 5
	l := testLimiter(Options{RatePerSecond: 20, Burst: 40, MaxSources: 1000, NewSourceTokens: 2, GlobalRatePerSecond: 1e9, GlobalBurst: 1e9})
	victim := netip.MustParseAddr("198.51.100.7")
	got := 0
	for round := range rounds {
		for range perRound {
			if l.allow(victim, now) == allowed {
				got++
			}
		}
		for i := range 1000 {
			l.allow(netip.AddrFrom4([4]byte{10, byte(round), byte(i >> 8), byte(i)}), now)
		}
	}
	if got != rounds*2 {
		t.Errorf("victim got %d replies in %d rounds; want 2 a round", got, rounds)
	}
}

// TestGlobalBucket: the global bucket caps all sources together, refills at
// its rate, and a request it refuses does not enter the table.
func TestGlobalBucket(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	l := testLimiter(Options{})
	src := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	count := func(from, to int) (ok, global int) {
		for i := from; i < to; i++ {
			switch l.allow(src(i), now) {
			case allowed:
				ok++
			case deniedGlobal:
				global++
			}
		}
		return ok, global
	}
	if ok, global := count(0, 5000); ok != DefaultGlobalBurst || global != 5000-DefaultGlobalBurst {
		t.Errorf("burst: %d allowed, %d refused globally; want %d and %d", ok, global, DefaultGlobalBurst, 5000-DefaultGlobalBurst)
	}
	if l.len() != DefaultGlobalBurst {
		t.Errorf("table holds %d sources, want %d", l.len(), DefaultGlobalBurst)
	}
	now = now.Add(100 * time.Millisecond) // 200 tokens at 2,000/s
	if ok, _ := count(5000, 6000); ok != 200 {
		t.Errorf("after 0.1 s: %d allowed, want 200", ok)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Logger == nil || o.RatePerSecond != 20 || o.Burst != 40 || o.MaxSources != 10_000 || o.NewSourceTokens != 2 ||
		o.GlobalRatePerSecond != 2000 || o.GlobalBurst != 4000 {
		t.Errorf("defaults %+v", o)
	}
	if o := (Options{Burst: 1, NewSourceTokens: 5}).withDefaults(); o.NewSourceTokens != 1 {
		t.Errorf("new-source tokens %d, want capped at the burst (1)", o.NewSourceTokens)
	}
}

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"},
		{"2001:db8:1:2::1", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
	} {
		if got := sourceKey(netip.MustParseAddr(tc.in)); got != netip.MustParseAddr(tc.want) {
			t.Errorf("sourceKey(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestClose(t *testing.T) {
	s := New(Options{})
	var pcs []net.PacketConn
	errc := make(chan error, 2)
	for range 2 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		go func() { errc <- s.Serve(pc) }()
	}
	// Both serve before Close.
	for _, pc := range pcs {
		c := newClient(t, pc.LocalAddr().(*net.UDPAddr))
		c.send(request("up"))
		c.recv()
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve after Close = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after Close")
		}
	}
	for _, pc := range pcs {
		if _, _, err := pc.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("packet conn not closed: %v", err)
		}
	}
	// Serve after Close returns nil at once and closes its conn.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(pc); err != nil {
		t.Errorf("Serve after Close = %v", err)
	}
	if _, _, err := pc.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("packet conn not closed: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
