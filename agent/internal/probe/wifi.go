package probe

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hubmon/hubmon/agent/wire"
)

const (
	sysClassNet     = "/sys/class/net"
	procNetWireless = "/proc/net/wireless"
	// iwTimeout bounds one run of `iw dev <if> link`.
	iwTimeout = 5 * time.Second
)

// ErrNotAssociated is returned (wrapped) by the Wi-Fi prober when its
// interface is not connected to a network.
var ErrNotAssociated = errors.New("not associated with a network")

// errNoIW says the iw program is not installed.
var errNoIW = errors.New("iw is not installed")

// NewWiFi returns a Prober that reports the agent's wireless link, on Linux,
// without privileges: the signal level from /proc/net/wireless and, when the
// iw program is installed, the SSID, the transmit bit rate, the frequency
// and band from `iw dev <if> link` (and the signal from there, when the
// kernel's table lacks it).
//
// cfg.Interface "" means the first wireless interface (sorted by name) at
// each run. A run fails with an error wrapping ErrNotAssociated when the
// interface is not connected to a network (the result then names the
// interface and nothing else), and fails when there is no wireless interface.
func NewWiFi(cfg WiFiConfig) Prober {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &wifiProber{iface: cfg.Interface, log: log, sysNet: sysClassNet, procWireless: procNetWireless, iw: runIW}
}

// WirelessInterfaces lists the system's wireless interfaces, sorted: those
// with /sys/class/net/<if>/wireless or phy80211, or listed in
// /proc/net/wireless. None on other systems than Linux.
func WirelessInterfaces() []string {
	return wirelessInterfaces(sysClassNet, procNetWireless)
}

type wifiProber struct {
	iface string
	log   *slog.Logger
	// Where to look; tests point these at fixtures.
	sysNet       string // /sys/class/net
	procWireless string // /proc/net/wireless
	// iw runs `iw dev <iface> link` and returns its output, or errNoIW.
	iw func(ctx context.Context, iface string) ([]byte, error)
}

func (p *wifiProber) Probe(ctx context.Context) (Result, error) {
	res := Result{Kind: wire.KindWiFi}
	iface, err := p.pickInterface()
	if err != nil {
		return res, err
	}
	w := &wire.WiFi{Interface: iface}
	res.WiFi = w

	signal, listed, err := readProcWireless(p.procWireless, iface)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	w.SignalDBM = signal
	out, iwErr := p.iw(ctx, iface)
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s: %w", iface, context.Cause(ctx))
	}
	var link iwLink
	switch {
	case iwErr == nil:
		link = parseIWLink(out)
	case errors.Is(iwErr, errNoIW):
		p.log.Debug("iw not installed: signal only", "interface", iface)
	default:
		return res, iwErr // with the kernel's signal level, if any
	}

	associated := link.connected
	if !link.known {
		// Without iw's word: the kernel lists a cfg80211 interface in
		// /proc/net/wireless only while it is associated; the operating
		// state says so too.
		switch operstate(p.sysNet, iface) {
		case "up":
			associated = true
		case "unknown", "":
			associated = listed
		default: // down, dormant, lowerlayerdown ...
			associated = false
		}
	}
	if !associated {
		w.SignalDBM = nil
		return res, fmt.Errorf("%s: %w", iface, ErrNotAssociated)
	}
	if w.SignalDBM == nil {
		w.SignalDBM = link.signal
	}
	w.SSID = link.ssid
	w.LinkBitsPerSecond = link.txBitrate
	w.FrequencyMHz = link.freq
	if link.freq != nil {
		w.Band = band(*link.freq)
	}
	if w.SignalDBM == nil && iwErr != nil {
		return res, fmt.Errorf("%s: no signal level in %s, and %w", iface, p.procWireless, iwErr)
	}
	return res, nil
}

// pickInterface returns the configured interface, checked, or the first
// wireless one.
func (p *wifiProber) pickInterface() (string, error) {
	found := wirelessInterfaces(p.sysNet, p.procWireless)
	if p.iface == "" {
		if len(found) == 0 {
			return "", errors.New("no wireless interface found")
		}
		return found[0], nil
	}
	if slices.Contains(found, p.iface) {
		return p.iface, nil
	}
	if strings.ContainsAny(p.iface, "/") || p.iface == "." || p.iface == ".." {
		return "", fmt.Errorf("interface %q not found", p.iface)
	}
	if _, err := os.Stat(filepath.Join(p.sysNet, p.iface)); err != nil {
		return "", fmt.Errorf("interface %q not found", p.iface)
	}
	return "", fmt.Errorf("interface %q is not wireless", p.iface)
}

