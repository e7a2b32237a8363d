package main

// Tests of hubmon-agent check with an injected environment: interfaces,
// routes and the resolver are made up, and every connection goes to
// 127.0.0.1 (the "router" is 127.0.0.1 too: a refusal counts as an answer).
// The end-to-end tests against the real collector and Mosquitto are in
// check_e2e_test.go.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/hubmon/hubmon/agent/internal/probe"
)

var update = flag.Bool("update", false, "rewrite the golden files of hubmon-agent check's output")

const testPassword = "hub-secret"

// testCheckEnv is an environment where nothing leaves 127.0.0.1: a wired
// Pi whose router is 127.0.0.1, a resolver that knows only IP addresses,
// and a kernel clock that is synchronised.
func testCheckEnv() checkEnv {
	return checkEnv{
		getenv: func(k string) string {
			if k == "HUBMON_MQTT_PASSWORD" {
				return testPassword
			}
			return ""
		},
		now: time.Now,
		interfaces: func() ([]checkInterface, error) {
			return []checkInterface{
				{Name: "lo", Up: true, Loopback: true, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
				{Name: "eth0", Up: true, Addrs: []netip.Addr{netip.MustParseAddr("fe80::1"), netip.MustParseAddr("192.0.2.10")}},
			}, nil
		},
		routes: func() (netip.Addr, netip.Addr, error, error) {
			return netip.MustParseAddr("127.0.0.1"), netip.Addr{}, nil, probe.ErrNoDefaultRoute
		},
		dial:           (&net.Dialer{}).DialContext,
		lookup:         literalLookup,
		clockSynced:    func() (bool, bool) { return true, true },
		serviceRunning: outboxInUse,
		speedDuration:  time.Second,
		ackWait:        20 * time.Second,
	}
}

// literalLookup resolves IP addresses only: every name is "not found".
func literalLookup(_ context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// checkConfig writes an agent config for the broker (and speed-test server,
// if any) and returns its path.
func writeCheckConfig(tb testing.TB, dir, brokerURL, speedURL, brokerExtra string) string {
	tb.Helper()
	probes := "  - {name: dns, kind: dns}\n"
	if speedURL != "" {
		probes = fmt.Sprintf("  - {name: local, kind: speedtest, interval: 1h, speedtest: {server_url: %q, duration: 2s, connections: 2}}\n", speedURL)
	}
	text := fmt.Sprintf(`site: hub-1
data_dir: state
broker:
  url: %s
  password: ${HUBMON_MQTT_PASSWORD}
  connect_timeout: 2s
  ack_timeout: 5s
%sprobes:
%s`, brokerURL, brokerExtra, probes)
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// runCheckTest runs the check and returns its exit code, its output and
// its steps by id (from a second, JSON, rendering of the same report).
func runCheckTest(tb testing.TB, env checkEnv, configPath string, skipSpeed bool) (int, string, map[string]checkResult) {
	tb.Helper()
	var out bytes.Buffer
	env.display = checkDisplay{json: true}
	code := runCheck(context.Background(), env, configPath, skipSpeed, &out)
	var rep checkReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		tb.Fatalf("JSON output: %v\n%s", err, out.String())
	}
	steps := map[string]checkResult{}
	var text bytes.Buffer
	p := newCheckPrinter(&text, checkDisplay{})
	for _, r := range rep.Steps {
		steps[r.ID] = r
		r.blocked = r.Status == checkFail || strings.HasPrefix(r.Summary, "Skipped: needs")
		p.result(r)
	}
	if wantPassed := code == 0; rep.Passed != wantPassed || len(rep.Steps) != 11 {
		tb.Errorf("exit code %d with passed %v and %d steps", code, rep.Passed, len(rep.Steps))
	}
	return code, text.String(), steps
}

func closedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// wantStep checks a step's status and that its summary holds want.
func wantStep(tb testing.TB, steps map[string]checkResult, id string, status checkStatus, want string) {
	tb.Helper()
	r, ok := steps[id]
	if !ok {
		tb.Fatalf("no step %s", id)
	}
	if r.Status != status || !strings.Contains(r.Summary+" "+r.Advice, want) {
		tb.Errorf("step %s: %s %q (advice %q, detail %q); want %s with %q", id, r.Status, r.Summary, r.Advice, r.Detail, status, want)
	}
}

// TestCheckConfigProblems: a missing file, a secret not in the environment
// and mistakes each get their own words; the network steps still run, the
// rest are skipped.
func TestCheckConfigProblems(t *testing.T) {
	dir := t.TempDir()
	env := testCheckEnv()
	code, out, steps := runCheckTest(t, env, filepath.Join(dir, "missing.yaml"), false)
	if code != 1 {
		t.Errorf("exit code %d", code)
	}
	wantStep(t, steps, "config", checkFail, "There is no settings file")
	wantStep(t, steps, "config", checkFail, "hubmon-agent enrol")
	wantStep(t, steps, "network", checkPass, "eth0 192.0.2.10")
	wantStep(t, steps, "gateway", checkPass, "The router (127.0.0.1) answers")
	wantStep(t, steps, "dns", checkSkip, "Skipped: needs the settings")
	wantStep(t, steps, "speedtest", checkSkip, "needs the speed-test server")
	if !strings.Contains(out, "What to do: enrol this hub") {
		t.Errorf("output:\n%s", out)
	}

	path := writeCheckConfig(t, dir, "tcp://127.0.0.1:1883", "", "")
	env.getenv = func(string) string { return "" }
	_, _, steps = runCheckTest(t, env, path, false)
	wantStep(t, steps, "config", checkFail, "The settings take values from HUBMON_MQTT_PASSWORD, which is not set here")
	wantStep(t, steps, "config", checkFail, "sudo hubmon-agent check): it then reads them from "+filepath.Join(dir, "agent.env"))
	// the service's environment file, which enrol writes, is read as the
	// service would have it
	os.WriteFile(filepath.Join(dir, "agent.env"), []byte("HUBMON_MQTT_PASSWORD=from-the-file\n"), 0o600)
	c := &checker{env: env, configPath: path}
	if r := c.checkConfig(context.Background()); r.Status != checkPass || c.cfg.Broker.Password != "from-the-file" {
		t.Errorf("with agent.env: %+v", r)
	}
	os.Remove(filepath.Join(dir, "agent.env"))

	os.WriteFile(path, []byte("site: Hub 1\nsit: x\n"), 0o600)
	_, _, steps = runCheckTest(t, testCheckEnv(), path, false)
	wantStep(t, steps, "config", checkFail, "The settings file has")
	if d := steps["config"].Detail; !strings.Contains(d, "agent.yaml:2") || !strings.Contains(d, "sit") {
		t.Errorf("the details do not name the mistakes: %q", d)
	}
}

// TestCheckNetworkProblems: no interface up, an address the Pi made up
// itself (no DHCP), no default route, a router that does not answer.
func TestCheckNetworkProblems(t *testing.T) {
	dir := t.TempDir()
	path := writeCheckConfig(t, dir, "tcp://"+closedAddr(t), "", "")
	iface := func(addrs ...string) func() ([]checkInterface, error) {
		return func() ([]checkInterface, error) {
			ifc := checkInterface{Name: "eth0", Up: true}
			for _, a := range addrs {
				ifc.Addrs = append(ifc.Addrs, netip.MustParseAddr(a))
			}
			return []checkInterface{{Name: "lo", Up: true, Loopback: true}, ifc}, nil
		}
	}
	for _, tt := range []struct {
		name   string
		change func(*checkEnv)
		id     string
		want   string
	}{
		{"cable out", func(e *checkEnv) {
			e.interfaces = func() ([]checkInterface, error) {
				return []checkInterface{{Name: "lo", Up: true, Loopback: true}, {Name: "eth0"}}, nil
			}
		}, "network", "No network connection"},
		{"no address from the router", func(e *checkEnv) { e.interfaces = iface("169.254.7.9", "fe80::2") }, "network", "the router gave this Pi no address"},
		{"no default route", func(e *checkEnv) {
			e.routes = func() (netip.Addr, netip.Addr, error, error) {
				return netip.Addr{}, netip.Addr{}, probe.ErrNoDefaultRoute, probe.ErrNoDefaultRoute
			}
		}, "network", "no way out to the internet"},
		{"router silent", func(e *checkEnv) {
			e.routes = func() (netip.Addr, netip.Addr, error, error) {
				return netip.MustParseAddr("192.0.2.1"), netip.Addr{}, nil, probe.ErrNoDefaultRoute
			}
			real := e.dial
			e.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				if strings.HasPrefix(addr, "192.0.2.1:") { // never dialled for real
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return real(ctx, network, addr)
			}
		}, "gateway", "The router (192.0.2.1) does not answer"},
		{"point-to-point", func(e *checkEnv) {
			e.routes = func() (netip.Addr, netip.Addr, error, error) {
				return netip.Addr{}, netip.Addr{}, probe.ErrDefaultRouteNoGateway, probe.ErrNoDefaultRoute
			}
		}, "gateway", "no router to ask"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := testCheckEnv()
			tt.change(&env)
			code, _, steps := runCheckTest(t, env, path, true)
			status := checkFail
			if tt.name == "point-to-point" {
				status = checkSkip
			}
			wantStep(t, steps, tt.id, status, tt.want)
			if code != 1 {
				t.Errorf("exit code %d", code)
			}
			if tt.id == "network" {
				wantStep(t, steps, "broker", checkSkip, "Skipped: needs the network")
			}
		})
	}

	// a name that does not exist, and a DNS server that does not answer
	path = writeCheckConfig(t, dir, "tcp://broker.council.invalid:8883", "", "")
	_, _, steps := runCheckTest(t, testCheckEnv(), path, true)
	wantStep(t, steps, "dns", checkFail, "The council server's name broker.council.invalid does not exist")
	wantStep(t, steps, "broker", checkSkip, "Skipped: needs the name lookup")
	env := testCheckEnv()
	env.lookup = func(context.Context, string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "i/o timeout", IsTimeout: true}
	}
	_, _, steps = runCheckTest(t, env, path, true)
	wantStep(t, steps, "dns", checkFail, "Names cannot be looked up")
}

