package main

// hubmon-agent check: a checklist for hub staff. Each step says in plain
// words what it found and, when something is wrong, what to do next; steps
// that need an earlier one that failed are skipped, saying which.
//
// It must not disturb the agent service. The broker binds the MQTT client id
// to the site (Mosquitto's use_username_as_clientid, the embedded broker's
// auth), so a second login as the site would cut the running service off. So
// check first asks the outbox whether the service holds it (outbox.InUse):
//
//   - service not running: check logs in itself (step 8, which maps the
//     broker's CONNACK to words), and for step 11 it runs the agent's own
//     publisher on the agent's own outbox for a moment: the status goes out
//     as on every connection, then the test result, and check waits for the
//     collector's ack, the only proof that a result reached the history.
//   - service running: no login of its own. Step 8 is left to step 11, which
//     adds the test result to the outbox the service is sending from (SQLite
//     in WAL mode takes a second process) and waits for the service to get
//     it acknowledged. So the path tested is the service's own.
//
// The test result is real data in the hub's history, named so it cannot be
// mistaken for the scheduled tests: the short speed test as probe "check"
// when it measured both directions, or else (speed test skipped or failed)
// the broker-name lookup of step 4 as a DNS result of probe "check-dns". A
// failed speed test is not sent: its probe never runs again, so its failure
// would stay on the dashboards (and fire HubmonSpeedtestsFailing) until the
// next check.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/hubmon/hubmon/agent/internal/config"
	"github.com/hubmon/hubmon/agent/internal/outbox"
	"github.com/hubmon/hubmon/agent/internal/probe"
	"github.com/hubmon/hubmon/agent/wire"
)

// Probe names of the results check sends (see above).
const (
	checkProbe    = "check"
	checkDNSProbe = "check-dns"
)

const (
	// checkSpeedDuration is the measured time per direction of check's
	// speed test (after a warm-up of half of it): the shortest a data
	// budget shortens a test to.
	checkSpeedDuration = 3 * time.Second
	// checkAckWait bounds the wait for the collector's ack of the test
	// result (plus the service's retry period when the service sends it).
	checkAckWait = 20 * time.Second
	// checkStepTimeout bounds most single steps.
	checkStepTimeout = 10 * time.Second
	// checkClockLimit is how far this Pi's clock may be from the council
	// server's (on top of the measurement's uncertainty) and count as
	// right.
	checkClockLimit = 10 * time.Second
)

// checkEnv is what check reaches outside the process through; tests replace
// parts of it so that nothing goes to the real gateway or resolver.
type checkEnv struct {
	getenv     func(string) string
	now        func() time.Time
	interfaces func() ([]checkInterface, error)
	// routes returns the default gateways (probe.DefaultGateways).
	routes func() (gw4, gw6 netip.Addr, err4, err6 error)
	// dial connects to the router and to the broker (steps 3, 6, 7).
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	// lookup resolves a host name (or an IP address, at once).
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// clockSynced reports the kernel's clock synchronisation state (what
	// timedatectl shows as "System clock synchronized"); known is false
	// when it cannot be read.
	clockSynced func() (synced, known bool)
	// serviceRunning reports whether the agent service holds the outbox.
	serviceRunning func(outboxPath string) (bool, error)
	speedDuration  time.Duration
	ackWait        time.Duration
	display        checkDisplay
}

// checkInterface is a network interface as step 2 sees it.
type checkInterface struct {
	Name     string
	Up       bool // administratively up and running (carrier)
	Loopback bool
	Addrs    []netip.Addr
}

func defaultCheckEnv(getenv func(string) string, stdout io.Writer) checkEnv {
	return checkEnv{
		getenv:     getenv,
		now:        time.Now,
		interfaces: systemInterfaces,
		routes: func() (netip.Addr, netip.Addr, error, error) {
			return probe.DefaultGateways("", "")
		},
		dial: (&net.Dialer{}).DialContext,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			// not net.DefaultResolver: a package variable anyone may change
			return (&net.Resolver{}).LookupNetIP(ctx, "ip", host)
		},
		clockSynced:    kernelClockSynced,
		serviceRunning: outboxInUse,
		speedDuration:  checkSpeedDuration,
		ackWait:        checkAckWait,
		display:        detectDisplay(stdout, getenv),
	}
}

