package probe

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a real DNS server on 127.0.0.1 (UDP): it answers A queries for
// the names in a (AAAA with no records), NXDOMAIN for others, and nothing at
// all for names starting with "slow.", announcing each such query on slow.
type dnsServer struct {
	addr    string
	a       map[string][]net.IP // fully qualified lower-case name -> IPv4s
	slow    chan string         // names of unanswered queries, when not full
	queries atomic.Int64
}

func startDNSServer(tb testing.TB, a map[string][]net.IP) *dnsServer {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &dnsServer{addr: pc.LocalAddr().String(), a: a, slow: make(chan string, 16)}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			if reply := s.answer(buf[:n]); reply != nil {
				_, _ = pc.WriteTo(reply, from)
			}
		}
	})
	tb.Cleanup(func() {
		_ = pc.Close()
		wg.Wait()
	})
	return s
}

func (s *dnsServer) answer(req []byte) []byte {
	s.queries.Add(1)
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(q.Name.String())
	if strings.HasPrefix(name, "slow.") {
		select {
		case s.slow <- name:
		default:
		}
		return nil
	}
	ips, known := s.a[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil
	}
	if err := b.Question(q); err != nil {
		return nil
	}
	if err := b.StartAnswers(); err != nil {
		return nil
	}
	if known && q.Type == dnsmessage.TypeA {
		for _, ip := range ips {
			var a dnsmessage.AResource
			copy(a.A[:], ip.To4())
			if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, a); err != nil {
				return nil
			}
		}
	}
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}

// closedUDPPort returns 127.0.0.1:port where nothing listens for UDP.
func closedUDPPort(tb testing.TB) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	return addr
}

// closedTCPPort returns 127.0.0.1:port where nothing listens for TCP.
func closedTCPPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// optSeconds prints an optional figure.
func optSeconds(v *float64) string {
	if v == nil {
		return "nil"
	}
	return strconv.FormatFloat(*v, 'g', 4, 64)
}

// checkKindWire checks that a DNS, HTTP or Wi-Fi result makes a valid wire
// measurement (limits, consistency of success and error).
func checkKindWire(tb testing.TB, res Result, err error) {
	tb.Helper()
	m := wire.Measurement{
		Version: wire.Version, MessageID: "MSG-0000001", Site: "test-site", AgentID: "AGENT-0001",
		Seq: 1, Probe: "local", Kind: res.Kind, MeasuredAt: time.Now().UTC(), DurationSeconds: 1,
		Success: err == nil, DNS: res.DNS, HTTP: res.HTTP, WiFi: res.WiFi,
	}
	if err != nil {
		m.Error = err.Error()
	}
	if verr := m.Validate("test-site", time.Now()); verr != nil {
		tb.Errorf("result is not a valid measurement: %v", verr)
	}
}

func testZone() map[string][]net.IP {
	return map[string][]net.IP{
		"www.gov.uk.": {net.IPv4(192, 0, 2, 1), net.IPv4(192, 0, 2, 2)},
		"nhs.uk.":     {net.IPv4(192, 0, 2, 3)},
	}
}

