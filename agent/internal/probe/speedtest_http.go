package probe

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// HTTP timeouts of a speed test. The library's client (server selection and
// the idle ping) also has a whole-request timeout; the agent's own download
// and upload requests end with their direction's context.
const (
	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 15 * time.Second // after the request body is sent
	libraryRequestTimeout = 30 * time.Second
	// failureBackoff delays the next request after a failed one, so that
	// a failing server is not hammered in a loop.
	failureBackoff = 100 * time.Millisecond
)

const userAgent = "hubmon-agent (speedtest-go 1.7.11)"

// request kinds of the Ookla protocol, told apart by the URL path.
type reqKind int

const (
	kindOther    reqKind = iota // server list, server by id
	kindPing                    // latency.txt
	kindDownload                // random*.jpg
	kindUpload                  // upload.php
	nKinds
)

func kindOf(path string) reqKind {
	switch {
	case strings.HasSuffix(path, "/latency.txt"):
		return kindPing
	case strings.HasSuffix(path, ".jpg"):
		return kindDownload
	case strings.HasSuffix(path, "/upload.php"):
		return kindUpload
	}
	return kindOther
}

// kindStats counts the requests of one kind, so the probe can tell a server
// answering errors from a slow one: speedtest-go ignores the status of
// latency.txt (and would count the body of a 404 as downloaded data).
type kindStats struct {
	requests  int
	failed    int // transport errors
	badStatus int // responses other than 2xx
	lastBad   string
	lastErr   error
}

// note describes the failures in s, or "" when there were none.
func (s kindStats) note() string {
	var parts []string
	if s.badStatus > 0 {
		parts = append(parts, fmt.Sprintf("server answered %s to %d of %d requests", s.lastBad, s.badStatus, s.requests))
	}
	if s.failed > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d requests failed, last: %v", s.failed, s.requests, s.lastErr))
	}
	return strings.Join(parts, "; ")
}

// meter is the RoundTripper of the library's client in one run: it counts
// requests per kind, sets the User-Agent and slows down failures (see
// failureBackoff).
type meter struct {
	next http.RoundTripper

	mu    sync.Mutex
	stats [nKinds]kindStats
}

func (m *meter) RoundTrip(req *http.Request) (*http.Response, error) {
	k := kindOf(req.URL.Path)
	if err := req.Context().Err(); err != nil {
		time.Sleep(failureBackoff) // the run was cancelled: see failureBackoff
		return nil, err
	}
	r := req.Clone(req.Context()) // a RoundTripper must not modify its request
	r.Header.Set("User-Agent", userAgent)
	resp, err := m.next.RoundTrip(r)

	if err != nil && req.Context().Err() != nil {
		// Cancelled in flight, with the run.
		return resp, err
	}
	bad := err == nil && (resp.StatusCode < 200 || resp.StatusCode > 299)
	m.mu.Lock()
	s := &m.stats[k]
	s.requests++
	switch {
	case err != nil:
		s.failed++
		s.lastErr = err
	case bad:
		s.badStatus++
		s.lastBad = resp.Status
	}
	m.mu.Unlock()

	if err != nil || bad && k != kindOther {
		time.Sleep(failureBackoff)
	}
	return resp, err
}

// reset forgets the requests of kind k so far.
func (m *meter) reset(k reqKind) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats[k] = kindStats{}
}

func (m *meter) get(k reqKind) kindStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats[k]
}

// newHTTP returns the HTTP client of the library in one run and its meter.
// HTTP/1 only and no compression, like the load streams (loaded.go); no
// proxy, because a speed test measures the line, not a proxy.
func (p *speedtestProber) newHTTP() (*http.Client, *meter, *http.Transport) {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   2*p.cfg.Connections + 2,
		IdleConnTimeout:       30 * time.Second,
		DisableCompression:    true,
		Protocols:             protocols,
	}
	var next http.RoundTripper = tr
	if p.wrap != nil {
		next = p.wrap(next)
	}
	m := &meter{next: next}
	return &http.Client{Transport: m, Timeout: libraryRequestTimeout}, m, tr
}
