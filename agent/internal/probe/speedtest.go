package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/showwin/speedtest-go/speedtest"
)

// SpeedtestConfig configures a speed test against an Ookla-compatible server.
type SpeedtestConfig struct {
	// ServerURL is a self-hosted Ookla-compatible server, e.g.
	// http://127.0.0.1:8080 (may carry a ?token= query, which is sent with
	// every request and kept out of results and errors).
	ServerURL string
	// ServerIDs are pinned public server ids (fetch each by id, pick the
	// lowest-latency reachable one).
	ServerIDs []string
	// Neither set: auto — fetch the public server list, pick the
	// lowest-latency available server.

	Connections int // parallel connections per direction (default 4)
	// Duration is the measured time per direction (default 10s). Each
	// direction runs a warm-up before it, of min(2s, Duration/2), and the
	// upload a moment after it (at most 8s) until the pieces in flight at
	// its end are answered.
	Duration time.Duration
	Logger   *slog.Logger
	// Progress, if set, is told how a run is going, for a live display:
	// once as each phase begins, and about every progressEvery during the
	// download and the upload with the rate of the last second. Calls come
	// from the run's goroutines, one at a time; Progress must return
	// quickly. A cancelled run may call it for a moment after Probe has
	// returned (see Probe).
	Progress func(SpeedtestProgress)
}

// SpeedtestProgress is the state of a running speed test.
type SpeedtestProgress struct {
	// Phase is "server selection", "ping", "download" or "upload".
	Phase string
	// BitsPerSecond is the rate of the last second or so of the download
	// or the upload (warm-up included, so it climbs at first); 0 at the
	// start of a phase and in the other phases. It is for display: the
	// result's rate is measured over the window after the warm-up.
	BitsPerSecond float64
	// Elapsed is the time since the phase began, and Planned how long the
	// download or upload loads the line (warm-up and measured window; the
	// upload may run on for a moment). Planned is 0 for the other phases.
	Elapsed, Planned time.Duration
}

const (
	defaultConnections = 4
	defaultDuration    = 10 * time.Second
	// pingTimeout bounds the latency phase: 11 requests 200 ms apart, even
	// on a satellite link.
	pingTimeout = 20 * time.Second
	// serverPingTimeout bounds the latency check of one pinned server.
	serverPingTimeout = 5 * time.Second
	// abandonWait is how long a cancelled Probe waits for its run to end.
	abandonWait = 2 * time.Second
)

