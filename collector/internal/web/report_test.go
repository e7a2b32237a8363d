package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReportRoutes(t *testing.T) {
	report := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "report "+r.URL.Path) })
	for _, withReport := range []bool{true, false} {
		opts := Options{Gatherer: prometheus.NewRegistry(), Version: "1", Logger: slog.New(slog.DiscardHandler),
			Ready: func(context.Context) error { return nil }}
		if withReport {
			opts.Report = report
		}
		h := Handler(opts)
		for _, path := range []string{"/report.csv", "/report.json", "/report.html"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", path+"?since=7d", nil))
			if withReport && (rec.Code != 200 || rec.Body.String() != "report "+path) || !withReport && rec.Code != 404 {
				t.Errorf("report %v: GET %s = %d %q", withReport, path, rec.Code, rec.Body)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if got := strings.Contains(rec.Body.String(), "report.csv"); got != withReport {
			t.Errorf("report %v: index links the report: %v", withReport, got)
		}
	}
}
