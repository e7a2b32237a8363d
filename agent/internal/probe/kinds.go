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
	Logger      *slog.Logger
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
