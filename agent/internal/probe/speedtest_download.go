package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// downloadResource is what the download streams fetch, again and again: the
// largest image of the Ookla protocol (about 30 MB on Ookla's servers, 25 MiB
// on the collector's).
const downloadResource = "random4000x4000.jpg"

// measureDownload runs the download direction (see loaded.go). The rate is
// the bytes that arrived on the streams' sockets in [t0, t1] (read, or
// waiting to be read: see stream.arrived), sampled at both instants, over
// the time between the samples: bytes arrive as the line delivers them, so
// there is nothing to estimate at the edges. A stream that read nothing in
// the last stallMin of the window is stalled.
func (p *speedtestProber) measureDownload(ctx context.Context, lc loadConfig) (loadResult, error) {
	dlURL, err := lc.resource(downloadResource)
	if err != nil {
		return loadResult{}, err
	}
	pingURL, err := lc.resource("latency.txt")
	if err != nil {
		return loadResult{}, err
	}
	lctx, cancel := context.WithCancel(ctx) // ends the streams
	defer cancel()
	var stats reqStats
	streams := make([]*stream, lc.conns)
	for i := range streams {
		streams[i] = newStream(p.wrap)
		defer streams[i].close()
	}
	ps := newStream(p.wrap) // the latency stream
	defer ps.close()
	// The latency stream's answers share the line: they count too, but
	// not on their own (loadOnly).
	received := func(withPing bool) int64 {
		var n int64
		for _, s := range streams {
			n += s.read.Load()
		}
		if withPing {
			n += ps.read.Load()
		}
		return n
	}
	arrived := func() int64 {
		n := ps.arrived()
		for _, s := range streams {
			n += s.arrived()
		}
		return n
	}

	start := time.Now()
	pg := &pinger{s: ps, url: pingURL, every: lc.pingEvery, rate: func() float64 {
		return float64(received(false)) / time.Since(start).Seconds()
	}}
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() { downloadStream(lctx, s, dlURL, &stats) })
	}
	wg.Go(func() { pg.run(lctx) })
	wg.Go(func() {
		p.reportRate(lctx, "download", start, lc.warmUp+lc.duration, func() int64 { return received(true) })
	})

	var n0, n1, loadOnly int64
	var t0, t1 time.Time
	finished := sleepUntil(ctx, start.Add(lc.warmUp))
	if finished {
		loadOnly = -received(false)
		n0, t0 = sample(arrived)
		finished = sleepUntil(ctx, t0.Add(lc.duration))
		n1, t1 = sample(arrived)
		loadOnly += received(false)
	}
	cancel()
	wg.Wait()
	end := time.Now()

	res := loadResult{elapsed: end.Sub(start), bytes: received(true), stats: stats.get()}
	if !finished {
		return res, context.Cause(ctx)
	}
	for _, s := range streams {
		if t1.Sub(time.Unix(0, s.lastRead.Load())) > stallMin {
			res.stalled++
		}
	}
	if loadOnly <= 0 {
		return res, nil // no rate
	}
	res.bitsPerSecond = float64(n1-n0) * 8 / t1.Sub(t0).Seconds()
	res.rtts = pg.within(t0, t1)
	return res, nil
}

// sample reads a byte counter and the time it was read: the middle of two
// clock readings around it, read again if this goroutine was held up in
// between (on a busy machine a late clock reading would shorten the window
// without shortening its bytes).
func sample(count func() int64) (int64, time.Time) {
	var n int64
	var before, after time.Time
	for range 5 {
		before = time.Now()
		n = count()
		after = time.Now()
		if after.Sub(before) < time.Millisecond {
			break
		}
	}
	return n, before.Add(after.Sub(before) / 2)
}

// downloadStream fetches the download resource on s until ctx ends, reading
// each answer to its end. An error status is counted and its body left
// unread (speedtest-go counts an error page as data).
func downloadStream(ctx context.Context, s *stream, target string, stats *reqStats) {
	buf := make([]byte, loadBufferBytes)
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			stats.add(0, err)
			return
		}
		req.Header.Set("User-Agent", userAgent)
		resp, err := s.client.Do(req)
		if err == nil && resp.StatusCode/100 == 2 {
			_, err = io.CopyBuffer(io.Discard, onlyReader{resp.Body}, buf)
		}
		if resp != nil {
			_ = resp.Body.Close()
		}
		if ctx.Err() != nil {
			return // the end of the test, or cancelled: not a failure
		}
		var status int
		if resp != nil {
			status = resp.StatusCode
		}
		stats.add(status, err)
		if err != nil || status/100 != 2 {
			if !sleepCtx(ctx, failureBackoff) {
				return
			}
		}
	}
}

// onlyReader hides any WriterTo of r, so io.CopyBuffer uses the buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// downloadError checks the download direction; nil when its rate can be
// trusted.
func downloadError(r loadResult, conns int, took time.Duration) error {
	var reason string
	switch s := r.stats; {
	case s.badStatus > 0 && s.badStatus*10 >= s.requests:
		reason = "server answered errors"
	case r.stalled == conns:
		reason = "server stopped sending"
	case !(r.bitsPerSecond > 0):
		reason = "no data received"
	default:
		return nil
	}
	msg := fmt.Sprintf("download: %s after %s; %d bytes received", reason, took.Round(100*time.Millisecond), r.bytes)
	if note := r.stats.note(); note != "" {
		msg += "; " + note
	}
	return errors.New(msg)
}
