package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

const (
	defaultHTTPTimeout = 15 * time.Second
	// httpParallel bounds the services checked at once.
	httpParallel = 4
	// httpBodyLimit is how much of a body is read; the rest is left unread
	// (the connection is closed anyway), so a large page costs little data.
	httpBodyLimit = 1 << 20
	// httpUserAgent is sent with every check (the speed test has its own).
	httpUserAgent = "hubmon-agent"
	// maxURLLen is wire's limit on http.results[].url.
	maxURLLen = 2048
)

// NewHTTP returns a Prober that fetches each configured service's URL once
// per run with GET and reports one wire.HTTPResult per service, in config
// order: the DNS, connect and TLS phases, the time to the first response
// byte and to the end of the body (read up to 1 MiB), both counted from the
// start of the request, the status code and the expiry of the server's leaf
// certificate. A phase is timed when it ended in an outcome (a refused
// certificate too), not when the deadline cut it short; a URL with an IP
// address has no DNS phase. When a certificate is rejected as expired, its
// expiry is still reported; the dates of certificates rejected for other
// reasons are not (they may be a captive portal's).
//
// Every check has a Transport of its own with keep-alives off, so nothing is
// reused between checks or runs and every phase is measured every time. It
// goes direct (no proxy from the environment): it measures the line. It does
// not follow redirects: a 3xx is the service answering, and counts as
// success like a 2xx; anything else is a failure ("status 503"). The agent's
// process-wide http.DefaultClient is never used (speedtest-go replaces its
// Transport).
//
// Each check is bounded by cfg.Timeout (default 15s) and by the ctx of Probe;
// at most 4 run at once. A run with any failed check returns an error ("1 of
// 3 services failed: ...") together with all results.
func NewHTTP(cfg HTTPConfig) Prober {
	p := &httpProber{
		services: append([]HTTPService(nil), cfg.Services...),
		timeout:  cfg.Timeout,
		log:      cfg.Logger,
	}
	if p.timeout <= 0 {
		p.timeout = defaultHTTPTimeout
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p
}

type httpProber struct {
	services []HTTPService
	timeout  time.Duration
	log      *slog.Logger

	// Test hooks, nil in production: trusted roots instead of the
	// system's, and a resolver instead of the system's.
	rootCAs  *x509.CertPool
	resolver *net.Resolver
}

func (p *httpProber) Probe(ctx context.Context) (Result, error) {
	res := Result{Kind: wire.KindHTTP}
	switch n := len(p.services); {
	case n == 0:
		return res, errors.New("no services to check")
	case n > maxChecks:
		return res, fmt.Errorf("%d services, more than the %d a measurement holds", n, maxChecks)
	}
	results := make([]wire.HTTPResult, len(p.services))
	errs := make([]error, len(p.services))
	sem := make(chan struct{}, httpParallel)
	var wg sync.WaitGroup
	for i, svc := range p.services {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				results[i], errs[i] = p.check(ctx, svc)
			case <-ctx.Done():
				results[i] = wire.HTTPResult{Name: svc.Name, URL: redactServiceURL(svc.URL), Error: interruptedText(ctx)}
				errs[i] = &checkError{subject: svc.Name, text: results[i].Error, err: context.Cause(ctx)}
			}
		})
	}
	wg.Wait()
	res.HTTP = &wire.HTTP{Results: results}
	return res, joinCheckErrors("services", len(p.services), errs)
}

// check fetches one service once.
func (p *httpProber) check(ctx context.Context, svc HTTPService) (wire.HTTPResult, error) {
	out := wire.HTTPResult{Name: svc.Name, URL: redactServiceURL(svc.URL)}
	fail := func(text string, err error) (wire.HTTPResult, error) {
		out.Success = false
		out.Error = clipCheckError(text)
		return out, &checkError{subject: svc.Name, text: out.Error, err: err}
	}
	if ctx.Err() != nil {
		return fail(interruptedText(ctx), context.Cause(ctx))
	}
	u, err := url.Parse(svc.URL)
	if err == nil && (u.Scheme != "https" && u.Scheme != "http" || u.Host == "") {
		err = errors.New("want an http or https URL with a host")
	}
	if err != nil {
		return fail("invalid URL: "+err.Error(), err)
	}

	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	ph := &httpPhases{phase: "connecting"}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(cctx, ph.trace()), http.MethodGet, u.String(), nil)
	if err != nil {
		return fail("invalid URL: "+err.Error(), err)
	}
	req.Header.Set("User-Agent", httpUserAgent)
	tr := p.transport()
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	ph.begin(time.Now())
	resp, err := client.Do(req)
	if err != nil {
		ph.fill(&out)
		if out.FirstByteSeconds != nil && *out.FirstByteSeconds >= p.timeout.Seconds() {
			// Arrived as the deadline closed the connection: not a
			// response the check got.
			out.FirstByteSeconds = nil
		}
		text, cause := p.describe(ctx, cctx, err, ph.current(), &out)
		return fail(text, cause)
	}
	defer resp.Body.Close()
	ph.set("reading the body")
	out.StatusCode = resp.StatusCode
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		t := resp.TLS.PeerCertificates[0].NotAfter.UTC()
		out.CertNotAfter = &t
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, httpBodyLimit))
	end := time.Now()
	ph.fill(&out)
	if err != nil {
		text, cause := p.describe(ctx, cctx, err, ph.current(), &out)
		return fail(text, cause)
	}
	out.TotalSeconds = wire.Float(end.Sub(ph.start).Seconds())
	p.log.Debug("http check", "service", svc.Name, "status", resp.StatusCode, "duration_seconds", *out.TotalSeconds)
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fail(fmt.Sprintf("status %d", resp.StatusCode), fmt.Errorf("status %d", resp.StatusCode))
	}
	out.Success = true
	return out, nil
}

