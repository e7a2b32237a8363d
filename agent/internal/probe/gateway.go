package probe

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

const (
	procNetRoute       = "/proc/net/route"
	procNetIPv6Route   = "/proc/net/ipv6_route"
	gatewayDialTimeout = 1500 * time.Millisecond
)

var (
	// ErrNoDefaultRoute: the routing table has no default route at all (that
	// is up): the host's own link is down, or it was never configured.
	ErrNoDefaultRoute = errors.New("no default route")
	// ErrDefaultRouteNoGateway: the default route in use goes straight out
	// of an interface (a point-to-point link: PPP, some mobile modems), so
	// there is no gateway to ask.
	ErrDefaultRouteNoGateway = errors.New("the default route has no gateway (point-to-point)")
)

// DefaultGateways returns the gateways of the default routes in use, IPv4
// from routePath and IPv6 from route6Path (files in the formats of
// /proc/net/route and /proc/net/ipv6_route; "" for those files). Each
// family's error is ErrNoDefaultRoute, ErrDefaultRouteNoGateway or a read
// error; a missing IPv6 table (a kernel without IPv6) is ErrNoDefaultRoute.
// It only reads the tables: nothing is sent.
func DefaultGateways(routePath, route6Path string) (gw4, gw6 netip.Addr, err4, err6 error) {
	if routePath == "" {
		routePath = procNetRoute
	}
	if route6Path == "" {
		route6Path = procNetIPv6Route
	}
	gw4, err4 = defaultGateway(routePath)
	gw6, err6 = defaultGateway6(route6Path)
	if errors.Is(err6, fs.ErrNotExist) {
		err6 = ErrNoDefaultRoute // no IPv6 in this kernel
	}
	return gw4, gw6, err4, err6
}

// gatewayPorts are the TCP ports tried on each gateway: DNS and the web
// interface, which most home and small-office routers run.
var gatewayPorts = []uint16{53, 80, 443}

// GatewayAnswers reports whether any of gws answered a TCP connection
// attempt on port 53, 80 or 443 before ctx ended: a connection or a refusal
// (RST) proves that the gateway is there; timeouts and "unreachable" do not.
// The attempts run at once, through dial (nil: a net.Dialer). The error is
// set when ctx ended before any answered. This is the check the line-quality
// probe uses to tell a LAN fault from a WAN outage (see gatewayChecker for
// its limits).
func GatewayAnswers(ctx context.Context, gws []netip.Addr, dial func(ctx context.Context, network, address string) (net.Conn, error)) (bool, error) {
	return gatewayAnswers(ctx, gws, gatewayPorts, dial)
}

