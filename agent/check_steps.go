package main

// The steps of hubmon-agent check up to the login (1-8) and the speed-test
// server (9). Each returns what it found in plain words; the technical
// reason goes in the result's Detail.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/internal/enrol"
	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/internal/publish"
	"github.com/hubmon/hubmon/agent/wire"
)

// Advice shared by several steps.
const (
	adviceCouncil = "Tell your council contact, with the details below."
	adviceAgain   = "Run this check again; if it fails again, tell your council contact, with the details below."
	adviceRouter  = "Restart the router (switch it off, wait 30 seconds, switch it on), wait two minutes, then run this check again; if that does not help, ask whoever looks after the hub's network."
	adviceEnrol   = "Ask your council contact for a new enrolment code."
	adviceClock   = "Make sure this Pi is connected to the internet and wait a few minutes: it sets its clock by itself. If it stays wrong, ask whoever looks after the hub's network to allow internet time (NTP, UDP port 123)."
	adviceSudo    = "Run the check as an administrator: sudo hubmon-agent check"
)

// unsetVar finds the variables a config refers to that are not set.
var unsetVar = regexp.MustCompile(`environment variable (\w+) is not set`)

// checkConfig is step 1: the settings file can be read and is valid.
func (c *checker) checkConfig(context.Context) checkResult {
	cfg, err := config.Load(c.configPath, withEnvFile(c.configPath, c.env.getenv))
	if err != nil {
		return configFailure(c.configPath, err)
	}
	u, err := url.Parse(cfg.Broker.URL) // valid: Load checked it
	if err != nil {
		return fail("The council server's address in the settings cannot be read.", adviceEnrol, err)
	}
	c.cfg, c.host, c.port = cfg, u.Hostname(), u.Port()
	for i := range cfg.Probes {
		if cfg.Probes[i].Kind == wire.KindSpeedtest {
			c.speedProbe = &cfg.Probes[i]
			break
		}
	}
	return pass(fmt.Sprintf("Complete: this is hub %q.", cfg.Site))
}

func configFailure(path string, err error) checkResult {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail(fmt.Sprintf("There is no settings file at %s.", path),
			"Enrol this hub with the code from your council contact (hubmon-agent enrol CODE), then run this check again.", err)
	case errors.Is(err, fs.ErrPermission):
		return fail(fmt.Sprintf("This user may not read %s.", path), adviceSudo, err)
	}
	var vars []string
	for _, m := range unsetVar.FindAllStringSubmatch(err.Error(), -1) {
		if !slices.Contains(vars, m[1]) {
			vars = append(vars, m[1])
		}
	}
	if len(vars) > 0 {
		return fail(fmt.Sprintf("The settings take values from %s, which is not set here.", strings.Join(vars, ", ")),
			fmt.Sprintf("Run the check as an administrator (sudo hubmon-agent check): it then reads them from %s, as the service does. "+
				"If it says this again, this hub is not enrolled: enrol it with the code from your council contact (sudo hubmon-agent enrol CODE).",
				filepath.Join(filepath.Dir(path), enrol.EnvFileName)), err)
	}
	n := strings.Count(strings.TrimSpace(err.Error()), "\n") + 1
	return fail(fmt.Sprintf("The settings file has %d %s.", n, plural(n, "mistake", "mistakes")),
		"Enrol this hub again with the code from your council contact, or correct the lines below.", err)
}

// checkNetwork is step 2: an interface is up with an address, and there is
// a default route.
func (c *checker) checkNetwork(context.Context) checkResult {
	ifs, err := c.env.interfaces()
	if err != nil {
		return fail("This Pi's network connections cannot be listed.", adviceAgain, err)
	}
	var up, connected []string
	for _, ifc := range ifs {
		if ifc.Loopback || !ifc.Up {
			continue
		}
		up = append(up, ifc.Name)
		for _, a := range ifc.Addrs {
			// 169.254.x.x and fe80:: are made up by this Pi, not given by
			// a router
			if a.IsGlobalUnicast() && !a.IsLinkLocalUnicast() {
				connected = append(connected, ifc.Name+" "+a.Unmap().String())
				break
			}
		}
	}
	switch {
	case len(up) == 0:
		return fail("No network connection.",
			"Check that the network cable is plugged in at both ends (this Pi and the hub's router) and that the router is switched on; on Wi-Fi, check the network name and password.", nil)
	case len(connected) == 0:
		return fail(fmt.Sprintf("Plugged in (%s), but the router gave this Pi no address.", strings.Join(up, ", ")), adviceRouter, nil)
	}
	c.gw4, c.gw6, c.err4, c.err6 = c.env.routes()
	list := strings.Join(connected[:min(len(connected), 3)], ", ")
	if noRoute(c.err4) && noRoute(c.err6) {
		return fail(fmt.Sprintf("Connected (%s), but with no way out to the internet (no default route).", list), adviceRouter, nil)
	}
	c.networkOK = true
	return pass("Connected: " + list + ".")
}

