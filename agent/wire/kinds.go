package wire

import (
	"errors"
	"fmt"
	"time"
)

// LineQuality summarises a steady stream of small probes (UDP echo to a hubmon
// echo responder, or ICMP echo) over one interval: the line's latency,
// jitter and loss measured continuously, not from one packet.
type LineQuality struct {
	// Method is "udp" (hubmon echo) or "icmp".
	Method string `json:"method"`
	// Target is what was probed: host:port for udp, a host for icmp.
	Target string `json:"target"`
	// IntervalSeconds is how long this summary covers.
	IntervalSeconds float64 `json:"interval_seconds"`
	// Sent counts the probes sent while the line was idle (those under
	// load are in SentUnderLoad, not here).
	Sent int64 `json:"sent"`
	// Received counts those of them answered in time; lost = sent -
	// received.
	Received int64 `json:"received"`
	// SentUnderLoad counts probes sent while the agent itself loaded the
	// line (its own speed test), and ReceivedUnderLoad those of them
	// answered in time. They are left out of Sent, Received, the RTT
	// figures and the outages, so that the agent's own tests do not read as
	// loss. Absent (0) from agents that do not tell them apart.
	SentUnderLoad     int64 `json:"sent_under_load,omitempty"`
	ReceivedUnderLoad int64 `json:"received_under_load,omitempty"`
	// Round-trip times of the answered probes; absent when none came back.
	RTTMinSeconds *float64 `json:"rtt_min_seconds,omitempty"`
	RTTP50Seconds *float64 `json:"rtt_p50_seconds,omitempty"`
	RTTP95Seconds *float64 `json:"rtt_p95_seconds,omitempty"`
	RTTMaxSeconds *float64 `json:"rtt_max_seconds,omitempty"`
	// JitterSeconds is the mean absolute difference of consecutive RTTs
	// (RFC 3550's interarrival jitter without its smoothing).
	JitterSeconds *float64 `json:"jitter_seconds,omitempty"`
	// Outages are the disconnections that ended in this interval, in order;
	// at most 64 (the first 64 when more ended).
	Outages []Outage `json:"outages,omitempty"`
	// OutagesDropped counts the disconnections that ended in this interval
	// after the 64 listed (only when 64 are listed).
	OutagesDropped int64 `json:"outages_dropped,omitempty"`
	// OutageSecondsTotal is the summed duration of every disconnection that
	// ended in this interval, listed or dropped (0 when none). Absent from
	// agents older than the field: sum the listed ones then.
	OutageSecondsTotal *float64 `json:"outage_seconds_total,omitempty"`
	// OutageSince is set while a disconnection is going on at the end of
	// the interval: when it began.
	OutageSince *time.Time `json:"outage_since,omitempty"`
}

// Outage is a disconnection: consecutive probes lost.
type Outage struct {
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Cause is "wan" when the hub's own router (the default gateway) still
	// answered, "lan" when it did not, "unknown" when it could not be told.
	Cause      string `json:"cause"`
	LostProbes int64  `json:"lost_probes"`
}

// Outage causes.
const (
	CauseWAN     = "wan"
	CauseLAN     = "lan"
	CauseUnknown = "unknown"
)

// DNS holds the results of resolving configured names.
type DNS struct {
	Results []DNSResult `json:"results"`
}

// DNSResult is one name resolved by one resolver.
type DNSResult struct {
	// Resolver is "system" or the host:port of a named resolver.
	Resolver string `json:"resolver"`
	Name     string `json:"name"`
	Success  bool   `json:"success"`
	// Error says why it failed (NXDOMAIN, timeout, refused ...).
	Error          string   `json:"error,omitempty"`
	ResolveSeconds *float64 `json:"resolve_seconds,omitempty"`
	Addresses      int      `json:"addresses"`
}

// HTTP holds the results of checking essential services over HTTPS.
type HTTP struct {
	Results []HTTPResult `json:"results"`
}