func gatewayAnswers(ctx context.Context, gws []netip.Addr, ports []uint16, dial func(ctx context.Context, network, address string) (net.Conn, error)) (bool, error) {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	n := len(gws) * len(ports)
	results := make(chan error, n) // buffered: late attempts end by themselves
	for _, gw := range gws {
		for _, port := range ports {
			go func() {
				c, err := dial(ctx, "tcp", netip.AddrPortFrom(gw, port).String())
				if err == nil {
					_ = c.Close()
				}
				results <- err
			}()
		}
	}
	for range n {
		if gatewayAnswered(<-results) {
			return true, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("gateway check cut short: %w", err)
	}
	return false, nil
}

// gatewayChecker tells a LAN fault from a WAN outage during a disconnection,
// without privileges: it finds the default gateways (IPv4 in /proc/net/route,
// IPv6 in /proc/net/ipv6_route) and opens TCP connections to each on ports
// 53, 80 and 443 at once. A connection OR a refusal (RST, ECONNREFUSED)
// proves a gateway answered: the hub's own network is fine and the fault is
// beyond it ("wan"). Timeouts and unreachable errors everywhere mean the
// gateway is out of reach ("lan").
//
// The most common LAN fault, a cable pulled or Wi-Fi dropped, takes the
// default route away with it; so the checker remembers the last gateway of
// each family it saw in the table (observe is called at the start of every
// run, and every check notes what it finds) and, when a family's default
// route is gone, tries the remembered one (its "network unreachable" is a
// "lan"). With no default route in either table and no gateway remembered the
// agent's own link is down: "lan". It is "unknown" when the route in use has
// no gateway (point-to-point), when the IPv4 table cannot be read, or when
// the check is cut short. A missing IPv6 table is a kernel without IPv6.
//
// Limits: a router that silently drops connections to all three ports reads
// as "lan"; an ICMP "administratively prohibited" answer is reported by Linux
// as EHOSTUNREACH, like a neighbour that does not answer, and so also reads as
// "lan". Most home and small-office routers run DNS and a web interface. The
// remembered gateways live in memory only: a restart during a LAN fault
// reports "lan" from the empty tables, which is right for a pulled cable.
//
// A gatewayChecker is safe for concurrent use.
type gatewayChecker struct {
	routePath, route6Path string
	ports                 []uint16
	timeout               time.Duration // for all the connection attempts together
	dial                  func(ctx context.Context, network, address string) (net.Conn, error)

	mu           sync.Mutex
	last4, last6 netip.Addr // the last default gateways seen, per family
}

// newGatewayChecker reads routes from routePath and route6Path ("" for the
// /proc files).
func newGatewayChecker(routePath, route6Path string) *gatewayChecker {
	if routePath == "" {
		routePath = procNetRoute
	}
	if route6Path == "" {
		route6Path = procNetIPv6Route
	}
	return &gatewayChecker{
		routePath:  routePath,
		route6Path: route6Path,
		ports:      gatewayPorts,
		timeout:    gatewayDialTimeout,
		dial:       (&net.Dialer{}).DialContext,
	}
}

// gatewayRoutes is what the routing tables said.
type gatewayRoutes struct {
	gw4, gw6   netip.Addr // the default gateways in use, when there are
	err4, err6 error      // why not: ErrNoDefaultRoute, ErrDefaultRouteNoGateway or a read error
}

// read reads both tables and remembers the gateways found.
func (g *gatewayChecker) read() gatewayRoutes {
	var r gatewayRoutes
	r.gw4, r.gw6, r.err4, r.err6 = DefaultGateways(g.routePath, g.route6Path)
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.err4 == nil {
		g.last4 = r.gw4
	}
	if r.err6 == nil {
		g.last6 = r.gw6
	}
	return r
}

// observe notes the default gateways in the tables now, to try them when
// their routes are gone.
func (g *gatewayChecker) observe() { g.read() }

// cause returns wire.CauseWAN, CauseLAN or CauseUnknown.
func (g *gatewayChecker) cause(ctx context.Context) string {
	r := g.read()
	g.mu.Lock()
	last4, last6 := g.last4, g.last6
	g.mu.Unlock()
	var gws []netip.Addr
	for _, f := range []struct {
		gw, last netip.Addr
		err      error
	}{{r.gw4, last4, r.err4}, {r.gw6, last6, r.err6}} {
		switch {
		case f.err == nil:
			gws = append(gws, f.gw)
		case errors.Is(f.err, ErrNoDefaultRoute) && f.last.IsValid():
			gws = append(gws, f.last) // the route went away: is its gateway still there?
		}
	}
	if len(gws) == 0 {
		if errors.Is(r.err4, ErrNoDefaultRoute) && errors.Is(r.err6, ErrNoDefaultRoute) {
			return wire.CauseLAN // no route anywhere: the agent's own link is down
		}
		return wire.CauseUnknown
	}
	answered, err := g.answers(ctx, gws)
	switch {
	case answered:
		return wire.CauseWAN
	case err != nil:
		return wire.CauseUnknown
	default:
		return wire.CauseLAN
	}
}

// answers reports whether any of gws answered a TCP connection attempt on any
// port within the checker's timeout. It returns an error when ctx ended
// before that could be told.
func (g *gatewayChecker) answers(ctx context.Context, gws []netip.Addr) (bool, error) {
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	ok, _ := gatewayAnswers(dctx, gws, g.ports, g.dial)
	if err := ctx.Err(); err != nil && !ok {
		return false, fmt.Errorf("gateway check cut short: %w", err)
	}
	return ok, nil
}

// gatewayAnswered reports whether a connection attempt's outcome proves that
// the other end answered.
func gatewayAnswered(err error) bool {
	return err == nil || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// Route flags (linux/route.h).
const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

// defaultGateway returns the gateway of the IPv4 default route with the
// lowest metric (the one in use) in a file in the format of /proc/net/route:
// ErrNoDefaultRoute when there is no default route that is up, and
// ErrDefaultRouteNoGateway when the one in use has no gateway.
func defaultGateway(path string) (netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read routes: %w", err)
	}
	defer f.Close()
	var best defaultRouteChoice
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		fields := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if first || len(fields) < 8 || fields[1] != "00000000" || fields[7] != "00000000" {
			continue
		}
		flags, err1 := strconv.ParseUint(fields[3], 16, 32)
		gw, err2 := strconv.ParseUint(fields[2], 16, 32)
		metric, err3 := strconv.ParseUint(fields[6], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil || flags&rtfUp == 0 {
			continue
		}
		var a netip.Addr
		if flags&rtfGateway != 0 && gw != 0 {
			// The kernel prints the address, kept in network byte order,
			// as a host-order integer: put it back into memory order.
			var b [4]byte
			binary.NativeEndian.PutUint32(b[:], uint32(gw))
			a = netip.AddrFrom4(b)
		}
		best.consider(a, metric)
	}
	if err := sc.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("read routes: %w", err)
	}
	return best.result()
}

