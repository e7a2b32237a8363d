// Package echo is the hubmon UDP echo responder: it answers the small probes
// that hubmon-agent's line-quality prober sends every second or two to
// measure latency, jitter, loss and outages.
//
// # Protocol (version 1)
//
// A request is one UDP datagram: the 13 ASCII bytes "HUBMON-ECHO1 " (with a
// trailing space, 0x20) followed by 0 to 64 bytes of opaque client data (the
// agent sends a random nonce and a sequence number). The reply is the same
// datagram with its 13th byte, the space, changed to 'R' (0x52):
// "HUBMON-ECHO1R" followed by the client data unchanged, sent from the port
// the request came to, back to the address and port it came from. (On a
// wildcard listen address of a host with several addresses the kernel picks
// the reply's source address; the agent checks the port and its own nonce,
// not the address.)
//
//	request: 48 55 42 4d 4f 4e 2d 45 43 48 4f 31 20 <data, 0-64 bytes>
//	reply:   48 55 42 4d 4f 4e 2d 45 43 48 4f 31 52 <same data>
//
// A reply is exactly as long as its request, so the responder amplifies
// nothing; and a reply is not a request, so two responders cannot be set
// talking to each other by a forged source address.
//
// Anything else gets no answer at all: datagrams that do not start with the
// request prefix, that carry more than 64 bytes of data, or that come from
// source port 0-1023 (where the well-known UDP services and other reflectors
// listen; agents send from ephemeral ports).
//
// # Rate limits, and what they guarantee
//
// A valid request is answered only when two token buckets both have a token:
// the responder's global bucket and its source's bucket (a source is an IPv4
// address, or an IPv6 /64: one host holds a whole /64). Whatever the source
// addresses of the requests, forged or not, with the defaults in brackets:
//
//   - No amplification: a reply is exactly as long as its request and goes
//     only to the request's source address and port.
//   - A global cap: at most GlobalBurst + GlobalRatePerSecond × t replies in
//     any t seconds, to all destinations together (4,000 + 2,000/s; a
//     reply carries at most 77 bytes of payload, so at most about
//     1.7 Mbit/s with IPv4 headers, 0.9 Mbit/s for the agents' 29 bytes).
//   - Per source: at most Burst + RatePerSecond × t replies in any t seconds
//     (40 + 20/s), plus NewSourceTokens (2) each time the source enters the
//     table of sources again after being forgotten. The table holds at most
//     MaxSources sources (10,000) and forgets the least recently seen
//     first; a source entering it starts with NewSourceTokens, never a full
//     burst. A request refused by the global cap does not touch the table,
//     and a source is forgotten only after MaxSources other sources have
//     been seen since it was last seen: rotating forged addresses to flush
//     a victim out of the table costs at least MaxSources requests for
//     every NewSourceTokens replies it gains the victim, within the cap.
//   - Bounded memory: the table never holds more than MaxSources buckets.
//
// The price of the global cap: a flood above it also starves the real
// agents, which then report loss; at every site at once, which tells it
// from a line fault, and DroppedGlobal counts it. The default answers about
// 3,000 agents at one probe every 1.5 s.
//
// A Server is safe for concurrent use. Serve may be called for several packet
// conns (say IPv4 and IPv6); Close stops all of them.
package echo

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The protocol's constants.
const (
	// RequestPrefix starts every request.
	RequestPrefix = "HUBMON-ECHO1 "
	// ReplyPrefix starts every reply: RequestPrefix with its last byte
	// changed to 'R', so a reply has exactly the length of its request.
	ReplyPrefix = "HUBMON-ECHO1R"
	// MaxDataBytes bounds the client data after the prefix.
	MaxDataBytes = 64
	// MaxRequestBytes is the longest datagram that is answered.
	MaxRequestBytes = len(RequestPrefix) + MaxDataBytes
	// minSourcePort: requests from lower source ports are ignored.
	minSourcePort = 1024
)

// Defaults of Options.
const (
	DefaultRatePerSecond       = 20
	DefaultBurst               = 40
	DefaultMaxSources          = 10_000
	DefaultNewSourceTokens     = 2
	DefaultGlobalRatePerSecond = 2000
	DefaultGlobalBurst         = 4000
)

// Options configures a Server. The zero value is usable: zero (or negative)
// fields take their defaults.
type Options struct {
	Logger *slog.Logger
	// RatePerSecond is how many requests a second one source may have
	// answered on average (default 20; an agent sends one every 1.5 s).
	RatePerSecond float64
	// Burst is how many requests one source may have answered at once
	// (default 40).
	Burst int
	// MaxSources bounds the table of sources' token buckets (default
	// 10,000); the least recently seen source is forgotten first.
	MaxSources int
	// NewSourceTokens is how many tokens a source has when it enters the
	// table, new or forgotten earlier (default 2, at most Burst).
	NewSourceTokens int
	// GlobalRatePerSecond is how many requests a second the responder
	// answers at most, from all sources together (default 2,000).
	GlobalRatePerSecond float64
	// GlobalBurst is how many it answers at most at once (default 4,000).
	GlobalBurst int
}