func wirelessInterfaces(sysNet, procWireless string) []string {
	var names []string
	entries, _ := os.ReadDir(sysNet)
	for _, e := range entries {
		for _, mark := range []string{"wireless", "phy80211"} {
			if _, err := os.Stat(filepath.Join(sysNet, e.Name(), mark)); err == nil {
				names = append(names, e.Name())
				break
			}
		}
	}
	if data, err := os.ReadFile(procWireless); err == nil {
		for _, l := range procWirelessLines(data) {
			names = append(names, l.iface)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// operstate is the interface's RFC 2863 operating state ("up", "dormant",
// "down" ...), "" when unreadable.
func operstate(sysNet, iface string) string {
	b, err := os.ReadFile(filepath.Join(sysNet, iface, "operstate"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

type procWirelessLine struct {
	iface  string
	fields []string // status, link, level, noise, ...
}

// procWirelessLines parses /proc/net/wireless: two header lines, then
// "  wlan0: 0000   49.  -61.  -256        0 ...".
func procWirelessLines(data []byte) []procWirelessLine {
	var lines []procWirelessLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, "|") {
			continue // a header line
		}
		lines = append(lines, procWirelessLine{iface: name, fields: strings.Fields(rest)})
	}
	return lines
}

// readProcWireless returns iface's signal level in dBm from the kernel's
// table (nil when absent or not in dBm) and whether iface is listed there.
func readProcWireless(path, iface string) (signal *float64, listed bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	for _, l := range procWirelessLines(data) {
		if l.iface != iface {
			continue
		}
		if len(l.fields) < 3 {
			return nil, true, nil
		}
		// The level is followed by '.' when the driver updated it.
		v, err := strconv.ParseFloat(strings.TrimSuffix(l.fields[2], "."), 64)
		// A level not in dBm (some old drivers report 0-255 relative
		// units) or the -256 of "no value" is no signal figure.
		if err != nil || v >= 0 || v < -150 {
			return nil, true, nil
		}
		return &v, true, nil
	}
	return nil, false, nil
}

// iwLink is what `iw dev <if> link` says.
type iwLink struct {
	known     bool // the output said "Connected to" or "Not connected."
	connected bool
	ssid      string
	freq      *float64 // MHz
	signal    *float64 // dBm
	txBitrate *float64 // bit/s
}

// parseIWLink parses the output of `iw dev <if> link`:
//
//	Connected to 3c:84:6a:12:34:56 (on wlan0)
//		SSID: Hub Guest
//		freq: 5180
//		signal: -61 dBm
//		tx bitrate: 144.4 MBit/s MCS 15 short GI
//
// or "Not connected.".
func parseIWLink(out []byte) iwLink {
	var l iwLink
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "Connected to ") {
			l.known, l.connected = true, true
			continue
		}
		if line == "Not connected." {
			l.known = true
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "SSID":
			l.ssid = unescapeSSID(val)
		case "freq":
			if f, err := strconv.ParseFloat(firstField(val), 64); err == nil && f > 0 {
				l.freq = &f
			}
		case "signal":
			if s, err := strconv.ParseFloat(firstField(val), 64); err == nil && s < 0 && s >= -150 {
				l.signal = &s
			}
		case "tx bitrate":
			l.txBitrate = parseBitrate(val)
		}
	}
	return l
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// parseBitrate reads "144.4 MBit/s MCS 15 short GI" as bit/s.
func parseBitrate(s string) *float64 {
	f := strings.Fields(s)
	if len(f) < 2 {
		return nil
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v <= 0 {
		return nil
	}
	switch f[1] {
	case "kBit/s":
		v *= 1e3
	case "MBit/s":
		v *= 1e6
	case "GBit/s":
		v *= 1e9
	default:
		return nil
	}
	return &v
}

// unescapeSSID undoes iw's escaping: bytes that are not printable ASCII,
// '\', and spaces at either end are printed as \xNN. An SSID that is not
// UTF-8 stays escaped. SSIDs are at most 32 bytes; the wire allows 64.
func unescapeSSID(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 3
				continue
			}
		}
		b = append(b, s[i])
	}
	if !utf8.Valid(b) {
		return clipWireText(s, 64)
	}
	return clipWireText(string(b), 64)
}

// band names the Wi-Fi band of a frequency; "" above 6 GHz's (60 GHz).
func band(mhz float64) string {
	switch {
	case mhz < 3000:
		return "2.4GHz"
	case mhz < 5925:
		return "5GHz"
	case mhz <= 7125:
		return "6GHz"
	}
	return ""
}

// runIW runs `iw dev <iface> link` (no privileges needed).
func runIW(ctx context.Context, iface string) ([]byte, error) {
	path, err := exec.LookPath("iw")
	if err != nil {
		// A service's PATH may lack the sbin directories.
		for _, p := range []string{"/usr/sbin/iw", "/sbin/iw"} {
			if _, serr := os.Stat(p); serr == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return nil, errNoIW
	}
	ctx, cancel := context.WithTimeout(ctx, iwTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "dev", iface, "link")
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			return nil, fmt.Errorf("iw dev %s link: %w: %s", iface, err, clipWireText(msg, 200))
		}
		return nil, fmt.Errorf("iw dev %s link: %w", iface, err)
	}
	return stdout.Bytes(), nil
}
