package wire

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// golden values: what the agent encodes (see agent/internal/publish) and what
// every collector that accepts version 1 must decode.
var golden = map[string]any{
	"measurement-v1-speedtest.json": &Measurement{
		Version: 1, MessageID: "Z3Q6B7Y4M2KD5WXAJ7H2N4PQRS", Site: "leeds-central-library",
		AgentID: "A7K2M9P4Q6R8S1T3V5W7X9Y2Z4", Seq: 42, Probe: "local", Kind: KindSpeedtest,
		MeasuredAt: time.Date(2026, 11, 26, 11, 58, 3, 250_000_000, time.UTC), DurationSeconds: 23.5,
		Success: true,
		Speedtest: &Speedtest{
			ServerID: "Custom", ServerName: "127.0.0.1:8080", ServerHost: "127.0.0.1:8080",
			DownloadBitsPerSecond: Float(34.2e6), UploadBitsPerSecond: Float(8.1e6),
			LatencySeconds: Float(0.0123), JitterSeconds: Float(0.0021),
			DownloadBytes: 43_000_000, UploadBytes: 10_100_000,
		},
	},
	"measurement-v1-failed.json": &Measurement{
		Version: 1, MessageID: "B4C6D8F2G3H5J7K9L2M4N6P8QR", Site: "leeds-central-library",
		AgentID: "A7K2M9P4Q6R8S1T3V5W7X9Y2Z4", Seq: 43, Probe: "internet", Kind: KindSpeedtest,
		MeasuredAt: time.Date(2026, 11, 26, 11, 59, 0, 0, time.UTC), DurationSeconds: 0.02,
		Success: false, Error: "find server: fetch server list: dial tcp: lookup www.speedtest.net: no such host",
		Speedtest: &Speedtest{},
	},
	"measurement-v1-linequality.json": &Measurement{
		Version: 1, MessageID: "L4Q6B7Y4M2KD5WXAJ7H2N4PQRS", Site: "leeds-central-library",
		AgentID: "A7K2M9P4Q6R8S1T3V5W7X9Y2Z4", Seq: 44, Probe: "line", Kind: KindLineQuality,
		MeasuredAt: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC), DurationSeconds: 60, Success: true,
		// 40 probes in the minute: 4 during the agent's own speed test (one
		// of them lost), 36 idle, of which 3 lost in an outage that began in
		// the previous summary.
		LineQuality: &LineQuality{Method: "udp", Target: "collector.example.gov.uk:9471", IntervalSeconds: 60, Sent: 36, Received: 33,
			SentUnderLoad: 4, ReceivedUnderLoad: 3,
			RTTMinSeconds: Float(0.011), RTTP50Seconds: Float(0.014), RTTP95Seconds: Float(0.031), RTTMaxSeconds: Float(0.052), JitterSeconds: Float(0.003),
			Outages: []Outage{{Start: time.Date(2026, 11, 26, 10, 59, 50, 0, time.UTC), End: time.Date(2026, 11, 26, 11, 0, 4, 500_000_000, time.UTC),
				DurationSeconds: 14.5, Cause: CauseWAN, LostProbes: 9}},
			OutageSecondsTotal: Float(14.5)},
	},
	"measurement-v1-dns.json": &Measurement{
		Version: 1, MessageID: "D4Q6B7Y4M2KD5WXAJ7H2N4PQRS", Site: "leeds-central-library",
		AgentID: "A7K2M9P4Q6R8S1T3V5W7X9Y2Z4", Seq: 45, Probe: "dns", Kind: KindDNS,
		MeasuredAt: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC), DurationSeconds: 0.2, Success: false, Error: "1 of 2 lookups failed",
		DNS: &DNS{Results: []DNSResult{
			{Resolver: "system", Name: "www.gov.uk", Success: true, ResolveSeconds: Float(0.018), Addresses: 4},
			{Resolver: "192.0.2.53:53", Name: "www.nhs.uk", Success: false, Error: "lookup www.nhs.uk: i/o timeout"},
		}},
	},
	"measurement-v1-http.json": &Measurement{
		Version: 1, MessageID: "H4Q6B7Y4M2KD5WXAJ7H2N4PQRS", Site: "leeds-central-library",
		AgentID: "A7K2M9P4Q6R8S1T3V5W7X9Y2Z4", Seq: 46, Probe: "services", Kind: KindHTTP,
		MeasuredAt: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC), DurationSeconds: 0.9, Success: true,
		HTTP: &HTTP{Results: []HTTPResult{{Name: "gov-uk", URL: "https://www.gov.uk/", Success: true, StatusCode: 200,
			DNSSeconds: Float(0.012), ConnectSeconds: Float(0.015), TLSSeconds: Float(0.041), FirstByteSeconds: Float(0.12), TotalSeconds: Float(0.31),
			CertNotAfter: func() *time.Time { t := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC); return &t }()}}},
	},
	"measurement-v1-wifi.json": &Measurement{
		Version: 1, MessageID: "W4Q6B7Y4M2KD5WXAJ7H2N4PQRS", Site: "leeds-central-library",
		AgentID: "A7K2M9P4Q6R8S1T3V5W7X9Y2Z4", Seq: 47, Probe: "wifi", Kind: KindWiFi,
		MeasuredAt: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC), DurationSeconds: 0.01, Success: true,
		WiFi: &WiFi{Interface: "wlan0", SSID: "Library-Staff", SignalDBM: Float(-61), LinkBitsPerSecond: Float(144.4e6), FrequencyMHz: Float(5180), Band: "5GHz"},
	},
	"status-v1-online.json": &Status{
		Version: 1, Site: "leeds-central-library", AgentID: "A7K2M9P4Q6R8S1T3V5W7X9Y2Z4",
		State: StateOnline, Session: 3, ConnectedAt: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), SentAt: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC),
		AgentVersion: "0.1.0", OS: "linux", Arch: "arm64", UptimeSeconds: 3600,
		OutboxBacklog: 3, OutboxDroppedTotal: 0,
		BudgetMonth: "2026-11", DataBudgetBytes: 20e9, DataUsedBytes: 3_400_000_000, SpeedtestsSkipped: 2, SpeedtestsShortened: 1,
	},
	"status-v1-offline.json": &Status{
		Version: 1, Site: "leeds-central-library", AgentID: "A7K2M9P4Q6R8S1T3V5W7X9Y2Z4",
		State: StateOffline, Session: 2, ConnectedAt: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC), SentAt: time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC),
		AgentVersion: "0.1.0", OS: "linux", Arch: "arm", UptimeSeconds: 12,
		OutboxBacklog: 0, OutboxDroppedTotal: 7,
	},
	"ack-v1.json": &Ack{
		Version: 1, Site: "leeds-central-library",
		Stored:   []string{"Z3Q6B7Y4M2KD5WXAJ7H2N4PQRS"},
		Rejected: []Rejected{{MessageID: "B4C6D8F2G3H5J7K9L2M4N6P8QR", Reason: "measured_at: more than 5m0s in the future"}},
	},
}

