package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// routeHex is an IPv4 address as /proc/net/route prints it on this machine.
func routeHex(ip string) string {
	b := netip.MustParseAddr(ip).As4()
	return fmt.Sprintf("%08X", binary.NativeEndian.Uint32(b[:]))
}

// routeFile writes a /proc/net/route-style file; each route is
// "iface destination gateway flags metric mask" with addresses dotted.
func routeFile(tb testing.TB, routes ...string) string {
	tb.Helper()
	var b strings.Builder
	b.WriteString("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n")
	for _, r := range routes {
		f := strings.Fields(r)
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t0\t0\t%s\t%s\t0\t0\t0\n", f[0], routeHex(f[1]), routeHex(f[2]), f[3], f[4], routeHex(f[5]))
	}
	path := filepath.Join(tb.TempDir(), "route")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestDefaultGateway(t *testing.T) {
	cases := []struct {
		name   string
		routes []string
		want   string // "" for ErrNoDefaultRoute
	}{
		{"typical", []string{
			"eth0 0.0.0.0 192.168.1.254 0003 100 0.0.0.0",
			"eth0 192.168.1.0 0.0.0.0 0001 100 255.255.255.0",
		}, "192.168.1.254"},
		{"lowest metric wins", []string{
			"wwan0 0.0.0.0 10.64.0.1 0003 700 0.0.0.0",
			"eth0 0.0.0.0 192.168.1.1 0003 100 0.0.0.0",
			"wlan0 0.0.0.0 192.168.2.1 0003 600 0.0.0.0",
		}, "192.168.1.1"},
		{"no default route", []string{"eth0 192.168.1.0 0.0.0.0 0001 100 255.255.255.0"}, "none"},
		{"point-to-point default, no gateway", []string{"ppp0 0.0.0.0 0.0.0.0 0001 0 0.0.0.0"}, "p2p"},
		{"point-to-point in use, gateway as backup", []string{
			"wwan0 0.0.0.0 0.0.0.0 0001 100 0.0.0.0",
			"eth0 0.0.0.0 192.168.1.1 0003 600 0.0.0.0",
		}, "p2p"},
		{"default route down", []string{"eth0 0.0.0.0 192.168.1.1 0002 0 0.0.0.0"}, "none"},
		{"empty table", nil, "none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := defaultGateway(routeFile(t, tc.routes...))
			checkGatewayResult(t, got, err, tc.want)
		})
	}
	if _, err := defaultGateway(filepath.Join(t.TempDir(), "missing")); err == nil || errors.Is(err, ErrNoDefaultRoute) {
		t.Errorf("missing file: err = %v", err)
	}
	// This machine's own table parses (whatever it holds). Only read: no
	// traffic goes to the gateway.
	if _, err := defaultGateway(procNetRoute); err != nil && !errors.Is(err, ErrNoDefaultRoute) && !errors.Is(err, ErrDefaultRouteNoGateway) {
		t.Errorf("%s: %v", procNetRoute, err)
	}
}

// checkGatewayResult checks a defaultGateway result against want: an
// address, "none" (ErrNoDefaultRoute) or "p2p" (ErrDefaultRouteNoGateway).
func checkGatewayResult(tb testing.TB, got netip.Addr, err error, want string) {
	tb.Helper()
	switch want {
	case "none":
		if !errors.Is(err, ErrNoDefaultRoute) {
			tb.Errorf("got %v, %v; want ErrNoDefaultRoute", got, err)
		}
	case "p2p":
		if !errors.Is(err, ErrDefaultRouteNoGateway) {
			tb.Errorf("got %v, %v; want ErrDefaultRouteNoGateway", got, err)
		}
	default:
		if err != nil || got != netip.MustParseAddr(want) {
			tb.Errorf("got %v, %v; want %s", got, err, want)
		}
	}
}

