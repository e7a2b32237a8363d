package schedule

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// Store keeps small values across restarts: the agent's outbox
// (outbox.Outbox.State and SetState). Both methods may be called from any
// goroutine.
type Store interface {
	State(ctx context.Context, key string) (string, error)
	SetState(ctx context.Context, key, value string) error
}

// BudgetConfig configures a Budget.
type BudgetConfig struct {
	// Store keeps the month's figures and the line rates; nil keeps them
	// in memory only.
	Store Store
	// MonthlyBytes is the budget of a calendar month; 0 for none (the data
	// used is still counted and reported).
	MonthlyBytes int64
	// Location is the time zone of the months; nil for UTC.
	Location *time.Location
	// Now is the clock of Status; nil for time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Budget keeps a site's speed tests inside a monthly data budget, and counts
// what they used and the tests skipped or shortened, per calendar month in
// the site's time zone, persistently (the figures survive restarts and start
// again at zero in a new month; a clock that goes back to an earlier month,
// as a Pi's can at boot before NTP, does not reset them).
//
// Before each heavy run the scheduler asks the budget how long to measure
// (decide): the cost of a run is estimated from the job's rates, per
// direction the highest of its last 3 measured rates (so one reading on a
// congested line does not let a test blow the budget; conservative defaults
// until there are some), as
//
//	(download + upload bits/s) / 8 × (duration + warm-up)
//
// where duration + warm-up is the time each direction loads the line. The
// run goes ahead at full length if that estimate fits the month's remaining
// budget divided by the heavy runs still planned this month (this one
// included), so the budget lasts the month instead of running out in its
// third week, and the estimate with a 20% margin fits what remains, so the
// month's last tests cannot overrun it. Otherwise it is shortened to the longest whole number of
// seconds, at least 3 s, that fits both; if even 3 s does not fit the share
// but fits the remaining budget with its margin, it runs for 3 s; otherwise
// it is skipped. The margin does not shorten tests that fit the share: the
// rates are already the highest of the last 3, and the share is recomputed
// before every test from what the earlier ones really used.
//
// After the run the bytes the test reported moving are added to the month's
// use, and its rates kept for the next estimates. A run that reports no
// bytes (it failed, or panicked, before the probe could count them) is
// booked at its estimate with the margin, prorated by how long it ran
// against how long it would load the line one way: a test failing at once
// (its server down) costs next to nothing, and booking the whole estimate
// for each would eat a week's budget in a week of failures, while one that
// failed after loading the line for a while is not booked at 0.
//
// A Budget is safe for concurrent use.
type Budget struct {
	cfg BudgetConfig
	log *slog.Logger
	mu  sync.Mutex
	st  budgetState
}

// budgetState is what the Store keeps, as JSON under budgetKey.
type budgetState struct {
	// Month is the calendar month ("2006-01", site time zone) of the
	// figures below.
	Month     string `json:"month"`
	UsedBytes int64  `json:"used_bytes"`
	Skipped   int64  `json:"skipped"`
	Shortened int64  `json:"shortened"`
	// Rates are the rates of each heavy job's next estimate, kept across
	// months: per direction the highest of its History. (Before History,
	// they were the last measured rates: read as a History of one.)
	Rates map[string]Rates `json:"rates,omitempty"`
	// History holds each heavy job's last measured rates, up to
	// rateHistoryLen per direction, oldest first.
	History map[string]rateHistory `json:"rate_history,omitempty"`
}

// rateHistory is a job's last measured rates, per direction, oldest first.
type rateHistory struct {
	Download []float64 `json:"download_bits_per_second"`
	Upload   []float64 `json:"upload_bits_per_second"`
}

// rateHistoryLen is how many measured rates per direction an estimate
// takes the highest of.
const rateHistoryLen = 3

const budgetKey = "data_budget"

// Rates are a job's line rates as its tests cost them: the measured rate, or
// the bytes moved per second of loaded time if that is more.
type Rates struct {
	DownloadBitsPerSecond float64 `json:"download_bits_per_second"`
	UploadBitsPerSecond   float64 `json:"upload_bits_per_second"`
}

const (
	// defaultRates are assumed until a job has measured the line: a fast
	// line, so the first test's estimate errs high.
	defaultDownload = 100e6
	defaultUpload   = 20e6
	// costMargin is added to an estimate checked against the remaining
	// budget (not against the per-test share), and to one booked for a
	// run that reported no bytes.
	costMargin = 1.2
	// MinDuration is the shortest measuring time per direction a budget
	// shortens a speed test to.
	MinDuration = 3 * time.Second
	// warmUpMax: a speed test loads the line for min(warmUpMax,
	// duration/2) per direction before it measures (probe.NewSpeedtest);
	// that costs data too.
	warmUpMax = 2 * time.Second
)

// loaded is how long a test measuring for d loads the line, per direction.
func loaded(d time.Duration) time.Duration { return d + min(warmUpMax, d/2) }

// cost estimates the bytes of a test measuring d per direction: without
// and with the margin.
func (r Rates) cost(d time.Duration) (bytes, withMargin int64) {
	b := (r.DownloadBitsPerSecond + r.UploadBitsPerSecond) / 8 * loaded(d).Seconds()
	return int64(math.Ceil(b)), int64(math.Ceil(b * costMargin))
}

// NewBudget loads the budget's state from cfg.Store. State it cannot decode
// is logged and started afresh; a Store that cannot be read is an error.
func NewBudget(ctx context.Context, cfg BudgetConfig) (*Budget, error) {
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Budget{cfg: cfg, log: cfg.Logger}
	if cfg.Store != nil {
		v, err := cfg.Store.State(ctx, budgetKey)
		if err != nil {
			return nil, fmt.Errorf("load data budget: %w", err)
		}
		if v != "" {
			if err := json.Unmarshal([]byte(v), &b.st); err != nil {
				b.log.Error("the stored data budget is not readable: starting the month's count again", "err", err)
				b.st = budgetState{}
			}
		}
	}
	if b.st.Rates == nil {
		b.st.Rates = make(map[string]Rates)
	}
	if b.st.History == nil {
		b.st.History = make(map[string]rateHistory)
	}
	return b, nil
}

// BudgetStatus is the month's budget as the agent reports it.
type BudgetStatus struct {
	Month       string // "2006-01", in the site's time zone
	BudgetBytes int64  // 0: no budget
	UsedBytes   int64  // bytes speed tests moved this month
	Skipped     int64  // heavy runs planned and not run this month
	Shortened   int64  // heavy runs shortened this month
}

// Status returns the figures of the current month.
func (b *Budget) Status() BudgetStatus {
	month := b.month(b.cfg.Now())
	b.mu.Lock()
	defer b.mu.Unlock()
	s := BudgetStatus{Month: month, BudgetBytes: b.cfg.MonthlyBytes}
	if month <= b.st.Month {
		s.Month, s.UsedBytes, s.Skipped, s.Shortened = b.st.Month, b.st.UsedBytes, b.st.Skipped, b.st.Shortened
	}
	return s
}

// Fill sets the data-budget fields of an agent status from Status.
func (b *Budget) Fill(st *wire.Status) {
	s := b.Status()
	st.BudgetMonth, st.DataBudgetBytes, st.DataUsedBytes = s.Month, s.BudgetBytes, s.UsedBytes
	st.SpeedtestsSkipped, st.SpeedtestsShortened = s.Skipped, s.Shortened
}

// Rates returns the rates the next estimate for job will use.
func (b *Budget) Rates(job string) Rates {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rates(job)
}

// rates returns the rates of job's next estimate. Call with b.mu held.
func (b *Budget) rates(job string) Rates {
	h := b.history(job)
	r := Rates{DownloadBitsPerSecond: maxOf(h.Download), UploadBitsPerSecond: maxOf(h.Upload)}
	if r.DownloadBitsPerSecond <= 0 {
		r.DownloadBitsPerSecond = defaultDownload
	}
	if r.UploadBitsPerSecond <= 0 {
		r.UploadBitsPerSecond = defaultUpload
	}
	return r
}

// history returns job's measured rates: its History, or else the single
// rates of a state stored before there was one. Call with b.mu held.
func (b *Budget) history(job string) rateHistory {
	if h, ok := b.st.History[job]; ok {
		return h
	}
	var h rateHistory
	if r := b.st.Rates[job]; r.DownloadBitsPerSecond > 0 {
		h.Download = []float64{r.DownloadBitsPerSecond}
	}
	if r := b.st.Rates[job]; r.UploadBitsPerSecond > 0 {
		h.Upload = []float64{r.UploadBitsPerSecond}
	}
	return h
}

// keep appends v to the last rates, keeping rateHistoryLen.
func keep(last []float64, v float64) []float64 {
	last = append(slices.Clone(last), v)
	return last[max(0, len(last)-rateHistoryLen):]
}

func (b *Budget) month(t time.Time) string { return t.In(b.cfg.Location).Format("2006-01") }

// roll starts the month of t if it is later than the stored one. Call with
// b.mu held.
func (b *Budget) roll(t time.Time) {
	if m := b.month(t); m > b.st.Month {
		b.st.Month, b.st.UsedBytes, b.st.Skipped, b.st.Shortened = m, 0, 0, 0
	}
}

// save stores the state; a failure is logged (the figures stay in memory).
// Call with b.mu held.
func (b *Budget) save() {
	if b.cfg.Store == nil {
		return
	}
	v, err := json.Marshal(b.st)
	if err == nil {
		err = b.cfg.Store.SetState(context.Background(), budgetKey, string(v))
	}
	if err != nil {
		b.log.Error("data budget not saved: a restart would forget this month's use", "err", err)
	}
}

// AssumeOnPace raises the month's use at now to the budget's share of the
// month elapsed (the budget × the fraction of the month gone), as if the
// tests so far had used the budget at an even pace, and returns the use.
// It is for when the month's figures are lost (a corrupt outbox moved
// aside): the month's use restarting from 0 would let the rest of the
// month spend the whole budget again. Without a budget it changes nothing.
func (b *Budget) AssumeOnPace(now time.Time) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(now)
	if b.cfg.MonthlyBytes <= 0 || b.month(now) != b.st.Month {
		return b.st.UsedBytes
	}
	lt := now.In(b.cfg.Location)
	start := time.Date(lt.Year(), lt.Month(), 1, 0, 0, 0, 0, b.cfg.Location)
	end := start.AddDate(0, 1, 0)
	pace := int64(float64(b.cfg.MonthlyBytes) * (float64(now.Sub(start)) / float64(end.Sub(start))))
	if pace > b.st.UsedBytes {
		b.st.UsedBytes = pace
		b.save()
	}
	return b.st.UsedBytes
}

