package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "hubmon_test_gauge", Help: "test"})
	reg.MustRegister(g)
	var readyErr error
	h := Handler(Options{Gatherer: reg, Version: "1.2.3", Logger: slog.New(slog.DiscardHandler),
		Ready: func(context.Context) error { return readyErr }})
	srv := httptest.NewServer(Server("", h, 5*time.Second, 5*time.Second, slog.New(slog.DiscardHandler)).Handler)
	defer srv.Close()

	get := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct {
		method, path string
		code         int
		has          string
	}{
		{"GET", "/metrics", 200, "hubmon_test_gauge 0"},
		{"GET", "/-/healthy", 200, "healthy"},
		{"GET", "/-/ready", 200, "ready"},
		{"GET", "/", 200, "Version 1.2.3"},
		{"GET", "/nope", 404, ""},
		{"POST", "/metrics", 405, ""},
	} {
		code, body := get(tt.method, tt.path)
		if code != tt.code || !strings.Contains(body, tt.has) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.has)
		}
	}
	readyErr = errors.New("not connected to the MQTT broker")
	if code, body := get("GET", "/-/ready"); code != 503 || !strings.Contains(body, "not connected to the MQTT broker") {
		t.Errorf("not ready: %d %q", code, body)
	}
}
