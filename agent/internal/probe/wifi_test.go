package probe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// sysIface describes an interface in a fake /sys/class/net.
type sysIface struct {
	name      string
	mark      string // "wireless", "phy80211" or "" (wired)
	operstate string
}

// fakeSysNet builds a /sys/class/net with ifaces in a temporary directory.
func fakeSysNet(tb testing.TB, ifaces ...sysIface) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "class", "net")
	for _, i := range ifaces {
		d := filepath.Join(dir, i.name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		if i.mark != "" {
			if err := os.Mkdir(filepath.Join(d, i.mark), 0o755); err != nil {
				tb.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, "operstate"), []byte(i.operstate+"\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

func wifiFixture(name string) string { return filepath.Join("testdata", "wifi", name) }

// iwFixture is an iw runner that prints a fixture and records the interface.
func iwFixture(tb testing.TB, name string, asked *string) func(context.Context, string) ([]byte, error) {
	return func(_ context.Context, iface string) ([]byte, error) {
		*asked = iface
		if name == "" {
			return nil, errNoIW
		}
		if msg, ok := strings.CutPrefix(name, "!"); ok {
			return nil, errors.New(msg)
		}
		b, err := os.ReadFile(wifiFixture(name))
		if err != nil {
			tb.Fatal(err)
		}
		return b, nil
	}
}

func TestWiFi(t *testing.T) {
	wired := []sysIface{{name: "lo", operstate: "unknown"}, {name: "eth0", operstate: "up"}}
	withWiFi := func(mark, state string) []sysIface {
		return append(slices.Clone(wired), sysIface{name: "wlan0", mark: mark, operstate: state})
	}
	tests := []struct {
		name    string
		iface   string
		sys     []sysIface
		proc    string // fixture, "" for a missing /proc/net/wireless
		iw      string // fixture, "" when iw is not installed
		want    *wire.WiFi
		wantErr string
		notAsso bool
	}{
		{
			name: "5GHz", sys: withWiFi("wireless", "up"), proc: "proc_net_wireless", iw: "iw_link_5ghz",
			want: &wire.WiFi{Interface: "wlan0", SSID: "Hub Guest", SignalDBM: wire.Float(-61),
				LinkBitsPerSecond: wire.Float(144.4e6), FrequencyMHz: wire.Float(5180), Band: "5GHz"},
		},
		{
			name: "2.4GHz, escaped SSID, signal from iw", iface: "wlan1",
			sys:  append(slices.Clone(wired), sysIface{name: "wlan1", mark: "phy80211", operstate: "up"}),
			proc: "proc_net_wireless_none", iw: "iw_link_2ghz",
			want: &wire.WiFi{Interface: "wlan1", SSID: "Café “Hub” ", SignalDBM: wire.Float(-78),
				LinkBitsPerSecond: wire.Float(72.2e6), FrequencyMHz: wire.Float(2437), Band: "2.4GHz"},
		},
		{
			name: "not connected", sys: withWiFi("wireless", "dormant"), proc: "proc_net_wireless_none", iw: "iw_link_not_connected",
			want: &wire.WiFi{Interface: "wlan0"}, wantErr: "wlan0: not associated with a network", notAsso: true,
		},
		{
			name: "iw says not connected, stale kernel table", sys: withWiFi("wireless", "up"), proc: "proc_net_wireless", iw: "iw_link_not_connected",
			want: &wire.WiFi{Interface: "wlan0"}, wantErr: "wlan0: not associated with a network", notAsso: true,
		},
		{
			name: "no iw: signal only", sys: withWiFi("wireless", "up"), proc: "proc_net_wireless",
			want: &wire.WiFi{Interface: "wlan0", SignalDBM: wire.Float(-61)},
		},
		{
			name: "no iw, operstate unknown, listed", sys: withWiFi("wireless", "unknown"), proc: "proc_net_wireless",
			want: &wire.WiFi{Interface: "wlan0", SignalDBM: wire.Float(-61)},
		},
		{
			name: "no iw, not associated", sys: withWiFi("wireless", "dormant"), proc: "proc_net_wireless_none",
			want: &wire.WiFi{Interface: "wlan0"}, wantErr: "wlan0: not associated with a network", notAsso: true,
		},
		{
			name: "no iw, up but no signal", sys: withWiFi("wireless", "up"), proc: "proc_net_wireless_none",
			want: &wire.WiFi{Interface: "wlan0"}, wantErr: "wlan0: no signal level in ",
		},
		{
			name: "listed only in /proc", sys: wired, proc: "proc_net_wireless", iw: "iw_link_5ghz",
			want: &wire.WiFi{Interface: "wlan0", SSID: "Hub Guest", SignalDBM: wire.Float(-61),
				LinkBitsPerSecond: wire.Float(144.4e6), FrequencyMHz: wire.Float(5180), Band: "5GHz"},
		},
		{
			name: "iw fails", sys: withWiFi("wireless", "up"), proc: "proc_net_wireless", iw: "!iw dev wlan0 link: exit status 237",
			want: &wire.WiFi{Interface: "wlan0", SignalDBM: wire.Float(-61)}, wantErr: "iw dev wlan0 link: exit status 237",
		},
		{name: "no wireless interface", sys: wired, wantErr: "no wireless interface found"},
		{name: "configured wired", iface: "eth0", sys: withWiFi("wireless", "up"), wantErr: `interface "eth0" is not wireless`},
		{name: "configured missing", iface: "wlan9", sys: withWiFi("wireless", "up"), wantErr: `interface "wlan9" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked string
			proc := filepath.Join(t.TempDir(), "missing")
			if tt.proc != "" {
				proc = wifiFixture(tt.proc)
			}
			p := NewWiFi(WiFiConfig{Interface: tt.iface}).(*wifiProber)
			p.sysNet, p.procWireless, p.iw = fakeSysNet(t, tt.sys...), proc, iwFixture(t, tt.iw, &asked)
			res, err := p.Probe(t.Context())
			if res.Kind != wire.KindWiFi {
				t.Errorf("kind %q", res.Kind)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want %q...", err, tt.wantErr)
			}
			if errors.Is(err, ErrNotAssociated) != tt.notAsso {
				t.Errorf("error %v: errors.Is ErrNotAssociated = %v, want %v", err, !tt.notAsso, tt.notAsso)
			}
			if !sameWiFi(res.WiFi, tt.want) {
				t.Errorf("got  %s\nwant %s", describeWiFi(res.WiFi), describeWiFi(tt.want))
			}
			if res.WiFi != nil {
				checkKindWire(t, res, err)
				if asked != res.WiFi.Interface {
					t.Errorf("iw asked about %q, want %q", asked, res.WiFi.Interface)
				}
			}
		})
	}
}

func sameWiFi(a, b *wire.WiFi) bool {
	if a == nil || b == nil {
		return a == b
	}
	eq := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Interface == b.Interface && a.SSID == b.SSID && a.Band == b.Band &&
		eq(a.SignalDBM, b.SignalDBM) && eq(a.LinkBitsPerSecond, b.LinkBitsPerSecond) && eq(a.FrequencyMHz, b.FrequencyMHz)
}

func describeWiFi(w *wire.WiFi) string {
	if w == nil {
		return "nil"
	}
	return "{" + strings.Join([]string{w.Interface, strings.ToValidUTF8(w.SSID, "?"), w.Band, "signal " + optSeconds(w.SignalDBM),
		"rate " + optSeconds(w.LinkBitsPerSecond), "freq " + optSeconds(w.FrequencyMHz)}, " ") + "}"
}

func TestWiFiCancel(t *testing.T) {
	p := NewWiFi(WiFiConfig{}).(*wifiProber)
	p.sysNet = fakeSysNet(t, sysIface{name: "wlan0", mark: "wireless", operstate: "up"})
	p.procWireless = wifiFixture("proc_net_wireless")
	started := make(chan struct{})
	p.iw = func(ctx context.Context, _ string) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	_, err := p.Probe(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestWirelessInterfaces(t *testing.T) {
	sys := fakeSysNet(t,
		sysIface{name: "eth0", operstate: "up"},
		sysIface{name: "wlp2s0", mark: "phy80211", operstate: "dormant"},
		sysIface{name: "wlan1", mark: "wireless", operstate: "up"},
	)
	got := wirelessInterfaces(sys, wifiFixture("proc_net_wireless")) // lists wlan0
	if want := []string{"wlan0", "wlan1", "wlp2s0"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := wirelessInterfaces(filepath.Join(t.TempDir(), "none"), filepath.Join(t.TempDir(), "none")); got != nil {
		t.Errorf("on a system without them: %q", got)
	}
	_ = WirelessInterfaces() // the real system: whatever it has, no panic
}

func TestParseIWLink(t *testing.T) {
	for _, tt := range []struct {
		name, out string
		want      iwLink
	}{
		{"6GHz, fractional freq", "Connected to 00:11:22:33:44:55 (on wlan0)\n\tSSID: six\n\tfreq: 5955.0\n\tsignal: -55 dBm\n\ttx bitrate: 1.2 GBit/s EHT-MCS 11\n",
			iwLink{known: true, connected: true, ssid: "six", freq: wire.Float(5955), signal: wire.Float(-55), txBitrate: wire.Float(1.2e9)}},
		{"legacy rate, odd signal", "Connected to 00:11:22:33:44:55 (on wlan0)\n\tSSID: \\x5cbackslash\n\tsignal: 0 dBm\n\ttx bitrate: 54.0 MBit/s\n",
			iwLink{known: true, connected: true, ssid: `\backslash`, txBitrate: wire.Float(54e6)}},
		{"not UTF-8 SSID stays escaped", "Connected to 00:11:22:33:44:55 (on wlan0)\n\tSSID: \\xff\\xfe\n",
			iwLink{known: true, connected: true, ssid: `\xff\xfe`}},
		{"not connected", "Not connected.\n", iwLink{known: true}},
		{"something else", "command failed: No such device (-19)\n", iwLink{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseIWLink([]byte(tt.out))
			eq := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
			if got.known != tt.want.known || got.connected != tt.want.connected || got.ssid != tt.want.ssid ||
				!eq(got.freq, tt.want.freq) || !eq(got.signal, tt.want.signal) || !eq(got.txBitrate, tt.want.txBitrate) {
				t.Errorf("got %+v (freq %s signal %s rate %s)", got, optSeconds(got.freq), optSeconds(got.signal), optSeconds(got.txBitrate))
			}
		})
	}
}

func TestBand(t *testing.T) {
	for mhz, want := range map[float64]string{2412: "2.4GHz", 2484: "2.4GHz", 5180: "5GHz", 5825: "5GHz", 5955: "6GHz", 7115: "6GHz", 58320: ""} {
		if got := band(mhz); got != want {
			t.Errorf("band(%g) = %q, want %q", mhz, got, want)
		}
	}
}

// TestRunIW runs a stand-in iw program found on PATH.
func TestRunIW(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		"[ \"$1 $3\" = \"dev link\" ] || { echo \"usage\" >&2; exit 1; }\n" +
		"case \"$2\" in\n" +
		"wlan0) cat " + shellQuote(mustAbs(t, wifiFixture("iw_link_5ghz"))) + " ;;\n" +
		"slow) sleep 30 ;;\n" +
		"*) echo 'command failed: No such device (-19)' >&2; exit 237 ;;\n" +
		"esac\n"
	if err := os.WriteFile(filepath.Join(dir, "iw"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))

	out, err := runIW(t.Context(), "wlan0")
	if err != nil || !parseIWLink(out).connected {
		t.Errorf("wlan0: %q, %v", out, err)
	}
	_, err = runIW(t.Context(), "wlan7")
	if want := "iw dev wlan7 link: exit status 237: command failed: No such device (-19)"; err == nil || err.Error() != want {
		t.Errorf("wlan7: error %v, want %q", err, want)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := runIW(ctx, "slow"); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("slow: error %v after %s", err, time.Since(start))
	}
}

func TestRunIWMissing(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/iw"); err == nil {
		t.Skip("iw is installed in /usr/sbin")
	}
	if _, err := os.Stat("/sbin/iw"); err == nil {
		t.Skip("iw is installed in /sbin")
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := runIW(t.Context(), "wlan0"); !errors.Is(err, errNoIW) {
		t.Errorf("error %v, want errNoIW", err)
	}
}

func mustAbs(tb testing.TB, p string) string {
	tb.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
