package main_test

// Hostile input against the real collector (embedded broker, a sites file):
// spoofed, replayed and malformed messages are refused or deduplicated and
// counted, memory stays bounded, invented site ids do not grow /metrics or
// the history, and the HTTP server bounds slow and large requests and has
// nothing that changes state.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// hostileCollector runs a collector with the embedded broker and a sites
// file listing fault-hub-1 only; fault-hub-2 has a password but is not in
// the sites file.
func hostileCollector(t *testing.T, autoRegister bool) *fleet {
	t.Helper()
	f := newFleet(t, fleetOptions{agents: 2})
	sites := filepath.Join(f.dir, "sites.yml")
	writeFile(t, sites, `sites:
  - id: fault-hub-1
    name: Hostile Test Hub
    hub_type: library
    council: Test Council
    ons_code: E08000035
`)
	writeFile(t, f.collectorConf, readFile(t, f.collectorConf)+fmt.Sprintf("sites_file: %s\nauto_register: %v\n", sites, autoRegister))
	f.startCollector()
	return f
}

func (f *fleet) value(name string, labels map[string]string) float64 {
	mfs, _ := scrape(f.tb, f.metricsURL())
	v, _ := sample(mfs, name, labels)
	return v
}

func (f *fleet) rejected(reason string) float64 {
	return f.value("hubmon_collector_rejected_messages_total", map[string]string{"reason": reason})
}

