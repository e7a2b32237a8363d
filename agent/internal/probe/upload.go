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

// Upload pieces: each POST to upload.php carries one piece, and the server's
// 2xx answer confirms it. A piece starts at the smallest size, so that a slow
// line confirms something early and the warm-up ends on pieces of the
// line's own size, and is resized after every answer so that one POST takes
// about pieceTarget: long enough that the round trip between two POSTs on a
// connection is a small part of it (the other connections fill the gap),
// short enough that a 10 s window holds about twenty confirmations per
// connection even at 0.5 Mbit/s, where pieces stay at minPiece.
const (
	firstPiece  = minPiece
	minPiece    = 8 << 10
	maxPiece    = 8 << 20
	pieceTarget = 200 * time.Millisecond
	// A stream is stalled when the server has confirmed nothing for
	// stallFactor times its usual time per piece, and at least stallMin.
	stallFactor = 10
	stallMin    = 3 * time.Second
	// After the window, the load stays on until every stream has a piece
	// confirmed (see settle): for settleFactor typical pieces, at least
	// settleMin and at most settleMax.
	settleFactor = 4
	settleMin    = time.Second
	settleMax    = 8 * time.Second
	settlePoll   = 10 * time.Millisecond
)

// nextPiece sizes the next piece from the last one, which took took from
// request to answer: toward pieceTarget, growing at most 4x and shrinking
// at most 2x per step, within [minPiece, limit].
func nextPiece(size int64, took time.Duration, limit int64) int64 {
	if took <= 0 {
		took = time.Millisecond
	}
	f := float64(pieceTarget) / float64(took)
	f = min(max(f, 0.5), 4)
	next := int64(float64(size) * f)
	next = next &^ 1023 // whole KiB
	return min(max(next, minPiece), limit)
}

// measureUpload runs the upload direction (see loaded.go and uploadRate).
func (p *speedtestProber) measureUpload(ctx context.Context, lc loadConfig) (loadResult, error) {
	uploadURL := lc.serverURL
	pingURL, err := lc.resource("latency.txt")
	if err != nil {
		return loadResult{}, err
	}
	lctx, cancel := context.WithCancel(ctx) // ends the streams
	defer cancel()
	random := newRandom()
	var stats reqStats
	streams := make([]*stream, lc.conns)
	for i := range streams {
		streams[i] = newStream(p.wrap)
		defer streams[i].close()
	}
	start := time.Now()
	pg := &pinger{s: newStream(p.wrap), url: pingURL, every: lc.pingEvery, rate: func() float64 {
		var n int64
		for _, s := range streams {
			n += s.confirmedBytes()
		}
		return float64(n) / time.Since(start).Seconds()
	}}
	defer pg.s.close()
	all := append(streams[:len(streams):len(streams)], pg.s)

	t0 := start.Add(lc.warmUp)
	t1 := t0.Add(lc.duration)
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() { uploadStream(lctx, s, uploadURL, random, &stats) })
	}
	wg.Go(func() { pg.run(lctx) })
	wg.Go(func() {
		p.reportRate(lctx, "upload", start, t1.Sub(start), func() int64 {
			var n int64
			for _, s := range all {
				n += s.confirmedBytes()
			}
			return n
		})
	})
	finished := sleepUntil(ctx, t1) && settle(ctx, streams, t1)
	cancel()
	wg.Wait()
	end := time.Now()
	logs := make([]streamLog, len(all))
	for i, s := range all {
		s.close() // settles the size of the last confirmed piece
		logs[i] = streamLog{start: start, confirms: s.log()}
	}

	res := loadResult{elapsed: end.Sub(start), stats: stats.get()}
	for _, s := range all {
		res.bytes += s.written.Load()
	}
	for _, l := range logs[:len(streams)] {
		if n := len(l.confirms); n > 0 {
			res.confirmed += l.confirms[n-1].bytes
		}
	}
	if !finished {
		return res, context.Cause(ctx)
	}
	rate, stalled := uploadRate(logs[:len(streams)], t0, t1, end)
	res.stalled = stalled
	if rate > 0 {
		// The latency stream shares the line: its confirmed requests
		// count too (but never make a rate on their own).
		pingRate, _ := uploadRate(logs[len(streams):], t0, t1, end)
		res.bitsPerSecond = (rate + pingRate) * 8
	}
	res.rtts = pg.within(t0, t1)
	return res, nil
}

// settle keeps the load on after t1 until every load stream has had a piece
// confirmed after t1, so that the piece in flight at t1 is known (see
// uploadRate): for at most settleFactor typical cycles, within [settleMin,
// settleMax]. It reports false if ctx ended.
func settle(ctx context.Context, streams []*stream, t1 time.Time) bool {
	var cycles []time.Duration
	for _, s := range streams {
		l := s.log()
		for i := 1; i < len(l); i++ {
			cycles = append(cycles, l[i].at.Sub(l[i-1].at))
		}
	}
	typical, _ := median(cycles)
	deadline := t1.Add(min(max(settleMin, settleFactor*typical), settleMax))
	for {
		done := true
		for _, s := range streams {
			if !s.confirmedAfter(t1) {
				done = false
				break
			}
		}
		if done || !time.Now().Before(deadline) {
			return ctx.Err() == nil
		}
		if !sleepCtx(ctx, settlePoll) {
			return false
		}
	}
}

