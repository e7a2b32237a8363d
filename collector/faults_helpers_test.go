package main_test

// Helpers for the fault tests (faults_e2e_test.go): a fleet of real agents
// measuring at a fast cadence (line-quality summaries every 10 s, several
// probes each), optionally with a backlog already in their outboxes, and the
// accounting of what they sent against what the history holds.

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

type fleetOptions struct {
	mosquitto bool
	agents    int
	// probes is the number of line-quality probes per agent (one summary
	// each every 10 s).
	probes int
	// prefill puts that many measurements in each agent's outbox before it
	// first starts (seq 1..prefill).
	prefill int
	// maxMessages is the agents' outbox.max_messages (default 100000).
	maxMessages int
	// dataDir, if set, gives agent i's data directory.
	dataDir func(i int) string
}

type fleet struct {
	tb            testing.TB
	opts          fleetOptions
	dir           string
	agentBin      string
	collectorBin  string
	httpPort      int
	brokerURL     string
	db            string
	collectorConf string
	collector     *proc
	mq            *mosquitto
	agents        []*fleetAgent
}

type fleetAgent struct {
	site   string
	conf   string
	outbox string
	proc   *proc
}

func newFleet(tb testing.TB, opts fleetOptions) *fleet {
	tb.Helper()
	agentBin, collectorBin := binaries(tb)
	f := &fleet{tb: tb, opts: opts, dir: tb.TempDir(), agentBin: agentBin, collectorBin: collectorBin, httpPort: freePort(tb)}
	f.db = filepath.Join(f.dir, "hubmon.db")
	passwd := filepath.Join(f.dir, "passwd")
	echoPort := freeTCPUDPPort(tb)
	conf := fmt.Sprintf(`database: %s
http:
  listen: "127.0.0.1:%d"
echo_server:
  enabled: true
  listen: "127.0.0.1:%d"
  rate_per_second: 10000
  burst: 100000
`, f.db, f.httpPort, echoPort)
	addUser(tb, collectorBin, passwd, "fault-hub-0", agentPassword) // so that the file exists with no agents too
	for i := range opts.agents {
		a := &fleetAgent{site: fmt.Sprintf("fault-hub-%d", i+1)}
		addUser(tb, collectorBin, passwd, a.site, agentPassword)
		f.agents = append(f.agents, a)
	}
	if opts.mosquitto {
		addUser(tb, collectorBin, passwd, "hubmon-collector", "collector-secret")
		f.mq = startMosquitto(tb, passwd)
		f.brokerURL = f.mq.url()
		conf += fmt.Sprintf(`mqtt:
  url: %s
  client_id: hubmon-collector
  username: hubmon-collector
  password: ${COLLECTOR_PASSWORD}
  connect_timeout: 3s
`, f.brokerURL)
	} else {
		brokerPort := freePort(tb)
		f.brokerURL = fmt.Sprintf("tcp://127.0.0.1:%d", brokerPort)
		conf += fmt.Sprintf(`embedded_broker:
  listen: "127.0.0.1:%d"
  password_file: %s
`, brokerPort, passwd)
	}
	f.collectorConf = filepath.Join(f.dir, "collector.yaml")
	writeFile(tb, f.collectorConf, conf)
	maxMessages := opts.maxMessages
	if maxMessages == 0 {
		maxMessages = 100_000
	}
	for i, a := range f.agents {
		dataDir := filepath.Join(f.dir, a.site)
		if opts.dataDir != nil {
			dataDir = opts.dataDir(i)
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			tb.Fatal(err)
		}
		a.outbox = filepath.Join(dataDir, "outbox.db")
		var probes strings.Builder
		for p := range opts.probes {
			fmt.Fprintf(&probes, `  - name: line%d
    kind: linequality
    interval: 10s
    linequality:
      udp_target: 127.0.0.1:%d
      send_interval: 1s
      timeout: 500ms
      gateway_check: false
`, p+1, echoPort)
		}
		a.conf = filepath.Join(f.dir, a.site+".yaml")
		writeFile(tb, a.conf, fmt.Sprintf(`site: %s
data_dir: %s
broker:
  url: %s
  password: ${HUBMON_MQTT_PASSWORD}
  ack_timeout: 5s
  status_interval: 10s
  connect_timeout: 3s
outbox:
  max_messages: %d
probes:
%s`, a.site, dataDir, f.brokerURL, maxMessages, probes.String()))
		if opts.prefill > 0 {
			prefillOutbox(tb, a.outbox, a.site, opts.prefill)
		}
	}
	return f
}