// HTTPResult is one service checked once.
type HTTPResult struct {
	// Name is the service's short name from the agent config (a label).
	Name       string `json:"name"`
	URL        string `json:"url"`
	Success    bool   `json:"success"`
	Error      string `json:"error,omitempty"`
	StatusCode int    `json:"status_code,omitempty"`
	// Phase timings; absent when the phase did not happen (a reused
	// connection has no DNS, connect or TLS phase).
	DNSSeconds       *float64 `json:"dns_seconds,omitempty"`
	ConnectSeconds   *float64 `json:"connect_seconds,omitempty"`
	TLSSeconds       *float64 `json:"tls_seconds,omitempty"`
	FirstByteSeconds *float64 `json:"first_byte_seconds,omitempty"`
	TotalSeconds     *float64 `json:"total_seconds,omitempty"`
	// CertNotAfter is the expiry of the server's leaf certificate.
	CertNotAfter *time.Time `json:"cert_not_after,omitempty"`
}

// WiFi describes the agent's wireless link, when it has one.
type WiFi struct {
	Interface         string   `json:"interface"`
	SSID              string   `json:"ssid,omitempty"`
	SignalDBM         *float64 `json:"signal_dbm,omitempty"`
	LinkBitsPerSecond *float64 `json:"link_bits_per_second,omitempty"`
	FrequencyMHz      *float64 `json:"frequency_mhz,omitempty"`
	// Band is "2.4GHz", "5GHz" or "6GHz".
	Band string `json:"band,omitempty"`
}

const (
	maxResults = 64
	// maxOutageSeconds bounds one disconnection.
	maxOutageSeconds = 366 * 24 * 3600
	// maxProbes bounds the probe counts of one summary.
	maxProbes = 1 << 32
)

func (l *LineQuality) validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if l.Method != "udp" && l.Method != "icmp" {
		add(&FieldError{Field: "linequality.method", Value: l.Method, Msg: `must be "udp" or "icmp"`, Reason: "range"})
	}
	add(checkText("linequality.target", l.Target, 256))
	iv := l.IntervalSeconds
	add(checkRange("linequality.interval_seconds", &iv, maxSeconds))
	add(checkCount("linequality.sent", l.Sent, maxProbes))
	add(checkCount("linequality.received", l.Received, l.Sent))
	add(checkCount("linequality.sent_under_load", l.SentUnderLoad, maxProbes))
	add(checkCount("linequality.received_under_load", l.ReceivedUnderLoad, l.SentUnderLoad))
	for _, f := range []struct {
		name string
		v    *float64
	}{{"rtt_min_seconds", l.RTTMinSeconds}, {"rtt_p50_seconds", l.RTTP50Seconds}, {"rtt_p95_seconds", l.RTTP95Seconds},
		{"rtt_max_seconds", l.RTTMaxSeconds}, {"jitter_seconds", l.JitterSeconds}} {
		add(checkRange("linequality."+f.name, f.v, maxSeconds))
	}
	if len(l.Outages) > maxResults {
		add(&FieldError{Field: "linequality.outages", Value: len(l.Outages), Msg: fmt.Sprintf("at most %d", maxResults), Reason: "range"})
	}
	add(checkCount("linequality.outages_dropped", l.OutagesDropped, maxProbes))
	if l.OutagesDropped > 0 && len(l.Outages) != maxResults {
		add(&FieldError{Field: "linequality.outages_dropped", Value: l.OutagesDropped, Msg: fmt.Sprintf("only when %d outages are listed (got %d)", maxResults, len(l.Outages)), Reason: "inconsistent"})
	}
	var listed float64
	for i, o := range l.Outages {
		f := fmt.Sprintf("linequality.outages[%d]", i)
		if o.Start.IsZero() || o.End.Before(o.Start) {
			add(&FieldError{Field: f + ".end", Value: o.End, Msg: "must not be before start", Reason: "bad_time"})
		}
		d := o.DurationSeconds
		add(checkRange(f+".duration_seconds", &d, maxOutageSeconds))
		listed += d
		if o.Cause != CauseWAN && o.Cause != CauseLAN && o.Cause != CauseUnknown {
			add(&FieldError{Field: f + ".cause", Value: o.Cause, Msg: `must be "wan", "lan" or "unknown"`, Reason: "range"})
		}
		add(checkCount(f+".lost_probes", o.LostProbes, maxProbes))
	}
	if l.OutageSecondsTotal != nil {
		// The first outage may have begun long before the interval; the
		// others are within it.
		add(checkRange("linequality.outage_seconds_total", l.OutageSecondsTotal, 2*maxOutageSeconds))
		if t := *l.OutageSecondsTotal; t < listed-1e-6*(1+listed) {
			add(&FieldError{Field: "linequality.outage_seconds_total", Value: t, Msg: fmt.Sprintf("less than the listed outages' %g", listed), Reason: "inconsistent"})
		}
	}
	return errors.Join(errs...)
}