func TestDNS(t *testing.T) {
	srv := startDNSServer(t, testZone())
	refused := closedUDPPort(t)

	type want struct {
		success   bool
		addresses int
		errText   string // a substring of the result's error
		timed     bool   // resolve_seconds present
	}
	tests := []struct {
		name      string
		cfg       DNSConfig
		want      []want
		probeErr  string
		maxTakes  time.Duration
		wantSlowQ bool
	}{
		{
			name: "answers",
			cfg:  DNSConfig{Names: []string{"www.gov.uk", "nhs.uk."}, Resolvers: []string{srv.addr}},
			want: []want{{success: true, addresses: 2, timed: true}, {success: true, addresses: 1, timed: true}},
		},
		{
			name:     "nxdomain",
			cfg:      DNSConfig{Names: []string{"www.gov.uk", "no-such-name.example"}, Resolvers: []string{srv.addr}},
			want:     []want{{success: true, addresses: 2, timed: true}, {errText: "NXDOMAIN", timed: true}},
			probeErr: "1 of 2 lookups failed: " + srv.addr + " no-such-name.example: NXDOMAIN",
		},
		{
			name:      "timeout",
			cfg:       DNSConfig{Names: []string{"slow.gov.uk", "nhs.uk"}, Resolvers: []string{srv.addr}, Timeout: 300 * time.Millisecond},
			want:      []want{{errText: "timeout after 300ms"}, {success: true, addresses: 1, timed: true}},
			probeErr:  "1 of 2 lookups failed: " + srv.addr + " slow.gov.uk: timeout after 300ms",
			maxTakes:  3 * time.Second,
			wantSlowQ: true,
		},
		{
			name:     "refused",
			cfg:      DNSConfig{Names: []string{"nhs.uk"}, Resolvers: []string{refused}, Timeout: 3 * time.Second},
			want:     []want{{errText: "refused", timed: true}},
			probeErr: "1 of 1 lookups failed: " + refused + " nhs.uk: refused",
		},
		{
			name: "system and named resolvers",
			cfg:  DNSConfig{Names: []string{"localhost"}, Resolvers: []string{"system", srv.addr}},
			// The system resolver finds localhost in /etc/hosts (one or two
			// addresses); the named one asks the server, which does not know it.
			want:     []want{{success: true, addresses: -1, timed: true}, {errText: "NXDOMAIN", timed: true}},
			probeErr: "1 of 2 lookups failed: " + srv.addr + " localhost: NXDOMAIN",
		},
		{
			name:     "bad resolver address",
			cfg:      DNSConfig{Names: []string{"nhs.uk"}, Resolvers: []string{"dns.example:53", "300.1.1.1"}},
			want:     []want{{errText: "host must be an IP address"}, {errText: "want host:port or an IP address"}},
			probeErr: "2 of 2 lookups failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := NewDNS(tt.cfg).Probe(t.Context())
			took := time.Since(start)
			checkKindWire(t, res, err)
			if tt.maxTakes > 0 && took > tt.maxTakes {
				t.Errorf("took %s, want at most %s", took, tt.maxTakes)
			}
			switch {
			case tt.probeErr == "" && err != nil:
				t.Errorf("Probe error %q, want none", err)
			case tt.probeErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.probeErr)):
				t.Errorf("Probe error %v, want it to start with %q", err, tt.probeErr)
			}
			if res.Kind != wire.KindDNS || res.DNS == nil {
				t.Fatalf("result kind %q, dns %v", res.Kind, res.DNS)
			}
			resolvers := tt.cfg.Resolvers
			if len(res.DNS.Results) != len(tt.want) {
				t.Fatalf("%d results, want %d: %+v", len(res.DNS.Results), len(tt.want), res.DNS.Results)
			}
			for i, got := range res.DNS.Results {
				w := tt.want[i]
				if wantRes, wantName := resolvers[i/len(tt.cfg.Names)], tt.cfg.Names[i%len(tt.cfg.Names)]; got.Resolver != wantRes || got.Name != wantName {
					t.Errorf("result %d is %s %s, want %s %s", i, got.Resolver, got.Name, wantRes, wantName)
				}
				if w.addresses < 0 && got.Addresses > 0 {
					w.addresses = got.Addresses // any number will do
				}
				if got.Success != w.success || got.Addresses != w.addresses || !strings.Contains(got.Error, w.errText) ||
					(got.ResolveSeconds != nil) != w.timed {
					t.Errorf("result %d = %+v (resolve_seconds %s), want %+v", i, got, optSeconds(got.ResolveSeconds), w)
				}
				if got.ResolveSeconds != nil && (*got.ResolveSeconds <= 0 || *got.ResolveSeconds > took.Seconds()) {
					t.Errorf("result %d: resolve_seconds %g outside (0, %g]", i, *got.ResolveSeconds, took.Seconds())
				}
			}
			if tt.wantSlowQ {
				select {
				case <-srv.slow:
				default:
					t.Error("the server never saw the slow query")
				}
			}
		})
	}
}

func TestDNSCancel(t *testing.T) {
	srv := startDNSServer(t, testZone())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	names := []string{"slow.a.example", "slow.b.example", "slow.c.example", "slow.d.example", "slow.e.example", "slow.f.example"}
	p := NewDNS(DNSConfig{Names: names, Resolvers: []string{srv.addr}, Timeout: time.Minute})
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
	case <-srv.slow: // a lookup is in flight
	case <-time.After(10 * time.Second):
		t.Fatal("no query reached the server")
	}
	cancel()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Probe did not return after cancel")
	}
	checkKindWire(t, o.res, o.err)
	if !errors.Is(o.err, context.Canceled) || !strings.HasPrefix(o.err.Error(), "6 of 6 lookups failed: ") {
		t.Errorf("error %v, want 6 of 6 failed, wrapping context.Canceled", o.err)
	}
	for _, r := range o.res.DNS.Results {
		if r.Success || r.Error != "cancelled" || r.ResolveSeconds != nil {
			t.Errorf("result %+v, want cancelled without a time", r)
		}
	}
}

func TestDNSConfigErrors(t *testing.T) {
	many := make([]string, 33)
	for i := range many {
		many[i] = "n" + strings.Repeat("x", i) + ".example"
	}
	for _, tt := range []struct {
		name string
		cfg  DNSConfig
		want string
	}{
		{"no names", DNSConfig{}, "no names to resolve"},
		{"too many", DNSConfig{Names: many, Resolvers: []string{"system", "127.0.0.1:53"}}, "2 resolvers x 33 names make 66 lookups, more than the 64 a measurement holds"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := NewDNS(tt.cfg).Probe(t.Context())
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if res.Kind != wire.KindDNS || res.DNS != nil {
				t.Errorf("result %+v, want kind dns and no figures", res)
			}
		})
	}
}

func TestCheckErrorsMessage(t *testing.T) {
	var errs []error
	for _, s := range []string{"a", "b", "c", "d", "e", "f"} {
		errs = append(errs, &checkError{subject: s, text: "boom", err: context.Canceled})
	}
	errs = append(errs, nil, nil)
	err := joinCheckErrors("lookups", 8, errs)
	want := "6 of 8 lookups failed: a: boom; b: boom; c: boom; d: boom; and 2 more"
	if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want %q wrapping context.Canceled", err, want)
	}
	if err := joinCheckErrors("lookups", 2, []error{nil, nil}); err != nil {
		t.Errorf("no failures gave %v", err)
	}
	long := strings.Repeat("é", 600)
	if c := clipCheckError(long); len(c) > maxCheckErrorLen || !strings.HasSuffix(c, "é...") {
		t.Errorf("clipped to %d bytes ending %q", len(c), c[len(c)-5:])
	}
}
