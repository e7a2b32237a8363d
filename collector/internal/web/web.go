// Package web serves the collector's HTTP endpoints: /metrics and
// /metrics/gaps for Prometheus, /-/healthy (the process is up) and /-/ready
// (the store answers and messages can arrive), the gap report (/report.csv,
// /report.json, /report.html), the status pages for people (/hubs,
// /hub/{site}) and a short index page that says where to look.
package web

import (
	"context"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/exposition"
	"github.com/hubmon/hubmon/collector/internal/metrics"
)

// Options configure the handler.
type Options struct {
	// Gatherer's metrics are served on /metrics (the process, the
	// collector's own health), followed by those Series write (every
	// site's latest figures: too many for a registry at fleet scale).
	Gatherer prometheus.Gatherer
	Series   []func(*exposition.Writer)
	// Gaps, if set, serves /metrics/gaps: figures that change only when
	// recomputed, for a Prometheus job that scrapes less often.
	Gaps http.Handler
	// Ready returns nil when the collector can take messages, or why not.
	Ready   func(ctx context.Context) error
	Version string
	Logger  *slog.Logger
	// Report, if set, serves the gap report at /report.csv, /report.json
	// and /report.html (it tells the format from the path).
	Report http.Handler
	// Sites, if set, feeds the status pages /hubs and /hub/{site}: what
	// each hub that reported last said.
	Sites func() []metrics.SiteSummary
	// SitesFile returns the hubs of the sites file (sites.Registry.Sites),
	// for their names on the status pages, and so that a hub that never
	// reported shows too; nil without a sites file. Hubs not in the file
	// show by their ids.
	SitesFile func() []config.Site
	// USO, if set, is the threshold profile the status pages judge a hub's
	// last speed test against ("Meets USO", "Below USO"): only its download
	// and upload rates.
	USO *config.Rule
}

var index = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hubmon collector</title></head>
<body><main>
<h1>hubmon collector</h1>
<p>Version {{.Version}}.</p>
<ul>
<li><a href="hubs">/hubs</a>: every hub at a glance, with a page per hub for hub staff</li>
<li><a href="metrics">/metrics</a>: the latest measurement of every hub, for Prometheus</li>
{{if .Gaps}}<li><a href="metrics/gaps">/metrics/gaps</a>: each hub's gap figures and what the sites file says about it, for Prometheus (a second, slower job)</li>
{{end}}<li><a href="-/healthy">/-/healthy</a> and <a href="-/ready">/-/ready</a>: health checks</li>
{{if .Report}}<li><a href="report.html">/report.html</a>, <a href="report.csv">/report.csv</a>, <a href="report.json">/report.json</a>: the gap report, one row per hub (?since=7d for a week)</li>
{{end}}</ul>
</main></body></html>
`))

// Handler returns the collector's HTTP handler (its own mux, never
// http.DefaultServeMux).
func Handler(opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", exposition.Handler(exposition.HandlerOpts{
		Gatherer: opts.Gatherer, Series: opts.Series, MaxInFlight: 4, Logger: opts.Logger,
	}))
	if opts.Gaps != nil {
		mux.Handle("GET /metrics/gaps", opts.Gaps)
	}
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hubmon-collector is healthy.")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := opts.Ready(ctx); err != nil {
			http.Error(w, "hubmon-collector is not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "hubmon-collector is ready.")
	})
	if opts.Sites != nil {
		p := &pages{opts: opts}
		mux.HandleFunc("GET /hubs", p.serveHubs)
		mux.HandleFunc("GET /hub/{site}", p.serveHub)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		index.Execute(w, struct {
			Version      string
			Report, Gaps bool
		}{opts.Version, opts.Report != nil, opts.Gaps != nil})
	})
	if opts.Report != nil {
		for _, p := range []string{"/report.csv", "/report.json", "/report.html"} {
			mux.Handle("GET "+p, opts.Report)
		}
	}
	return mux
}

// Server returns an http.Server with timeouts and a header size limit, so a
// slow or hostile client cannot hold connections open or memory.
func Server(addr string, h http.Handler, readTimeout, writeTimeout time.Duration, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           http.MaxBytesHandler(h, 1<<20),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