func noRoute(err error) bool { return errors.Is(err, probe.ErrNoDefaultRoute) }

// checkGateway is step 3: the router answers.
func (c *checker) checkGateway(ctx context.Context) checkResult {
	var gws []netip.Addr
	for _, gw := range []netip.Addr{c.gw4, c.gw6} {
		if gw.IsValid() {
			gws = append(gws, gw)
		}
	}
	if len(gws) == 0 {
		if errors.Is(c.err4, probe.ErrDefaultRouteNoGateway) || errors.Is(c.err6, probe.ErrDefaultRouteNoGateway) {
			return skip("This connection has no router to ask (a direct link, such as a mobile modem).")
		}
		return skip("Cannot tell on this system: the routing table cannot be read.")
	}
	names := make([]string, len(gws))
	for i, gw := range gws {
		names[i] = gw.String()
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if ok, _ := probe.GatewayAnswers(dctx, gws, c.env.dial); ok {
		return pass(fmt.Sprintf("The router (%s) answers.", strings.Join(names, ", ")))
	}
	r := fail(fmt.Sprintf("The router (%s) does not answer.", strings.Join(names, ", ")),
		"Check the cable between this Pi and the router, and restart the router (switch it off, wait 30 seconds, switch it on). A few routers never answer this test: if every step below passes, ignore this one.", nil)
	r.Detail = "no answer on TCP ports 53, 80 or 443 within 3 s"
	return r
}

// checkDNS is step 4: the broker's name resolves. Its lookup is kept as
// the fallback test result (checkDNSProbe).
func (c *checker) checkDNS(ctx context.Context) checkResult {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	at := c.env.now()
	t0 := time.Now()
	addrs, err := c.env.lookup(lctx, c.host)
	took := time.Since(t0)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return fail(fmt.Sprintf("The council server's name %s does not exist.", c.host),
				"The address in the settings may be wrong: ask your council contact for a new enrolment code.", err)
		}
		return fail("Names cannot be looked up: the hub's name server (DNS) does not answer.",
			"Restart the router; if that does not help, ask whoever looks after the hub's network to check its DNS.", err)
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap() // an IPv4 address as such, to dial and to show
	}
	c.addrs = addrs
	c.dnsResult = &wire.Measurement{
		Probe: checkDNSProbe, Kind: wire.KindDNS, MeasuredAt: at.UTC(), DurationSeconds: took.Seconds(), Success: true,
		DNS: &wire.DNS{Results: []wire.DNSResult{{
			Resolver: "system", Name: c.host, Success: true, ResolveSeconds: wire.Float(took.Seconds()), Addresses: len(addrs),
		}}},
	}
	if _, err := netip.ParseAddr(c.host); err == nil {
		return pass(fmt.Sprintf("The council server's address is a number (%s): nothing to look up.", c.host))
	}
	shown := make([]string, 0, 2)
	for _, a := range addrs[:min(len(addrs), 2)] {
		shown = append(shown, a.String())
	}
	return pass(fmt.Sprintf("Found the council server: %s is %s.", c.host, strings.Join(shown, ", ")))
}

