package sites

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/exposition"
)

// What the sites file says about each hub, for the dashboards (WriteSeries:
// they change only when the file is reloaded), and whether each hub is open
// now (WriteOpen: the outage alert reads it).
var (
	famInfo = exposition.NewFamily("hubmon_site_info",
		"A hub of the sites file, with what dashboards show about it as labels (latitude and longitude empty when not known); always 1.", exposition.Gauge,
		"site", "name", "hub_type", "council", "ons_code", "postcode", "access", "provider", "latitude", "longitude")
	famLat = exposition.NewFamily("hubmon_site_location_latitude",
		"Latitude of the hub in degrees (WGS 84), from the sites file.", exposition.Gauge, "site")
	famLon = exposition.NewFamily("hubmon_site_location_longitude",
		"Longitude of the hub in degrees (WGS 84), from the sites file.", exposition.Gauge, "site")
	famContractDown = exposition.NewFamily("hubmon_site_contract_download_bytes_per_second",
		"Contracted download rate of the hub's line, in bytes per second (Mbit/s x 125000), from the sites file.", exposition.Gauge, "site")
	famContractUp = exposition.NewFamily("hubmon_site_contract_upload_bytes_per_second",
		"Contracted upload rate of the hub's line, in bytes per second (Mbit/s x 125000), from the sites file.", exposition.Gauge, "site")
	famSeats = exposition.NewFamily("hubmon_site_public_seats",
		"Public computers or seats with devices at the hub, from the sites file.", exposition.Gauge, "site")
	famOpen = exposition.NewFamily("hubmon_site_open",
		"1 if the hub is open now by its opening hours (in its time zone), else 0; absent when its opening hours are not known.", exposition.Gauge, "site")

	sitesDesc = prometheus.NewDesc("hubmon_collector_sites",
		"Hubs in the sites file in use.", nil, nil)
	reloadDesc = prometheus.NewDesc("hubmon_collector_sites_reload_success",
		"1 if the last load of the sites file succeeded, 0 if it failed (the previous sites stay in use).", nil, nil)
	loadedDesc = prometheus.NewDesc("hubmon_collector_sites_reload_timestamp_seconds",
		"When the sites file in use was loaded (Unix time).", nil, nil)
)

// WriteSeries writes the series of every hub of the file in use: its
// labels (hubmon_site_info), location, contract and seats.
func (r *Registry) WriteSeries(w *exposition.Writer) {
	list := r.Sites()
	for i := range list {
		s := &list[i]
		lat, lon := "", ""
		if s.HasLocation {
			lat, lon = config.FormatCoordinate(s.Latitude), config.FormatCoordinate(s.Longitude)
		}
		w.Sample(famInfo, 1, s.ID, s.Name, s.HubType, s.Council, s.ONSCode, s.Postcode, s.Access, s.Provider, lat, lon)
	}
	for _, fig := range []struct {
		fam *exposition.Family
		get func(s *config.Site) (float64, bool)
	}{
		{famLat, func(s *config.Site) (float64, bool) { return s.Latitude, s.HasLocation }},
		{famLon, func(s *config.Site) (float64, bool) { return s.Longitude, s.HasLocation }},
		{famContractDown, func(s *config.Site) (float64, bool) {
			return s.ContractDownloadMbps * 125000, s.ContractDownloadMbps > 0
		}},
		{famContractUp, func(s *config.Site) (float64, bool) { return s.ContractUploadMbps * 125000, s.ContractUploadMbps > 0 }},
		{famSeats, func(s *config.Site) (float64, bool) { return float64(s.PublicSeats), s.PublicSeats >= 0 }},
	} {
		for i := range list {
			if v, ok := fig.get(&list[i]); ok {
				w.Sample(fig.fam, v, list[i].ID)
			}
		}
	}
}

// WriteOpen writes hubmon_site_open of every hub of the file whose opening
// hours are known: 1 if it is open now.
func (r *Registry) WriteOpen(w *exposition.Writer) {
	snap := r.cur.Load()
	now := r.opts.Now()
	for i := range snap.list {
		if s := &snap.list[i]; s.HasHours {
			open := 0.0
			if OpenAt(s, now) {
				open = 1
			}
			w.SampleLabels(famOpen, open, snap.labels[i])
		}
	}
}

// Describe implements prometheus.Collector.
func (r *Registry) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sitesDesc, reloadDesc, loadedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the state of the sites file
// (the per-hub series are written by WriteSeries and WriteOpen).
func (r *Registry) Collect(ch chan<- prometheus.Metric) {
	snap := r.cur.Load()
	r.statusMu.Lock()
	ok, loaded := r.lastOK, r.lastLoaded
	r.statusMu.Unlock()
	ch <- prometheus.MustNewConstMetric(sitesDesc, prometheus.GaugeValue, float64(len(snap.list)))
	success := 0.0
	if ok {
		success = 1
	}
	ch <- prometheus.MustNewConstMetric(reloadDesc, prometheus.GaugeValue, success)
	if !loaded.IsZero() {
		ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, float64(loaded.UnixNano())/1e9)
	}
}
