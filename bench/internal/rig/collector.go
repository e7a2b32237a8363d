package rig

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// CollectorOptions configure a bench hubmon-collector subscribed to a broker
// as CollectorUser (a persistent session, acks after commit: as shipped).
type CollectorOptions struct {
	Bin       string // hubmon-collector
	Dir       string // config, database, log
	BrokerURL string
	Password  string
	// SpeedtestPort and EchoPort, if not 0, run the built-in speed-test
	// server and UDP echo responder on 127.0.0.1 (for a real agent).
	SpeedtestPort, EchoPort int
	// Env is more of the collector's environment (GOMEMLIMIT=..., say).
	Env []string
}

// Collector is a running hubmon-collector.
type Collector struct {
	*Proc
	// MetricsURL is its /metrics; DB its history.
	MetricsURL string
	DB         string
	base       string
	// lastSize is the size of the last body read: Scrape reads the next
	// into a buffer that size
	lastSize atomic.Int64
}

// StartCollector writes the configuration, starts the collector and waits
// until it is ready (connected and subscribed).
func StartCollector(o CollectorOptions) (*Collector, error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	db := filepath.Join(o.Dir, "hubmon.db")
	conf := fmt.Sprintf(`database: %s
http:
  listen: "127.0.0.1:%d"
mqtt:
  url: %s
  client_id: %s
  username: %s
  password: ${HUBMON_MQTT_PASSWORD}
`, db, port, o.BrokerURL, CollectorUser, CollectorUser)
	if o.SpeedtestPort != 0 {
		conf += fmt.Sprintf("speedtest_server:\n  enabled: true\n  listen: \"127.0.0.1:%d\"\n", o.SpeedtestPort)
	}
	if o.EchoPort != 0 {
		conf += fmt.Sprintf("echo_server:\n  enabled: true\n  listen: \"127.0.0.1:%d\"\n", o.EchoPort)
	}
	confPath := filepath.Join(o.Dir, "collector.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p, err := Start("hubmon-collector", filepath.Join(o.Dir, "collector.log"), append([]string{"HUBMON_MQTT_PASSWORD=" + o.Password}, o.Env...),
		o.Bin, "run", "-config", confPath)
	if err != nil {
		return nil, err
	}
	c := &Collector{Proc: p, DB: db, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	c.MetricsURL = c.base + "/metrics"
	err = WaitFor("the collector to be ready", 30*time.Second, func() (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("hubmon-collector exited: %v\n%s", p.Err(), p.Tail(3000))
		}
		resp, err := client.Get(c.base + "/-/ready")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == 200, nil
	})
	if err != nil {
		p.Kill()
		return nil, err
	}
	return c, nil
}

// client asks for /metrics uncompressed (Go's default transport would ask
// for gzip and unpack it, hiding the size).
var client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// Scrape is one GET of /metrics.
type Scrape struct {
	Body []byte
	// Start is when the request was sent, Headers when the response began
	// (the collector has gathered every metric by then), End when the body
	// was read.
	Start, Headers, End time.Time
}

// Seconds is the scrape's wall time.
func (s Scrape) Seconds() float64 { return s.End.Sub(s.Start).Seconds() }

// Scrape GETs /metrics, uncompressed, in the text format (no Accept header).
func (c *Collector) Scrape() (Scrape, error) {
	var s Scrape
	s.Start = time.Now()
	resp, err := client.Get(c.MetricsURL)
	if err != nil {
		s.End = time.Now()
		return s, err
	}
	defer resp.Body.Close()
	s.Headers = time.Now()
	// into a buffer the size of the last body, as Prometheus's scraper
	// does (a pool sized by the last scrape): io.ReadAll, growing one from
	// nothing, copied a 118 MB body several times over and faulted in
	// fresh pages for each copy, on the 2 cores the collector runs on
	buf := bytes.NewBuffer(make([]byte, 0, c.lastSize.Load()+bytes.MinRead))
	_, err = buf.ReadFrom(resp.Body)
	s.Body = buf.Bytes()
	c.lastSize.Store(int64(len(s.Body)))
	s.End = time.Now()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s", c.MetricsURL, resp.Status)
	}
	return s, err
}

// Sum adds the values of the series of family name whose label set contains
// every label=value in match, in a text-format exposition.
func Sum(body []byte, name string, match ...string) float64 {
	var total float64
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	prefix := []byte(name)
next:
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, prefix) || len(line) <= len(prefix) || (line[len(prefix)] != '{' && line[len(prefix)] != ' ') {
			continue
		}
		sp := bytes.LastIndexByte(line, ' ')
		labels := string(line[len(prefix):sp])
		for _, m := range match {
			k, v, _ := strings.Cut(m, "=")
			pair := k + `="` + v + `"`
			if !strings.Contains(labels, "{"+pair) && !strings.Contains(labels, ","+pair) {
				continue next
			}
		}
		if v, err := strconv.ParseFloat(string(line[sp+1:]), 64); err == nil {
			total += v
		}
	}
	return total
}