// outboxSchema is agent/internal/outbox's (the agent checks it on open).
const outboxSchema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS outbox (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	message_id TEXT NOT NULL UNIQUE,
	measured_at INTEGER NOT NULL,
	payload BLOB NOT NULL);
`

// prefillOutbox writes n measurements (failed DNS lookups of the last n
// seconds, seq 1..n) into a new outbox, as an agent that measured while it
// could not publish would have.
func prefillOutbox(tb testing.TB, path, site string, n int) {
	tb.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=FULL&_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	agentID := "agent-" + strings.ReplaceAll(site, "-", "")
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(outboxSchema); err != nil {
		tb.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO meta(key, value) VALUES ('agent_id', ?)`, agentID); err != nil {
		tb.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Duration(n) * time.Second)
	for i := 1; i <= n; i++ {
		m := wire.Measurement{Version: wire.Version, MessageID: fmt.Sprintf("pre-%s-%06d", agentID, i), Site: site, AgentID: agentID,
			Seq: int64(i), Probe: "backlog", Kind: wire.KindDNS, MeasuredAt: start.Add(time.Duration(i) * time.Second),
			DurationSeconds: 0.1, Error: "prefilled by the test: lookup timed out"}
		b, _ := json.Marshal(m)
		if _, err := tx.Exec(`INSERT INTO outbox(seq, message_id, measured_at, payload) VALUES (?, ?, ?, ?)`,
			m.Seq, m.MessageID, m.MeasuredAt.UnixNano(), b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

func (f *fleet) startCollector() {
	f.tb.Helper()
	f.collector = start(f.tb, "collector", []string{"COLLECTOR_PASSWORD=collector-secret"}, f.collectorBin, "run", "-config", f.collectorConf)
	waitFor(f.tb, "collector ready", 30*time.Second, func() bool {
		if !f.collector.running() {
			f.tb.Fatalf("collector exited: %v\n%s", f.collector.err, f.collector.output())
		}
		code, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/-/ready", f.httpPort))
		return err == nil && code == 200
	})
}

func (f *fleet) metricsURL() string { return fmt.Sprintf("http://127.0.0.1:%d/metrics", f.httpPort) }

func (f *fleet) startAgent(a *fleetAgent) {
	f.tb.Helper()
	a.proc = start(f.tb, a.site, []string{"HUBMON_MQTT_PASSWORD=" + agentPassword}, f.agentBin, "run", "-config", a.conf)
}

func (f *fleet) startAgents() {
	f.tb.Helper()
	for _, a := range f.agents {
		f.startAgent(a)
	}
}

// openSQLite opens path read-write (so that a WAL left by a killed writer is
// recovered, as the next writer would), with a busy timeout.
func openSQLite(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// lastSeq is the highest seq the agent's outbox ever gave (its measurements
// are seq 1..lastSeq): AUTOINCREMENT's counter, kept even when rows are
// deleted.
func lastSeq(tb testing.TB, outbox string) int64 {
	tb.Helper()
	db := openSQLite(tb, outbox)
	defer db.Close()
	var n int64
	err := db.QueryRow(`SELECT seq FROM sqlite_sequence WHERE name = 'outbox'`).Scan(&n)
	if err != nil && err != sql.ErrNoRows && !strings.Contains(err.Error(), "no such table") {
		tb.Fatalf("read the last seq of %s: %v", outbox, err)
	}
	return n
}

// outboxDropped is the outbox's dropped counter.
func outboxDropped(tb testing.TB, outbox string) int64 {
	tb.Helper()
	db := openSQLite(tb, outbox)
	defer db.Close()
	var v string
	err := db.QueryRow(`SELECT value FROM meta WHERE key = 'dropped_total'`).Scan(&v)
	if err != nil && err != sql.ErrNoRows {
		tb.Fatalf("read the dropped counter of %s: %v", outbox, err)
	}
	var n int64
	fmt.Sscan(v, &n)
	return n
}

// integrityCheck runs SQLite's full integrity check on path.
func integrityCheck(tb testing.TB, path string) string {
	tb.Helper()
	db := openSQLite(tb, path)
	defer db.Close()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil {
		return err.Error()
	}
	return res
}

// storedSeqs counts the history's rows per site and seq.
func storedSeqs(tb testing.TB, path string) map[string]map[int64]int {
	tb.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	out := map[string]map[int64]int{}
	rows, err := db.Query(`SELECT site, seq, count(*) FROM measurements GROUP BY site, seq`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return out
		}
		tb.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var site string
		var seq int64
		var n int
		if err := rows.Scan(&site, &seq, &n); err != nil {
			tb.Fatal(err)
		}
		if out[site] == nil {
			out[site] = map[int64]int{}
		}
		out[site][seq] = n
	}
	return out
}

func (f *fleet) storedCount() int {
	n := 0
	for _, seqs := range storedSeqs(f.tb, f.db) {
		n += len(seqs)
	}
	return n
}

// waitIngesting waits until the history grows: the moment to kill something
// in the middle of the ingest.
func (f *fleet) waitIngesting() {
	f.tb.Helper()
	before := f.storedCount()
	var now int
	waitFor(f.tb, "the history to grow", 90*time.Second, func() bool { now = f.storedCount(); return now > before })
	f.tb.Logf("fault injected with %d measurements stored, %d waiting in the outboxes", now, f.backlog())
}

func (f *fleet) backlog() int {
	n := 0
	for _, a := range f.agents {
		n += max(0, outboxBacklog(f.tb, a.outbox))
	}
	return n
}

// tally is what a fault test reports: the measurements the agents committed
// (sent: seq 1..N of each agent), those in the history once (stored), those
// missing and not counted as dropped by the agent (lost), and the extra
// copies (duplicated: a seq stored more than once).
type tally struct {
	sent, stored, lost, duplicated, dropped int64
}

// account compares the agents' seqs 1..lastSeq with the history. With
// allowDropped, the seqs an agent counted as dropped (outbox full) may be
// missing: they are reported as dropped, not lost.
func (f *fleet) account(allowDropped bool) tally {
	f.tb.Helper()
	hist := storedSeqs(f.tb, f.db)
	var t tally
	for _, a := range f.agents {
		n := lastSeq(f.tb, a.outbox)
		seqs := hist[a.site]
		t.sent += n
		var missing int64
		for seq := int64(1); seq <= n; seq++ {
			switch c := seqs[seq]; {
			case c == 0:
				missing++
			default:
				t.stored++
				t.duplicated += int64(c - 1)
			}
		}
		for seq, c := range seqs {
			if seq > n {
				f.tb.Errorf("%s: seq %d stored %d times but the outbox gave only up to %d", a.site, seq, c, n)
			}
		}
		if allowDropped {
			d := outboxDropped(f.tb, a.outbox)
			t.dropped += d
			missing = max(0, missing-d)
		}
		t.lost += missing
	}
	return t
}

// waitDelivered waits until every measurement each agent has committed so far
// is in the history (or, with allowDropped, counted as dropped).
func (f *fleet) waitDelivered(d time.Duration, allowDropped bool) tally {
	f.tb.Helper()
	var t tally
	waitFor(f.tb, "every committed measurement in the history", d, func() bool {
		t = f.account(allowDropped)
		return t.lost == 0
	})
	return t
}

// report logs the line the closing note's fault table is made from and
// fails the test if anything was lost or duplicated.
func (t tally) report(tb testing.TB, fault string, injected int) {
	tb.Helper()
	tb.Logf("fault=%s injected=%d sent=%d stored=%d lost=%d duplicated=%d dropped_counted=%d", fault, injected, t.sent, t.stored, t.lost, t.duplicated, t.dropped)
	if t.lost != 0 || t.duplicated != 0 {
		tb.Errorf("%s: %d lost, %d duplicated", fault, t.lost, t.duplicated)
	}
	if t.sent == 0 {
		tb.Errorf("%s: nothing was sent", fault)
	}
}

// countLines counts the lines of a process's log that contain s.
func countLines(p *proc, s string) int { return strings.Count(p.output(), s) }