// checkClock is step 5: the clock is right. Two sources, neither needing
// privileges: the kernel's synchronisation flag (what a time service such
// as systemd-timesyncd or chrony sets, and timedatectl shows), and, when the
// settings name the council's own speed-test server, its clock (its HTTP
// Date header, to the second, read over one round trip). The server's clock
// is a second opinion from the council's side: it catches a clock that is
// off although a time service runs (a wrong time zone file does not count:
// times are compared in UTC), and it vouches for a right clock on a system
// whose time service does not set the flag. The broker's certificate dates
// are coarser (they only catch a clock off by months): step 7 blames the
// clock for a certificate that is not valid yet or expired when this step
// did not pass.
func (c *checker) checkClock(ctx context.Context) checkResult {
	now := c.env.now()
	if now.Year() < 2020 {
		c.clockWrong = true
		return fail(fmt.Sprintf("This Pi's clock says %s, which is wrong.", now.Format("2 January 2006")), adviceClock, nil)
	}
	synced, known := c.env.clockSynced()
	offset, uncertainty, ref := c.clockReference(ctx)
	switch {
	case ref != "" && abs(offset) > checkClockLimit+uncertainty:
		c.clockWrong = true
		way := "behind"
		if offset < 0 {
			way = "ahead of"
		}
		return fail(fmt.Sprintf("This Pi's clock is %s %s the council server's.", humanDuration(abs(offset).Round(time.Second)), way), adviceClock,
			fmt.Errorf("offset %s ± %s from the Date header of %s; kernel clock synchronised: %s", offset.Round(time.Second), uncertainty.Round(time.Millisecond), ref, yesNo(synced, known)))
	case ref != "":
		r := pass("Right: it agrees with the council server's clock.")
		if known && !synced {
			return r.note("No time service is keeping it right, though, so it may be wrong after a power cut: ask whoever set up this Pi to turn on time synchronisation (timedatectl set-ntp true).")
		}
		return r
	case known && synced:
		return pass("Right: kept in time by the internet time service (NTP).")
	case known:
		c.clockWrong = true
		return fail("This Pi's clock is not being kept right: no time service has set it.", adviceClock, nil)
	}
	c.clockUnknown = true
	return skip("Cannot tell on this system.")
}

// clockReference compares the clock with the council's speed-test server's,
// if the settings name one and the network is up: the offset (positive when
// this clock is behind), its uncertainty and the server; ref "" when there is
// none.
func (c *checker) clockReference(ctx context.Context) (offset, uncertainty time.Duration, ref string) {
	if c.cfg == nil || !c.networkOK {
		return 0, 0, ""
	}
	var serverURL string
	for _, p := range c.cfg.Probes {
		if p.Kind == wire.KindSpeedtest && p.Speedtest.ServerURL != "" {
			serverURL = p.Speedtest.ServerURL
			break
		}
	}
	if serverURL == "" {
		return 0, 0, ""
	}
	skew := c.env.now().Sub(time.Now()) // 0 but in tests
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	chk, err := probe.CheckSpeedtestServer(cctx, probe.SpeedtestConfig{ServerURL: serverURL})
	if err != nil || chk.Date.IsZero() {
		return 0, 0, ""
	}
	// the server read its clock, truncated to the second, between sending
	// and answering: in the middle, give or take half the round trip
	mid := chk.Sent.Add(chk.RTT() / 2).Add(skew)
	return chk.Date.Add(500 * time.Millisecond).Sub(mid), 500*time.Millisecond + chk.RTT()/2, chk.Host
}

// checkBroker is step 6: a TCP connection to the broker.
func (c *checker) checkBroker(ctx context.Context) checkResult {
	port, _ := strconv.ParseUint(c.port, 10, 16)
	timeout := min(c.cfg.Broker.ConnectTimeout, checkStepTimeout)
	var err error
	for _, a := range c.addrs[:min(len(c.addrs), 4)] {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		var conn net.Conn
		conn, err = c.env.dial(dctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
		cancel()
		if err == nil {
			conn.Close()
			c.addrs = []netip.Addr{a} // the one that answers, for the steps after
			return pass(fmt.Sprintf("It answers at %s port %s.", c.host, c.port))
		}
	}
	where := fmt.Sprintf("%s port %s", c.host, c.port)
	blocked := fmt.Sprintf("The hub's network may block it: ask whoever looks after the network to allow outgoing connections to %s. If the council's server is down, your council contact will know.", where)
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail("Nothing answers at "+where+".", "The council's server may be down, or the address in the settings wrong: tell your council contact.", err)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return fail(fmt.Sprintf("No answer from %s within %s.", where, timeout), blocked, err)
	case errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH):
		return fail(fmt.Sprintf("%s cannot be reached from this network.", c.host), blocked, err)
	}
	return fail("Could not connect to "+where+".", adviceCouncil, err)
}

