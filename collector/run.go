package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/broker"
	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/echo"
	"github.com/hubmon/hubmon/collector/internal/gaps"
	"github.com/hubmon/hubmon/collector/internal/ingest"
	"github.com/hubmon/hubmon/collector/internal/metrics"
	"github.com/hubmon/hubmon/collector/internal/sites"
	"github.com/hubmon/hubmon/collector/internal/speedserver"
	"github.com/hubmon/hubmon/collector/internal/store"
	"github.com/hubmon/hubmon/collector/internal/web"
)

// Set by the linker (see the Makefile).
var (
	version  = "dev"
	revision = "unknown"
)

const usage = `hubmon-collector stores hubmon agents' measurements and exposes them to Prometheus.

Usage:
  hubmon-collector run -config collector.yaml [-check-config] [-log-level info]
  hubmon-collector report -config collector.yaml [-since 30d] [-format csv|json|html]
  hubmon-collector passwd -file PASSWORD_FILE SITE    (reads the password from stdin)
  hubmon-collector enrol SITE -broker-url mqtts://HOST:8883 [-ca CA.pem] [-config collector.yaml] [-rotate] [-reload-pid PID]
  hubmon-collector backup -config collector.yaml DEST.db
  hubmon-collector version

run: SIGHUP reloads the sites file and the embedded broker's password file;
a file that does not load is logged and the previous one stays in use.
report: the gap report (one row per hub) from the history, read-only, to
stdout; the same is served at /report.csv, /report.json and /report.html.
enrol: a site's credentials, added to the broker's password file, and an
enrolment bundle for the hub (hubmon-collector enrol -h).
backup: a consistent, checked copy of the history, taken while the collector
runs (SQLite VACUUM INTO); DEST must not exist. Restore: stop the collector,
put the copy in place of the database, start it.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], getenv, stdout, stderr)
	case "report":
		return cmdReport(ctx, args[1:], getenv, stdout, stderr)
	case "passwd":
		return cmdPasswd(args[1:], stdin, stdout, stderr)
	case "enrol", "enroll":
		return cmdEnrol(args[1:], getenv, stdout, stderr)
	case "backup":
		return cmdBackup(ctx, args[1:], getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "hubmon-collector %s (revision %s, %s, %s/%s)\n", version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "hubmon-collector: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func cmdPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "Mosquitto-format password file to add the user to (created if missing)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: hubmon-collector passwd -file PASSWORD_FILE SITE  (password on stdin)")
		return 2
	}
	user := fs.Arg(0)
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "hubmon-collector: read password: %v\n", err)
		return 1
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		fmt.Fprintln(stderr, "hubmon-collector: empty password on stdin")
		return 1
	}
	if err := broker.AddUser(*file, user, password); err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "added %s to %s\n", user, *file)
	return 0
}

func cmdRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/hubmon/collector.yaml", "configuration file")
	checkOnly := fs.Bool("check-config", false, "check the configuration and exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: %v\n", err)
		return 1
	}
	if *checkOnly {
		fmt.Fprintf(stdout, "%s: configuration is valid\n", *configPath)
		if cfg.SitesFile != "" {
			list, err := config.LoadSites(cfg.SitesFile, getenv)
			if err != nil {
				fmt.Fprintf(stderr, "hubmon-collector: %v\n", err)
				return 1
			}
			fmt.Fprintf(stdout, "%s: sites file is valid (%d sites)\n", cfg.SitesFile, len(list))
		}
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "hubmon-collector: -log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := collect(ctx, cfg, getenv, log); err != nil {
		log.Error("hubmon-collector stopped", "err", err)
		return 1
	}
	return 0
}

// collect runs the collector until ctx is done or a fatal error.
func collect(ctx context.Context, cfg *config.Config, getenv func(string) string, log *slog.Logger) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// SIGHUP reloads files (below); catch it from the start, so that an
	// early one does not end the process
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	hubs, err := sites.New(sites.Options{Path: cfg.SitesFile, AutoRegister: cfg.AutoRegister, Getenv: getenv})
	if err != nil {
		return err
	}
	switch {
	case cfg.SitesFile == "":
		log.Warn("no sites_file: messages from every site are accepted, and hubs are known only by their ids")
	case cfg.AutoRegister:
		log.Info("sites file loaded; sites not in it are accepted too (auto_register)", "sites", len(hubs.Sites()))
	default:
		log.Info("sites file loaded", "sites", len(hubs.Sites()))
	}

	st, err := store.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer st.Close() // last

	fleet := metrics.NewFleet()
	engine := newEngine(cfg, st, hubs, log)
	reg, health := newRegistry(st, hubs, engine)
	engineCtx, stopEngine := context.WithCancel(context.Background())
	engineDone := make(chan struct{})
	go func() {
		defer close(engineDone)
		engine.Run(engineCtx)
	}()
	defer func() { // before the store closes
		stopEngine()
		<-engineDone
	}()

	in := ingest.New(ingest.Options{Store: st, Fleet: fleet, Health: health, Sites: hubs, Logger: log.With("component", "ingest")})
	if err := in.LoadState(ctx, cfg.Embedded()); err != nil {
		in.Close()
		return err
	}

	// inputs
	var (
		closers         []func()
		ready           func() error
		reloadPasswords func() error // the embedded broker's password file
	)
	closeInputs := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		closers = nil
	}
	defer func() {
		closeInputs()
		in.Close()
	}()

	if cfg.SpeedtestServer.Enabled {
		ss, err := startSpeedServer(cfg, reg, log)
		if err != nil {
			return err
		}
		closers = append(closers, func() { ss.Close() })
	}

	if cfg.EchoServer.Enabled {
		es, err := startEchoServer(cfg, reg, log)
		if err != nil {
			return err
		}
		closers = append(closers, func() { es.Close() })
	}

	if cfg.Embedded() {
		b, err := broker.Start(broker.Options{
			Listen: cfg.EmbeddedBroker.Listen, PasswordFile: cfg.EmbeddedBroker.PasswordFile,
			Readers: cfg.EmbeddedBroker.Readers, MaxPacketBytes: cfg.EmbeddedBroker.MaxPacketBytes,
			Handler: in.Handle, Logger: log.With("component", "broker"),
		})
		if err != nil {
			return err
		}
		closers = append(closers, func() { b.Close() })
		in.SetPublisher(b.Publish)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hubmon_collector_broker_clients", Help: "MQTT clients connected to the embedded broker.",
		}, func() float64 { return float64(b.ConnectedClients()) }))
		ready = func() error { return nil }
		reloadPasswords = b.Reload
		log.Info("embedded MQTT broker listening", "addr", b.Addr().String())
	} else {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return err
		}
		sub, err := ingest.Subscribe(ingest.SubscriberOptions{
			URL: cfg.MQTT.URL, ClientID: cfg.MQTT.ClientID, Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
			TLS: tc, ConnectTimeout: cfg.MQTT.ConnectTimeout, Topics: cfg.MQTT.Topics, Logger: log.With("component", "mqtt"),
			Handler: in.HandleAsync, Fatal: func(err error) { cancel(err) },
		})
		if err != nil {
			return err
		}
		closers = append(closers, sub.Close)
		in.SetPublisher(sub.Publish)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hubmon_collector_broker_connected", Help: "1 if the collector's connection to the MQTT broker is up.",
		}, func() float64 {
			if sub.Connected() {
				return 1
			}
			return 0
		}))
		ready = func() error {
			if !sub.Connected() {
				return errors.New("not connected to the MQTT broker")
			}
			return nil
		}
	}

	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(hubs, cfg.SitesFile != "", engine, reloadPasswords, log)
			}
		}
	}()

	webOpts := newWebOptions(reg, fleet, hubs, engine, log, func(ctx context.Context) error {
		if err := st.Ping(ctx); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if err := in.Ready(); err != nil {
			return err
		}
		return ready()
	})
	if cfg.SitesFile != "" {
		webOpts.SitesFile = hubs.Sites
	}
	for _, r := range cfg.Thresholds.Rules() {
		if r.Name == "uso" {
			webOpts.USO = &r
		}
	}
	h := web.Handler(webOpts)
	srv := web.Server(cfg.HTTP.Listen, h, cfg.HTTP.ReadTimeout, cfg.HTTP.WriteTimeout, log)
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cancel(fmt.Errorf("http: %w", err))
		}
	}()
	log.Info("hubmon-collector started", "version", version, "http", ln.Addr().String(), "database", cfg.Database, "embedded_broker", cfg.Embedded())

	<-ctx.Done()
	log.Info("stopping")
	// stop inputs, drain, then close the store (deferred)
	closeInputs()
	in.Close()
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	srv.Shutdown(shutdownCtx)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// reload reloads what SIGHUP reloads: the sites file (when there is one)
// and the embedded broker's password file (when the broker is embedded). A
// file that does not load is logged and the previous one stays in use; the
// history and the metrics are untouched either way.
func reload(hubs *sites.Registry, sitesFile bool, engine *gaps.Engine, reloadPasswords func() error, log *slog.Logger) {
	if sitesFile {
		if err := hubs.Reload(); err != nil {
			log.Error("sites file not reloaded; keeping the previous one", "err", err)
		} else {
			log.Info("sites file reloaded", "sites", len(hubs.Sites()))
			engine.Kick() // the gap figures of added and removed sites
		}
	}
	if reloadPasswords != nil {
		if err := reloadPasswords(); err != nil {
			log.Error("password file not reloaded; keeping the previous one", "err", err)
		} else {
			log.Info("password file reloaded")
		}
	}
}

func startSpeedServer(cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*speedserver.Server, error) {
	ss := speedserver.New(speedserver.Options{Logger: log.With("component", "speedserver"),
		MaxUploadBytes: cfg.SpeedtestServer.MaxUploadBytes, MaxConnections: cfg.SpeedtestServer.MaxConnections,
		Token: cfg.SpeedtestServer.Token})
	ln, err := net.Listen("tcp", cfg.SpeedtestServer.Listen)
	if err != nil {
		return nil, fmt.Errorf("speedtest server: %w", err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("speedtest server: %w", err)
	}
	go ss.Serve(ln)
	go ss.ServePacket(pc)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "hubmon_collector_speedtest_server_sent_bytes_total", Help: "Bytes the built-in speed-test server sent to agents.",
	}, func() float64 { return float64(ss.BytesSent()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "hubmon_collector_speedtest_server_received_bytes_total", Help: "Bytes the built-in speed-test server received from agents.",
	}, func() float64 { return float64(ss.BytesReceived()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "hubmon_collector_speedtest_server_refused_connections_total", Help: "Connections to the speed-test server closed because max_connections were open.",
	}, func() float64 { return float64(ss.Refused()) }))
	log.Info("speed-test server listening", "addr", ln.Addr().String(), "token_required", cfg.SpeedtestServer.Token != "")
	return ss, nil
}

func startEchoServer(cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*echo.Server, error) {
	pc, err := net.ListenPacket("udp", cfg.EchoServer.Listen)
	if err != nil {
		return nil, fmt.Errorf("echo server: %w", err)
	}
	es := echo.New(echo.Options{Logger: log.With("component", "echo"),
		RatePerSecond: float64(cfg.EchoServer.RatePerSecond), Burst: cfg.EchoServer.Burst})
	go es.Serve(pc)
	for _, c := range []struct {
		name, help string
		f          func() int64
	}{
		{"hubmon_collector_echo_answered_total", "Line-quality probes the echo responder answered.", es.Answered},
		{"hubmon_collector_echo_dropped_total", "Valid echo requests not answered (rate limit, send failure).", es.Dropped},
		{"hubmon_collector_echo_ignored_total", "Datagrams to the echo responder that were not hubmon echo requests.", es.Ignored},
		{"hubmon_collector_echo_dropped_global_total", "Echo requests refused by the responder's overall rate cap (a flood).", es.DroppedGlobal},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 { return float64(c.f()) }))
	}
	log.Info("echo responder listening", "addr", pc.LocalAddr().String())
	return es, nil
}

func tlsConfig(cfg *config.Config) (*tls.Config, error) {
	if !cfg.MQTT.TLS() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.MQTT.CAFile != "" {
		pem, err := os.ReadFile(cfg.MQTT.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.ca_file %q: no PEM certificates in it", cfg.MQTT.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.MQTT.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.MQTT.CertFile, cfg.MQTT.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

var _ = wire.Version
