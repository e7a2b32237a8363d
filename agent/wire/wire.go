// Package wire is the MQTT message schema shared by hubmon-agent and
// hubmon-collector. It is the only agent package the collector imports, and it
// uses the standard library only. It also holds the other format the two
// share: the enrolment bundle that carries a site's credentials (enrol.go).
//
// Version history (the version is in every payload and in every topic):
//
//	1  2026-11: measurement (kinds speedtest, linequality, dns, http, wifi),
//	   status (with the data budget), ack. Added within 1: clock_unsynced
//	   in measurement and status.
//
// Within a version only additive changes are allowed: new optional fields, new
// kinds. Decoders ignore unknown fields; Validate is strict about the fields it
// knows. Every version the collector still accepts keeps golden fixtures in
// testdata/, because Raspberry Pis upgrade later than the collector.
//
// Topics, for site S:
//
//	hubmon/v1/S/measurement  agent -> collector, QoS 1, not retained
//	hubmon/v1/S/status       agent -> collector, QoS 1, retained; "offline" is the Last Will
//	hubmon/v1/S/ack          collector -> agent, QoS 1: message ids committed to history
//
// Delivery: the agent keeps each measurement in its outbox until the collector
// acknowledges its MessageID on the ack topic. A broker's PUBACK is not proof of
// storage. Redelivery is harmless: the collector stores a MessageID once.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the schema version this package encodes.
const Version = 1

// TopicRoot is the prefix of every hubmon topic of this version.
const TopicRoot = "hubmon/v1"

// MaxPayloadBytes bounds every message of this version. Brokers are configured
// with a packet limit a little above it.
const MaxPayloadBytes = 64 << 10

// Topic kinds (the last topic level).
const (
	TopicMeasurement = "measurement"
	TopicStatus      = "status"
	TopicAck         = "ack"
)

// Kinds of measurement. The figures of each are in the field of the same
// name (kinds.go has all but speedtest).
const (
	KindSpeedtest   = "speedtest"
	KindLineQuality = "linequality"
	KindDNS         = "dns"
	KindHTTP        = "http"
	KindWiFi        = "wifi"
)

// Agent states carried by Status.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

var (
	siteRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	idRE    = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)
	probeRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,30}[a-z0-9])?$`)
)

// ValidSite reports whether s is a usable site id: lower-case letters, digits
// and inner hyphens, at most 63 characters (a DNS label), so it is safe in a
// topic, a file name and a Prometheus label.
func ValidSite(s string) bool { return siteRE.MatchString(s) }

// ValidID reports whether s is a usable message or agent id.
func ValidID(s string) bool { return idRE.MatchString(s) }

// ValidProbeName reports whether s is a usable probe name (a Prometheus label value).
func ValidProbeName(s string) bool { return probeRE.MatchString(s) }

// Topic returns the topic of the given kind for site.
func Topic(site, kind string) string { return TopicRoot + "/" + site + "/" + kind }

// ParseTopic splits "hubmon/v1/<site>/<kind>". It fails for any other shape.
func ParseTopic(topic string) (site, kind string, err error) {
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/")
	if !ok {
		return "", "", fmt.Errorf("topic %q: not under %s/", topic, TopicRoot)
	}
	site, kind, ok = strings.Cut(rest, "/")
	if !ok || strings.Contains(kind, "/") {
		return "", "", fmt.Errorf("topic %q: want %s/<site>/<kind>", topic, TopicRoot)
	}
	if !ValidSite(site) {
		return "", "", fmt.Errorf("topic %q: invalid site %q", topic, site)
	}
	switch kind {
	case TopicMeasurement, TopicStatus, TopicAck:
	default:
		return "", "", fmt.Errorf("topic %q: unknown kind %q", topic, kind)
	}
	return site, kind, nil
}

// Measurement is one result of one probe run, as published by an agent.
// MessageID makes redelivery harmless; MeasuredAt is when the probe started
// (UTC), not when the message arrived.
type Measurement struct {
	Version   int    `json:"version"`
	MessageID string `json:"message_id"`
	Site      string `json:"site"`
	AgentID   string `json:"agent_id"`
	// Seq is the agent's outbox sequence number: it grows by one per
	// measurement of one agent, so the collector can see gaps.
	Seq             int64     `json:"seq"`
	Probe           string    `json:"probe"`
	Kind            string    `json:"kind"`
	MeasuredAt      time.Time `json:"measured_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	Success         bool      `json:"success"`
	// Error says why the probe failed; empty when Success.
	Error string `json:"error,omitempty"`
	// ClockUnsynced says MeasuredAt may be wrong: when the measurement
	// ended the agent's system clock was not synchronised (NTP: what
	// timedatectl shows as "System clock synchronized: no", as on a Pi
	// without a real-time clock before its first sync), or the clock was
	// stepped while it ran. The collector stores the measurement with the
	// flag and counts it, rather than trusting its time blindly.
	ClockUnsynced bool `json:"clock_unsynced,omitempty"`

	Speedtest   *Speedtest   `json:"speedtest,omitempty"`
	LineQuality *LineQuality `json:"linequality,omitempty"`
	DNS         *DNS         `json:"dns,omitempty"`
	HTTP        *HTTP        `json:"http,omitempty"`
	WiFi        *WiFi        `json:"wifi,omitempty"`
}