// TestHostileMessages: spoofing, replays, messages from the future and
// malformed payloads are refused or deduplicated, each with a counted
// reason; nothing they carry reaches the history; the collector's memory
// stays bounded after 1,000 oversized and invalid messages.
func TestHostileMessages(t *testing.T) {
	f := hostileCollector(t, false)
	const site = "fault-hub-1"
	c := connectAs(t, f.brokerURL, site, agentPassword)
	topic := wire.Topic(site, wire.TopicMeasurement)
	now := time.Now().UTC()

	// spoofing: a payload claiming another site, on the site's own topic
	spoof := dnsMeasurement("fault-hub-2", "hostile-agent", 1, now)
	c.publishJSON(topic, spoof)
	// a site with a password but not in the sites file
	stranger := connectAs(t, f.brokerURL, "fault-hub-2", agentPassword)
	stranger.publishJSON(wire.Topic("fault-hub-2", wire.TopicMeasurement), dnsMeasurement("fault-hub-2", "stranger-agent", 1, now))
	// another site's topic: the broker refuses it (and drops the connection)
	other := connectAs(t, f.brokerURL, site, agentPassword) // takes over the session: c reconnects below
	if err := other.publish(wire.Topic("fault-hub-2", wire.TopicMeasurement), 1, mustJSON(t, dnsMeasurement("fault-hub-2", "hostile-agent", 2, now))); err == nil {
		t.Errorf("a publish on another site's topic was acknowledged")
	}
	c = connectAs(t, f.brokerURL, site, agentPassword)
	// a replay: the same message three times
	good := dnsMeasurement(site, "hostile-agent", 1, now)
	for range 3 {
		c.publishJSON(topic, good)
	}
	// from the future
	c.publishJSON(topic, dnsMeasurement(site, "hostile-agent", 2, now.Add(time.Hour)))

	// malformed
	nested := strings.Repeat("[", 30000) + strings.Repeat("]", 30000)
	huge := strings.Replace(string(mustJSON(t, dnsMeasurement(site, "hostile-agent", 3, now))), `"resolve_seconds":0.02`, `"resolve_seconds":1e400`, 1)
	bigSeq := strings.Replace(string(mustJSON(t, dnsMeasurement(site, "hostile-agent", 4, now))), `"seq":4`, `"seq":1e30`, 1)
	nan := strings.Replace(string(mustJSON(t, dnsMeasurement(site, "hostile-agent", 5, now))), `"resolve_seconds":0.02`, `"resolve_seconds":NaN`, 1)
	badUTF8 := strings.Replace(string(mustJSON(t, dnsMeasurement(site, "hostile-agent", 6, now))), "www.gov.uk", "www.gov.uk\xff\xfe", 1)
	negative := strings.Replace(string(mustJSON(t, dnsMeasurement(site, "hostile-agent", 7, now))), `"resolve_seconds":0.02`, `"resolve_seconds":-1`, 1)
	oversized := `{"pad":"` + strings.Repeat("x", wire.MaxPayloadBytes) + `"}`
	malformed := []struct{ name, payload, reason string }{
		{"deeply nested", nested, "malformed"},
		{"1e400", huge, "malformed"},
		{"seq 1e30", bigSeq, "malformed"},
		{"NaN", nan, "malformed"},
		{"invalid UTF-8", badUTF8, "malformed"},
		{"negative time", negative, "range"},
		{"oversized", oversized, "too_large"},
	}
	for _, m := range malformed {
		if err := c.publish(topic, 1, []byte(m.payload)); err != nil {
			t.Fatalf("publish %s: %v", m.name, err)
		}
	}
	// larger than the broker's packet limit: refused before it is read
	tooBig := connectAs(t, f.brokerURL, site, agentPassword)
	if err := tooBig.publish(topic, 1, bytes.Repeat([]byte("x"), 200_000)); err == nil {
		t.Errorf("a 200 kB packet was acknowledged")
	}
	c = connectAs(t, f.brokerURL, site, agentPassword)
	c.publishJSON(topic, dnsMeasurement(site, "hostile-agent", 8, now)) // still works

	waitFor(t, "the valid messages stored", 30*time.Second, func() bool { return len(history(t, f.db)) >= 2 })
	want := map[string]float64{"site_mismatch": 1, "unknown_site": 1, "future": 1, "malformed": 5, "range": 1, "too_large": 1}
	for reason, n := range want {
		if got := f.rejected(reason); got != n {
			t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	if got := f.value("hubmon_collector_messages_total", map[string]string{"kind": "measurement", "result": "duplicate"}); got != 2 {
		t.Errorf("duplicates counted %v, want 2", got)
	}
	rows := history(t, f.db)
	if len(rows) != 2 || rows[0].site != site || rows[0].seq != 1 || rows[1].seq != 8 {
		t.Errorf("history %+v, want seq 1 and 8 of %s only", rows, site)
	}
	t.Logf("fault=hostile_spoof_replay_malformed injected=%d sent=%d stored=%d lost=0 duplicated=0 rejected_counted=%v",
		3+len(malformed)+1+1, 3+1+len(malformed)+1, len(rows), want)

	// memory: 1,000 oversized and invalid messages
	heapBefore := f.value("go_memstats_heap_inuse_bytes", nil)
	for i := range 1000 {
		p := []byte(oversized)
		if i%2 == 1 {
			p = []byte(nested)
		}
		if err := c.publish(topic, 1, p); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitFor(t, "1,000 rejections counted", 30*time.Second, func() bool {
		return f.rejected("too_large")+f.rejected("malformed") >= 1+5+1000
	})
	rss := f.value("process_resident_memory_bytes", nil)
	heap := f.value("go_memstats_heap_inuse_bytes", nil)
	t.Logf("after 1,000 hostile messages (%.0f MB): heap in use %.1f MB (%.1f before), RSS %.1f MB",
		float64(500*len(oversized)+500*len(nested))/1e6, heap/1e6, heapBefore/1e6, rss/1e6)
	if rss > 200e6 || heap > 100e6 {
		t.Errorf("memory not bounded: RSS %.0f MB, heap %.0f MB", rss/1e6, heap/1e6)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// siteSeries counts the distinct values of the site label on /metrics, and
// the size of the page.
func (f *fleet) siteSeries() (sites map[string]bool, size int) {
	mfs, body := scrape(f.tb, f.metricsURL())
	sites = map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "site" {
					sites[l.GetValue()] = true
				}
			}
		}
	}
	return sites, len(body)
}

// TestHostileSiteFlood: one site's valid credentials publish 5,000 messages
// for invented site ids, on invented topics (the broker's ACL drops them) and
// on the site's own topic with an invented site in the payload (refused,
// site_mismatch), with auto_register off and on. /metrics must not gain a
// site, the history must not gain a row, and the database must not grow
// beyond the WAL's own churn.
func TestHostileSiteFlood(t *testing.T) {
	for _, auto := range []bool{false, true} {
		t.Run(fmt.Sprintf("auto_register=%v", auto), func(t *testing.T) {
			f := hostileCollector(t, auto)
			const site = "fault-hub-1"
			c := connectAs(t, f.brokerURL, site, agentPassword)
			c.publishJSON(wire.Topic(site, wire.TopicMeasurement), dnsMeasurement(site, "flood-agent", 1, time.Now()))
			waitFor(t, "the site's measurement stored", 30*time.Second, func() bool { return len(history(t, f.db)) == 1 })
			sitesBefore, sizeBefore := f.siteSeries()
			dbBefore := f.value("hubmon_collector_store_size_bytes", nil)
			const n = 5000
			for i := range n / 2 {
				invented := fmt.Sprintf("invented-%05d", i)
				// QoS 0 on an invented topic: the broker drops it without a word
				if err := c.publish(wire.Topic(invented, wire.TopicMeasurement), 0, mustJSON(t, dnsMeasurement(invented, "flood-agent", int64(i+1), time.Now()))); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
			}
			c = connectAs(t, f.brokerURL, site, agentPassword) // in case the broker dropped the connection
			for i := range n / 2 {
				invented := fmt.Sprintf("invented-%05d", i)
				c.publishJSON(wire.Topic(site, wire.TopicMeasurement), dnsMeasurement(invented, "flood-agent", int64(i+1), time.Now()))
			}
			// one more of the site's own after the flood: everything before it was dealt with
			c.publishJSON(wire.Topic(site, wire.TopicMeasurement), dnsMeasurement(site, "flood-agent", 2, time.Now()))
			waitFor(t, "the site's second measurement stored", 30*time.Second, func() bool { return len(history(t, f.db)) == 2 })
			sitesAfter, sizeAfter := f.siteSeries()
			dbAfter := f.value("hubmon_collector_store_size_bytes", nil)
			if got := f.rejected("site_mismatch"); got != n/2 {
				t.Errorf("site_mismatch counted %v, want %d", got, n/2)
			}
			for s := range sitesAfter {
				if !sitesBefore[s] {
					t.Errorf("/metrics gained site %q", s)
				}
			}
			// the counters' values may grow by a few digits; no new series
			if sizeAfter > sizeBefore+2048 {
				t.Errorf("/metrics grew from %d to %d bytes", sizeBefore, sizeAfter)
			}
			if dbAfter > dbBefore+4<<20 {
				t.Errorf("history grew from %.0f to %.0f bytes", dbBefore, dbAfter)
			}
			t.Logf("fault=site_flood_auto_register_%v injected=%d sites_on_metrics=%d->%d metrics_bytes=%d->%d store_bytes=%.0f->%.0f history_rows=2",
				auto, n, len(sitesBefore), len(sitesAfter), sizeBefore, sizeAfter, dbBefore, dbAfter)
		})
	}
}

// TestHostileHTTP: a client sending its headers slowly is cut off; an
// oversized header is refused; and no endpoint takes a method that could
// change state (there is nothing to authenticate: every endpoint reads).
func TestHostileHTTP(t *testing.T) {
	f := newFleet(t, fleetOptions{})
	f.startCollector()
	addr := fmt.Sprintf("127.0.0.1:%d", f.httpPort)

	// slowloris: a header line every 200 ms, up to 100 (20 s); the server's
	// header timeout (5 s) must close the connection first
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, conn) // returns when the server closes
		close(closed)
	}()
	fmt.Fprintf(conn, "GET /metrics HTTP/1.1\r\nHost: %s\r\n", addr)
	sent := 0
slow:
	for ; sent < 100; sent++ {
		select {
		case <-closed:
			break slow
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := fmt.Fprintf(conn, "X-Slow-%d: x\r\n", sent); err != nil {
			break
		}
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
	}
	select {
	case <-closed:
		t.Logf("slow client cut off after %d of 100 header lines", sent)
	default:
		t.Errorf("a client sending headers slowly was not cut off after %d header lines", sent)
	}

	// an oversized header
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 64<<10))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header: %d, want 431", resp.StatusCode)
	}

	// every endpoint reads; methods that would change state are refused
	paths := []string{"/", "/metrics", "/-/healthy", "/-/ready", "/hubs", "/hub/fault-hub-1", "/report.csv", "/report.json", "/report.html"}
	for _, p := range paths {
		for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			req, _ := http.NewRequest(method, "http://"+addr+p, strings.NewReader(strings.Repeat("x", 2<<20)))
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, p, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s = %d, want 405 (or 404)", method, p, resp.StatusCode)
			}
		}
	}
	// and the server still answers
	if code, _, err := get("http://" + addr + "/-/healthy"); err != nil || code != 200 {
		t.Errorf("/-/healthy after the hostile requests: %d %v", code, err)
	}
}