// TestCheckClock: the kernel's flag, and a second opinion from the
// council's speed-test server's clock (its Date header).
func TestCheckClock(t *testing.T) {
	dir := t.TempDir()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("test=test\n"))
	}))
	defer ts.Close()
	withServer := writeCheckConfig(t, dir, "tcp://"+closedAddr(t), ts.URL, "")
	without := writeCheckConfig(t, t.TempDir(), "tcp://"+closedAddr(t), "", "")
	for _, tt := range []struct {
		name   string
		config string
		skew   time.Duration
		synced []bool // synced, known
		status checkStatus
		want   string
	}{
		{"synchronised", without, 0, []bool{true, true}, checkPass, "kept in time by the internet time service"},
		{"not synchronised", without, 0, []bool{false, true}, checkFail, "not being kept right"},
		{"cannot tell", without, 0, []bool{false, false}, checkSkip, "Cannot tell"},
		{"agrees with the server", withServer, 0, []bool{true, true}, checkPass, "agrees with the council server's clock"},
		{"agrees, no time service", withServer, 0, []bool{false, true}, checkPass, "turn on time synchronisation"},
		{"behind the server", withServer, -3 * time.Hour, []bool{true, true}, checkFail, "This Pi's clock is 3 hours behind the council server's"},
		{"ahead of the server", withServer, 90 * time.Second, []bool{true, true}, checkFail, "ahead of the council server"},
		{"1970", without, -time.Since(time.Unix(0, 0)), []bool{true, true}, checkFail, "says 1 January 1970"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := testCheckEnv()
			env.now = func() time.Time { return time.Now().Add(tt.skew) }
			env.clockSynced = func() (bool, bool) { return tt.synced[0], tt.synced[1] }
			_, _, steps := runCheckTest(t, env, tt.config, true)
			wantStep(t, steps, "clock", tt.status, tt.want)
		})
	}
}