// Speedtest holds the figures of a speed test. A figure that was not measured
// is absent (nil), never zero: a failed upload leaves UploadBitsPerSecond nil.
type Speedtest struct {
	ServerID   string `json:"server_id"`
	ServerName string `json:"server_name,omitempty"`
	ServerHost string `json:"server_host"`
	// ServerDistanceKM is the distance to a public server; absent for
	// self-hosted servers.
	ServerDistanceKM *float64 `json:"server_distance_km,omitempty"`

	DownloadBitsPerSecond *float64 `json:"download_bits_per_second,omitempty"`
	UploadBitsPerSecond   *float64 `json:"upload_bits_per_second,omitempty"`
	LatencySeconds        *float64 `json:"latency_seconds,omitempty"`
	JitterSeconds         *float64 `json:"jitter_seconds,omitempty"`
	// Bytes moved by the test, per direction: the test's cost on a capped line.
	DownloadBytes int64 `json:"download_bytes"`
	UploadBytes   int64 `json:"upload_bytes"`

	// How long each direction loaded the line, its warm-up included (the
	// rate is measured over the configured duration after the warm-up).
	DownloadDurationSeconds *float64 `json:"download_duration_seconds,omitempty"`
	UploadDurationSeconds   *float64 `json:"upload_duration_seconds,omitempty"`
	// Latency under load: the median round trip of small requests on a
	// separate connection while the line was downloading / uploading.
	LatencyUnderDownloadSeconds *float64 `json:"latency_under_download_seconds,omitempty"`
	LatencyUnderUploadSeconds   *float64 `json:"latency_under_upload_seconds,omitempty"`
	// Added latency: latency under load minus idle latency (both medians
	// of the same kind of request), never negative.
	AddedLatencyUnderDownloadSeconds *float64 `json:"added_latency_under_download_seconds,omitempty"`
	AddedLatencyUnderUploadSeconds   *float64 `json:"added_latency_under_upload_seconds,omitempty"`
	// BufferbloatGrade grades the larger of the two added latencies on the
	// DSLReports/Waveform scale: "A+" < 5 ms, "A" < 30 ms, "B" < 60 ms,
	// "C" < 200 ms, "D" < 400 ms, "F" from 400 ms. Empty when either
	// direction's added latency was not measured.
	BufferbloatGrade string `json:"bufferbloat_grade,omitempty"`
}

// BytesUsed is the total data the test consumed.
func (s *Speedtest) BytesUsed() int64 { return s.DownloadBytes + s.UploadBytes }