// checkTLS is step 7: the broker's certificate chains to the configured CA
// and names the broker. The handshake skips verification so that the
// certificate can be examined and the problem said in words; the login
// (step 8) and the agent verify as usual.
func (c *checker) checkTLS(ctx context.Context) checkResult {
	if !c.cfg.Broker.TLS() {
		return skip("Not used: the settings connect without encryption (tcp://).")
	}
	tc, err := publish.TLSConfig(c.cfg.Broker.CAFile, c.cfg.Broker.CertFile, c.cfg.Broker.KeyFile)
	if err != nil {
		return fail("The certificate files named in the settings cannot be used.", adviceEnrol, err)
	}
	c.tlsConfig = tc
	hctx, cancel := context.WithTimeout(ctx, min(c.cfg.Broker.ConnectTimeout, checkStepTimeout))
	defer cancel()
	conn, err := c.env.dial(hctx, "tcp", net.JoinHostPort(c.addrs[0].String(), c.port))
	if err != nil {
		return fail("Could not connect to the council server again.", adviceAgain, err)
	}
	defer conn.Close()
	look := tc.Clone()
	look.InsecureSkipVerify = true // verified below, with reasons
	look.ServerName = c.host
	tconn := tls.Client(conn, look)
	if err := tconn.HandshakeContext(hctx); err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) {
			return fail(fmt.Sprintf("The council server does not answer securely at port %s.", c.port),
				"The address in the settings may be wrong (ssl:// for a port without encryption): ask your council contact for a new enrolment code.", err)
		}
		return fail("The secure connection to the council server failed.", adviceCouncil, err)
	}
	certs := tconn.ConnectionState().PeerCertificates
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, cert := range certs[1:] {
		inter.AddCert(cert)
	}
	now := c.env.now()
	_, err = leaf.Verify(x509.VerifyOptions{Roots: tc.RootCAs, Intermediates: inter, DNSName: c.host, CurrentTime: now})
	signer := "your council's certificate authority"
	if c.cfg.Broker.CAFile == "" {
		signer = "an authority this Pi trusts"
	}
	clockFirst := ""
	if c.clockWrong || c.clockUnknown {
		clockFirst = "This Pi's clock may be wrong (step 5): put that right first, then run this check again. If the clock is right, tell your council contact: "
	}
	var cie x509.CertificateInvalidError
	var uae x509.UnknownAuthorityError
	var he x509.HostnameError
	switch {
	case err == nil:
		r := pass(fmt.Sprintf("The broker's certificate is valid until %s and signed by %s.", leaf.NotAfter.Format("2 January 2006"), signer))
		if left := leaf.NotAfter.Sub(now); left < 14*24*time.Hour {
			return r.note(fmt.Sprintf("It expires in %s: tell your council contact.", humanDuration(left)))
		}
		return r
	case errors.As(err, &cie) && cie.Reason == x509.Expired && now.After(leaf.NotAfter):
		return fail(fmt.Sprintf("The broker's certificate has expired (on %s).", leaf.NotAfter.Format("2 January 2006")),
			clockFirst+"Tell your council contact: the broker's certificate must be renewed.", err)
	case errors.As(err, &cie) && cie.Reason == x509.Expired && now.Before(leaf.NotBefore):
		return fail(fmt.Sprintf("The broker's certificate is not valid yet (it starts on %s).", leaf.NotBefore.Format("2 January 2006")),
			clockFirst+"Tell your council contact: the broker's certificate starts in the future.", err)
	case errors.As(err, &uae):
		return fail(fmt.Sprintf("The broker's certificate is not signed by %s.", signer),
			"Ask your council contact for a new enrolment code. If that does not help, something on the hub's network may be intercepting secure connections: tell your council contact.", err)
	case errors.As(err, &he):
		names := append([]string{}, leaf.DNSNames...)
		for _, ip := range leaf.IPAddresses {
			names = append(names, ip.String())
		}
		return fail(fmt.Sprintf("The broker's certificate is for %s, not %s.", strings.Join(names, ", "), c.host),
			"The address in the settings may be wrong: ask your council contact for a new enrolment code.", err)
	}
	return fail("The broker's certificate is not valid.", clockFirst+adviceCouncil, err)
}