// TestLoginFailureWords: every CONNACK refusal is said in words.
func TestLoginFailureWords(t *testing.T) {
	for code, want := range map[byte]string{
		packets.ErrRefusedBadUsernameOrPassword: "The broker refused the password.",
		packets.ErrRefusedNotAuthorised:         "The broker refused the password (not authorised).",
		packets.ErrRefusedServerUnavailable:     "not taking logins just now",
		packets.ErrRefusedIDRejected:            "refused this hub's name (hub-1)",
		packets.ErrRefusedBadProtocolVersion:    "does not speak this agent's version of MQTT",
		0:                                       "Could not log in",
	} {
		r := loginFailure(code, "hub-1", errors.New("x"))
		if r.Status != checkFail || !strings.Contains(r.Summary, want) || r.Advice == "" {
			t.Errorf("code %d: %+v, want %q", code, r, want)
		}
	}
	for _, code := range []byte{packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised} {
		if r := loginFailure(code, "hub-1", nil); r.Advice != "Ask your council contact for a new enrolment code." {
			t.Errorf("code %d: advice %q", code, r.Advice)
		}
	}
}

// tlsFixture makes a council CA and serves TLS on 127.0.0.1 with a
// certificate signed by it (or by another CA), valid from notBefore to
// notAfter, for names; the server closes each connection after the
// handshake. It returns the broker URL and the CA file.
func tlsFixture(tb testing.TB, dir string, otherCA bool, notBefore, notAfter time.Time, names ...string) (brokerURL, caFile string) {
	tb.Helper()
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
			IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			tb.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		return cert, key, der
	}
	council, councilKey, councilDER := newCA("test council CA")
	signer, signerKey := council, councilKey
	if otherCA {
		signer, signerKey, _ = newCA("somebody else's CA")
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: notBefore, NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, signer, &key.PublicKey, signerKey)
	if err != nil {
		tb.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: councilDER}), 0o644)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return "ssl://" + ln.Addr().String(), caFile
}

