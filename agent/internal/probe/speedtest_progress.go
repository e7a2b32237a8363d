package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/showwin/speedtest-go/speedtest"
)

const (
	// progressEvery is how often a running direction reports its rate to
	// SpeedtestConfig.Progress.
	progressEvery = 250 * time.Millisecond
	// progressWindow is the span the reported rate is measured over.
	progressWindow = time.Second
)

// progress passes sp to cfg.Progress, one call at a time.
func (p *speedtestProber) progress(sp SpeedtestProgress) {
	if p.cfg.Progress == nil {
		return
	}
	p.progressMu.Lock()
	defer p.progressMu.Unlock()
	p.cfg.Progress(sp)
}

// reportRate tells cfg.Progress that phase began at start and, until ctx
// ends, the rate of count (bytes moved since start) over the last
// progressWindow, every progressEvery.
func (p *speedtestProber) reportRate(ctx context.Context, phase string, start time.Time, planned time.Duration, count func() int64) {
	if p.cfg.Progress == nil {
		return
	}
	p.progress(SpeedtestProgress{Phase: phase, Planned: planned})
	type point struct {
		at time.Time
		n  int64
	}
	points := []point{{start, 0}}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now, n := time.Now(), count()
		points = append(points, point{now, n})
		// keep one point at least progressWindow old, if there is one
		for len(points) > 2 && now.Sub(points[1].at) >= progressWindow {
			points = points[1:]
		}
		var bps float64
		if first := points[0]; now.After(first.at) {
			bps = float64(n-first.n) * 8 / now.Sub(first.at).Seconds()
		}
		p.progress(SpeedtestProgress{Phase: phase, BitsPerSecond: max(bps, 0), Elapsed: now.Sub(start), Planned: planned})
	}
}

// SpeedtestServerCheck is what CheckSpeedtestServer found.
type SpeedtestServerCheck struct {
	// ID, Name and Host are the server's, as a speed test reports them
	// (ID "Custom" for a self-hosted server).
	ID, Name, Host string
	// Sent and Answered are when the request for latency.txt left and its
	// answer arrived, by the local clock.
	Sent, Answered time.Time
	// Date is the server's clock when it answered, from its HTTP Date
	// header (to the second); zero if it sent none.
	Date time.Time
}

// RTT is the round trip of the request.
func (c SpeedtestServerCheck) RTT() time.Duration { return c.Answered.Sub(c.Sent) }

// CheckSpeedtestServer finds the server a speed test with cfg would use,
// as Probe does (the self-hosted one; the nearest pinned one; the nearest
// public one, after fetching the public list), and asks it for latency.txt
// once, checking that it answers 2xx. It moves a few hundred bytes besides
// the server selection. ctx bounds it; the error names the step that
// failed, with the server URL's query (a token) left out.
func CheckSpeedtestServer(ctx context.Context, cfg SpeedtestConfig) (SpeedtestServerCheck, error) {
	p := NewSpeedtest(cfg).(*speedtestProber)
	c, err := p.checkServer(ctx)
	return c, p.redact(err)
}

func (p *speedtestProber) checkServer(ctx context.Context) (SpeedtestServerCheck, error) {
	var out SpeedtestServerCheck
	hc, _, tr := p.newHTTP()
	defer tr.CloseIdleConnections()
	client := newSpeedtestClient(&speedtest.UserConfig{
		UserAgent:      userAgent,
		PingMode:       speedtest.HTTP,
		MaxConnections: p.cfg.Connections,
	}, hc)
	srv, err := p.findServer(ctx, client)
	if err != nil {
		return out, fmt.Errorf("find server: %w", err)
	}
	out.ID, out.Name, out.Host = srv.ID, serverName(srv), srv.Host
	pingURL, err := loadConfig{serverURL: srv.URL}.resource("latency.txt")
	if err != nil {
		return out, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pingURL, nil)
	if err != nil {
		return out, err
	}
	out.Sent = time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // it quotes the whole URL: keep the cause
		}
		return out, fmt.Errorf("ping: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, answerLimit))
	_ = resp.Body.Close()
	out.Answered = time.Now()
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		out.Date = d
	}
	if resp.StatusCode/100 != 2 {
		return out, fmt.Errorf("ping: the server answered %s", resp.Status)
	}
	return out, nil
}
