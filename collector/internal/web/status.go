package web

import (
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/config"
	"github.com/hubmon/hubmon/collector/internal/metrics"
)

// Pages for people: every hub at a glance, and one page per hub that hub
// staff can open on a phone after plugging the box in. Plain HTML and inline
// CSS, no JavaScript. A status is always said in words; its colour only
// repeats it, and every text colour has a contrast of at least 4.5:1 (WCAG
// AA) against the background it sits on.

// style is the CSS of the status pages. Text colours against their
// backgrounds: #111 on #fff 18.9:1, on #f2f2f2 16.9:1; links #0b4ea2 on
// #fff 8.0:1, on #f2f2f2 7.1:1; .meta #4d4d4d on #fff 8.5:1, on #f2f2f2
// 7.6:1; badges .ok #0a5227 on #e3f4e8 8.2:1, .bad #8c0a16 on #fde8ea
// 8.3:1, .warn #5c3a00 on #fff0c2 9.0:1, .none #333 on #ebebeb 10.6:1 (the
// Chromium test in package main checks every pair in the rendered pages).
const style = `body{font-family:system-ui,"DejaVu Sans",sans-serif;max-width:60rem;margin:0 auto;padding:0 1rem 1rem;color:#111;background:#fff;line-height:1.5}
a{color:#0b4ea2}
header{border-bottom:1px solid #999;padding:.5rem 0}
nav a{margin-right:1.25rem;display:inline-block;padding:.25rem 0}
h1{font-size:1.6rem;line-height:1.25;margin:1rem 0 .25rem}
.meta{color:#4d4d4d;margin-top:0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.875rem}
caption{text-align:left;font-weight:bold;padding:.5rem 0}
th,td{text-align:left;vertical-align:top;padding:.5rem .3rem;border-bottom:1px solid #999}
thead th{background:#f2f2f2}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:0 .35rem;border:1px solid;border-radius:.25rem;font-weight:bold;white-space:nowrap}
.ok{color:#0a5227;background:#e3f4e8}
.bad{color:#8c0a16;background:#fde8ea}
.warn{color:#5c3a00;background:#fff0c2}
.none{color:#333;background:#ebebeb}
.big{font-size:1.25rem}
.nowrap{white-space:nowrap}
.counts{list-style:none;padding:0;margin:.5rem 0 1rem}
.counts li{display:inline-block;margin:0 1.25rem .5rem 0}
tbody th{font-weight:normal}
tbody th a{font-weight:bold}`

// hub is one hub as the pages show it: what the sites file says of it
// (nothing for a hub not in the file) and what it last reported.
type hub struct {
	metrics.SiteSummary
	// InFile: the hub is in the sites file; Unlisted: there is a sites file
	// and the hub is not in it (auto_register). Reported: the collector has
	// heard from it (it has a summary).
	InFile, Unlisted, Reported               bool
	Name, HubType, Council, Access, Provider string
	ContractDown, ContractUp                 float64
	Status                                   badge
	// Verdict judges the last speed test (against the USO); Class is ""
	// when there is none to give.
	Verdict badge
	// USODown, USOUp are the USO's speeds in Mbit/s, for the page's words.
	USODown, USOUp float64
}

// badge is a status said in words (Text), with a colour (Class) that
// repeats it.
type badge struct{ Text, Class string }

// Title is the hub's name, or its id when the sites file does not name it.
func (h hub) Title() string { return cmp.Or(h.Name, h.Site) }

// Details are the words under the hub's name: its type and council, or
// that it is not in the sites file.
func (h hub) Details() string {
	var parts []string
	for _, p := range []string{hubTypes[h.HubType], h.Council} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if h.Unlisted {
		parts = append(parts, "not in the sites file")
	}
	return strings.Join(parts, " · ")
}

// Line describes the line from the sites file (access technology,
// provider, contract speeds); "" when the file says nothing of it.
func (h hub) Line() string {
	var parts []string
	for _, p := range []string{accessTypes[h.Access], h.Provider} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if h.ContractDown > 0 {
		c := fmt.Sprintf("contract %s\u00a0Mbit/s down", mbit(h.ContractDown))
		if h.ContractUp > 0 {
			c += fmt.Sprintf(", %s up", mbit(h.ContractUp))
		}
		parts = append(parts, c)
	}
	return strings.Join(parts, ", ")
}

var (
	hubTypes    = map[string]string{"library": "Library", "care_home": "Care home", "community_centre": "Community centre"}
	accessTypes = map[string]string{"adsl": "ADSL", "fttc": "FTTC", "fttp": "full fibre (FTTP)", "fixed_wireless": "fixed wireless",
		"mobile": "4G/5G", "satellite": "satellite", "cable": "cable"}
)

func mbit(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}