// route6File writes a /proc/net/ipv6_route-style file; each route is
// "destination/plen nexthop metric flags iface".
func route6File(tb testing.TB, routes ...string) string {
	tb.Helper()
	hex := func(a string) string {
		b := netip.MustParseAddr(a).As16()
		return fmt.Sprintf("%x", b[:])
	}
	var b strings.Builder
	for _, r := range routes {
		f := strings.Fields(r)
		dst := netip.MustParsePrefix(f[0])
		metric, _ := strconv.ParseUint(f[2], 10, 32)
		fmt.Fprintf(&b, "%s %02x %s 00 %s %08x 00000001 00000000 %s %8s\n",
			hex(dst.Addr().String()), dst.Bits(), hex("::"), hex(f[1]), metric, f[3], f[4])
	}
	path := filepath.Join(tb.TempDir(), "ipv6_route")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestDefaultGateway6(t *testing.T) {
	cases := []struct {
		name   string
		routes []string
		want   string
	}{
		{"router advertisement", []string{
			"2001:db8:1::/64 :: 256 00000001 eth0",
			"::/0 fe80::1 1024 00000003 eth0",
			"::1/128 :: 0 80200001 lo",
		}, "fe80::1%eth0"},
		{"lowest metric wins", []string{
			"::/0 fe80::2 1024 00000003 wlan0",
			"::/0 2001:db8::1 100 00000003 eth0",
		}, "2001:db8::1"},
		{"unreachable default on lo is not a route", []string{"::/0 :: 4294967295 00200200 lo"}, "none"},
		{"no default route", []string{"2001:db8:1::/64 :: 256 00000001 eth0"}, "none"},
		{"point-to-point", []string{"::/0 :: 1024 00000001 ppp0"}, "p2p"},
		{"default route down", []string{"::/0 fe80::1 1024 00000002 eth0"}, "none"},
		{"empty table", nil, "none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := defaultGateway6(route6File(t, tc.routes...))
			checkGatewayResult(t, got, err, tc.want)
		})
	}
	if _, err := defaultGateway6(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := defaultGateway6(procNetIPv6Route); err != nil && !errors.Is(err, fs.ErrNotExist) &&
		!errors.Is(err, ErrNoDefaultRoute) && !errors.Is(err, ErrDefaultRouteNoGateway) {
		t.Errorf("%s: %v", procNetIPv6Route, err)
	}
}

// timeoutError is what a dial that got no answer returns.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestGatewayCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	open := uint16(ln.Addr().(*net.TCPAddr).Port)
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := uint16(closedLn.Addr().(*net.TCPAddr).Port)
	_ = closedLn.Close() // connections are refused from now on

	loopback := routeFile(t, "lo 0.0.0.0 127.0.0.1 0003 0 0.0.0.0")
	noRoute := routeFile(t, "eth0 192.168.1.0 0.0.0.0 0001 100 255.255.255.0")
	p2p := routeFile(t, "ppp0 0.0.0.0 0.0.0.0 0001 0 0.0.0.0")
	missing := filepath.Join(t.TempDir(), "missing")
	loopback6 := route6File(t, "::/0 ::1 1024 00000003 lo0")
	realDial := (&net.Dialer{}).DialContext
	failDial := func(err error) func(ctx context.Context, network, address string) (net.Conn, error) {
		return func(context.Context, string, string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
		}
	}
	hangDial := func(ctx context.Context, network, address string) (net.Conn, error) {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}}
	}

	refuse443 := func(ctx context.Context, network, address string) (net.Conn, error) {
		if strings.HasSuffix(address, ":443") {
			return failDial(syscall.ECONNREFUSED)(ctx, network, address)
		}
		return hangDial(ctx, network, address)
	}

	noDial := func(_ context.Context, _, address string) (net.Conn, error) {
		t.Errorf("dialled %s; want no dial", address)
		return nil, errors.New("no dial")
	}
	// The IPv6 loopback, where this machine has it.
	v6dial := realDial
	if ln6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		_ = ln6.Close()
	} else {
		v6dial = failDial(syscall.ECONNREFUSED)
	}

	cases := []struct {
		name            string
		routes, routes6 string
		ports           []uint16
		dial            func(ctx context.Context, network, address string) (net.Conn, error)
		cancelled       bool
		want            string
	}{
		{"a port accepts", loopback, missing, []uint16{closed, open}, realDial, false, wire.CauseWAN},
		{"a port refuses", loopback, missing, []uint16{closed}, realDial, false, wire.CauseWAN},
		{"all time out", loopback, missing, []uint16{53, 80, 443}, failDial(timeoutError{}), false, wire.CauseLAN},
		{"host unreachable", loopback, missing, []uint16{53, 80, 443}, failDial(syscall.EHOSTUNREACH), false, wire.CauseLAN},
		{"no answer within the timeout", loopback, missing, []uint16{53, 80, 443}, hangDial, false, wire.CauseLAN},
		{"refused among timeouts", loopback, missing, []uint16{53, 80, 443}, refuse443, false, wire.CauseWAN},
		{"no default route at all: own link down", noRoute, missing, []uint16{open}, noDial, false, wire.CauseLAN},
		{"no default route, empty IPv6 table", noRoute, route6File(t), []uint16{open}, noDial, false, wire.CauseLAN},
		{"point-to-point default route", p2p, missing, []uint16{open}, noDial, false, wire.CauseUnknown},
		{"routing table unreadable", missing, missing, []uint16{open}, noDial, false, wire.CauseUnknown},
		{"IPv6 gateway answers", noRoute, loopback6, []uint16{closed}, v6dial, false, wire.CauseWAN},
		{"check cut short", loopback, missing, []uint16{53}, hangDial, true, wire.CauseUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGatewayChecker(tc.routes, tc.routes6)
			g.ports, g.timeout, g.dial = tc.ports, 200*time.Millisecond, tc.dial
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			if got := g.cause(ctx); got != tc.want {
				t.Errorf("cause = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestNewGatewayChecker: the defaults. (No live check: a test never sends
// anything to this machine's real gateway.)
func TestNewGatewayChecker(t *testing.T) {
	g := newGatewayChecker("", "")
	if g.routePath != "/proc/net/route" || g.route6Path != "/proc/net/ipv6_route" || len(g.ports) != 3 || g.timeout <= 0 || g.timeout > 2*time.Second {
		t.Errorf("defaults %+v", g)
	}
	if g := newGatewayChecker("/x/route", "/x/ipv6_route"); g.routePath != "/x/route" || g.route6Path != "/x/ipv6_route" {
		t.Errorf("paths %q %q", g.routePath, g.route6Path)
	}
}

// TestGatewayRemembered: when the default route disappears (cable out, Wi-Fi
// dropped), the gateway seen before is the one checked.
func TestGatewayRemembered(t *testing.T) {
	dir := t.TempDir()
	routes, routes6 := filepath.Join(dir, "route"), filepath.Join(dir, "ipv6_route")
	write := func(src string) {
		t.Helper()
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(routes, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	healthy := routeFile(t,
		"eth0 0.0.0.0 192.0.2.1 0003 100 0.0.0.0",
		"eth0 192.0.2.0 0.0.0.0 0001 100 255.255.255.0")
	cableOut := routeFile(t) // the kernel drops the interface's routes

	var mu sync.Mutex
	var dialled []string
	var answer error
	stub := func(_ context.Context, _, address string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		dialled = append(dialled, address)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: answer}
	}
	newChecker := func() *gatewayChecker {
		g := newGatewayChecker(routes, routes6)
		g.ports, g.timeout, g.dial = []uint16{53}, 200*time.Millisecond, stub
		return g
	}

	// Never saw a route: the agent's own link is down.
	write(cableOut)
	if got := newChecker().cause(context.Background()); got != wire.CauseLAN || len(dialled) != 0 {
		t.Errorf("no route, none remembered: cause %q, dialled %v; want lan and no dial", got, dialled)
	}

	for _, tc := range []struct {
		name   string
		answer error
		want   string
	}{
		{"gateway unreachable", syscall.ENETUNREACH, wire.CauseLAN},
		{"gateway answers", syscall.ECONNREFUSED, wire.CauseWAN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			dialled, answer = nil, tc.answer
			mu.Unlock()
			g := newChecker()
			write(healthy)
			g.observe() // a run starts while all is well
			write(cableOut)
			if got := g.cause(context.Background()); got != tc.want {
				t.Errorf("cause %q, want %q", got, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(dialled) != 1 || dialled[0] != "192.0.2.1:53" {
				t.Errorf("dialled %v, want the remembered gateway", dialled)
			}
		})
	}
}

// TestDefaultGatewaysAndAnswers: the exported lookup reads both tables, and
// the answer check takes a refusal as an answer and a hang as none. Only
// injected dialers: nothing goes to this machine's gateway.
func TestDefaultGatewaysAndAnswers(t *testing.T) {
	routes := routeFile(t, "eth0 0.0.0.0 192.0.2.1 0003 100 0.0.0.0")
	missing := filepath.Join(t.TempDir(), "missing")
	gw4, gw6, err4, err6 := DefaultGateways(routes, missing)
	if gw4 != netip.MustParseAddr("192.0.2.1") || err4 != nil || gw6.IsValid() || !errors.Is(err6, ErrNoDefaultRoute) {
		t.Errorf("DefaultGateways = %v %v %v %v", gw4, gw6, err4, err6)
	}
	if _, _, err4, _ := DefaultGateways(routeFile(t), missing); !errors.Is(err4, ErrNoDefaultRoute) {
		t.Errorf("empty table: %v", err4)
	}

	var mu sync.Mutex
	var dialled []string
	refuse := func(_ context.Context, _, address string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, address)
		mu.Unlock()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	hang := func(ctx context.Context, _, _ string) (net.Conn, error) { <-ctx.Done(); return nil, ctx.Err() }
	if ok, err := GatewayAnswers(context.Background(), []netip.Addr{gw4}, refuse); !ok || err != nil {
		t.Errorf("refused: %v %v, want an answer", ok, err)
	}
	mu.Lock() // the other attempts may still be running
	if len(dialled) == 0 || !strings.HasPrefix(dialled[0], "192.0.2.1:") {
		t.Errorf("dialled %v", dialled)
	}
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if ok, err := GatewayAnswers(ctx, []netip.Addr{gw4}, hang); ok || err == nil {
		t.Errorf("hang: %v %v, want no answer and an error", ok, err)
	}
}