// Status is an agent's state, published retained on connect (online), as the
// MQTT Last Will (offline) and periodically while connected.
type Status struct {
	Version int    `json:"version"`
	Site    string `json:"site"`
	AgentID string `json:"agent_id"`
	State   string `json:"state"`
	// Session counts the agent's MQTT connections (kept in its outbox, so it
	// survives restarts and does not depend on the clock): the collector
	// orders one agent's statuses by it, so a late Last Will of an old
	// connection cannot mark a reconnected agent offline.
	Session int64 `json:"session"`
	// ConnectedAt is when that connection began, by the agent's clock.
	ConnectedAt   time.Time `json:"connected_at"`
	SentAt        time.Time `json:"sent_at"`
	AgentVersion  string    `json:"agent_version"`
	OS            string    `json:"os"`
	Arch          string    `json:"arch"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// OutboxBacklog is how many measurements wait for the collector's ack.
	OutboxBacklog int64 `json:"outbox_backlog"`
	// OutboxDroppedTotal counts measurements the agent discarded, over its
	// lifetime, because the outbox was full.
	OutboxDroppedTotal int64 `json:"outbox_dropped_total"`
	// The month's speed-test data budget (BudgetMonth, "2006-01", a calendar
	// month in the site's time zone): the budget (0: none), what speed tests
	// used, how many were shortened to stay inside it, and how many were
	// skipped (to stay inside it, or because another test was still running).
	BudgetMonth         string `json:"budget_month,omitempty"`
	DataBudgetBytes     int64  `json:"data_budget_bytes"`
	DataUsedBytes       int64  `json:"data_used_bytes"`
	SpeedtestsSkipped   int64  `json:"speedtests_skipped"`
	SpeedtestsShortened int64  `json:"speedtests_shortened"`
	// MeasurementsLostTotal counts measurements taken since the agent
	// started that could not be written to the outbox (disk full, say).
	MeasurementsLostTotal int64 `json:"measurements_lost_total"`
	// ClockUnsynced: the agent's system clock was not synchronised when it
	// sent this status (see Measurement.ClockUnsynced).
	ClockUnsynced bool `json:"clock_unsynced,omitempty"`
}

// Ack tells an agent which of its messages the collector has committed to its
// history (Stored, duplicates included) and which it refused for good
// (Rejected); the agent deletes both from its outbox.
type Ack struct {
	Version  int        `json:"version"`
	Site     string     `json:"site"`
	Stored   []string   `json:"stored,omitempty"`
	Rejected []Rejected `json:"rejected,omitempty"`
}

// Rejected names a message the collector will never store, and why.
type Rejected struct {
	MessageID string `json:"message_id"`
	Reason    string `json:"reason"`
}

// Limits used by validation. They are generous on purpose: they catch broken
// and hostile input, not slow or fast lines.
const (
	maxBitsPerSecond = 100e9     // 100 Gbit/s
	maxSeconds       = 24 * 3600 // any duration or latency
	maxBytes         = 1 << 50   // 1 PiB
	maxTextLen       = 1024
	// MaxFutureSkew is how far ahead of the collector's clock a timestamp may be.
	MaxFutureSkew = 5 * time.Minute
)

// oldest plausible timestamp: before hubmon existed is a broken clock.
var minTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// FieldError is a validation failure naming the field and the offending value.
// Reason is a short stable word for metrics labels.
type FieldError struct {
	Field  string
	Value  any
	Msg    string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s (got %s)", e.Field, e.Msg, describe(e.Value))
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 80 {
			x = x[:80] + "..."
		}
		return fmt.Sprintf("%q", strings.ToValidUTF8(x, "\uFFFD"))
	case *float64:
		if x == nil {
			return "nothing"
		}
		return fmt.Sprint(*x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	default:
		return fmt.Sprint(v)
	}
}

// Reason returns the short reason of a validation error, for a metric label:
// the Reason of the first FieldError in err, or "invalid".
func Reason(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) && fe.Reason != "" {
		return fe.Reason
	}
	return "invalid"
}

// Retryable reports whether a validation failure may clear without the
// message changing: a clock that is wrong now (future, bad_time), or a kind or
// schema version that a newer collector accepts. Such a message must stay with
// the agent; any other failure is permanent.
func Retryable(err error) bool {
	var walk func(error) bool
	walk = func(err error) bool {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				if walk(e) {
					return true
				}
			}
			return false
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			switch fe.Reason {
			case "version", "future", "bad_time", "bad_kind":
				return true
			}
		}
		return false
	}
	return walk(err)
}

// DecodeMeasurement decodes and validates a measurement published on the topic
// of site. Unknown fields are ignored. now is the receiver's clock, used to
// refuse messages from the future.
func DecodeMeasurement(payload []byte, site string, now time.Time) (*Measurement, error) {
	if err := checkPayload(payload); err != nil {
		return nil, err
	}
	var m Measurement
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, &FieldError{Field: "payload", Value: fmt.Sprintf("%d bytes", len(payload)), Msg: "not a JSON measurement: " + err.Error(), Reason: "malformed"}
	}
	if err := m.Validate(site, now); err != nil {
		return &m, err
	}
	return &m, nil
}

// DecodeStatus decodes and validates a status published on the topic of site.
func DecodeStatus(payload []byte, site string, now time.Time) (*Status, error) {
	if err := checkPayload(payload); err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(payload, &s); err != nil {
		return nil, &FieldError{Field: "payload", Value: fmt.Sprintf("%d bytes", len(payload)), Msg: "not a JSON status: " + err.Error(), Reason: "malformed"}
	}
	if err := s.Validate(site, now); err != nil {
		return &s, err
	}
	return &s, nil
}

// DecodeAck decodes and validates an ack received on the topic of site.
func DecodeAck(payload []byte, site string) (*Ack, error) {
	if err := checkPayload(payload); err != nil {
		return nil, err
	}
	var a Ack
	if err := json.Unmarshal(payload, &a); err != nil {
		return nil, &FieldError{Field: "payload", Value: fmt.Sprintf("%d bytes", len(payload)), Msg: "not a JSON ack: " + err.Error(), Reason: "malformed"}
	}
	var errs []error
	errs = append(errs, checkVersion(a.Version), checkSiteMatch(a.Site, site))
	for i, id := range a.Stored {
		if !idRE.MatchString(id) {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("stored[%d]", i), Value: id, Msg: "not a message id", Reason: "bad_id"})
		}
	}
	for i, r := range a.Rejected {
		if !idRE.MatchString(r.MessageID) {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("rejected[%d].message_id", i), Value: r.MessageID, Msg: "not a message id", Reason: "bad_id"})
		}
	}
	return &a, errors.Join(errs...)
}

func checkPayload(p []byte) error {
	if len(p) > MaxPayloadBytes {
		return &FieldError{Field: "payload", Value: fmt.Sprintf("%d bytes", len(p)), Msg: fmt.Sprintf("larger than %d bytes", MaxPayloadBytes), Reason: "too_large"}
	}
	if !utf8.Valid(p) {
		return &FieldError{Field: "payload", Value: fmt.Sprintf("%d bytes", len(p)), Msg: "not valid UTF-8", Reason: "malformed"}
	}
	return nil
}

func checkVersion(v int) error {
	if v != Version {
		return &FieldError{Field: "version", Value: v, Msg: fmt.Sprintf("unsupported schema version, this collector accepts %d", Version), Reason: "version"}
	}
	return nil
}

// checkSiteMatch: the site comes from the topic, which the broker binds to the
// authenticated identity; a payload claiming another site is refused.
func checkSiteMatch(payloadSite, topicSite string) error {
	if payloadSite != topicSite {
		return &FieldError{Field: "site", Value: payloadSite, Msg: fmt.Sprintf("differs from the topic's site %q", topicSite), Reason: "site_mismatch"}
	}
	return nil
}

func checkTime(field string, t, now time.Time) error {
	switch {
	case t.IsZero():
		return &FieldError{Field: field, Value: "", Msg: "missing", Reason: "bad_time"}
	case t.Before(minTime):
		return &FieldError{Field: field, Value: t, Msg: "before 2020: the agent's clock is wrong", Reason: "bad_time"}
	case t.After(now.Add(MaxFutureSkew)):
		return &FieldError{Field: field, Value: t, Msg: fmt.Sprintf("more than %s in the future of %s", MaxFutureSkew, now.UTC().Format(time.RFC3339)), Reason: "future"}
	}
	return nil
}

func checkText(field, v string, max int) error {
	if len(v) > max {
		return &FieldError{Field: field, Value: v, Msg: fmt.Sprintf("longer than %d bytes", max), Reason: "range"}
	}
	return nil
}

func checkRange(field string, v *float64, max float64) error {
	if v == nil {
		return nil
	}
	if math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0 || *v > max {
		return &FieldError{Field: field, Value: v, Msg: fmt.Sprintf("must be between 0 and %g", max), Reason: "range"}
	}
	return nil
}

func checkCount(field string, v int64, max int64) error {
	if v < 0 || v > max {
		return &FieldError{Field: field, Value: v, Msg: fmt.Sprintf("must be between 0 and %d", max), Reason: "range"}
	}
	return nil
}

// Validate checks m as received on the topic of site; it returns every problem
// found, joined.
func (m *Measurement) Validate(site string, now time.Time) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkVersion(m.Version))
	if !idRE.MatchString(m.MessageID) {
		add(&FieldError{Field: "message_id", Value: m.MessageID, Msg: "must be 8-64 letters, digits, '-' or '_'", Reason: "bad_id"})
	}
	add(checkSiteMatch(m.Site, site))
	if !idRE.MatchString(m.AgentID) {
		add(&FieldError{Field: "agent_id", Value: m.AgentID, Msg: "must be 8-64 letters, digits, '-' or '_'", Reason: "bad_id"})
	}
	if m.Seq < 1 {
		add(&FieldError{Field: "seq", Value: m.Seq, Msg: "must be at least 1", Reason: "range"})
	}
	if !ValidProbeName(m.Probe) {
		add(&FieldError{Field: "probe", Value: m.Probe, Msg: "must be 1-32 lower-case letters, digits, '-' or '_'", Reason: "bad_probe"})
	}
	add(checkTime("measured_at", m.MeasuredAt, now))
	d := m.DurationSeconds
	add(checkRange("duration_seconds", &d, maxSeconds))
	add(checkText("error", m.Error, maxTextLen))
	if m.Success && m.Error != "" {
		add(&FieldError{Field: "error", Value: m.Error, Msg: "must be empty when success is true", Reason: "inconsistent"})
	}
	if !m.Success && m.Error == "" {
		add(&FieldError{Field: "error", Value: "", Msg: "must say why when success is false", Reason: "inconsistent"})
	}
	switch m.Kind {
	case KindSpeedtest:
		if m.Speedtest == nil {
			add(&FieldError{Field: "speedtest", Value: "", Msg: "missing for kind speedtest", Reason: "inconsistent"})
			break
		}
		add(m.Speedtest.validate(m.Success))
	case KindLineQuality:
		if m.LineQuality == nil {
			// a run that failed before measuring anything (a panic, a bad
			// target) has no figures
			if m.Success {
				add(&FieldError{Field: "linequality", Value: "", Msg: "missing for a successful linequality measurement", Reason: "inconsistent"})
			}
			break
		}
		add(m.LineQuality.validate())
	case KindDNS:
		if m.DNS == nil {
			// a run that failed before measuring anything (a panic, a bad
			// target) has no figures
			if m.Success {
				add(&FieldError{Field: "dns", Value: "", Msg: "missing for a successful dns measurement", Reason: "inconsistent"})
			}
			break
		}
		add(m.DNS.validate())
	case KindHTTP:
		if m.HTTP == nil {
			// a run that failed before measuring anything (a panic, a bad
			// target) has no figures
			if m.Success {
				add(&FieldError{Field: "http", Value: "", Msg: "missing for a successful http measurement", Reason: "inconsistent"})
			}
			break
		}
		add(m.HTTP.validate())
	case KindWiFi:
		if m.WiFi == nil {
			// a run that failed before measuring anything (a panic, a bad
			// target) has no figures
			if m.Success {
				add(&FieldError{Field: "wifi", Value: "", Msg: "missing for a successful wifi measurement", Reason: "inconsistent"})
			}
			break
		}
		add(m.WiFi.validate())
	default:
		add(&FieldError{Field: "kind", Value: m.Kind, Msg: "unknown measurement kind", Reason: "bad_kind"})
	}
	return errors.Join(errs...)
}

func (s *Speedtest) validate(success bool) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkText("speedtest.server_id", s.ServerID, 128))
	add(checkText("speedtest.server_name", s.ServerName, 256))
	add(checkText("speedtest.server_host", s.ServerHost, 256))
	add(checkRange("speedtest.server_distance_km", s.ServerDistanceKM, 40100))
	add(checkRange("speedtest.download_bits_per_second", s.DownloadBitsPerSecond, maxBitsPerSecond))
	add(checkRange("speedtest.upload_bits_per_second", s.UploadBitsPerSecond, maxBitsPerSecond))
	add(checkRange("speedtest.latency_seconds", s.LatencySeconds, maxSeconds))
	add(checkRange("speedtest.jitter_seconds", s.JitterSeconds, maxSeconds))
	add(checkCount("speedtest.download_bytes", s.DownloadBytes, maxBytes))
	add(checkCount("speedtest.upload_bytes", s.UploadBytes, maxBytes))
	add(checkRange("speedtest.download_duration_seconds", s.DownloadDurationSeconds, maxSeconds))
	add(checkRange("speedtest.upload_duration_seconds", s.UploadDurationSeconds, maxSeconds))
	add(checkRange("speedtest.latency_under_download_seconds", s.LatencyUnderDownloadSeconds, maxSeconds))
	add(checkRange("speedtest.latency_under_upload_seconds", s.LatencyUnderUploadSeconds, maxSeconds))
	add(checkRange("speedtest.added_latency_under_download_seconds", s.AddedLatencyUnderDownloadSeconds, maxSeconds))
	add(checkRange("speedtest.added_latency_under_upload_seconds", s.AddedLatencyUnderUploadSeconds, maxSeconds))
	switch s.BufferbloatGrade {
	case "", "A+", "A", "B", "C", "D", "F":
	default:
		add(&FieldError{Field: "speedtest.bufferbloat_grade", Value: s.BufferbloatGrade, Msg: "must be A+, A, B, C, D, F or empty", Reason: "range"})
	}
	if success && (s.DownloadBitsPerSecond == nil || s.UploadBitsPerSecond == nil || s.LatencySeconds == nil) {
		add(&FieldError{Field: "speedtest", Value: "", Msg: "a successful test needs download, upload and latency", Reason: "inconsistent"})
	}
	return errors.Join(errs...)
}

// Validate checks s as received on the topic of site.
func (s *Status) Validate(site string, now time.Time) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkVersion(s.Version))
	add(checkSiteMatch(s.Site, site))
	if !idRE.MatchString(s.AgentID) {
		add(&FieldError{Field: "agent_id", Value: s.AgentID, Msg: "must be 8-64 letters, digits, '-' or '_'", Reason: "bad_id"})
	}
	if s.State != StateOnline && s.State != StateOffline {
		add(&FieldError{Field: "state", Value: s.State, Msg: `must be "online" or "offline"`, Reason: "range"})
	}
	if s.Session < 1 {
		add(&FieldError{Field: "session", Value: s.Session, Msg: "must be at least 1", Reason: "range"})
	}
	// A status is ordered by session, not by time, and its arrival is timed
	// by the collector: an agent whose clock is wrong still shows as online.
	if s.ConnectedAt.IsZero() {
		add(&FieldError{Field: "connected_at", Value: "", Msg: "missing", Reason: "bad_time"})
	}
	if s.SentAt.IsZero() {
		add(&FieldError{Field: "sent_at", Value: "", Msg: "missing", Reason: "bad_time"})
	}
	add(checkText("agent_version", s.AgentVersion, 64))
	add(checkText("os", s.OS, 32))
	add(checkText("arch", s.Arch, 32))
	up := s.UptimeSeconds
	add(checkRange("uptime_seconds", &up, 100*365*24*3600))
	add(checkCount("outbox_backlog", s.OutboxBacklog, 1<<40))
	add(checkCount("outbox_dropped_total", s.OutboxDroppedTotal, 1<<40))
	add(checkCount("measurements_lost_total", s.MeasurementsLostTotal, 1<<40))
	add(checkText("budget_month", s.BudgetMonth, 7))
	add(checkCount("data_budget_bytes", s.DataBudgetBytes, maxBytes))
	add(checkCount("data_used_bytes", s.DataUsedBytes, maxBytes))
	add(checkCount("speedtests_skipped", s.SpeedtestsSkipped, 1<<32))
	add(checkCount("speedtests_shortened", s.SpeedtestsShortened, 1<<32))
	return errors.Join(errs...)
}

// Float returns a pointer to v, for the optional figures.
func Float(v float64) *float64 { return &v }