// withDefaults returns o with its zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RatePerSecond <= 0 {
		o.RatePerSecond = DefaultRatePerSecond
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.MaxSources <= 0 {
		o.MaxSources = DefaultMaxSources
	}
	if o.NewSourceTokens <= 0 {
		o.NewSourceTokens = DefaultNewSourceTokens
	}
	o.NewSourceTokens = min(o.NewSourceTokens, o.Burst)
	if o.GlobalRatePerSecond <= 0 {
		o.GlobalRatePerSecond = DefaultGlobalRatePerSecond
	}
	if o.GlobalBurst <= 0 {
		o.GlobalBurst = DefaultGlobalBurst
	}
	return o
}

// Server answers hubmon echo requests. Create it with New.
type Server struct {
	log *slog.Logger
	now func() time.Time // tests freeze it

	answered      atomic.Int64
	dropped       atomic.Int64
	droppedGlobal atomic.Int64
	ignored       atomic.Int64

	limMu sync.Mutex
	lim   *limiter

	mu      sync.Mutex
	closed  bool
	packets map[net.PacketConn]struct{}
	wg      sync.WaitGroup // one per running Serve
}

// New returns a Server with opts; zero fields take their defaults.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	return &Server{
		log:     opts.Logger,
		now:     time.Now,
		lim:     newLimiter(opts),
		packets: make(map[net.PacketConn]struct{}),
	}
}

// Answered is the number of requests answered so far.
func (s *Server) Answered() int64 { return s.answered.Load() }

// Dropped is the number of valid requests not answered: over their source's
// rate limit or the global one, or the reply could not be sent.
func (s *Server) Dropped() int64 { return s.dropped.Load() }

// DroppedGlobal is the number of valid requests not answered because the
// responder was at its global cap (counted in Dropped too). Anything but 0
// means a flood, or more agents than GlobalRatePerSecond allows for.
func (s *Server) DroppedGlobal() int64 { return s.droppedGlobal.Load() }

// Ignored is the number of datagrams that were not valid requests (wrong
// prefix, too long, from a port below 1024, not UDP) and got no answer.
func (s *Server) Ignored() int64 { return s.ignored.Load() }

// Sources is the number of sources in the rate limiter's table.
func (s *Server) Sources() int {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	return s.lim.len()
}

// Serve answers requests on pc until Close. It closes pc when it returns. It
// returns nil after Close, and the read error otherwise.
func (s *Server) Serve(pc net.PacketConn) error {
	if !s.track(pc) {
		_ = pc.Close()
		return nil
	}
	defer s.wg.Done()
	defer s.untrack(pc)
	defer pc.Close()

	// One byte longer than the longest request: a longer datagram is cut to
	// len(buf) by the read and still seen to be too long.
	buf := make([]byte, MaxRequestBytes+1)
	var backoff time.Duration
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// A transient error (out of buffers, a queued ICMP error on
			// some systems): wait a little and go on, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("echo responder: read failed", "error", err, "retry_seconds", backoff.Seconds())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.handle(pc, buf[:n], addr)
	}
}

// handle answers one datagram, or not. It writes the reply into req.
func (s *Server) handle(pc net.PacketConn, req []byte, addr net.Addr) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || !IsRequest(req) {
		s.ignored.Add(1)
		return
	}
	src := ua.AddrPort()
	if src.Port() < minSourcePort || !src.Addr().IsValid() {
		s.ignored.Add(1)
		return
	}
	s.limMu.Lock()
	v := s.lim.allow(sourceKey(src.Addr()), s.now())
	s.limMu.Unlock()
	if v != allowed {
		s.dropped.Add(1)
		if v == deniedGlobal {
			s.droppedGlobal.Add(1)
		}
		return
	}
	req[len(RequestPrefix)-1] = ReplyPrefix[len(ReplyPrefix)-1]
	if _, err := pc.WriteTo(req, addr); err != nil {
		s.dropped.Add(1)
		return
	}
	s.answered.Add(1)
}

// IsRequest reports whether b is a request this protocol answers.
func IsRequest(b []byte) bool {
	return len(b) >= len(RequestPrefix) && len(b) <= MaxRequestBytes && string(b[:len(RequestPrefix)]) == RequestPrefix
}

// sourceKey is the rate limiter's key for a source address: the IPv4
// address, or the /64 of an IPv6 address (one host holds a whole /64).
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is4() {
		return a
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr()
}

// Close stops every Serve, closing its packet conn, and waits for them to
// return.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	for pc := range s.packets {
		if err := pc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track adds pc and one to s.wg unless s is closed. Adding under s.mu, after
// checking closed, orders every wg.Add before the wg.Wait in Close.
func (s *Server) track(pc net.PacketConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.packets[pc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(pc net.PacketConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.packets, pc)
}
