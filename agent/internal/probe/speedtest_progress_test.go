package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSpeedtestProgress: a display is told each phase in order and, during
// the download and the upload, a rate; never two calls at once, and none
// after Probe returned from a run that was not cancelled.
func TestSpeedtestProgress(t *testing.T) {
	_, ts := startOokla(t, &ookla{})
	var mu sync.Mutex
	var calls []SpeedtestProgress
	inCall, returned := false, false
	cfg := quickConfig(ts.URL)
	cfg.Progress = func(sp SpeedtestProgress) {
		mu.Lock()
		if inCall || returned {
			t.Errorf("a call while another runs (%v) or after Probe returned (%v)", inCall, returned)
		}
		inCall = true
		calls = append(calls, sp)
		mu.Unlock()
		time.Sleep(time.Millisecond) // a slow display
		mu.Lock()
		inCall = false
		mu.Unlock()
	}
	res, err := NewSpeedtest(cfg).Probe(context.Background())
	mu.Lock()
	returned = true
	mu.Unlock()
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	checkWire(t, res, err)

	var phases []string
	rated := map[string]int{}
	for _, c := range calls {
		if len(phases) == 0 || phases[len(phases)-1] != c.Phase {
			phases = append(phases, c.Phase)
		}
		if c.BitsPerSecond > 0 {
			rated[c.Phase]++
			if c.Planned != 1500*time.Millisecond || c.Elapsed <= 0 {
				t.Errorf("%s: planned %s elapsed %s, want 1.5s and more than 0", c.Phase, c.Planned, c.Elapsed)
			}
		}
	}
	if got := strings.Join(phases, ","); got != "server selection,ping,download,upload" {
		t.Errorf("phases %s", got)
	}
	// 1.5 s per direction at a report every 250 ms: several each
	if rated["download"] < 3 || rated["upload"] < 3 || len(rated) != 2 {
		t.Errorf("rates reported per phase: %v", rated)
	}
}

// TestCheckSpeedtestServer: one request for latency.txt, with the server's
// clock; a server answering an error, or not there, is an error that keeps
// the URL's token out.
func TestCheckSpeedtestServer(t *testing.T) {
	o, ts := startOokla(t, &ookla{token: "s3cret"})
	c, err := CheckSpeedtestServer(context.Background(), SpeedtestConfig{ServerURL: ts.URL + "/?token=s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "Custom" || c.Host != strings.TrimPrefix(ts.URL, "http://") || c.RTT() <= 0 || c.RTT() > 5*time.Second {
		t.Errorf("check %+v (rtt %s)", c, c.RTT())
	}
	if d := c.Date.Sub(c.Sent); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("server date %v, sent at %v", c.Date, c.Sent)
	}
	if n := o.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}

	_, err = CheckSpeedtestServer(context.Background(), SpeedtestConfig{ServerURL: ts.URL + "/?token=wrong"})
	if err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad token: %v", err)
	}
	_, err = CheckSpeedtestServer(context.Background(), SpeedtestConfig{ServerURL: "http://" + closedPort(t) + "/?token=hidden"})
	if err == nil || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "hidden") {
		t.Errorf("closed port: %v", err)
	}

	noDate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil // net/http's way to send none
		_, _ = w.Write([]byte("test=test\n"))
	}))
	defer noDate.Close()
	if c, err := CheckSpeedtestServer(context.Background(), SpeedtestConfig{ServerURL: noDate.URL}); err != nil || !c.Date.IsZero() {
		t.Errorf("no Date header: %+v, %v", c, err)
	}
}