// hubs joins the sites file and the summaries of what reported: every hub
// of the file (reported or not) and every hub that reported (in the file
// or not), by name, then id.
func (p *pages) hubs() []hub {
	var file []config.Site
	if p.opts.SitesFile != nil {
		file = p.opts.SitesFile()
	}
	byID := make(map[string]int, len(file))
	out := make([]hub, 0, len(file))
	for _, s := range file {
		byID[s.ID] = len(out)
		out = append(out, hub{SiteSummary: metrics.SiteSummary{Site: s.ID}, InFile: true,
			Name: s.Name, HubType: s.HubType, Council: s.Council, Access: s.Access, Provider: s.Provider,
			ContractDown: s.ContractDownloadMbps, ContractUp: s.ContractUploadMbps})
	}
	for _, sum := range p.opts.Sites() {
		i, ok := byID[sum.Site]
		if !ok {
			i = len(out)
			out = append(out, hub{})
		}
		out[i].SiteSummary, out[i].Reported = sum, true
		out[i].Unlisted = p.opts.SitesFile != nil && !ok
	}
	for i := range out {
		p.judge(&out[i])
	}
	slices.SortFunc(out, func(a, b hub) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Title()), strings.ToLower(b.Title())), cmp.Compare(a.Site, b.Site))
	})
	return out
}

// judge sets the hub's status and the verdict on its last speed test.
func (p *pages) judge(h *hub) {
	switch {
	case !h.Reported:
		h.Status = badge{"Never reported", "none"}
	case h.StatusKnown && h.Online:
		h.Status = badge{"Reporting", "ok"}
	case h.StatusKnown:
		h.Status = badge{"Not reporting", "bad"}
	default:
		h.Status = badge{"No status yet", "none"}
	}
	sp, uso := h.Speed, p.opts.USO
	switch {
	case sp == nil:
	case !sp.Success:
		h.Verdict = badge{"Failed", "bad"}
	case uso == nil || sp.Download == nil:
	default:
		h.USODown, h.USOUp = uso.MinDownloadBitsPerSecond/1e6, uso.MinUploadBitsPerSecond/1e6
		meets := *sp.Download >= uso.MinDownloadBitsPerSecond &&
			(uso.MinUploadBitsPerSecond == 0 || sp.Upload != nil && *sp.Upload >= uso.MinUploadBitsPerSecond)
		if meets {
			h.Verdict = badge{"Meets USO", "ok"}
		} else {
			h.Verdict = badge{"Below USO", "warn"}
		}
	}
}

// count is one line of the /hubs summary: how many hubs have a status.
type count struct {
	N    int
	What badge
}

func counts(hubs []hub) []count {
	var out []count
	add := func(b badge) {
		for i := range out {
			if out[i].What == b {
				out[i].N++
				return
			}
		}
		out = append(out, count{1, b})
	}
	for _, text := range []string{"Reporting", "Not reporting", "No status yet", "Never reported"} {
		for _, h := range hubs {
			if h.Status.Text == text {
				add(h.Status)
			}
		}
	}
	for _, h := range hubs {
		if h.Verdict.Text == "Below USO" {
			add(h.Verdict)
		}
	}
	return out
}

var funcs = template.FuncMap{
	"mbps": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return fmt.Sprintf("%.1f", *v/1e6)
	},
	"ms": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return fmt.Sprintf("%.0f", *v*1000)
	},
	"mbit": mbit,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.In(london).Format("15:04, Mon 2 Jan")
	},
}

var london = func() *time.Location {
	if l, err := time.LoadLocation("Europe/London"); err == nil {
		return l
	}
	return time.UTC
}()

// The pages share a head and a header with the links between them; Root
// is the relative path back to the collector's root ("" or "../"), so the
// pages work behind a proxy that serves them under a prefix.
const layout = `{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} – hubmon</title><style>` + style + `</style></head>
<body>
<header><nav aria-label="hubmon pages"><a href="{{or .Root "./"}}">Collector</a><a href="{{.Root}}hubs">All hubs</a>{{if .Report}}<a href="{{.Root}}report.html">Gap report</a>{{end}}</nav></header>
<main>{{end}}
{{define "foot"}}</main>
</body></html>
{{end}}`

