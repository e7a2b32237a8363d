package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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
		want   string // "" for errNoDefaultRoute
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
		{"no default route", []string{"eth0 192.168.1.0 0.0.0.0 0001 100 255.255.255.0"}, ""},
		{"point-to-point default, no gateway", []string{"ppp0 0.0.0.0 0.0.0.0 0001 0 0.0.0.0"}, ""},
		{"default route down", []string{"eth0 0.0.0.0 192.168.1.1 0002 0 0.0.0.0"}, ""},
		{"empty table", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := defaultGateway(routeFile(t, tc.routes...))
			if tc.want == "" {
				if !errors.Is(err, errNoDefaultRoute) {
					t.Errorf("got %v, %v; want errNoDefaultRoute", got, err)
				}
				return
			}
			if err != nil || got != netip.MustParseAddr(tc.want) {
				t.Errorf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
	if _, err := defaultGateway(filepath.Join(t.TempDir(), "missing")); err == nil || errors.Is(err, errNoDefaultRoute) {
		t.Errorf("missing file: err = %v", err)
	}
	// This machine's own table parses (whatever it holds).
	if _, err := defaultGateway(procNetRoute); err != nil && !errors.Is(err, errNoDefaultRoute) {
		t.Errorf("%s: %v", procNetRoute, err)
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

	cases := []struct {
		name      string
		routes    string
		ports     []uint16
		dial      func(ctx context.Context, network, address string) (net.Conn, error)
		cancelled bool
		want      string
	}{
		{"a port accepts", loopback, []uint16{closed, open}, realDial, false, wire.CauseWAN},
		{"a port refuses", loopback, []uint16{closed}, realDial, false, wire.CauseWAN},
		{"all time out", loopback, []uint16{53, 80, 443}, failDial(timeoutError{}), false, wire.CauseLAN},
		{"host unreachable", loopback, []uint16{53, 80, 443}, failDial(syscall.EHOSTUNREACH), false, wire.CauseLAN},
		{"no answer within the timeout", loopback, []uint16{53, 80, 443}, hangDial, false, wire.CauseLAN},
		{"refused among timeouts", loopback, []uint16{53, 80, 443}, refuse443, false, wire.CauseWAN},
		{"no default route", noRoute, []uint16{open}, realDial, false, wire.CauseUnknown},
		{"check cut short", loopback, []uint16{53}, hangDial, true, wire.CauseUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &gatewayChecker{routePath: tc.routes, ports: tc.ports, timeout: 200 * time.Millisecond, dial: tc.dial}
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

// TestNewGatewayChecker: the defaults, and a real check of this machine's
// gateway that must end within its bound whatever the answer.
func TestNewGatewayChecker(t *testing.T) {
	g := newGatewayChecker()
	if g.routePath != "/proc/net/route" || len(g.ports) != 3 || g.timeout <= 0 || g.timeout > 2*time.Second {
		t.Errorf("defaults %+v", g)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	got := g.cause(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("check took %v", took)
	}
	t.Logf("this machine: cause %q", got)
}