// decision is how to run one planned heavy run.
type decision struct {
	run      bool
	duration time.Duration // per direction
	estimate int64         // estimated bytes of the run, with the margin
	reason   string        // why it is shortened or skipped
}

// decide decides how long the run of job planned at at measures, runsLeft
// being the heavy runs planned from at to the end of its month, this one
// included. A skip is counted and logged here.
func (b *Budget) decide(job Job, at time.Time, runsLeft int) decision {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(at)
	full := job.Duration
	r := b.rates(job.Name)
	_, fullEstimate := r.cost(full)
	limit := b.cfg.MonthlyBytes
	if limit <= 0 || full <= 0 {
		return decision{run: true, duration: full, estimate: fullEstimate}
	}
	remaining := limit - b.st.UsedBytes
	if remaining <= 0 {
		return b.skipLocked(job, at, decision{estimate: fullEstimate, reason: "the month's data budget is used up"})
	}
	share := remaining / int64(max(runsLeft, 1))
	// fits: the estimate within the share, and with its margin within
	// what remains
	fits := func(d time.Duration) (int64, bool) {
		c, withMargin := r.cost(d)
		return withMargin, c <= share && withMargin <= remaining
	}
	if est, ok := fits(full); ok {
		return decision{run: true, duration: full, estimate: est}
	}
	short := min(MinDuration, full)
	for d := (full - 1).Truncate(time.Second); d >= short; d -= time.Second {
		if est, ok := fits(d); ok {
			return decision{run: true, duration: d, estimate: est,
				reason: fmt.Sprintf("the remaining budget, shared by the %d tests still planned this month, allows %d bytes each", runsLeft, share)}
		}
	}
	_, est := r.cost(short)
	if est <= remaining {
		return decision{run: true, duration: short, estimate: est,
			reason: fmt.Sprintf("the remaining budget does not cover the %d tests still planned this month", runsLeft)}
	}
	return b.skipLocked(job, at, decision{estimate: est,
		reason: fmt.Sprintf("even a %s test would exceed the month's remaining data budget", short)})
}

