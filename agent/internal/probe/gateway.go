package probe

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

const (
	procNetRoute       = "/proc/net/route"
	gatewayDialTimeout = 1500 * time.Millisecond
)

// errNoDefaultRoute: the routing table has no IPv4 default route through a
// gateway.
var errNoDefaultRoute = errors.New("no IPv4 default route via a gateway")

// gatewayChecker tells a LAN fault from a WAN outage during a disconnection,
// without privileges: it finds the IPv4 default gateway in /proc/net/route and
// opens TCP connections to it on ports 53, 80 and 443 at once. A connection
// OR a refusal (RST, ECONNREFUSED) proves the gateway answered: the hub's own
// network is fine and the fault is beyond it ("wan"). Timeouts and
// unreachable errors on every port mean the gateway is out of reach ("lan").
// No default gateway (none, or a point-to-point default route with no
// gateway) or a check cut short is "unknown".
//
// Limits: a router that silently drops connections to all three ports reads
// as "lan"; an ICMP "administratively prohibited" answer is reported by Linux
// as EHOSTUNREACH, like a neighbour that does not answer, and so also reads as
// "lan". Most home and small-office routers run DNS and a web interface.
//
// A gatewayChecker is safe for concurrent use; it keeps no state.
type gatewayChecker struct {
	routePath string
	ports     []uint16
	timeout   time.Duration // for all the connection attempts together
	dial      func(ctx context.Context, network, address string) (net.Conn, error)
}

func newGatewayChecker() *gatewayChecker {
	return &gatewayChecker{
		routePath: procNetRoute,
		ports:     []uint16{53, 80, 443},
		timeout:   gatewayDialTimeout,
		dial:      (&net.Dialer{}).DialContext,
	}
}

// cause returns wire.CauseWAN, CauseLAN or CauseUnknown.
func (g *gatewayChecker) cause(ctx context.Context) string {
	gw, err := defaultGateway(g.routePath)
	if err != nil {
		return wire.CauseUnknown
	}
	answered, err := g.answers(ctx, gw)
	switch {
	case answered:
		return wire.CauseWAN
	case err != nil:
		return wire.CauseUnknown
	default:
		return wire.CauseLAN
	}
}

// answers reports whether gw answered a TCP connection attempt on any port. It
// returns an error when ctx ended before that could be told.
func (g *gatewayChecker) answers(ctx context.Context, gw netip.Addr) (bool, error) {
	dctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	results := make(chan error, len(g.ports)) // buffered: late attempts end by themselves
	for _, port := range g.ports {
		go func() {
			c, err := g.dial(dctx, "tcp", netip.AddrPortFrom(gw, port).String())
			if err == nil {
				_ = c.Close()
			}
			results <- err
		}()
	}
	for range g.ports {
		if gatewayAnswered(<-results) {
			return true, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("gateway check cut short: %w", err)
	}
	return false, nil
}

// gatewayAnswered reports whether a connection attempt's outcome proves that
// the other end answered.
func gatewayAnswered(err error) bool {
	return err == nil || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// defaultGateway returns the gateway of the IPv4 default route with the
// lowest metric in a file in the format of /proc/net/route.
func defaultGateway(path string) (netip.Addr, error) {
	f, err := os.Open(path)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read routes: %w", err)
	}
	defer f.Close()
	const (
		rtfUp      = 0x1
		rtfGateway = 0x2
	)
	var best netip.Addr
	bestMetric := -1
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		fields := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if first || len(fields) < 8 || fields[1] != "00000000" || fields[7] != "00000000" {
			continue
		}
		flags, err1 := strconv.ParseUint(fields[3], 16, 32)
		gw, err2 := strconv.ParseUint(fields[2], 16, 32)
		metric, err3 := strconv.Atoi(fields[6])
		if err1 != nil || err2 != nil || err3 != nil || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || gw == 0 {
			continue
		}
		// The kernel prints the address, kept in network byte order, as a
		// host-order integer: put it back into memory order.
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], uint32(gw))
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = netip.AddrFrom4(b), metric
		}
	}
	if err := sc.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("read routes: %w", err)
	}
	if !best.IsValid() {
		return netip.Addr{}, errNoDefaultRoute
	}
	return best, nil
}
