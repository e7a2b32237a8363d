package main_test

// Every probe kind end to end: the real agent measures line quality against
// the collector's echo responder, DNS against a DNS server on 127.0.0.1, an
// "essential service" (the collector's own health endpoint) and a speed test;
// each measurement is stored once and shows on /metrics.

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// serveDNS answers A queries for names ending in ".test." with 192.0.2.1 and
// NXDOMAIN otherwise, on 127.0.0.1 (UDP), until the test ends.
func serveDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			b.EnableCompression()
			found := strings.HasSuffix(q.Name.String(), ".test.")
			if !found {
				b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RCode: dnsmessage.RCodeNameError})
			}
			b.StartQuestions()
			b.Question(q)
			if found && q.Type == dnsmessage.TypeA {
				b.StartAnswers()
				b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}})
			}
			out, err := b.Finish()
			if err == nil {
				pc.WriteTo(out, addr)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestEveryProbeKindEndToEnd(t *testing.T) {
	s := newSystem(t, false)
	echoPort := freeTCPUDPPort(t)
	dnsAddr := serveDNS(t)
	writeFile(t, s.collectorConf, readFile(t, s.collectorConf)+fmt.Sprintf("echo_server:\n  enabled: true\n  listen: \"127.0.0.1:%d\"\n", echoPort))
	writeFile(t, s.agentConf, readFile(t, s.agentConf)+fmt.Sprintf(`  - name: line
    kind: linequality
    interval: 10s
    linequality:
      udp_target: 127.0.0.1:%d
      send_interval: 200ms
      timeout: 500ms
      gateway_check: false # never dial the machine's real router from a test
  - name: dns
    kind: dns
    interval: 1m
    first_run: 0s
    splay: 0s
    dns:
      names: [www.hub.test, missing.example]
      resolvers: ["%s"]
  - name: services
    kind: http
    interval: 1m
    first_run: 0s
    splay: 0s
    http:
      services:
        - name: collector
          url: http://127.0.0.1:%d/-/healthy
`, echoPort, dnsAddr, s.httpPort))
	s.startCollector()
	s.startAgent()

	want := []struct {
		name   string
		labels map[string]string
		check  func(v float64) bool
	}{
		{"hubmon_speedtest_download_bytes_per_second", map[string]string{"site": site, "probe": "local"}, func(v float64) bool { return v > 0 }},
		{"hubmon_linequality_loss_ratio", map[string]string{"site": site, "probe": "line"}, func(v float64) bool { return v == 0 }},
		{"hubmon_linequality_rtt_seconds", map[string]string{"site": site, "probe": "line", "statistic": "p50"}, func(v float64) bool { return v > 0 && v < 0.5 }},
		{"hubmon_dns_success", map[string]string{"site": site, "probe": "dns", "name": "www.hub.test"}, func(v float64) bool { return v == 1 }},
		{"hubmon_dns_success", map[string]string{"site": site, "probe": "dns", "name": "missing.example"}, func(v float64) bool { return v == 0 }},
		{"hubmon_http_success", map[string]string{"site": site, "probe": "services", "service": "collector"}, func(v float64) bool { return v == 1 }},
		{"hubmon_http_status_code", map[string]string{"site": site, "probe": "services", "service": "collector"}, func(v float64) bool { return v == 200 }},
		{"hubmon_linequality_outage_active", map[string]string{"site": site, "probe": "line", "method": "udp"}, func(v float64) bool { return v == 0 }},
	}
	waitFor(t, "every probe kind on /metrics", 90*time.Second, func() bool {
		mfs, _ := scrape(t, s.metricsURL("/metrics"))
		for _, w := range want {
			if _, ok := sample(mfs, w.name, w.labels); !ok {
				return false
			}
		}
		return true
	})
	mfs, body := scrape(t, s.metricsURL("/metrics"))
	for _, w := range want {
		if v, _ := sample(mfs, w.name, w.labels); !w.check(v) {
			t.Errorf("%s%v = %v", w.name, w.labels, v)
		}
	}
	promtoolCheck(t, body)

	// in the history once each, all kinds
	kinds := map[string]int{}
	for _, r := range history(t, s.db) {
		kinds[r.probe]++
	}
	for _, p := range []string{"local", "line", "dns", "services"} {
		if kinds[p] < 1 {
			t.Errorf("no %s measurement in the history: %v", p, kinds)
		}
	}
	seen := map[string]bool{}
	for _, r := range history(t, s.db) {
		if seen[r.messageID] {
			t.Errorf("message %s stored twice", r.messageID)
		}
		seen[r.messageID] = true
	}
}