// NewSpeedtest returns a Prober that measures latency, jitter, download and
// upload against an Ookla-compatible server, and the latency under load of
// each direction. Each run moves about rate x (Duration + warm-up) bytes per
// direction: mind capped lines.
//
// github.com/showwin/speedtest-go picks the server and measures the idle
// latency; the download and the upload are the agent's own (loaded.go,
// upload.go, speedtest_download.go), because the library's upload counts
// only whole 1 MB POSTs (N/A at 1 Mbit/s) and neither direction can be
// cancelled. How it handles the library's traps (see REFERENCE.md):
//   - every run has its own http.Client and Transport with dial, TLS and
//     response-header timeouts, and a new speedtest.Speedtest built with
//     speedtest.New(WithUserConfig, WithDoer) - WithDoer last;
//     http.DefaultClient and package-level functions are never used;
//   - the library runs in a goroutine, and Probe returns soon after ctx is
//     done; the goroutine publishes figures only through a mutex-guarded
//     copy, so it cannot touch a returned Result;
//   - the library reports no error for most failures, so the probe checks
//     the HTTP status of every request;
//   - the library's download, upload and packet-loss tests are not used.
func NewSpeedtest(cfg SpeedtestConfig) Prober {
	if cfg.Connections <= 0 {
		cfg.Connections = defaultConnections
	}
	if cfg.Duration <= 0 {
		cfg.Duration = defaultDuration
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.ServerIDs = append([]string(nil), cfg.ServerIDs...)
	return &speedtestProber{cfg: cfg, log: log, warmUp: min(defaultWarmUp, cfg.Duration/2), pingEvery: loadedPingEvery,
		progressMu: new(sync.Mutex)}
}

type speedtestProber struct {
	cfg SpeedtestConfig
	log *slog.Logger
	// wrap, when set, wraps the transport of every run. Tests use it to send
	// the requests for the public server list to 127.0.0.1.
	wrap func(http.RoundTripper) http.RoundTripper
	// warmUp precedes the measured window of each direction; pingEvery is
	// the interval of latency requests under load.
	warmUp, pingEvery time.Duration
	// progressMu serialises the calls of cfg.Progress.
	progressMu *sync.Mutex
}

// newClientMu serialises speedtest.New: every call writes
// http.DefaultClient.Transport (the library's default doer, replaced by ours
// only afterwards by WithDoer), so two runs starting at once would race.
var newClientMu sync.Mutex

func newSpeedtestClient(uc *speedtest.UserConfig, hc *http.Client) *speedtest.Speedtest {
	newClientMu.Lock()
	defer newClientMu.Unlock()
	return speedtest.New(speedtest.WithUserConfig(uc), speedtest.WithDoer(hc))
}

// progress is what a run has measured so far. The run's goroutine writes it;
// Probe copies it, also while an abandoned run is still writing.
type progress struct {
	mu    sync.Mutex
	phase string
	st    wire.Speedtest
}

func (pr *progress) update(phase string, f func(st *wire.Speedtest)) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if phase != "" {
		pr.phase = phase
	}
	if f != nil {
		f(&pr.st)
	}
}

// snapshot returns a copy of the figures. The pointers in it are shared but
// never written after update stored them.
func (pr *progress) snapshot() (*wire.Speedtest, string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	st := pr.st
	return &st, pr.phase
}

