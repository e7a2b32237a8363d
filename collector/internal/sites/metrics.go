package sites

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubmon/hubmon/collector/internal/config"
)

var (
	infoDesc = prometheus.NewDesc("hubmon_site_info",
		"A hub of the sites file, with what dashboards show about it as labels (latitude and longitude empty when not known); always 1.",
		[]string{"site", "name", "hub_type", "council", "ons_code", "postcode", "access", "provider", "latitude", "longitude"}, nil)
	latDesc = prometheus.NewDesc("hubmon_site_location_latitude",
		"Latitude of the hub in degrees (WGS 84), from the sites file.", []string{"site"}, nil)
	lonDesc = prometheus.NewDesc("hubmon_site_location_longitude",
		"Longitude of the hub in degrees (WGS 84), from the sites file.", []string{"site"}, nil)
	contractDownDesc = prometheus.NewDesc("hubmon_site_contract_download_bytes_per_second",
		"Contracted download rate of the hub's line, in bytes per second (Mbit/s x 125000), from the sites file.", []string{"site"}, nil)
	contractUpDesc = prometheus.NewDesc("hubmon_site_contract_upload_bytes_per_second",
		"Contracted upload rate of the hub's line, in bytes per second (Mbit/s x 125000), from the sites file.", []string{"site"}, nil)
	seatsDesc = prometheus.NewDesc("hubmon_site_public_seats",
		"Public computers or seats with devices at the hub, from the sites file.", []string{"site"}, nil)
	openDesc = prometheus.NewDesc("hubmon_site_open",
		"1 if the hub is open now by its opening hours (in its time zone), else 0; absent when its opening hours are not known.", []string{"site"}, nil)
	sitesDesc = prometheus.NewDesc("hubmon_collector_sites",
		"Hubs in the sites file in use.", nil, nil)
	reloadDesc = prometheus.NewDesc("hubmon_collector_sites_reload_success",
		"1 if the last load of the sites file succeeded, 0 if it failed (the previous sites stay in use).", nil, nil)
	loadedDesc = prometheus.NewDesc("hubmon_collector_sites_reload_timestamp_seconds",
		"When the sites file in use was loaded (Unix time).", nil, nil)
)

// Describe implements prometheus.Collector.
func (r *Registry) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{infoDesc, latDesc, lonDesc, contractDownDesc, contractUpDesc, seatsDesc, openDesc, sitesDesc, reloadDesc, loadedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the series of every site of the
// file in use, so a site removed from the file disappears. Only
// hubmon_site_open is computed at scrape time; the rest is built when the
// file is loaded.
func (r *Registry) Collect(ch chan<- prometheus.Metric) {
	snap := r.cur.Load()
	for _, m := range snap.static {
		ch <- m
	}
	now := r.opts.Now()
	for i := range snap.list {
		if s := &snap.list[i]; s.HasHours {
			open := 0.0
			if OpenAt(s, now) {
				open = 1
			}
			ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, open, s.ID)
		}
	}
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

// staticMetrics builds the series of list that do not change until the
// next load.
func staticMetrics(list []config.Site) []prometheus.Metric {
	out := make([]prometheus.Metric, 0, 6*len(list))
	for i := range list {
		s := &list[i]
		lat, lon := "", ""
		if s.HasLocation {
			lat, lon = config.FormatCoordinate(s.Latitude), config.FormatCoordinate(s.Longitude)
			out = append(out, prometheus.MustNewConstMetric(latDesc, prometheus.GaugeValue, s.Latitude, s.ID),
				prometheus.MustNewConstMetric(lonDesc, prometheus.GaugeValue, s.Longitude, s.ID))
		}
		out = append(out, prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1,
			s.ID, s.Name, s.HubType, s.Council, s.ONSCode, s.Postcode, s.Access, s.Provider, lat, lon))
		if s.ContractDownloadMbps > 0 {
			out = append(out, prometheus.MustNewConstMetric(contractDownDesc, prometheus.GaugeValue, s.ContractDownloadMbps*125000, s.ID))
		}
		if s.ContractUploadMbps > 0 {
			out = append(out, prometheus.MustNewConstMetric(contractUpDesc, prometheus.GaugeValue, s.ContractUploadMbps*125000, s.ID))
		}
		if s.PublicSeats >= 0 {
			out = append(out, prometheus.MustNewConstMetric(seatsDesc, prometheus.GaugeValue, float64(s.PublicSeats), s.ID))
		}
	}
	return out
}