// skip counts a planned heavy run that does not run, and logs why.
func (b *Budget) skip(job Job, at time.Time, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.skipLocked(job, at, decision{reason: reason})
}

func (b *Budget) skipLocked(job Job, at time.Time, d decision) decision {
	b.roll(at)
	b.st.Skipped++
	b.save()
	attrs := []any{"probe", job.Name, "planned_at", at.In(b.cfg.Location).Format(time.RFC3339), "reason", d.reason}
	if d.estimate > 0 {
		attrs = append(attrs, "estimated_bytes", d.estimate, "used_bytes", b.st.UsedBytes, "budget_bytes", b.cfg.MonthlyBytes)
	}
	b.log.Info("speed test skipped", attrs...)
	return decision{reason: d.reason}
}

// record adds a run of job started at at, as decided, to the month, and
// counts a shortened run. It books the bytes m reports; its estimate when m
// is nil (a run interrupted by shutdown); the estimate prorated by the time
// the run took when m reports no bytes (see Budget). The rates m measured
// join the job's history.
func (b *Budget) record(job Job, at time.Time, dec decision, m *wire.Measurement) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(at)
	if dec.duration < job.Duration {
		b.st.Shortened++
	}
	var st *wire.Speedtest
	if m != nil {
		st = m.Speedtest
	}
	switch {
	case st == nil:
		b.st.UsedBytes += dec.estimate
	case st.BytesUsed() <= 0:
		b.st.UsedBytes += prorated(dec, m.DurationSeconds)
	default:
		b.st.UsedBytes += st.BytesUsed()
	}
	if st != nil && dec.duration > 0 {
		h := b.history(job.Name)
		secs := loaded(dec.duration).Seconds()
		if v := st.DownloadBitsPerSecond; v != nil && *v > 0 {
			h.Download = keep(h.Download, max(*v, float64(st.DownloadBytes)*8/secs))
		}
		if v := st.UploadBitsPerSecond; v != nil && *v > 0 {
			h.Upload = keep(h.Upload, max(*v, float64(st.UploadBytes)*8/secs))
		}
		b.st.History[job.Name] = h
		b.st.Rates[job.Name] = Rates{DownloadBitsPerSecond: maxOf(h.Download), UploadBitsPerSecond: maxOf(h.Upload)}
	}
	b.save()
}

// prorated is the bytes booked for a run as decided that lasted secs and
// reported none: its estimate (with the margin) × the run's time over the
// time it loads the line in one direction, at most the estimate. That bounds
// what it can have moved: the estimate's rate covers download and upload
// together, and the run cannot have loaded the line for longer than it ran.
func prorated(dec decision, secs float64) int64 {
	one := loaded(dec.duration).Seconds()
	if one <= 0 || secs >= one || math.IsNaN(secs) {
		return dec.estimate
	}
	return int64(math.Ceil(float64(dec.estimate) * max(secs, 0) / one))
}

// maxOf is the highest of v, or 0 if v is empty.
func maxOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Max(v)
}
