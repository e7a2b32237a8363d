package probe

import (
	"log/slog"
	"time"
)

// LineQualityConfig configures the continuous line-quality probe: a steady
// stream of small UDP probes to a hubmon echo responder (and ICMP echo where
// the agent may send it), summarised once per Period.
type LineQualityConfig struct {
	// UDPTarget is host:port of a hubmon echo responder (the collector's
	// echo_server). Required.
	UDPTarget string
	// ICMPTarget is a host to ping as well, when the system lets this user
	// send ICMP echo (net.ipv4.ping_group_range); "" for none.
	ICMPTarget string
	// SendInterval is the time between probes (default 1.5s).
	SendInterval time.Duration
	// Timeout: a probe not answered within it is lost (default 2s).
	Timeout time.Duration
	// Period is the length of one summary, one Probe call (default 60s).
	Period time.Duration
	// OutageAfter is how many consecutive losses make a disconnection
	// (default 2).
	OutageAfter int
	// Busy reports whether the agent itself is loading the line now (its
	// own speed test); nil for never. A probe for which it reports true
	// when the probe is sent or when its fate is decided (its reply came,
	// or its timeout ran out) is "under load": it is counted only in
	// SentUnderLoad and ReceivedUnderLoad, and left out of Sent, Received,
	// the RTT figures and the loss runs that make a disconnection (a lost
	// one neither starts nor extends one; an answered one still ends one,
	// as it proves the line carries traffic). It is called from the
	// prober's goroutine a few times per probe: it must be cheap and safe
	// for concurrent use (an atomic load).
	Busy func() bool
	// NoGatewayCheck turns the gateway check off: every disconnection's
	// cause is "unknown" and nothing is dialled nor read. Default false:
	// the default gateway is checked when a disconnection begins (see
	// NewLineQuality). Tests and end-to-end runs set it.
	NoGatewayCheck bool
	// RouteFile is the IPv4 routing table the gateway check reads
	// (default "/proc/net/route").
	RouteFile string
	// IPv6RouteFile is the IPv6 routing table the gateway check reads
	// (default "/proc/net/ipv6_route"); a missing file means no IPv6.
	IPv6RouteFile string
	Logger        *slog.Logger
}

// DNSConfig configures the DNS probe.
type DNSConfig struct {
	// Names to resolve (A and AAAA). At least one.
	Names []string
	// Resolvers: "system" for the system's resolver, or host:port of a
	// named one. Default: the system's only.
	Resolvers []string
	// Timeout bounds one lookup (default 5s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// HTTPService is one essential service to check.
type HTTPService struct {
	// Name is a short label (wire.ValidProbeName), e.g. "gov-uk".
	Name string
	// URL is fetched with GET; https normally.
	URL string
}

// HTTPConfig configures the essential-services probe.
type HTTPConfig struct {
	Services []HTTPService
	// Timeout bounds one service's check (default 15s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// WiFiConfig configures the Wi-Fi probe.
type WiFiConfig struct {
	// Interface is the wireless interface; "" for the first one found.
	Interface string
	Logger    *slog.Logger
}