var hubsPage = template.Must(template.New("hubs").Funcs(funcs).Parse(layout + `{{template "head" .}}
<h1>Hubs</h1>
{{if not .Hubs}}<p>No hub has reported yet, and there is no sites file listing the hubs.</p>{{else}}
<p>{{len .Hubs}} hubs:</p>
<ul class="counts">{{range .Counts}}<li>{{.N}} <span class="badge {{.What.Class}}">{{.What.Text}}</span>{{if eq .What.Class "warn"}} at the last speed test{{end}}</li>{{end}}</ul>
<div class="scroll" role="region" aria-labelledby="hubs-caption" tabindex="0">
<table>
<caption id="hubs-caption">Each hub's status and last speed test</caption>
<thead><tr><th scope="col">Hub</th><th scope="col">Status</th><th scope="col">Last speed test</th></tr></thead>
<tbody>{{range .Hubs}}<tr>
<th scope="row"><a href="hub/{{.Site}}">{{.Title}}</a>{{with .Details}}<br><span class="meta">{{.}}</span>{{end}}</th>
<td><span class="badge {{.Status.Class}}">{{.Status.Text}}</span>{{if not .LastSeen.IsZero}}<br><span class="meta">seen {{when .LastSeen}}</span>{{end}}</td>
<td>{{with .Speed}}{{if .Success}}<span class="nowrap">{{mbps .Download}} down</span> / <span class="nowrap">{{mbps .Upload}} up</span> Mbit/s<br>{{end}}{{end}}{{if .Verdict.Class}}<span class="badge {{.Verdict.Class}}">{{.Verdict.Text}}</span><br>{{end}}{{with .Speed}}<span class="meta">{{when .At}}</span>{{else}}none yet{{end}}</td>
</tr>{{end}}</tbody>
</table>
</div>
<p class="meta">Times in UK time.{{if .USO}} USO: the Universal Service Obligation's decent broadband, {{mbit .USO.Down}}&nbsp;Mbit/s down and {{mbit .USO.Up}} up.{{end}}</p>{{end}}
{{template "foot"}}`))

var hubPage = template.Must(template.New("hub").Funcs(funcs).Parse(layout + `{{template "head" .}}
{{with .Hub}}<h1>{{.Title}}</h1>
<p class="meta">{{with .Details}}{{.}} · {{end}}hub id <span class="nowrap">{{.Site}}</span></p>
{{if not .Reported}}<p class="big"><span class="badge {{.Status.Class}}">{{.Status.Text}}</span> The collector has not heard from this hub's box yet. Plug it into the hub's router and switch it on: this page says <strong>Reporting</strong> once it is connected.</p>
{{else if and .StatusKnown .Online}}<p class="big"><span class="badge {{.Status.Class}}">{{.Status.Text}}</span> Last heard from at {{when .LastSeen}}.</p>
{{else if .StatusKnown}}<p class="big"><span class="badge {{.Status.Class}}">{{.Status.Text}}</span> Last heard from at {{when .LastSeen}}. Check the box has power and its network cable is plugged into the hub's router.</p>
{{else}}<p class="big"><span class="badge {{.Status.Class}}">{{.Status.Text}}</span> Measurements have arrived, but the box has not said it is online yet.</p>{{end}}
{{if .Reported}}{{with .Speed}}<p class="big">Last speed test {{when .At}}{{if .Success}}: {{mbps .Download}} down / {{mbps .Upload}} up Mbit/s, {{ms .Latency}} ms.{{else}}: it failed{{if .Download}} (download {{mbps .Download}} Mbit/s){{end}}. The box will try again.{{end}}</p>
{{else}}<p class="big">No speed test yet: the first one runs within a few minutes of switching on, or at the next planned time inside opening hours.</p>{{end}}
{{if and .Speed .Speed.Success .Verdict.Class}}<p><span class="badge {{.Verdict.Class}}">{{.Verdict.Text}}</span> {{if eq .Verdict.Class "ok"}}It meets{{else}}It is below{{end}} the Universal Service Obligation's decent broadband: {{mbit .USODown}}&nbsp;Mbit/s down and {{mbit .USOUp}} up.</p>{{end}}{{end}}
{{with .Line}}<p>Line: {{.}}.</p>{{end}}
{{if .AgentVersion}}<p class="meta">Box software {{.AgentVersion}}.</p>{{end}}
{{if .Reported}}<p class="meta">Times in UK time.</p>{{end}}{{end}}
{{template "foot"}}`))

// pages serves /hubs and /hub/{site}.
type pages struct{ opts Options }

// head is what the shared head and header need.
type head struct {
	Title, Root string
	Report      bool
}

func (p *pages) serveHubs(w http.ResponseWriter, r *http.Request) {
	list := p.hubs()
	data := struct {
		head
		Hubs   []hub
		Counts []count
		USO    *struct{ Down, Up float64 }
	}{head: head{Title: "All hubs", Report: p.opts.Report != nil}, Hubs: list, Counts: counts(list)}
	if u := p.opts.USO; u != nil {
		data.USO = &struct{ Down, Up float64 }{u.MinDownloadBitsPerSecond / 1e6, u.MinUploadBitsPerSecond / 1e6}
	}
	p.render(w, hubsPage, data)
}

func (p *pages) serveHub(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("site")
	if !wire.ValidSite(id) {
		http.Error(w, fmt.Sprintf("hub %q: not a valid hub id", id), http.StatusBadRequest)
		return
	}
	for _, h := range p.hubs() {
		if h.Site == id {
			p.render(w, hubPage, struct {
				head
				Hub hub
			}{head{Title: h.Title(), Root: "../", Report: p.opts.Report != nil}, h})
			return
		}
	}
	http.Error(w, fmt.Sprintf("hub %q is not in the sites file and has not reported to this collector", id), http.StatusNotFound)
}

func (p *pages) render(w http.ResponseWriter, t *template.Template, data any) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		p.opts.Logger.Error("status page not rendered", "page", t.Name(), "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(b.String()))
}
