package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// errLQTarget marks a target that is invalid in itself (not worth a retry).
var errLQTarget = errors.New("invalid target")

// errLQNoAddress is the send error of a run with no address for its target.
var errLQNoAddress = errors.New("no address for the target: its name could not be resolved")

// lqTarget is a target taken apart: an address, or a name to look up.
type lqTarget struct {
	addr netip.Addr // when the host is an IP address
	name string     // otherwise
	port uint16     // 0 for ICMP
}

// parseTarget checks the target's syntax: host:port for UDP, a host for ICMP
// (which must be IPv4); a host is an IP address or a valid DNS name. Its
// errors wrap errLQTarget.
func (p *lineQuality) parseTarget() (lqTarget, error) {
	icmp := p.method == "icmp"
	host, port := p.target, uint16(0)
	if !icmp {
		h, ps, err := net.SplitHostPort(p.target)
		if err != nil {
			return lqTarget{}, fmt.Errorf("udp target %q: %w: %w", p.target, errLQTarget, err)
		}
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return lqTarget{}, fmt.Errorf("udp target %q: %w: port must be 1-65535", p.target, errLQTarget)
		}
		host, port = h, uint16(n)
	}
	if host == "" {
		return lqTarget{}, fmt.Errorf("%s target %q: %w: no host", p.method, p.target, errLQTarget)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if icmp && !a.Unmap().Is4() {
			return lqTarget{}, fmt.Errorf("icmp target %q: %w: only IPv4 is supported", p.target, errLQTarget)
		}
		return lqTarget{addr: a.Unmap(), port: port}, nil
	}
	if !validDNSName(host) {
		return lqTarget{}, fmt.Errorf("%s target %q: %w: %q is neither an IP address nor a valid host name", p.method, p.target, errLQTarget, host)
	}
	return lqTarget{name: host, port: port}, nil
}

// validDNSName reports whether s is a syntactically valid host name: dot-
// separated labels of 1-63 letters, digits, '-' or '_' (not starting or
// ending with '-'), at most 253 bytes, an optional final dot, not all digits
// and dots (that would be a bad IPv4 address). Go's resolver refuses the
// same names without sending a query.
func validDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	letters := false
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			switch c := label[i]; {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '-':
				letters = true
			case c >= '0' && c <= '9':
			default:
				return false
			}
		}
	}
	return letters
}

// address returns the address to probe in this run, or the zero AddrPort
// when there is none; its error (wrapping errLQTarget) is only for a target
// that is invalid in itself. An IP address is itself. A name is looked up
// for every run, preferring IPv4 when it has both kinds of address (ICMP
// takes IPv4 only), through p.resolver:
//
//   - when an address is known from an earlier lookup, it is used at once
//     and this lookup runs in the background, for the next run (a failed
//     one keeps the known address: during an outage the DNS server is out
//     of reach too); so a slow or failing lookup costs the run nothing;
//   - otherwise the run waits for the lookup (at most lqResolveTimeout, and
//     within the period: the probes that wait displaces are neither sent
//     nor counted), and has no address when it fails.
//
// done waits for a background lookup, cutting it short; call it before the
// run returns. It may be called more than once.
func (p *lineQuality) address(ctx context.Context) (to netip.AddrPort, done func(), err error) {
	nothing := func() {}
	tg, err := p.parseTarget()
	if err != nil {
		return netip.AddrPort{}, nothing, err
	}
	if tg.addr.IsValid() {
		return netip.AddrPortFrom(tg.addr, tg.port), nothing, nil
	}
	lctx, cancel := context.WithTimeout(ctx, min(lqResolveTimeout, p.period))
	p.mu.Lock()
	cached := p.cached
	p.mu.Unlock()
	if !cached.IsValid() {
		defer cancel()
		got, err := p.lookup(lctx, tg)
		if err != nil {
			p.log.Debug("line quality: lookup failed", "err", err)
		}
		return got, nothing, nil
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if _, err := p.lookup(lctx, tg); err != nil {
			p.log.Debug("line quality: lookup failed; using the last address", "err", err, "address", cached.Addr().String())
		}
	}()
	var once sync.Once
	return cached, func() { once.Do(func() { cancel(); <-finished }) }, nil
}

// lookup resolves tg's name and remembers the address it picks.
func (p *lineQuality) lookup(ctx context.Context, tg lqTarget) (netip.AddrPort, error) {
	r := p.resolver
	if r == nil {
		r = net.DefaultResolver
	}
	network := "ip"
	if p.method == "icmp" {
		network = "ip4"
	}
	addrs, err := r.LookupNetIP(ctx, network, tg.name)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %s target %q: %w", p.method, p.target, err)
	}
	pick := addrs[0].Unmap()
	for _, a := range addrs {
		if a.Unmap().Is4() {
			pick = a.Unmap()
			break
		}
	}
	got := netip.AddrPortFrom(pick, tg.port)
	p.mu.Lock()
	p.cached = got
	p.mu.Unlock()
	return got, nil
}

// lqNoAddress is the stream of a run with no address for its target: every
// send fails, so every probe counts as sent and lost, as when the link is
// down, and nothing is ever received.
type lqNoAddress struct {
	closed chan struct{}
	once   sync.Once
}

func newLQNoAddress() *lqNoAddress { return &lqNoAddress{closed: make(chan struct{})} }

func (n *lqNoAddress) send(uint64) error { return errLQNoAddress }

func (n *lqNoAddress) recv() (uint64, time.Time, error) {
	<-n.closed
	return 0, time.Now(), net.ErrClosed
}

func (n *lqNoAddress) close() error {
	n.once.Do(func() { close(n.closed) })
	return nil
}