// uploadStream posts pieces on s until ctx ends, recording each confirmation.
func uploadStream(ctx context.Context, s *stream, target string, random []byte, stats *reqStats) {
	size, limit := int64(firstPiece), int64(maxPiece)
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, &pieceReader{buf: random, left: size})
		if err != nil {
			stats.add(0, err)
			return
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("User-Agent", userAgent)
		sent := time.Now()
		status, _, err := s.exchange(req)
		done := time.Now()
		if ctx.Err() != nil {
			return // the end of the test, or cancelled: not a failure
		}
		stats.add(status, err)
		switch {
		case err == nil && status/100 == 2:
			s.confirm(done, size)
			size = nextPiece(size, done.Sub(sent), limit)
			continue
		case err == nil && status == http.StatusRequestEntityTooLarge && size > minPiece:
			// The server takes smaller bodies: never ask this much again.
			limit = max(size/2, minPiece)
			size = limit
		}
		if !sleepCtx(ctx, failureBackoff) {
			return
		}
	}
}

// pieceReader is an upload body of left bytes cycled from buf.
type pieceReader struct {
	buf  []byte
	off  int
	left int64
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.buf[r.off:])
	r.off = (r.off + n) % len(r.buf)
	r.left -= int64(n)
	return n, nil
}

// streamLog is what uploadRate needs of a stream: when it began and its
// confirmations, with cumulative byte counts.
type streamLog struct {
	start    time.Time
	confirms []confirmation
}

// uploadRate estimates the upload rate, bytes per second, in the window
// [t0, t1] from the confirmations of each stream; the streams ran until end.
// It also counts the streams that stalled.
//
// A stream sends its next piece only after the answer to the previous one,
// so at the instant of a confirmation every byte it sent has reached the
// server: its confirmed count is exact at those instants and unknown in
// between (the kernel's send buffer holds an unknown part of the piece in
// flight; counting bytes handed to it credits data still on the agent, and
// counting only whole pieces drops the piece in flight at the end, which is
// how a test at 1 Mbit/s with 1 MB pieces reads nothing).
//
// Between two confirmations the stream is credited at a constant rate: the
// piece's bytes spread over its cycle (from the previous answer to its own,
// the round trip between pieces included). The bytes in the window are the
// integral of that rate over [t0, t1], so the pieces in flight at t0 and at
// t1 count with the part of their cycle inside the window. This is unbiased
// for a steady line: the window is fixed in advance, independently of where
// the pieces fall. Simpler rules are not. Counting only the pieces answered
// inside the window is unbiased too, but off by up to a piece per stream at
// each edge. Measuring each stream from its first answer in the window to
// its last reads high: a slow cycle (a TCP retransmission timeout, say) is
// more likely than a quick one to straddle an edge (the inspection paradox),
// and that rule drops exactly those (by about 20 % in TestUploadRateUnbiased;
// on a tbf-shaped 1 Mbit/s link it read above the line's capacity). So
// measureUpload keeps the load on a little after t1 until each stream's
// piece in flight at t1 is answered; one still unanswered at end is credited
// nothing after the stream's last answer (a small underestimate, rare).
//
// A stream the server stopped answering (nothing confirmed for stallFactor
// times its median cycle, at least stallMin, before end; or never answered
// for stallMin) counts as stalled.
func uploadRate(logs []streamLog, t0, t1, end time.Time) (bytesPerSecond float64, stalled int) {
	window := t1.Sub(t0).Seconds()
	if window <= 0 {
		return 0, 0
	}
	var credit float64
	for _, l := range logs {
		prevAt, prevBytes := l.start, int64(0)
		var cycles []time.Duration
		for _, c := range l.confirms {
			cycle := c.at.Sub(prevAt)
			cycles = append(cycles, cycle)
			if cycle > 0 {
				from, to := later(prevAt, t0), earlier(c.at, t1)
				if to.After(from) {
					credit += float64(c.bytes-prevBytes) * float64(to.Sub(from)) / float64(cycle)
				}
			}
			prevAt, prevBytes = c.at, c.bytes
		}
		typical, _ := median(cycles) // 0 without answers: stallMin alone
		if end.Sub(prevAt) > max(stallMin, stallFactor*typical) {
			stalled++
		}
	}
	return credit / window, stalled
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// uploadError checks the upload direction; nil when its rate can be trusted.
func uploadError(r loadResult, conns int, took time.Duration) error {
	var reason string
	switch s := r.stats; {
	case s.badStatus > 0 && s.badStatus*10 >= s.requests:
		reason = "server answered errors"
	case r.stalled == conns:
		reason = "server stopped answering"
	case !(r.bitsPerSecond > 0):
		reason = "no data confirmed by the server"
	default:
		return nil
	}
	msg := fmt.Sprintf("upload: %s after %s; %d bytes confirmed by the server, %d sent", reason, took.Round(100*time.Millisecond), r.confirmed, r.bytes)
	if note := r.stats.note(); note != "" {
		msg += "; " + note
	}
	return errors.New(msg)
}
