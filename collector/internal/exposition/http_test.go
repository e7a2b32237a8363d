package exposition

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func get(tb testing.TB, h http.Handler, acceptEncoding string) (*httptest.ResponseRecorder, string) {
	tb.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	if rec.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			tb.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			tb.Fatal(err)
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := p.TextToMetricFamilies(bytes.NewReader(body)); err != nil {
		tb.Fatalf("does not parse: %v\n%s", err, body)
	}
	return rec, string(body)
}

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "hubmon_test_gauge", Help: "A gauge."})
	g.Set(3)
	reg.MustRegister(g)
	f := NewFamily("hubmon_test_site_seconds", "Per site.", Gauge, "site")
	h := Handler(HandlerOpts{Gatherer: reg, Series: []func(*Writer){
		func(w *Writer) { w.Sample(f, 0.5, "a"); w.Sample(f, 1.5, "b") },
	}})
	want := "# HELP hubmon_test_gauge A gauge.\n# TYPE hubmon_test_gauge gauge\nhubmon_test_gauge 3\n" +
		"# HELP hubmon_test_site_seconds Per site.\n# TYPE hubmon_test_site_seconds gauge\n" +
		"hubmon_test_site_seconds{site=\"a\"} 0.5\nhubmon_test_site_seconds{site=\"b\"} 1.5\n"
	for ae, wantGz := range map[string]bool{"": false, "gzip": true, "deflate, gzip;q=0.5": true, "gzip;q=0": false, "identity": false} {
		rec, body := get(t, h, ae)
		if gz := rec.Header().Get("Content-Encoding") == "gzip"; gz != wantGz {
			t.Errorf("Accept-Encoding %q: gzip %v", ae, gz)
		}
		if rec.Code != 200 || body != want || rec.Header().Get("Content-Type") != ContentType {
			t.Errorf("Accept-Encoding %q: %d %q\n%s", ae, rec.Code, rec.Header().Get("Content-Type"), body)
		}
	}
}

func TestHandlerLimitsScrapes(t *testing.T) {
	block, started := make(chan struct{}), make(chan struct{})
	h := Handler(HandlerOpts{Gatherer: prometheus.NewRegistry(), MaxInFlight: 1, Series: []func(*Writer){
		func(w *Writer) { close(started); <-block },
	}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
	}()
	<-started
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	close(block)
	<-done
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a second scrape at once: %d, want 503", rec.Code)
	}
}

func TestBlob(t *testing.T) {
	f := NewFamily("hubmon_test_figure_ratio", "A figure.", Gauge, "site", "period")
	b, err := NewBlob(func(w *Writer) {
		for i := range 1000 {
			w.Sample(f, float64(i)/1000, "hub-"+strconv.Itoa(i), "7d")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.Samples() != 1000 || b.CompressedSize() >= b.Size()/4 {
		t.Errorf("%d samples, %d bytes, %d compressed", b.Samples(), b.Size(), b.CompressedSize())
	}
	plainRec, plain := get(t, b, "")
	gzRec, unzipped := get(t, b, "gzip")
	if plain != unzipped || len(plain) != b.Size() {
		t.Errorf("plain (%d bytes) and gzip (%d) differ, size %d", len(plain), len(unzipped), b.Size())
	}
	if plainRec.Header().Get("Content-Length") != strconv.Itoa(b.Size()) || plainRec.Header().Get("Content-Encoding") != "" {
		t.Errorf("plain: headers %v", plainRec.Header())
	}
	if gzRec.Header().Get("Content-Length") != strconv.Itoa(b.CompressedSize()) || gzRec.Header().Get("Content-Encoding") != "gzip" {
		t.Errorf("gzip: headers %v", gzRec.Header())
	}
}

func TestAcceptsGzip(t *testing.T) {
	for ae, want := range map[string]bool{
		"": false, "gzip": true, "GZIP": true, "deflate, gzip": true, "gzip;q=0": false, "gzip; q=0.001": true,
		"identity": false, "br, zstd": false, "x-gzip": false,
	} {
		req := httptest.NewRequest("GET", "/", nil)
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		if got := AcceptsGzip(req); got != want {
			t.Errorf("AcceptsGzip(%q) = %v", ae, got)
		}
	}
}
