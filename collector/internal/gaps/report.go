package gaps

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Report is the gap report: one row per hub over one period, its figures
// for the hub's opening hours (all hours when they are not known).
type Report struct {
	GeneratedAt time.Time
	From, To    time.Time
	// Profiles are the threshold profiles' names, in the config's order.
	Profiles   []string
	BelowRatio float64
	Rows       []Row
}

// Row is one hub of a Report. Figures that cannot be given are NaN (and
// nil in JSON, empty in CSV).
type Row struct {
	ID, Name, Council, ONSCode, HubType, Access, Provider string
	// ContractDownloadMbps, ContractUploadMbps: NaN when not known.
	ContractDownloadMbps, ContractUploadMbps float64
	// Window is the window of the figures below: opening_hours, or all
	// when the hub's opening hours are not known.
	Window string
	Tests  int
	// Rates in Mbit/s.
	DownloadMedianMbps, DownloadP10Mbps, UploadMedianMbps, UploadP10Mbps float64
	DownloadContractRatio, UploadContractRatio                           float64
	// Compliance per profile (Report.Profiles), a share of Tests.
	Compliance []float64
	// OpenHours is the time the hub was open in the period.
	OpenHours         float64
	AvailabilityRatio float64
	OutageMinutes     float64
	// Below per profile: 1 below the ratio, 0 not, -1 cannot be said.
	Below []int
}

// Report computes the report over [to-length, to) from the history in
// memory (Load first).
func (e *Engine) Report(to time.Time, length time.Duration) *Report {
	figs := e.Compute(to, length)
	rep := &Report{GeneratedAt: e.opts.Now().UTC(), From: to.Add(-length).UTC(), To: to.UTC(), BelowRatio: e.opts.BelowRatio}
	for _, r := range e.opts.Rules {
		rep.Profiles = append(rep.Profiles, r.Name)
	}
	for _, f := range figs {
		s := f.Site
		row := Row{ID: s.ID, Name: s.Name, Council: s.Council, ONSCode: s.ONSCode, HubType: s.HubType, Access: s.Access,
			Provider: s.Provider, ContractDownloadMbps: positive(s.ContractDownloadMbps), ContractUploadMbps: positive(s.ContractUploadMbps),
			Window: f.Primary.String(), DownloadContractRatio: f.ContractDownload, UploadContractRatio: f.ContractUpload,
			OpenHours: f.OpenSeconds / 3600, AvailabilityRatio: f.Availability, OutageMinutes: f.OutageSeconds / 60}
		st := f.Windows[f.Primary]
		row.Tests = st.Tests
		row.DownloadMedianMbps, row.DownloadP10Mbps = st.DownloadMedian/1e6, st.DownloadP10/1e6
		row.UploadMedianMbps, row.UploadP10Mbps = st.UploadMedian/1e6, st.UploadP10/1e6
		for i := range e.opts.Rules {
			c, ok := st.Compliance(i)
			if !ok {
				c = math.NaN()
			}
			row.Compliance = append(row.Compliance, c)
			b := -1
			if below, ok := f.Below(i, e.opts.BelowRatio); ok {
				b = 0
				if below {
					b = 1
				}
			}
			row.Below = append(row.Below, b)
		}
		rep.Rows = append(rep.Rows, row)
	}
	return rep
}

func positive(v float64) float64 {
	if v > 0 {
		return v
	}
	return math.NaN()
}

// Formats are the report's formats.
var Formats = []string{"csv", "json", "html"}

// Write writes the report in format (csv, json or html).
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "csv":
		return r.WriteCSV(w)
	case "json":
		return r.WriteJSON(w)
	case "html":
		return r.WriteHTML(w)
	}
	return fmt.Errorf("unknown report format %q: want csv, json or html", format)
}

// columns are the CSV columns before the per-profile ones.
var columns = []string{"id", "name", "council", "ons_code", "hub_type", "access", "provider",
	"contract_download_mbps", "contract_upload_mbps", "window", "speedtests",
	"download_median_mbps", "download_p10_mbps", "upload_median_mbps", "upload_p10_mbps",
	"download_contract_ratio", "upload_contract_ratio", "open_hours", "availability_ratio", "outage_minutes"}

