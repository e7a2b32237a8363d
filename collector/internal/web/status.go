package web

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/metrics"
)

// Pages for people: every hub at a glance, and one page per hub that hub
// staff can open on a phone after plugging the box in. Plain HTML, no
// JavaScript, readable contrast.

const style = `body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#111;background:#fff;line-height:1.5}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem;border-bottom:1px solid #bbb}
.ok{color:#05622b;font-weight:bold}.bad{color:#a3000b;font-weight:bold}.big{font-size:1.3rem}`

var funcs = template.FuncMap{
	"mbps": func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f", *v/1e6)
	},
	"ms": func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.0f", *v*1000)
	},
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

var hubsPage = template.Must(template.New("hubs").Funcs(funcs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hubmon: all hubs</title><style>` + style + `</style></head>
<body><main>
<h1>Hubs</h1>
{{if not .}}<p>No hub has reported yet.</p>{{else}}
<table>
<caption>Latest speed test of each hub (times in UK time)</caption>
<thead><tr><th scope="col">Hub</th><th scope="col">Status</th><th scope="col">Last seen</th><th scope="col">Last speed test</th><th scope="col">Down Mbit/s</th><th scope="col">Up Mbit/s</th></tr></thead>
<tbody>{{range .}}<tr>
<th scope="row"><a href="hub/{{.Site}}">{{.Site}}</a></th>
<td>{{if .Online}}<span class="ok">reporting</span>{{else if .StatusKnown}}<span class="bad">offline</span>{{else}}unknown{{end}}</td>
<td>{{when .LastSeen}}</td>
<td>{{if .Speed}}{{when .Speed.At}}{{if not .Speed.Success}} <span class="bad">(failed)</span>{{end}}{{else}}none yet{{end}}</td>
<td>{{if .Speed}}{{mbps .Speed.Download}}{{else}}-{{end}}</td>
<td>{{if .Speed}}{{mbps .Speed.Upload}}{{else}}-{{end}}</td>
</tr>{{end}}</tbody>
</table>{{end}}
<p><a href="./">Collector home</a></p>
</main></body></html>
`))

var hubPage = template.Must(template.New("hub").Funcs(funcs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hubmon: {{.Site}}</title><style>` + style + `</style></head>
<body><main>
<h1>{{.Site}}</h1>
{{if .Online}}<p class="big"><span class="ok">Reporting.</span> Last heard from at {{when .LastSeen}}.</p>
{{else if .StatusKnown}}<p class="big"><span class="bad">Not reporting.</span> Last heard from at {{when .LastSeen}}. Check the box has power and its network cable is plugged into the hub's router.</p>
{{else}}<p class="big">Measurements have arrived, but the box has not said it is online yet.</p>{{end}}
{{with .Speed}}<p class="big">Last speed test {{when .At}}{{if .Success}}: {{mbps .Download}} down / {{mbps .Upload}} up Mbit/s, {{ms .Latency}} ms.{{else}}: <span class="bad">it failed</span>{{if .Download}} (download {{mbps .Download}} Mbit/s){{end}}. The box will try again.{{end}}</p>
{{else}}<p class="big">No speed test yet: the first one runs within a few minutes of switching on, or at the next planned time inside opening hours.</p>{{end}}
{{if .AgentVersion}}<p>Box software {{.AgentVersion}}.</p>{{end}}
<p><a href="../hubs">All hubs</a></p>
</main></body></html>
`))

func serveHubs(sites func() []metrics.SiteSummary) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		hubsPage.Execute(w, sites())
	}
}

func serveHub(sites func() []metrics.SiteSummary) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("site")
		if !wire.ValidSite(id) {
			http.Error(w, fmt.Sprintf("hub %q: not a valid hub id", id), http.StatusBadRequest)
			return
		}
		for _, s := range sites() {
			if s.Site == id {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				hubPage.Execute(w, s)
				return
			}
		}
		http.Error(w, fmt.Sprintf("hub %q has not reported to this collector", id), http.StatusNotFound)
	}
}