// TestCheckTLS: the broker's certificate problems, in words.
func TestCheckTLS(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	for _, tt := range []struct {
		name                string
		otherCA             bool
		notBefore, notAfter time.Time
		names               []string
		status              checkStatus
		want                string
	}{
		{"valid", false, now.Add(-day), now.Add(90 * day), []string{"127.0.0.1"}, checkPass, "valid until " + now.Add(90*day).Format("2 January 2006") + " and signed by your council's certificate authority"},
		{"expires soon", false, now.Add(-day), now.Add(5 * day), []string{"127.0.0.1"}, checkPass, "It expires in 4 days"},
		{"expired", false, now.Add(-90 * day), now.Add(-day), []string{"127.0.0.1"}, checkFail, "The broker's certificate has expired (on " + now.Add(-day).Format("2 January 2006") + ")"},
		{"not yet valid", false, now.Add(day), now.Add(90 * day), []string{"127.0.0.1"}, checkFail, "is not valid yet"},
		{"another CA", true, now.Add(-day), now.Add(90 * day), []string{"127.0.0.1"}, checkFail, "is not signed by your council's certificate authority"},
		{"another name", false, now.Add(-day), now.Add(90 * day), []string{"broker.example.org"}, checkFail, "is for broker.example.org, not 127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			url, ca := tlsFixture(t, dir, tt.otherCA, tt.notBefore, tt.notAfter, tt.names...)
			path := writeCheckConfig(t, dir, url, "", "  ca_file: "+ca+"\n")
			_, _, steps := runCheckTest(t, testCheckEnv(), path, true)
			wantStep(t, steps, "broker", checkPass, "It answers at 127.0.0.1 port")
			wantStep(t, steps, "tls", tt.status, tt.want)
			if tt.status == checkFail {
				wantStep(t, steps, "login", checkSkip, "Skipped: needs the secure connection")
			}
		})
	}

	// a wrong clock gets the blame first
	dir := t.TempDir()
	url, ca := tlsFixture(t, dir, false, now.Add(-90*day), now.Add(-day), "127.0.0.1")
	env := testCheckEnv()
	env.clockSynced = func() (bool, bool) { return false, true }
	_, _, steps := runCheckTest(t, env, writeCheckConfig(t, dir, url, "", "  ca_file: "+ca+"\n"), true)
	wantStep(t, steps, "tls", checkFail, "This Pi's clock may be wrong (step 5)")

	// TLS to a port that does not speak it
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	_, _, steps = runCheckTest(t, testCheckEnv(), writeCheckConfig(t, t.TempDir(), "ssl://"+plain.Addr().String(), "", "  ca_file: "+ca+"\n"), true)
	wantStep(t, steps, "tls", checkFail, "does not answer securely")
}

// TestCheckInterrupted: Ctrl-C stops the check with exit code 130.
func TestCheckInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	path := writeCheckConfig(t, t.TempDir(), "tcp://"+closedAddr(t), "", "")
	if code := runCheck(ctx, testCheckEnv(), path, true, &out); code != 130 || !strings.Contains(out.String(), "Interrupted") {
		t.Errorf("exit code %d:\n%s", code, out.String())
	}
}