// WriteCSV writes the report as CSV (RFC 4180), a header and a row per hub.
// A cell that a spreadsheet would read as a formula (starting with =, +, -,
// @, a tab or a carriage return) gets a leading apostrophe.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := append([]string(nil), columns...)
	for _, p := range r.Profiles {
		header = append(header, "compliance_"+p)
	}
	for _, p := range r.Profiles {
		header = append(header, "below_"+p)
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, row := range r.Rows {
		rec := []string{row.ID, row.Name, row.Council, row.ONSCode, row.HubType, row.Access, row.Provider,
			num(row.ContractDownloadMbps, 2), num(row.ContractUploadMbps, 2), row.Window, strconv.Itoa(row.Tests),
			num(row.DownloadMedianMbps, 2), num(row.DownloadP10Mbps, 2), num(row.UploadMedianMbps, 2), num(row.UploadP10Mbps, 2),
			num(row.DownloadContractRatio, 3), num(row.UploadContractRatio, 3), num(row.OpenHours, 2),
			num(row.AvailabilityRatio, 4), num(row.OutageMinutes, 1)}
		for _, c := range row.Compliance {
			rec = append(rec, num(c, 4))
		}
		for _, b := range row.Below {
			rec = append(rec, yesNo(b))
		}
		for i, cell := range rec {
			rec[i] = spreadsheetSafe(cell)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// spreadsheetSafe defuses a cell a spreadsheet would run as a formula
// (OWASP "CSV injection").
func spreadsheetSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func num(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(round(v, decimals), 'f', -1, 64)
}

func round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

func yesNo(b int) string {
	switch b {
	case 1:
		return "yes"
	case 0:
		return "no"
	}
	return ""
}

// jsonNumber is a figure rounded for people, null when NaN.
type jsonNumber struct {
	v        float64
	decimals int
}

func (n jsonNumber) MarshalJSON() ([]byte, error) {
	if math.IsNaN(n.v) || math.IsInf(n.v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, round(n.v, n.decimals), 'f', -1, 64), nil
}

type jsonRow struct {
	ID                    string                `json:"id"`
	Name                  string                `json:"name"`
	Council               string                `json:"council"`
	ONSCode               string                `json:"ons_code"`
	HubType               string                `json:"hub_type"`
	Access                string                `json:"access"`
	Provider              string                `json:"provider"`
	ContractDownloadMbps  jsonNumber            `json:"contract_download_mbps"`
	ContractUploadMbps    jsonNumber            `json:"contract_upload_mbps"`
	Window                string                `json:"window"`
	Speedtests            int                   `json:"speedtests"`
	DownloadMedianMbps    jsonNumber            `json:"download_median_mbps"`
	DownloadP10Mbps       jsonNumber            `json:"download_p10_mbps"`
	UploadMedianMbps      jsonNumber            `json:"upload_median_mbps"`
	UploadP10Mbps         jsonNumber            `json:"upload_p10_mbps"`
	DownloadContractRatio jsonNumber            `json:"download_contract_ratio"`
	UploadContractRatio   jsonNumber            `json:"upload_contract_ratio"`
	OpenHours             jsonNumber            `json:"open_hours"`
	AvailabilityRatio     jsonNumber            `json:"availability_ratio"`
	OutageMinutes         jsonNumber            `json:"outage_minutes"`
	Compliance            map[string]jsonNumber `json:"compliance"`
	Below                 map[string]*bool      `json:"below"`
}

// WriteJSON writes the report as one JSON object: the period, the profiles
// and a "hubs" array; figures that cannot be given are null.
func (r *Report) WriteJSON(w io.Writer) error {
	out := struct {
		GeneratedAt time.Time `json:"generated_at"`
		From        time.Time `json:"from"`
		To          time.Time `json:"to"`
		Profiles    []string  `json:"profiles"`
		BelowRatio  float64   `json:"below_ratio"`
		Hubs        []jsonRow `json:"hubs"`
	}{r.GeneratedAt, r.From, r.To, r.Profiles, r.BelowRatio, make([]jsonRow, 0, len(r.Rows))}
	for _, row := range r.Rows {
		j := jsonRow{ID: row.ID, Name: row.Name, Council: row.Council, ONSCode: row.ONSCode, HubType: row.HubType,
			Access: row.Access, Provider: row.Provider,
			ContractDownloadMbps: jsonNumber{row.ContractDownloadMbps, 2}, ContractUploadMbps: jsonNumber{row.ContractUploadMbps, 2},
			Window: row.Window, Speedtests: row.Tests,
			DownloadMedianMbps: jsonNumber{row.DownloadMedianMbps, 2}, DownloadP10Mbps: jsonNumber{row.DownloadP10Mbps, 2},
			UploadMedianMbps: jsonNumber{row.UploadMedianMbps, 2}, UploadP10Mbps: jsonNumber{row.UploadP10Mbps, 2},
			DownloadContractRatio: jsonNumber{row.DownloadContractRatio, 3}, UploadContractRatio: jsonNumber{row.UploadContractRatio, 3},
			OpenHours: jsonNumber{row.OpenHours, 2}, AvailabilityRatio: jsonNumber{row.AvailabilityRatio, 4},
			OutageMinutes: jsonNumber{row.OutageMinutes, 1},
			Compliance:    map[string]jsonNumber{}, Below: map[string]*bool{}}
		for i, p := range r.Profiles {
			j.Compliance[p] = jsonNumber{row.Compliance[i], 4}
			var b *bool
			if row.Below[i] >= 0 {
				v := row.Below[i] == 1
				b = &v
			}
			j.Below[p] = b
		}
		out.Hubs = append(out.Hubs, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"mbps": func(v float64) string { return orDash(num(v, 1)) },
	"pct": func(v float64) string {
		if math.IsNaN(v) {
			return "–"
		}
		return strconv.FormatFloat(round(v*100, 1), 'f', -1, 64) + " %"
	},
	"minutes": func(v float64) string { return orDash(num(v, 0)) },
	"below": func(b int) string {
		switch b {
		case 1:
			return "below"
		case 0:
			return "meets"
		}
		return "–"
	},
	"date": func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 MST") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hubmon gap report</title>
<style>
body{font-family:system-ui,sans-serif;color:#111;background:#fff;margin:1rem;line-height:1.4}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #767676;padding:.25rem .5rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{overflow-x:auto}
thead th{background:#eee}
.below{color:#8b0000;font-weight:bold}
caption{text-align:left;font-weight:bold;margin-bottom:.5rem}
</style></head>
<body><main>
<h1>Gap report</h1>
<p>From {{date .From}} to {{date .To}}. Figures are for each hub's opening hours (all hours when they are not known).
A hub is <strong>below</strong> a profile when fewer than {{pct .BelowRatio}} of its speed tests met it.
Speeds in Mbit/s.</p>
<p>Also as <a href="report.csv">CSV</a> and <a href="report.json">JSON</a>.</p>
<div class="scroll" role="region" aria-labelledby="report-caption" tabindex="0">
<table>
<caption id="report-caption">{{len .Rows}} hubs</caption>
<thead><tr>
<th scope="col">Hub</th><th scope="col">Council</th><th scope="col">Type</th><th scope="col">Access</th>
<th scope="col">Contract down / up</th><th scope="col">Tests</th>
<th scope="col">Median down / up</th><th scope="col">10th percentile down / up</th>
{{range .Profiles}}<th scope="col">{{.}}</th>{{end}}
<th scope="col">Available</th><th scope="col">Outage minutes</th>
</tr></thead>
<tbody>
{{range .Rows}}<tr>
<th scope="row">{{.Name}}<br><small>{{.ID}}</small></th><td>{{.Council}}</td><td>{{.HubType}}</td><td>{{.Access}}{{if .Provider}} ({{.Provider}}){{end}}</td>
<td class="n">{{mbps .ContractDownloadMbps}} / {{mbps .ContractUploadMbps}}</td><td class="n">{{.Tests}}</td>
<td class="n">{{mbps .DownloadMedianMbps}} / {{mbps .UploadMedianMbps}}</td><td class="n">{{mbps .DownloadP10Mbps}} / {{mbps .UploadP10Mbps}}</td>
{{$below := .Below}}{{range $i, $c := .Compliance}}<td class="n{{if eq (index $below $i) 1}} below{{end}}">{{pct $c}}<br><small>{{below (index $below $i)}}</small></td>{{end}}
<td class="n">{{pct .AvailabilityRatio}}</td><td class="n">{{minutes .OutageMinutes}}</td>
</tr>
{{end}}</tbody>
</table>
</div>
<p><small>Generated {{date .GeneratedAt}} by hubmon.</small></p>
</main></body></html>
`))

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// WriteHTML writes the report as an accessible HTML page (a table, no
// JavaScript).
func (r *Report) WriteHTML(w io.Writer) error { return page.Execute(w, r) }

// ParseSince parses the length of a report: a number of days ("30d") or a
// Go duration ("12h", "90m").
func ParseSince(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 100*366 {
			return 0, fmt.Errorf("want a duration like 30d, 7d or 12h (got %q)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("want a duration like 30d, 7d or 12h (got %q)", s)
		}
	}
	if d < time.Hour {
		return 0, fmt.Errorf("must be at least 1h (got %q)", s)
	}
	return d, nil
}

// Handler serves the report over HTTP at any path ending in .csv, .json or
// .html (the collector mounts it at /report.csv, /report.json and
// /report.html). Query parameter since (default 30d, at most the retention)
// sets the period, ending now; anything else is a 400.
func (e *Engine) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format := ""
		for _, f := range Formats {
			if strings.HasSuffix(r.URL.Path, "."+f) {
				format = f
			}
		}
		if format == "" {
			http.NotFound(w, r)
			return
		}
		since := 30 * 24 * time.Hour
		q := r.URL.Query()
		for k, v := range q {
			if k != "since" {
				http.Error(w, fmt.Sprintf("unknown query parameter %q: the report takes only since", k), http.StatusBadRequest)
				return
			}
			if len(v) != 1 {
				http.Error(w, "since: give it once", http.StatusBadRequest)
				return
			}
			d, err := ParseSince(v[0])
			if err != nil {
				http.Error(w, "since: "+err.Error(), http.StatusBadRequest)
				return
			}
			if d > e.opts.Retention {
				http.Error(w, fmt.Sprintf("since: at most %dd over HTTP (got %q); the report command reads any period", int(e.opts.Retention/(24*time.Hour)), v[0]), http.StatusBadRequest)
				return
			}
			since = d
		}
		if !e.Loaded() {
			w.Header().Set("Retry-After", "60")
			http.Error(w, "the history is still being loaded; try again in a minute", http.StatusServiceUnavailable)
			return
		}
		rep := e.Report(e.opts.Now(), since)
		switch format {
		case "csv":
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="hubmon-report-%s.csv"`, rep.To.Format("2006-01-02")))
		case "json":
			w.Header().Set("Content-Type", "application/json")
		case "html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		}
		if err := rep.Write(w, format); err != nil {
			e.log.Warn("report not written", "err", err)
		}
	})
}