func TestGoldenEncode(t *testing.T) {
	for name, v := range golden {
		t.Run(name, func(t *testing.T) {
			got, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name)
			if *update {
				var buf bytes.Buffer
				json.Indent(&buf, got, "", "  ")
				buf.WriteByte('\n')
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, compact.Bytes()) {
				t.Errorf("encoding changed (run go test -update if intended, and keep old versions decodable):\n got %s\nwant %s", got, compact.Bytes())
			}
		})
	}
}

func TestGoldenDecode(t *testing.T) {
	const site = "leeds-central-library"
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) < len(golden) {
		t.Fatalf("found %d fixtures, want at least %d", len(files), len(golden))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			base := filepath.Base(f)
			switch {
			case strings.HasPrefix(base, "measurement-"):
				m, err := DecodeMeasurement(b, site, now)
				if err != nil {
					t.Fatal(err)
				}
				if m.MeasuredAt.Location() != time.UTC && m.MeasuredAt.UTC() != m.MeasuredAt {
					t.Errorf("measured_at not UTC")
				}
			case strings.HasPrefix(base, "status-"):
				if _, err := DecodeStatus(b, site, now); err != nil {
					t.Fatal(err)
				}
			case strings.HasPrefix(base, "ack-"):
				if _, err := DecodeAck(b, site); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("fixture %s: unknown message type", base)
			}
		})
	}
}