// transport is a check's own Transport: no connection survives the check.
func (p *httpProber) transport() *http.Transport {
	d := &net.Dialer{Resolver: p.resolver}
	return &http.Transport{
		DialContext:            d.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: p.rootCAs},
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      true, // as browsers do
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// describe says why a check failed; it also records the expiry of a
// certificate rejected as expired. ctx is the run's context, cctx the
// check's; phase is what the check was doing.
func (p *httpProber) describe(ctx, cctx context.Context, err error, phase string, out *wire.HTTPResult) (string, error) {
	if ctx.Err() != nil {
		return interruptedText(ctx), err
	}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("timeout after %s %s", p.timeout, phase), err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL
	}
	var (
		cve *tls.CertificateVerificationError
		de  *net.DNSError
		he  x509.HostnameError
		ua  x509.UnknownAuthorityError
		ci  x509.CertificateInvalidError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
	)
	switch {
	case errors.As(err, &de):
		return "DNS lookup failed: " + dnsErrorText(de), err
	case errors.As(err, &he):
		return "TLS certificate hostname mismatch: " + trimX509(he.Error()), err
	case errors.As(err, &ua):
		return "TLS certificate signed by unknown authority" + issuedBy(ua.Cert), err
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		if errors.As(err, &cve) && len(cve.UnverifiedCertificates) > 0 {
			leaf := cve.UnverifiedCertificates[0]
			now := time.Now()
			if now.Before(leaf.NotBefore) {
				return "TLS certificate not yet valid (not before " + leaf.NotBefore.UTC().Format(time.RFC3339) + ")", err
			}
			t := leaf.NotAfter.UTC()
			out.CertNotAfter = &t
			return "TLS certificate expired (not after " + t.Format(time.RFC3339) + ")", err
		}
		return "TLS certificate expired or not yet valid", err
	case errors.As(err, &ci):
		return "TLS certificate invalid: " + trimX509(ci.Error()), err
	case errors.As(err, &cve):
		return "TLS certificate rejected: " + trimX509(cve.Err.Error()), err
	case errors.As(err, &rhe) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "TLS handshake failed: the server did not answer with TLS", err
	case errors.As(err, &ae):
		return "TLS handshake failed: " + ae.Error(), err
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", err
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset " + phase, err
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable", err
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable", err
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server " + phase, err
	}
	return err.Error(), err
}

// redactServiceURL drops the user info and query of a URL (either may hold
// a secret) for results and messages.
func redactServiceURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.ForceQuery = nil, "", false
	return clipWireText(u.String(), maxURLLen)
}

func trimX509(s string) string {
	return strings.TrimPrefix(s, "x509: ")
}

// issuedBy names the issuer of c, for the message of an untrusted
// certificate: a captive portal or a filtering proxy shows up here.
func issuedBy(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	name := c.Issuer.CommonName
	if name == "" && len(c.Issuer.Organization) > 0 {
		name = c.Issuer.Organization[0]
	}
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (issuer %q)", name)
}

// httpPhases times one check from httptrace callbacks, which may come from
// several goroutines (parallel dials), hence the mutex.
type httpPhases struct {
	mu        sync.Mutex
	start     time.Time
	phase     string // what the check is doing, for a timeout's message
	dnsStart  time.Time
	dns       *float64
	dials     map[string]time.Time // connect start by address
	connect   *float64
	tlsStart  time.Time
	tls       *float64
	firstByte *float64
}

func (h *httpPhases) begin(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.start = t
}

func (h *httpPhases) set(phase string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.phase = phase
}

func (h *httpPhases) current() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.phase
}

// fill copies the phases that completed into out. A phase that ended in an
// outcome (an answer, a certificate rejected) is timed; one cut short by the
// deadline is not.
func (h *httpPhases) fill(out *wire.HTTPResult) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out.DNSSeconds, out.ConnectSeconds, out.TLSSeconds, out.FirstByteSeconds = h.dns, h.connect, h.tls, h.firstByte
}

func (h *httpPhases) trace() *httptrace.ClientTrace {
	since := func(t time.Time) *float64 { return wire.Float(time.Since(t).Seconds()) }
	lock := func() func() { h.mu.Lock(); return h.mu.Unlock }
	return &httptrace.ClientTrace{
		DNSStart: func(httptrace.DNSStartInfo) {
			defer lock()()
			h.phase = "resolving the name"
			h.dnsStart = time.Now()
		},
		DNSDone: func(i httptrace.DNSDoneInfo) {
			defer lock()()
			if !h.dnsStart.IsZero() && !isContextErr(i.Err) {
				h.dns = since(h.dnsStart)
			}
		},
		ConnectStart: func(network, addr string) {
			defer lock()()
			h.phase = "connecting"
			if h.dials == nil {
				h.dials = make(map[string]time.Time)
			}
			h.dials[network+" "+addr] = time.Now()
		},
		ConnectDone: func(network, addr string, err error) {
			defer lock()()
			if t, ok := h.dials[network+" "+addr]; ok && err == nil && h.connect == nil {
				h.connect = since(t)
			}
		},
		TLSHandshakeStart: func() {
			defer lock()()
			h.phase = "in the TLS handshake"
			h.tlsStart = time.Now()
		},
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			defer lock()()
			if !h.tlsStart.IsZero() && !isContextErr(err) && !isTimeoutErr(err) {
				h.tls = since(h.tlsStart)
			}
		},
		WroteRequest: func(httptrace.WroteRequestInfo) {
			defer lock()()
			h.phase = "waiting for the response"
		},
		GotFirstResponseByte: func() {
			defer lock()()
			h.phase = "reading the response"
			if !h.start.IsZero() {
				h.firstByte = since(h.start)
			}
		},
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