// checkLogin is step 8: the broker accepts the site's user name and
// password, and lets it read its acks. The CONNACK return code is said in
// words. Not while the service runs (see check.go).
func (c *checker) checkLogin(ctx context.Context) checkResult {
	if c.running {
		return skip("Not tried on its own: the hubmon service is logged in as this hub, and a second login would cut it off. Step 11 tests the whole way through the service.")
	}
	b := c.cfg.Broker
	timeout := min(b.ConnectTimeout, checkStepTimeout)
	co := mqtt.NewClientOptions().
		AddBroker(b.URL).
		SetClientID(c.cfg.Site). // as the agent: the broker binds it to the user name
		SetUsername(b.Username).
		SetPassword(b.Password).
		SetProtocolVersion(4). // MQTT 3.1.1 only: no second attempt with 3.1 and its own answer
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(timeout).
		SetWriteTimeout(timeout)
	if c.tlsConfig != nil {
		co.SetTLSConfig(c.tlsConfig)
	}
	cl := mqtt.NewClient(co)
	tok := cl.Connect()
	if err := waitCheckToken(ctx, tok, timeout+time.Second); err != nil {
		cl.Disconnect(0)
		var code byte
		if ct, ok := tok.(*mqtt.ConnectToken); ok {
			code = ct.ReturnCode()
		}
		if code != 0 {
			err = fmt.Errorf("CONNACK return code %d: %w", code, err)
		}
		return loginFailure(code, c.cfg.Site, err)
	}
	defer cl.Disconnect(250)
	ackTopic := wire.Topic(c.cfg.Site, wire.TopicAck)
	st := cl.Subscribe(ackTopic, 1, func(mqtt.Client, mqtt.Message) {})
	if err := waitCheckToken(ctx, st, timeout); err != nil {
		return fail("The council server stopped answering after the login.", adviceAgain, err)
	}
	if s, ok := st.(*mqtt.SubscribeToken); ok {
		for topic, code := range s.Result() {
			if code >= 0x80 {
				return fail("The council server accepted the login but does not let this hub receive its receipts.",
					fmt.Sprintf("Tell your council contact: the broker's access list must let %s read %s.", b.Username, topic), nil)
			}
		}
	}
	return pass("The council server accepted this hub's password.")
}

// loginFailure says in words why the broker refused the login, from its
// CONNACK return code (0 when there was none: the connection failed).
func loginFailure(code byte, site string, err error) checkResult {
	switch code {
	case packets.ErrRefusedBadUsernameOrPassword:
		return fail("The broker refused the password.", adviceEnrol, err)
	case packets.ErrRefusedNotAuthorised:
		// Mosquitto's answer to a wrong password or an unknown user name,
		// for MQTT 3.1.1 clients (the embedded broker answers 4)
		return fail("The broker refused the password (not authorised).", adviceEnrol, err)
	case packets.ErrRefusedServerUnavailable:
		return fail("The council server is not taking logins just now (server unavailable).",
			"Try again in a few minutes; if it goes on, tell your council contact.", err)
	case packets.ErrRefusedIDRejected:
		return fail(fmt.Sprintf("The broker refused this hub's name (%s).", site), adviceEnrol, err)
	case packets.ErrRefusedBadProtocolVersion:
		return fail("The broker does not speak this agent's version of MQTT (3.1.1).", adviceCouncil, err)
	}
	return fail("Could not log in to the council server.", adviceAgain, err)
}

// waitCheckToken waits for a paho token, within d: a bare Wait can block for
// ever.
func waitCheckToken(ctx context.Context, t mqtt.Token, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-timer.C:
		return fmt.Errorf("no answer from the broker within %s", d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkSpeedtestServer is step 9: the speed test's server answers.
func (c *checker) checkSpeedtestServer(ctx context.Context) checkResult {
	p := c.speedProbe
	if p == nil {
		return skip("No speed test in the settings.")
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st := p.Speedtest
	chk, err := probe.CheckSpeedtestServer(sctx, probe.SpeedtestConfig{ServerURL: st.ServerURL, ServerIDs: st.ServerIDs, Connections: st.Connections})
	if st.ServerURL != "" {
		host := st.ServerURL
		if u, perr := url.Parse(st.ServerURL); perr == nil {
			host = u.Host
		}
		if err != nil {
			return fail(fmt.Sprintf("The council's speed-test server (%s) does not answer.", host),
				"Tell your council contact, with the details below; everything else is measured without it.", err)
		}
		return pass(fmt.Sprintf("The council's speed-test server (%s) answers.", host))
	}
	if err != nil {
		return fail("The public speed-test servers cannot be reached.",
			"The internet connection may be down, or the hub's network may block speedtest.net: ask whoever looks after it.", err)
	}
	return pass(fmt.Sprintf("The speed-test server %s (%s) answers.", chk.Name, chk.Host))
}

// humanDuration says d in words, to its two largest units.
func humanDuration(d time.Duration) string {
	units := []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}}
	var parts []string
	for _, u := range units {
		if n := int64(d / u.d); n > 0 || u.d == time.Second && len(parts) == 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, plural(int(n), u.name, u.name+"s")))
			d -= time.Duration(n) * u.d
		}
		if len(parts) == 2 {
			break
		}
	}
	return strings.Join(parts, " ")
}

// shortDuration is d for a result line: milliseconds below a second.
func shortDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func yesNo(v, known bool) string {
	switch {
	case !known:
		return "unknown"
	case v:
		return "yes"
	}
	return "no"
}