// systemInterfaces lists this machine's network interfaces.
func systemInterfaces() ([]checkInterface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []checkInterface
	for _, ifc := range ifs {
		ci := checkInterface{
			Name:     ifc.Name,
			Up:       ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagRunning != 0,
			Loopback: ifc.Flags&net.FlagLoopback != 0,
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				ci.Addrs = append(ci.Addrs, p.Addr())
			}
		}
		out = append(out, ci)
	}
	return out, nil
}

type checkStatus string

const (
	checkPass checkStatus = "pass"
	checkFail checkStatus = "fail"
	checkSkip checkStatus = "skip"
)

// checkResult is one line of the checklist.
type checkResult struct {
	Step   int         `json:"step"`
	ID     string      `json:"id"`
	Title  string      `json:"title"`
	Status checkStatus `json:"status"`
	// Summary says what was found, in plain words.
	Summary string `json:"summary"`
	// Advice says what to do next (a failure), or adds a note (a pass).
	Advice string `json:"advice,omitempty"`
	// Detail is the technical reason, for the council contact.
	Detail          string  `json:"detail,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
	// blocked: failed, or skipped because a step it needs failed; steps
	// that need it are skipped.
	blocked bool
}

// checkSent is the test result check sent to the collector (step 11).
type checkSent struct {
	Probe        string `json:"probe"`
	Kind         string `json:"kind"`
	MessageID    string `json:"message_id"`
	Acknowledged bool   `json:"acknowledged"`
	// Refused is the collector's reason when it refused the result for
	// good (and so acknowledged nothing).
	Refused string `json:"refused,omitempty"`
}

// checkReport is the whole checklist; -json prints it.
type checkReport struct {
	Config         string          `json:"config"`
	Site           string          `json:"site,omitempty"`
	AgentVersion   string          `json:"agent_version"`
	ServiceRunning bool            `json:"service_running"`
	Passed         bool            `json:"passed"`
	Steps          []checkResult   `json:"steps"`
	Speedtest      *wire.Speedtest `json:"speedtest,omitempty"`
	Sent           *checkSent      `json:"sent,omitempty"`
}

// checkStep is one step: what it needs (ids of earlier steps) and how it
// runs.
type checkStep struct {
	id, title string
	needs     []string
	run       func(ctx context.Context) checkResult
}

// needNames say what a skipped step is waiting for.
var needNames = map[string]string{
	"config":            "the settings",
	"network":           "the network",
	"dns":               "the name lookup",
	"broker":            "the council server",
	"tls":               "the secure connection",
	"login":             "the login",
	"speedtest_server":  "the speed-test server",
	"service_detection": "access to the agent's data",
}

// checker holds what the steps found, for the steps after them.
type checker struct {
	env           checkEnv
	configPath    string
	skipSpeedtest bool
	out           *checkPrinter

	cfg        *config.Config
	host, port string // the broker's
	addrs      []netip.Addr
	dnsResult  *wire.Measurement // step 4's lookup, the fallback test result
	networkOK  bool
	gw4, gw6   netip.Addr
	err4, err6 error
	// clockWrong and clockUnknown: step 5 found the clock wrong, or could
	// not tell; the TLS step then blames the clock for certificate dates.
	clockWrong   bool
	clockUnknown bool
	tlsConfig    *tls.Config
	// running: the service holds the outbox; runningErr: that could not
	// be told (no access to the data directory).
	running    bool
	runningErr error
	speedProbe *config.Probe // the speed test whose server check uses
	speed      *wire.Measurement
	sent       *checkSent
}

func cmdCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/hubmon/agent.yaml", "configuration file")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	skipSpeed := fs.Bool("skip-speedtest", false, "leave out the short speed test (it uses about 10 s of the line's full speed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hubmon-agent check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	env := defaultCheckEnv(getenv, stdout)
	if *asJSON {
		env.display = checkDisplay{json: true}
	}
	return runCheck(ctx, env, *configPath, *skipSpeed, stdout)
}

// runCheck runs the checklist and prints it; it returns the exit code: 0
// when every step passed (or did not apply), 1 otherwise, 130 when ctx was
// cancelled (Ctrl-C).
func runCheck(ctx context.Context, env checkEnv, configPath string, skipSpeedtest bool, stdout io.Writer) int {
	c := &checker{env: env, configPath: configPath, skipSpeedtest: skipSpeedtest, out: newCheckPrinter(stdout, env.display)}
	rep := checkReport{Config: configPath, AgentVersion: version}
	c.out.header(configPath)
	results := map[string]checkResult{}
	for i, s := range c.steps() {
		n := i + 1
		var r checkResult
		if need := firstBlocked(results, s.needs); need != "" {
			r = checkResult{Status: checkSkip, Summary: "Skipped: needs " + needNames[need] + "."}
			r.blocked = true
		} else {
			c.out.start(n, s.title)
			t0 := time.Now()
			r = s.run(ctx)
			r.DurationSeconds = time.Since(t0).Seconds()
			if r.Status == checkFail {
				r.blocked = true
			}
		}
		if ctx.Err() != nil {
			c.out.interrupted()
			return 130
		}
		r.Step, r.ID, r.Title = n, s.id, s.title
		rep.Steps = append(rep.Steps, r)
		results[s.id] = r
		c.out.result(r)
		if s.id == "config" && c.cfg != nil {
			c.detectService()
			if c.running {
				c.out.note("The hubmon service is running on this Pi. This check does not log in on its own (that would cut the service off): it sends its test result through the service.")
			}
			if c.runningErr != nil {
				c.out.note("This user cannot read the agent's data (" + c.cfg.DataDir + "), so steps 8 and 11 cannot run: run the check as an administrator (sudo hubmon-agent check).")
				results["service_detection"] = checkResult{blocked: true}
			}
		}
	}
	if c.cfg != nil {
		rep.Site = c.cfg.Site
	}
	rep.ServiceRunning = c.running
	rep.Passed = true
	for _, r := range rep.Steps {
		if r.Status == checkFail || r.blocked {
			rep.Passed = false
		}
	}
	if c.speed != nil {
		rep.Speedtest = c.speed.Speedtest
	}
	rep.Sent = c.sent
	c.out.footer(rep)
	if rep.Passed {
		return 0
	}
	return 1
}

// firstBlocked returns the first of needs that is blocked, "" if none.
func firstBlocked(results map[string]checkResult, needs []string) string {
	for _, id := range needs {
		if results[id].blocked {
			return id
		}
	}
	return ""
}

// steps lists the checklist in order.
func (c *checker) steps() []checkStep {
	return []checkStep{
		{id: "config", title: "Settings", run: c.checkConfig},
		{id: "network", title: "Network", run: c.checkNetwork},
		{id: "gateway", title: "Router", needs: []string{"network"}, run: c.checkGateway},
		{id: "dns", title: "Name lookup (DNS)", needs: []string{"config", "network"}, run: c.checkDNS},
		{id: "clock", title: "Clock", run: c.checkClock},
		{id: "broker", title: "Council server", needs: []string{"config", "network", "dns"}, run: c.checkBroker},
		{id: "tls", title: "Secure connection", needs: []string{"broker"}, run: c.checkTLS},
		{id: "login", title: "Login", needs: []string{"tls", "service_detection"}, run: c.checkLogin},
		{id: "speedtest_server", title: "Speed-test server", needs: []string{"config", "network"}, run: c.checkSpeedtestServer},
		{id: "speedtest", title: "Speed test", needs: []string{"speedtest_server"}, run: c.checkSpeedtest},
		{id: "collector", title: "Results reach council", needs: []string{"login", "service_detection"}, run: c.checkCollector},
	}
}

// detectService finds out whether the agent service is running on this
// config's outbox.
func (c *checker) detectService() {
	c.running, c.runningErr = c.env.serviceRunning(c.cfg.OutboxPath())
}

// outboxInUse is outbox.InUse, erring on the safe side: only a permission
// problem is an error (the caller says to run as an administrator).
func outboxInUse(path string) (bool, error) {
	running, err := outbox.InUse(path)
	if errors.Is(err, os.ErrPermission) {
		return false, err
	}
	if err != nil {
		// the lock cannot be read for another reason (a file system
		// without flock): assume the service runs, the safe side
		return true, nil
	}
	return running, nil
}

// pass, fail and skip make results.
func pass(summary string) checkResult { return checkResult{Status: checkPass, Summary: summary} }

func fail(summary, advice string, detail error) checkResult {
	r := checkResult{Status: checkFail, Summary: summary, Advice: advice}
	if detail != nil {
		r.Detail = detail.Error()
	}
	return r
}

func skip(summary string) checkResult { return checkResult{Status: checkSkip, Summary: summary} }

// note adds a note to a passing result.
func (r checkResult) note(advice string) checkResult {
	r.Advice = advice
	return r
}

// marshalReport is the -json output.
func marshalReport(rep checkReport) []byte {
	if rep.Steps == nil {
		rep.Steps = []checkResult{}
	}
	b, _ := json.MarshalIndent(rep, "", "  ") // plain fields: cannot fail
	return append(b, '\n')
}