// defaultGateway6 is defaultGateway for IPv6, from a file in the format of
// /proc/net/ipv6_route. A link-local gateway (the usual case: the router's
// address from its advertisements) gets its interface as zone.
func defaultGateway6(path string) (netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read ipv6 routes: %w", err)
	}
	defer f.Close()
	const rtfReject = 0x200
	var best defaultRouteChoice
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// dest dest_plen src src_plen nexthop metric refcnt use flags iface
		if len(fields) < 10 || fields[1] != "00" || strings.Trim(fields[0], "0") != "" {
			continue
		}
		flags, err1 := strconv.ParseUint(fields[8], 16, 32)
		metric, err2 := strconv.ParseUint(fields[5], 16, 32)
		nh, err3 := hex.DecodeString(fields[4])
		if err1 != nil || err2 != nil || err3 != nil || len(nh) != 16 || flags&rtfUp == 0 || flags&rtfReject != 0 || fields[9] == "lo" {
			continue
		}
		var a netip.Addr
		if gw := netip.AddrFrom16([16]byte(nh)); flags&rtfGateway != 0 && !gw.IsUnspecified() {
			if gw.IsLinkLocalUnicast() {
				gw = gw.WithZone(fields[9])
			}
			a = gw
		}
		best.consider(a, metric)
	}
	if err := sc.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("read ipv6 routes: %w", err)
	}
	return best.result()
}

// defaultRouteChoice keeps the default route with the lowest metric; an
// invalid gateway is a route without one.
type defaultRouteChoice struct {
	found  bool
	gw     netip.Addr
	metric uint64
}

func (c *defaultRouteChoice) consider(gw netip.Addr, metric uint64) {
	// On equal metrics a route with a gateway wins: it can be checked.
	if !c.found || metric < c.metric || metric == c.metric && !c.gw.IsValid() && gw.IsValid() {
		c.found, c.gw, c.metric = true, gw, metric
	}
}

func (c *defaultRouteChoice) result() (netip.Addr, error) {
	switch {
	case !c.found:
		return netip.Addr{}, ErrNoDefaultRoute
	case !c.gw.IsValid():
		return netip.Addr{}, ErrDefaultRouteNoGateway
	}
	return c.gw, nil
}
