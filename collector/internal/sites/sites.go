// Package sites is the collector's registry of hubs: the sites file
// (config.LoadSites), which sites may publish, when each hub is open, and the
// hubmon_site_* series that carry what dashboards need to know about a hub
// (name, council, location, contract).
//
// The registry is replaced whole on Reload, so readers see either the old or
// the new file, never a mix, and a broken file keeps the old one. A Registry
// is safe for concurrent use.
package sites

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/exposition"
)

// Options configure a Registry.
type Options struct {
	// Path is the sites file; "" for none: every site may publish and is
	// known only by its id.
	Path string
	// AutoRegister lets sites not in the file publish.
	AutoRegister bool
	// Getenv looks up ${NAME} variables in the file; nil for none.
	Getenv func(string) string
	// Now is the clock (hubmon_site_open); time.Now if nil.
	Now func() time.Time
}

// Registry holds the sites of the sites file.
type Registry struct {
	opts   Options
	noFile bool // New without a path: every site is accepted
	cur    atomic.Pointer[snapshot]

	mu         sync.Mutex // serialises Reload
	statusMu   sync.Mutex // guards the fields below
	lastOK     bool
	lastLoaded time.Time
}

type snapshot struct {
	list   []config.Site // by id
	byID   map[string]*config.Site
	labels []exposition.Label // of list's ids, for the series
}

// New loads the sites file. A broken file is an error: the collector must
// not start with a registry it cannot read.
func New(opts Options) (*Registry, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Registry{opts: opts, noFile: opts.Path == ""}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Static returns a Registry of the given sites, with no file (for tests and
// the report of a history without a sites file).
func Static(list []config.Site, autoRegister bool, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	r := &Registry{opts: Options{AutoRegister: autoRegister, Now: now}, lastOK: true, lastLoaded: now()}
	r.cur.Store(newSnapshot(list))
	return r
}

func newSnapshot(list []config.Site) *snapshot {
	list = slices.Clone(list)
	slices.SortFunc(list, func(a, b config.Site) int { return cmp.Compare(a.ID, b.ID) })
	s := &snapshot{list: list, byID: make(map[string]*config.Site, len(list)), labels: make([]exposition.Label, len(list))}
	for i := range s.list {
		s.byID[s.list[i].ID] = &s.list[i]
		s.labels[i], _ = exposition.NewLabel(s.list[i].ID) // ids are ASCII (config checks them)
	}
	return s
}

// Reload reads the sites file again. On error the registry keeps the sites
// it had, and the error says why.
func (r *Registry) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var list []config.Site
	if r.opts.Path != "" {
		var err error
		if list, err = config.LoadSites(r.opts.Path, r.opts.Getenv); err != nil {
			r.statusMu.Lock()
			r.lastOK = false
			r.statusMu.Unlock()
			return err
		}
	}
	r.cur.Store(newSnapshot(list))
	r.statusMu.Lock()
	r.lastOK, r.lastLoaded = true, r.opts.Now()
	r.statusMu.Unlock()
	return nil
}

// Known reports whether site may publish: it is in the sites file, or
// auto-registration is on, or there is no sites file.
func (r *Registry) Known(site string) bool {
	if r.AutoRegister() {
		return true
	}
	_, ok := r.cur.Load().byID[site]
	return ok
}

// AutoRegister reports whether sites not in the file are accepted (also
// when there is no file).
func (r *Registry) AutoRegister() bool { return r.opts.AutoRegister || r.noFile }

// Sites returns the sites of the file, by id. The caller must not change
// them.
func (r *Registry) Sites() []config.Site { return r.cur.Load().list }

// Lookup returns the site with id, from the file.
func (r *Registry) Lookup(id string) (config.Site, bool) {
	s, ok := r.cur.Load().byID[id]
	if !ok {
		return config.Site{}, false
	}
	return *s, true
}

// OpenAt reports whether s is open at t (its opening hours, in its time
// zone). A site whose opening hours are not known is never open.
func OpenAt(s *config.Site, t time.Time) bool {
	if !s.HasHours || s.Location == nil {
		return false
	}
	lt := t.In(s.Location)
	h, m, sec := lt.Clock()
	tod := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + time.Duration(lt.Nanosecond())
	return s.Hours.Open(lt.Weekday(), tod)
}

// OpenIntervals calls fn for each interval of [from, to) in which s is
// open, in order, in absolute time (a range's wall-clock times are read in
// the site's zone on each day, so a day when clocks change is an hour
// shorter or longer). Ranges that meet (one ending at 24:00, the next
// starting at 00:00) are given separately.
func OpenIntervals(s *config.Site, from, to time.Time, fn func(a, b time.Time)) {
	if !s.HasHours || s.Location == nil || !from.Before(to) {
		return
	}
	lf := from.In(s.Location)
	// start a day early: a range of the previous local day cannot reach
	// into this one (ranges end by 24:00), but the zone's offset can move
	// the local date
	day := time.Date(lf.Year(), lf.Month(), lf.Day()-1, 0, 0, 0, 0, s.Location)
	for !day.After(to) {
		y, mo, d := day.Date()
		for _, rg := range s.Hours[day.Weekday()] {
			a := wall(y, mo, d, rg.From, s.Location)
			b := wall(y, mo, d, rg.To, s.Location)
			if a.Before(from) {
				a = from
			}
			if b.After(to) {
				b = to
			}
			if a.Before(b) {
				fn(a, b)
			}
		}
		day = time.Date(y, mo, d+1, 0, 0, 0, 0, s.Location)
	}
}

// wall is the absolute time of wall-clock time tod (0 to 24h) on a day.
func wall(y int, mo time.Month, d int, tod time.Duration, loc *time.Location) time.Time {
	h := int(tod / time.Hour)
	m := int(tod % time.Hour / time.Minute)
	return time.Date(y, mo, d, h, m, 0, 0, loc)
}
