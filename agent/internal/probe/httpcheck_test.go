package probe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(tb testing.TB) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hubmon test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a server certificate for names (DNS names or IP addresses)
// valid from notBefore to notAfter.
func (ca *testCA) leaf(tb testing.TB, notBefore, notAfter time.Time, names ...string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// startTLS starts an HTTPS server on 127.0.0.1 with cert.
func startTLS(tb testing.TB, cert tls.Certificate, h http.Handler) *httptest.Server {
	tb.Helper()
	ts := quietServer(h)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ts.StartTLS()
	tb.Cleanup(ts.Close)
	return ts
}

// quietServer is an unstarted httptest server that does not log the
// handshake errors the tests provoke.
func quietServer(h http.Handler) *httptest.Server {
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	return ts
}

// silentListener accepts connections and never says anything on them.
func silentListener(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	tb.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// testResolver resolves through the test DNS server at addr.
func testResolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// withHost returns ts's URL with its host replaced by name (same port).
func withHost(tb testing.TB, rawURL, name string) string {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	u.Host = net.JoinHostPort(name, u.Port())
	return u.String()
}

func TestHTTP(t *testing.T) {
	ca := newTestCA(t)
	now := time.Now()
	validUntil := now.Add(90 * 24 * time.Hour).Truncate(time.Second)
	expiredAt := now.Add(-24 * time.Hour).Truncate(time.Second)
	good := ca.leaf(t, now.Add(-time.Hour), validUntil, "service.test", "127.0.0.1")
	expired := ca.leaf(t, now.Add(-48*time.Hour), expiredAt, "service.test", "127.0.0.1")

	var gotUA sync.Map
	hang := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUA.Store(r.UserAgent(), true)
		switch r.URL.Path {
		case "/down":
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/big":
			chunk := make([]byte, 64<<10)
			for range 48 { // 3 MiB; the probe reads 1 MiB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/hang":
			<-hang // not even when the client goes away
		default:
			fmt.Fprintln(w, "hello")
		}
	})
	goodSrv := startTLS(t, good, handler)
	expiredSrv := startTLS(t, expired, handler)
	untrusted := quietServer(handler) // httptest's own certificate: not trusted
	untrusted.StartTLS()
	t.Cleanup(untrusted.Close)
	plain := httptest.NewServer(handler)
	t.Cleanup(plain.Close)
	t.Cleanup(func() { close(hang) }) // before the servers close
	silent := silentListener(t)
	refused := closedTCPPort(t)
	dns := startDNSServer(t, map[string][]net.IP{
		"service.test.": {net.IPv4(127, 0, 0, 1)},
		"other.test.":   {net.IPv4(127, 0, 0, 1)},
	})

	const quick = 500 * time.Millisecond
	type phases struct{ dns, connect, tls, firstByte, total bool }
	all := phases{true, true, true, true, true}
	noDNS := phases{false, true, true, true, true}
	tests := []struct {
		name    string
		url     string
		success bool
		status  int
		errText string    // the result's error (exactly)
		phases  phases    // timings present
		notAft  time.Time // cert_not_after, zero for none
	}{
		{"ok", withHost(t, goodSrv.URL, "service.test") + "/", true, 200, "", all, validUntil},
		{"ok by address", goodSrv.URL + "/", true, 200, "", noDNS, validUntil},
		{"redirect", goodSrv.URL + "/moved", true, 302, "", noDNS, validUntil},
		{"big body", goodSrv.URL + "/big", true, 200, "", noDNS, validUntil},
		{"plain http", withHost(t, plain.URL, "service.test") + "/", true, 200, "", phases{true, true, false, true, true}, time.Time{}},
		{"503", goodSrv.URL + "/down", false, 503, "status 503", noDNS, validUntil},
		{"expired", expiredSrv.URL + "/", false, 0, "TLS certificate expired (not after " + expiredAt.UTC().Format(time.RFC3339) + ")",
			phases{false, true, true, false, false}, expiredAt},
		{"untrusted", untrusted.URL + "/", false, 0, `TLS certificate signed by unknown authority (issuer "Acme Co")`,
			phases{false, true, true, false, false}, time.Time{}},
		{"hostname mismatch", withHost(t, goodSrv.URL, "other.test") + "/", false, 0,
			"TLS certificate hostname mismatch: certificate is valid for service.test, not other.test",
			phases{true, true, true, false, false}, time.Time{}},
		{"nxdomain", withHost(t, goodSrv.URL, "missing.test") + "/", false, 0, "DNS lookup failed: NXDOMAIN",
			phases{true, false, false, false, false}, time.Time{}},
		{"not tls", "https://" + strings.TrimPrefix(plain.URL, "http://") + "/", false, 0, "TLS handshake failed: the server did not answer with TLS",
			phases{false, true, true, false, false}, time.Time{}},
		{"refused", "https://" + refused + "/", false, 0, "connection refused", phases{}, time.Time{}},
		{"silent server", "https://" + silent + "/", false, 0, "timeout after 500ms in the TLS handshake",
			phases{false, true, false, false, false}, time.Time{}},
		{"no answer", goodSrv.URL + "/hang", false, 0, "timeout after 500ms waiting for the response",
			phases{false, true, true, false, false}, time.Time{}},
		{"bad url", "ftp://service.test/", false, 0, "invalid URL: want an http or https URL with a host", phases{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 10 * time.Second // generous: only the timeout cases wait
			if strings.HasPrefix(tt.errText, "timeout") {
				timeout = quick
			}
			p := NewHTTP(HTTPConfig{Services: []HTTPService{{Name: "svc", URL: tt.url}}, Timeout: timeout}).(*httpProber)
			p.rootCAs, p.resolver = ca.pool, testResolver(dns.addr)
			start := time.Now()
			res, err := p.Probe(t.Context())
			took := time.Since(start)
			checkKindWire(t, res, err)
			if timeout == quick && took > quick+2*time.Second {
				t.Errorf("took %s", took)
			}
			if res.Kind != wire.KindHTTP || res.HTTP == nil || len(res.HTTP.Results) != 1 {
				t.Fatalf("result %+v", res)
			}
			r := res.HTTP.Results[0]
			if tt.success != (err == nil) {
				t.Errorf("Probe error %v, want success %v", err, tt.success)
			}
			if err != nil && err.Error() != "1 of 1 services failed: svc: "+r.Error {
				t.Errorf("Probe error %q does not carry the result's %q", err, r.Error)
			}
			if r.Name != "svc" || r.URL != tt.url || r.Success != tt.success || r.StatusCode != tt.status || r.Error != tt.errText {
				t.Errorf("result %+v\nwant success %v, status %d, error %q", r, tt.success, tt.status, tt.errText)
			}
			got := phases{r.DNSSeconds != nil, r.ConnectSeconds != nil, r.TLSSeconds != nil, r.FirstByteSeconds != nil, r.TotalSeconds != nil}
			if got != tt.phases {
				t.Errorf("timings present %+v, want %+v (dns %s connect %s tls %s first byte %s total %s)", got, tt.phases,
					optSeconds(r.DNSSeconds), optSeconds(r.ConnectSeconds), optSeconds(r.TLSSeconds),
					optSeconds(r.FirstByteSeconds), optSeconds(r.TotalSeconds))
			}
			for _, v := range []*float64{r.DNSSeconds, r.ConnectSeconds, r.TLSSeconds, r.FirstByteSeconds, r.TotalSeconds} {
				if v != nil && (*v <= 0 || *v > took.Seconds()) {
					t.Errorf("a timing is %g, outside (0, %g]", *v, took.Seconds())
				}
			}
			if r.FirstByteSeconds != nil && r.TotalSeconds != nil && *r.TotalSeconds < *r.FirstByteSeconds {
				t.Errorf("total %g before first byte %g", *r.TotalSeconds, *r.FirstByteSeconds)
			}
			switch {
			case tt.notAft.IsZero() && r.CertNotAfter != nil:
				t.Errorf("cert_not_after %s, want none", r.CertNotAfter)
			case !tt.notAft.IsZero() && (r.CertNotAfter == nil || !r.CertNotAfter.Equal(tt.notAft)):
				t.Errorf("cert_not_after %v, want %s", r.CertNotAfter, tt.notAft)
			}
		})
	}
	if _, ok := gotUA.Load("hubmon-agent"); !ok {
		t.Error(`no request carried User-Agent "hubmon-agent"`)
	}
}

// TestHTTPSeveral checks order, the summary error and fresh connections: a
// second run measures connect and TLS again.
func TestHTTPSeveral(t *testing.T) {
	ca := newTestCA(t)
	cert := ca.leaf(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "127.0.0.1")
	var conns sync.Map
	srv := quietServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.Store(r.RemoteAddr, true)
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	var services []HTTPService
	for i := range 6 {
		path := "/"
		if i%3 == 1 {
			path = "/down"
		}
		services = append(services, HTTPService{Name: fmt.Sprintf("svc-%d", i), URL: srv.URL + path + "?key=secret"})
	}
	p := NewHTTP(HTTPConfig{Services: services, Timeout: 5 * time.Second}).(*httpProber)
	p.rootCAs = ca.pool
	for run := range 2 {
		res, err := p.Probe(t.Context())
		checkKindWire(t, res, err)
		want := "2 of 6 services failed: svc-1: status 500; svc-4: status 500"
		if err == nil || err.Error() != want {
			t.Errorf("run %d: error %v, want %q", run, err, want)
		}
		for i, r := range res.HTTP.Results {
			if r.Name != services[i].Name || r.URL != srv.URL+"/" && r.URL != srv.URL+"/down" {
				t.Errorf("run %d: result %d is %s %s, want %s without its query", run, i, r.Name, r.URL, services[i].Name)
			}
			if r.ConnectSeconds == nil || r.TLSSeconds == nil {
				t.Errorf("run %d: %s has no connect or TLS time", run, r.Name)
			}
		}
	}
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	if n != 12 {
		t.Errorf("%d connections for 12 checks, want one each", n)
	}
}

func TestHTTPCancel(t *testing.T) {
	entered := make(chan struct{}, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	var services []HTTPService
	for i := range 6 { // more than run at once: some never start
		services = append(services, HTTPService{Name: fmt.Sprintf("svc-%d", i), URL: srv.URL})
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := NewHTTP(HTTPConfig{Services: services, Timeout: time.Minute})
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := p.Probe(ctx)
		done <- outcome{res, err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the server")
	}
	cancel()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Probe did not return after cancel")
	}
	checkKindWire(t, o.res, o.err)
	if !errors.Is(o.err, context.Canceled) || !strings.HasPrefix(o.err.Error(), "6 of 6 services failed: ") {
		t.Errorf("error %v, want 6 of 6 failed, wrapping context.Canceled", o.err)
	}
	for _, r := range o.res.HTTP.Results {
		if r.Success || r.Error != "cancelled" || r.TotalSeconds != nil {
			t.Errorf("result %+v, want cancelled", r)
		}
	}
}

func TestHTTPConfigErrors(t *testing.T) {
	many := make([]HTTPService, 65)
	for i := range many {
		many[i] = HTTPService{Name: fmt.Sprintf("s%d", i), URL: "https://127.0.0.1/"}
	}
	for _, tt := range []struct {
		name string
		cfg  HTTPConfig
		want string
	}{
		{"none", HTTPConfig{}, "no services to check"},
		{"too many", HTTPConfig{Services: many}, "65 services, more than the 64 a measurement holds"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := NewHTTP(tt.cfg).Probe(t.Context())
			if err == nil || err.Error() != tt.want || res.Kind != wire.KindHTTP || res.HTTP != nil {
				t.Errorf("got %+v, %v; want kind http, no figures, %q", res, err, tt.want)
			}
		})
	}
}