// TestCheckDisplay: the display follows the terminal and the environment.
func TestCheckDisplay(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	// not a terminal: plain ASCII whatever the environment
	if d := detectDisplay(&bytes.Buffer{}, env("LANG", "en_GB.UTF-8", "TERM", "xterm")); d != (checkDisplay{}) {
		t.Errorf("a buffer: %+v", d)
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if d := detectDisplay(f, env("LANG", "en_GB.UTF-8")); d.live || d.unicode {
		t.Errorf("a file: %+v", d)
	}
	for _, tt := range []struct {
		env  []string
		want bool
	}{
		{[]string{"LANG", "en_GB.UTF-8"}, true},
		{[]string{"LC_ALL", "C.utf8", "LANG", "C"}, true},
		{[]string{"LC_ALL", "C", "LANG", "en_GB.UTF-8"}, false},
		{nil, false},
	} {
		if got := utf8Locale(env(tt.env...)); got != tt.want {
			t.Errorf("utf8Locale(%v) = %v", tt.env, got)
		}
	}
}

// TestCheckRender: the lines people read, in each display, against golden
// files (testdata/check-render-*.golden; go test -update rewrites them).
func TestCheckRender(t *testing.T) {
	results := []checkResult{
		{Step: 1, Title: "Settings", Status: checkPass, Summary: `Complete: this is hub "hub-1".`, DurationSeconds: 0.002},
		{Step: 7, Title: "Secure connection", Status: checkPass, Summary: "The broker's certificate is valid until 3 March 2027 and signed by your council's certificate authority.",
			Advice: "It expires in 4 days: tell your council contact.", DurationSeconds: 0.031},
		{Step: 8, Title: "Login", Status: checkFail, Summary: "The broker refused the password.", Advice: "Ask your council contact for a new enrolment code.",
			Detail: "bad user name or password", DurationSeconds: 0.012, blocked: true},
		{Step: 11, Title: "Results reach council", Status: checkSkip, Summary: "Skipped: needs the login.", blocked: true},
	}
	for _, tt := range []struct {
		name string
		d    checkDisplay
	}{
		{"plain", checkDisplay{}},
		{"terminal", checkDisplay{live: true, color: true, unicode: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			p := newCheckPrinter(&b, tt.d)
			p.header("/etc/hubmon/agent.yaml")
			for i, r := range results {
				p.start(r.Step, r.Title)
				if i == 0 {
					p.speedProgress(probe.SpeedtestProgress{Phase: "download", BitsPerSecond: 45.3e6, Elapsed: time.Second, Planned: 2 * time.Second})
				}
				p.result(r)
			}
			p.footer(checkReport{Steps: results})
			golden(t, "check-render-"+tt.name+".golden", b.String())
		})
	}
}

// golden compares got with testdata/name, or writes it with -update.
func golden(tb testing.TB, name, got string) {
	tb.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		tb.Errorf("output differs from %s (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// normalise replaces what changes from run to run in check's text output:
// timings, rates, data, ports and temporary paths. It first joins the lines
// that wrapping continued (their width depends on those), keeping the "What
// to do", "Note" and "Details" lines apart.
func normalise(out, dir string) string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		rest := strings.TrimLeft(line, " ")
		cont := len(line)-len(rest) >= 20 && len(lines) > 0
		for _, lead := range []string{"What to do: ", "Note: ", "Details: "} {
			cont = cont && !strings.HasPrefix(rest, lead)
		}
		if cont {
			lines[len(lines)-1] += " " + rest
		} else {
			lines = append(lines, line)
		}
	}
	out = strings.Join(lines, "\n")
	out = strings.ReplaceAll(out, dir, "DIR")
	for _, r := range []struct{ re, to string }{
		{`\((\d+ ms|\d+\.\d s)\)`, "(T)"},
		{`in (\d+ ms|\d+\.\d s)`, "in T"},
		{`latency \d+ ms`, "latency T"},
		{`\d+\.\d Mbit/s`, "N Mbit/s"},
		{`used [\d.]+ MB`, "used N MB"},
		{`127\.0\.0\.1:\d+`, "127.0.0.1:PORT"},
		{`port \d+`, "port PORT"},
		{`valid until \d+ \w+ \d+`, "valid until DATE"},
	} {
		out = regexp.MustCompile(r.re).ReplaceAllString(out, r.to)
	}
	return out
}