func (p *speedtestProber) Probe(ctx context.Context) (Result, error) {
	pr := &progress{phase: "start"}
	if ctx.Err() != nil {
		st, _ := pr.snapshot()
		return Result{Kind: wire.KindSpeedtest, Speedtest: st}, p.redact(fmt.Errorf("cancelled before start: %w", context.Cause(ctx)))
	}
	done := make(chan error, 1) // buffered: an abandoned run must not block
	go func() { done <- p.run(ctx, pr) }()

	select {
	case err := <-done:
		st, _ := pr.snapshot()
		return Result{Kind: wire.KindSpeedtest, Speedtest: st}, p.redact(err)
	case <-ctx.Done():
		st, phase := pr.snapshot()
		// The agent's own measurements end with ctx; the library's calls
		// end within moments. Wait for that, briefly, so that a cancelled
		// run leaves nothing behind in the usual case.
		t := time.NewTimer(abandonWait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
		return Result{Kind: wire.KindSpeedtest, Speedtest: st}, p.redact(fmt.Errorf("cancelled during %s: %w", phase, context.Cause(ctx)))
	}
}

// run measures, publishing figures in pr as each phase completes. It may
// outlive Probe by moments, so it owns everything it creates and shares only
// pr.
func (p *speedtestProber) run(ctx context.Context, pr *progress) error {
	hc, m, tr := p.newHTTP()
	defer tr.CloseIdleConnections()
	client := newSpeedtestClient(&speedtest.UserConfig{
		UserAgent:      userAgent,
		PingMode:       speedtest.HTTP,
		MaxConnections: p.cfg.Connections,
	}, hc)

	pr.update("server selection", nil)
	p.progress(SpeedtestProgress{Phase: "server selection"})
	srv, err := p.findServer(ctx, client)
	if err != nil {
		return fmt.Errorf("find server: %w", err)
	}
	pr.update("", func(st *wire.Speedtest) {
		st.ServerID, st.ServerName, st.ServerHost = srv.ID, serverName(srv), srv.Host
		if srv.ID != "Custom" && srv.Distance > 0 {
			st.ServerDistanceKM = wire.Float(srv.Distance)
		}
	})
	p.log.Debug("speed test server selected", "server_id", srv.ID, "server_host", srv.Host)

	// Ping: the library's mean and jitter, and our median of the same
	// requests as the idle reference of the latency under load.
	pr.update("ping", nil)
	p.progress(SpeedtestProgress{Phase: "ping"})
	m.reset(kindPing) // server selection may have pinged other servers
	var idleRTTs []time.Duration
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err = srv.PingTestContext(pctx, func(d time.Duration) { idleRTTs = append(idleRTTs, d) })
	cancel()
	if ctx.Err() != nil {
		return fmt.Errorf("cancelled during ping: %w", context.Cause(ctx))
	}
	if err := pingError(err, srv, m.get(kindPing)); err != nil {
		return err
	}
	idle, idleOK := median(idleRTTs)
	pr.update("", func(st *wire.Speedtest) {
		st.LatencySeconds = wire.Float(srv.Latency.Seconds())
		st.JitterSeconds = wire.Float(srv.Jitter.Seconds())
	})
	tr.CloseIdleConnections() // the library is done

	lc := loadConfig{
		serverURL: srv.URL, conns: p.cfg.Connections,
		warmUp: p.warmUp, duration: p.cfg.Duration, pingEvery: p.pingEvery,
	}
	var added [2]*float64 // download, upload

	// Download.
	pr.update("download", nil)
	dl, err := p.measureDownload(ctx, lc)
	if ctx.Err() != nil {
		return fmt.Errorf("cancelled during download: %w", context.Cause(ctx))
	}
	dlErr := err
	if dlErr == nil {
		dlErr = downloadError(dl, lc.conns, dl.elapsed)
	}
	pr.update("", func(st *wire.Speedtest) {
		st.DownloadBytes = dl.bytes
		st.DownloadDurationSeconds = wire.Float(dl.elapsed.Seconds())
		if dlErr != nil {
			return
		}
		st.DownloadBitsPerSecond = wire.Float(dl.bitsPerSecond)
		if rtt, ok := dl.loadedLatency(); ok {
			st.LatencyUnderDownloadSeconds = wire.Float(rtt.Seconds())
			if idleOK {
				added[0] = wire.Float(addedLatency(rtt, idle).Seconds())
				st.AddedLatencyUnderDownloadSeconds = added[0]
			}
		}
	})
	p.log.Debug("download measured", "bits_per_second", dl.bitsPerSecond, "bytes", dl.bytes, "duration_seconds", dl.elapsed.Seconds())

	// Upload.
	pr.update("upload", nil)
	ul, err := p.measureUpload(ctx, lc)
	if ctx.Err() != nil {
		return errors.Join(dlErr, fmt.Errorf("cancelled during upload: %w", context.Cause(ctx)))
	}
	ulErr := err
	if ulErr == nil {
		ulErr = uploadError(ul, lc.conns, ul.elapsed)
	}
	pr.update("", func(st *wire.Speedtest) {
		st.UploadBytes = ul.bytes
		st.UploadDurationSeconds = wire.Float(ul.elapsed.Seconds())
		if ulErr != nil {
			return
		}
		st.UploadBitsPerSecond = wire.Float(ul.bitsPerSecond)
		if rtt, ok := ul.loadedLatency(); ok {
			st.LatencyUnderUploadSeconds = wire.Float(rtt.Seconds())
			if idleOK {
				added[1] = wire.Float(addedLatency(rtt, idle).Seconds())
				st.AddedLatencyUnderUploadSeconds = added[1]
			}
		}
		if added[0] != nil && added[1] != nil {
			worst := time.Duration(max(*added[0], *added[1]) * float64(time.Second))
			st.BufferbloatGrade = bufferbloatGrade(worst)
		}
	})
	p.log.Debug("upload measured", "bits_per_second", ul.bitsPerSecond, "bytes", ul.bytes, "duration_seconds", ul.elapsed.Seconds())
	return errors.Join(dlErr, ulErr)
}

// pingError checks the latency phase: the library ignores the HTTP status of
// latency.txt and returns no error when a few requests fail.
func pingError(err error, srv *speedtest.Server, s kindStats) error {
	note := s.note()
	if note != "" {
		note = "; " + note
	}
	switch {
	case errors.Is(err, speedtest.ErrConnectTimeout):
		return fmt.Errorf("ping: server unreachable%s", note)
	case err != nil:
		return fmt.Errorf("ping: %w%s", err, note)
	case s.badStatus > 0:
		return fmt.Errorf("ping: no valid answer%s", note)
	case srv.Latency <= 0:
		return fmt.Errorf("ping: no latency measured%s", note)
	}
	return nil
}

func serverName(srv *speedtest.Server) string {
	if srv.Sponsor != "" && srv.Sponsor != "?" {
		return srv.Sponsor + ", " + srv.Name
	}
	return srv.Name
}

// findServer picks the server of this run: the self-hosted one, the
// lowest-latency pinned one, or the lowest-latency one of the public list.
func (p *speedtestProber) findServer(ctx context.Context, client *speedtest.Speedtest) (*speedtest.Server, error) {
	switch {
	case p.cfg.ServerURL != "" && len(p.cfg.ServerIDs) > 0:
		return nil, errors.New("both a server URL and server ids are configured; use one")
	case p.cfg.ServerURL != "":
		u, err := url.Parse(p.cfg.ServerURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("server URL %q: want http(s)://host[:port]", redactURL(p.cfg.ServerURL))
		}
		return client.CustomServer(p.cfg.ServerURL)
	case len(p.cfg.ServerIDs) > 0:
		var servers speedtest.Servers
		var errs []error
		for _, id := range p.cfg.ServerIDs {
			srv, err := client.FetchServerByIDContext(ctx, id)
			if err != nil {
				errs = append(errs, fmt.Errorf("server %s: %w", id, err))
				continue
			}
			servers = append(servers, srv)
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("fetch pinned servers: %w", errors.Join(errs...))
		}
		return lowestLatency(ctx, servers)
	default:
		servers, err := client.FetchServerListContext(ctx) // pings each server once
		if err != nil {
			return nil, fmt.Errorf("fetch server list: %w", err)
		}
		avail := servers.Available() // answered the ping, by latency
		if len(*avail) == 0 {
			return nil, fmt.Errorf("none of %d public servers answered a ping", len(servers))
		}
		return (*avail)[0], nil
	}
}

// lowestLatency pings each server once and returns the fastest to answer.
func lowestLatency(ctx context.Context, servers speedtest.Servers) (*speedtest.Server, error) {
	var best *speedtest.Server
	var bestRTT int64
	var errs []error
	for _, srv := range servers {
		pctx, cancel := context.WithTimeout(ctx, serverPingTimeout)
		rtts, err := srv.HTTPPing(pctx, 1, 0, nil)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil || len(rtts) == 0 {
			errs = append(errs, fmt.Errorf("server %s (%s): no answer to ping: %v", srv.ID, srv.Host, err))
			continue
		}
		if best == nil || rtts[0] < bestRTT {
			best, bestRTT = srv, rtts[0]
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no pinned server reachable: %w", errors.Join(errs...))
	}
	return best, nil
}

// redact keeps the query of the server URL (it may hold a token) out of an
// error: net/http's errors quote whole URLs. errors.Is and As still see the
// wrapped error.
func (p *speedtestProber) redact(err error) error {
	if err == nil {
		return nil
	}
	u, perr := url.Parse(p.cfg.ServerURL)
	if p.cfg.ServerURL == "" || perr != nil || u.RawQuery == "" {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), u.RawQuery, "REDACTED")
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactURL drops the query and user info of a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}