func (d *DNS) validate() error {
	var errs []error
	if len(d.Results) == 0 || len(d.Results) > maxResults {
		errs = append(errs, &FieldError{Field: "dns.results", Value: len(d.Results), Msg: fmt.Sprintf("must hold 1 to %d results", maxResults), Reason: "range"})
	}
	for i, r := range d.Results {
		f := fmt.Sprintf("dns.results[%d]", i)
		for _, err := range []error{
			checkText(f+".resolver", r.Resolver, 256), checkText(f+".name", r.Name, 253), checkText(f+".error", r.Error, maxTextLen),
			checkRange(f+".resolve_seconds", r.ResolveSeconds, maxSeconds), checkCount(f+".addresses", int64(r.Addresses), 1024),
			nonEmpty(f+".resolver", r.Resolver), nonEmpty(f+".name", r.Name), consistent(f, r.Success, r.Error),
		} {
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (h *HTTP) validate() error {
	var errs []error
	if len(h.Results) == 0 || len(h.Results) > maxResults {
		errs = append(errs, &FieldError{Field: "http.results", Value: len(h.Results), Msg: fmt.Sprintf("must hold 1 to %d results", maxResults), Reason: "range"})
	}
	for i, r := range h.Results {
		f := fmt.Sprintf("http.results[%d]", i)
		if !ValidProbeName(r.Name) {
			errs = append(errs, &FieldError{Field: f + ".name", Value: r.Name, Msg: "must be 1-32 lower-case letters, digits, '-' or '_'", Reason: "range"})
		}
		for _, err := range []error{
			checkText(f+".url", r.URL, 2048), checkText(f+".error", r.Error, maxTextLen),
			checkCount(f+".status_code", int64(r.StatusCode), 999),
			checkRange(f+".dns_seconds", r.DNSSeconds, maxSeconds), checkRange(f+".connect_seconds", r.ConnectSeconds, maxSeconds),
			checkRange(f+".tls_seconds", r.TLSSeconds, maxSeconds), checkRange(f+".first_byte_seconds", r.FirstByteSeconds, maxSeconds),
			checkRange(f+".total_seconds", r.TotalSeconds, maxSeconds), consistent(f, r.Success, r.Error),
		} {
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (w *WiFi) validate() error {
	var errs []error
	for _, err := range []error{
		nonEmpty("wifi.interface", w.Interface), checkText("wifi.interface", w.Interface, 32), checkText("wifi.ssid", w.SSID, 64),
		checkRange("wifi.link_bits_per_second", w.LinkBitsPerSecond, maxBitsPerSecond),
		checkRange("wifi.frequency_mhz", w.FrequencyMHz, 100_000),
	} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if w.SignalDBM != nil && (*w.SignalDBM < -150 || *w.SignalDBM > 30 || *w.SignalDBM != *w.SignalDBM) {
		errs = append(errs, &FieldError{Field: "wifi.signal_dbm", Value: w.SignalDBM, Msg: "must be between -150 and 30", Reason: "range"})
	}
	switch w.Band {
	case "", "2.4GHz", "5GHz", "6GHz":
	default:
		errs = append(errs, &FieldError{Field: "wifi.band", Value: w.Band, Msg: `must be "2.4GHz", "5GHz" or "6GHz"`, Reason: "range"})
	}
	return errors.Join(errs...)
}

func nonEmpty(field, v string) error {
	if v == "" {
		return &FieldError{Field: field, Value: "", Msg: "required", Reason: "inconsistent"}
	}
	return nil
}

func consistent(field string, success bool, errText string) error {
	if success != (errText == "") {
		return &FieldError{Field: field + ".error", Value: errText, Msg: "must be empty exactly when success is true", Reason: "inconsistent"}
	}
	return nil
}