func TestDecodeMeasurementRejects(t *testing.T) {
	good, err := os.ReadFile("testdata/measurement-v1-speedtest.json")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(from, to string) []byte {
		t.Helper()
		if !bytes.Contains(good, []byte(from)) {
			t.Fatalf("fixture lacks %q", from)
		}
		return bytes.Replace(good, []byte(from), []byte(to), 1)
	}
	tests := []struct {
		name, site string
		payload    []byte
		reason     string
		mention    string // the error must name the field and value
	}{
		{"other site in payload", "bradford-library", good, "site_mismatch", `site: differs from the topic's site "bradford-library" (got "leeds-central-library")`},
		{"version 2", "leeds-central-library", edit(`"version": 1`, `"version": 2`), "version", "version: unsupported schema version"},
		{"negative speed", "leeds-central-library", edit(`34200000`, `-1`), "range", "speedtest.download_bits_per_second: must be between 0 and 1e+11 (got -1)"},
		{"huge number", "leeds-central-library", edit(`34200000`, `1e400`), "malformed", "payload: not a JSON measurement"},
		{"NaN", "leeds-central-library", edit(`34200000`, `NaN`), "malformed", "payload: not a JSON measurement"},
		{"future", "leeds-central-library", edit(`2026-11-26T11:58:03.25Z`, `2026-11-26T13:00:00Z`), "future", "measured_at: more than 5m0s in the future"},
		{"ancient", "leeds-central-library", edit(`2026-11-26T11:58:03.25Z`, `1970-01-01T00:00:00Z`), "bad_time", "measured_at: before 2020"},
		{"bad id", "leeds-central-library", edit(`Z3Q6B7Y4M2KD5WXAJ7H2N4PQRS`, `a/b`), "bad_id", `message_id: must be 8-64`},
		{"unknown kind", "leeds-central-library", edit(`"kind": "speedtest"`, `"kind": "teleport"`), "bad_kind", `kind: unknown measurement kind (got "teleport")`},
		{"success with no figures", "leeds-central-library", edit(`"upload_bits_per_second": 8100000,`, ``), "inconsistent", "a successful test needs"},
		{"invalid utf-8", "leeds-central-library", edit(`Custom`, "Cu\xffom"), "malformed", "not valid UTF-8"},
		{"too large", "leeds-central-library", append(append([]byte{}, good[:len(good)-2]...), []byte(`,"pad":"`+strings.Repeat("x", MaxPayloadBytes)+`"}`)...), "too_large", "larger than"},
		{"not json", "leeds-central-library", []byte(`{{{{`), "malformed", "payload: not a JSON measurement"},
		{"deeply nested", "leeds-central-library", []byte(`{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`), "malformed", "exceeded max depth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMeasurement(tt.payload, tt.site, now)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := Reason(err); got != tt.reason {
				t.Errorf("reason %q, want %q (%v)", got, tt.reason, err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not contain %q", err, tt.mention)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	good, _ := os.ReadFile("testdata/measurement-v1-speedtest.json")
	for _, tt := range []struct {
		from, to string
		retry    bool
	}{
		{`"version": 1`, `"version": 2`, true},
		{`2026-11-26T11:58:03.25Z`, `2026-11-26T13:00:00Z`, true},
		{`"kind": "speedtest"`, `"kind": "teleport"`, true},
		{`34200000`, `-1`, false},
		{`"probe": "local",`, `"probe": "Bad Name", "future_kind_next": 1,`, false},
		{`"probe": "local"`, `"probe": "Bad Name"`, false},
	} {
		if tt.to == `"probe": "Bad Name", "future_kind_next": 1,` {
			// a permanent and a transient problem together: keep it
			good := bytes.Replace(good, []byte(`"kind": "speedtest"`), []byte(`"kind": "teleport"`), 1)
			_, err := DecodeMeasurement(bytes.Replace(good, []byte(tt.from), []byte(tt.to), 1), "leeds-central-library", now)
			if !Retryable(err) {
				t.Errorf("bad probe + new kind: Retryable false (%v)", err)
			}
			continue
		}
		p := bytes.Replace(good, []byte(tt.from), []byte(tt.to), 1)
		_, err := DecodeMeasurement(p, "leeds-central-library", now)
		if err == nil || Retryable(err) != tt.retry {
			t.Errorf("%s -> %s: err %v, Retryable %v, want %v", tt.from, tt.to, err, Retryable(err), tt.retry)
		}
	}
}

func TestFailedRunWithoutFigures(t *testing.T) {
	for _, kind := range []string{KindLineQuality, KindDNS, KindHTTP, KindWiFi} {
		m := &Measurement{Version: 1, MessageID: "MSG000000001", Site: "x-site", AgentID: "AGENT0001", Seq: 1, Probe: "p",
			Kind: kind, MeasuredAt: now, Success: false, Error: "probe panicked: boom"}
		if err := m.Validate("x-site", now); err != nil {
			t.Errorf("%s: a failed run without figures refused: %v", kind, err)
		}
		m.Success, m.Error = true, ""
		if err := m.Validate("x-site", now); err == nil {
			t.Errorf("%s: a successful run without figures accepted", kind)
		}
	}
}

func TestUnknownFieldsIgnored(t *testing.T) {
	good, _ := os.ReadFile("testdata/measurement-v1-speedtest.json")
	p := bytes.Replace(good, []byte(`"version": 1,`), []byte(`"version": 1, "added_in_v1_later": {"x": 1},`), 1)
	if _, err := DecodeMeasurement(p, "leeds-central-library", now); err != nil {
		t.Fatal(err)
	}
}

func TestParseTopic(t *testing.T) {
	for _, tt := range []struct {
		topic, site, kind string
		ok                bool
	}{
		{"hubmon/v1/leeds-1/measurement", "leeds-1", "measurement", true},
		{"hubmon/v1/leeds-1/status", "leeds-1", "status", true},
		{"hubmon/v2/leeds-1/status", "", "", false},
		{"hubmon/v1/Leeds/status", "", "", false},
		{"hubmon/v1/leeds/x/status", "", "", false},
		{"hubmon/v1/leeds/other", "", "", false},
	} {
		site, kind, err := ParseTopic(tt.topic)
		if (err == nil) != tt.ok || site != tt.site || kind != tt.kind {
			t.Errorf("ParseTopic(%q) = %q, %q, %v", tt.topic, site, kind, err)
		}
	}
}

func FuzzDecodeMeasurement(f *testing.F) {
	files, _ := filepath.Glob("testdata/measurement-*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeasurement(b, "leeds-central-library", now)
		if err == nil {
			// whatever was accepted must survive a round trip and validate again
			out, merr := json.Marshal(m)
			if merr != nil {
				t.Fatal(merr)
			}
			if _, err := DecodeMeasurement(out, "leeds-central-library", now); err != nil {
				t.Fatalf("re-encoded accepted message rejected: %v", err)
			}
		}
	})
}

// TestLineQualityValidate: the counts under load, the dropped outages and the
// outage total are checked.
func TestLineQualityValidate(t *testing.T) {
	outage := Outage{Start: now.Add(-time.Minute), End: now.Add(-50 * time.Second), DurationSeconds: 10, Cause: CauseLAN, LostProbes: 6}
	full := make([]Outage, maxResults)
	for i := range full {
		full[i] = outage
	}
	base := func() LineQuality {
		return LineQuality{Method: "udp", Target: "127.0.0.1:9471", IntervalSeconds: 60, Sent: 36, Received: 30,
			SentUnderLoad: 4, ReceivedUnderLoad: 3, Outages: []Outage{outage}, OutageSecondsTotal: Float(10)}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*LineQuality)
		field string // "" when valid
	}{
		{"valid", func(*LineQuality) {}, ""},
		{"from an older agent", func(l *LineQuality) { l.SentUnderLoad, l.ReceivedUnderLoad, l.OutageSecondsTotal = 0, 0, nil }, ""},
		{"all under load", func(l *LineQuality) { l.Sent, l.Received, l.Outages, l.OutageSecondsTotal = 0, 0, nil, Float(0) }, ""},
		{"negative under load", func(l *LineQuality) { l.SentUnderLoad = -1 }, "linequality.sent_under_load"},
		{"received more under load than sent", func(l *LineQuality) { l.ReceivedUnderLoad = 5 }, "linequality.received_under_load"},
		{"dropped with 64 listed", func(l *LineQuality) { l.Outages, l.OutagesDropped, l.OutageSecondsTotal = full, 3, Float(10*67) }, ""},
		{"dropped with fewer listed", func(l *LineQuality) { l.OutagesDropped = 3; l.OutageSecondsTotal = Float(40) }, "linequality.outages_dropped"},
		{"negative dropped", func(l *LineQuality) { l.Outages, l.OutagesDropped = full, -1 }, "linequality.outages_dropped"},
		{"total below the listed", func(l *LineQuality) { l.OutageSecondsTotal = Float(9.5) }, "linequality.outage_seconds_total"},
		{"total negative", func(l *LineQuality) { l.Outages, l.OutageSecondsTotal = nil, Float(-1) }, "linequality.outage_seconds_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := base()
			tc.edit(&l)
			err := l.validate()
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
				t.Errorf("err = %v, want one about %s", err, tc.field)
			}
		})
	}
}
