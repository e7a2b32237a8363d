package main_test

// hubmon's own pages in a real browser: the real hubmon-collector, started on
// a history with known measurements and a sites file, serves /hubs,
// /hub/{site} and /report.html on 127.0.0.1; headless Chromium (Debian's
// chromium) renders each one, the test reads the rendered DOM (the figures,
// the structure assistive technology relies on, the contrast of every text
// colour against its background) and saves screenshots at phone and desktop
// sizes for a person to look at.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/html"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/store"
)

const pagesSites = `sites:
  - id: leeds-central
    name: Leeds Central Library
    hub_type: library
    council: Leeds City Council
    contract_download_mbps: 80
    contract_upload_mbps: 20
    access: fttp
    provider: Example Fibre
  - id: bradford-care
    name: Bradford Care Home
    hub_type: care_home
    council: City of Bradford Metropolitan District Council
  - id: wakefield
    name: Wakefield Library
    hub_type: library
    council: Wakefield Council
`

// chromiumFlags keep headless Chromium off the network (this machine's is
// closed: without them it hangs on background connections).
var chromiumFlags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync"}

// chromiumTimeout bounds one run of Chromium.
var chromiumTimeout = 60 * time.Second

// Screen sizes of the screenshots: a phone (what hub staff hold) and a
// desktop.
var (
	phoneSize   = [2]int{390, 844}
	desktopSize = [2]int{1280, 900}
)

func TestPagesInChromium(t *testing.T) {
	chromium := findChromium(t)
	s := newSystem(t, false)
	addUser(t, s.collectorBin, filepath.Join(s.dir, "passwd"), "leeds-central", "leeds-secret")
	writeFile(t, filepath.Join(s.dir, "sites.yml"), pagesSites)
	conf, err := os.ReadFile(s.collectorConf)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.collectorConf, string(conf)+"sites_file: sites.yml\nauto_register: true\n")

	// the history, as a collector left it: leeds-central's speed tests (the
	// last one and the median 34.2/8.1 Mbit/s: meets the USO);
	// bradford-care's (below it) and its agent, online before the restart
	// (so offline now: it has to reconnect); pop-up-hub, not in the sites
	// file (auto_register). wakefield never reported.
	now := time.Now()
	leedsAt := now.Add(-95 * time.Minute).UTC().Truncate(time.Minute)
	bradfordAt := now.Add(-3 * time.Hour).UTC().Truncate(time.Minute)
	seedPagesHistory(t, s.db, []wire.Measurement{
		speedtest("leeds-central", 1, leedsAt.Add(-48*time.Hour), 40e6, 9e6),
		speedtest("leeds-central", 2, leedsAt.Add(-24*time.Hour), 30e6, 6e6),
		speedtest("leeds-central", 3, leedsAt, 34.2e6, 8.1e6),
		speedtest("bradford-care", 1, bradfordAt, 6.4e6, 0.6e6),
		speedtest("pop-up-hub", 1, bradfordAt, 18.5e6, 1.2e6),
	}, []wire.Status{status("bradford-care", bradfordAt)})
	s.startCollector()

	// leeds-central's box connects and says it is online, as a real agent
	// does on every connection
	publishStatus(t, s.brokerURL, "leeds-central", "leeds-secret", status("leeds-central", time.Now()))
	waitFor(t, "leeds-central online", 30*time.Second, func() bool {
		v, ok := sample(must(scrape(t, s.metricsURL("/metrics"))), "hubmon_agent_up", map[string]string{"site": "leeds-central"})
		return ok && v == 1
	})
	waitFor(t, "the gap report", 30*time.Second, func() bool {
		code, _, err := get(s.metricsURL("/report.html"))
		return err == nil && code == 200
	})

	dir := artifactsDir(t)
	leedsWhen := ukTime(leedsAt)
	for _, pg := range []struct {
		name, path string
		check      func(t *testing.T, doc *html.Node)
	}{
		{"hubs", "/hubs", func(t *testing.T, doc *html.Node) {
			wantRow(t, doc, "Leeds Central Library", "Library · Leeds City Council", "Reporting", "34.2 down / 8.1 up Mbit/s Meets USO "+leedsWhen)
			wantRow(t, doc, "Bradford Care Home", "Not reporting", "6.4 down / 0.6 up Mbit/s Below USO "+ukTime(bradfordAt))
			wantRow(t, doc, "pop-up-hub", "not in the sites file", "No status yet", "18.5 down / 1.2 up Mbit/s Meets USO")
			wantRow(t, doc, "Wakefield Library", "Never reported none yet")
			wantText(t, doc, "4 hubs: 1 Reporting 1 Not reporting 1 No status yet 1 Never reported 1 Below USO at the last speed test")
		}},
		{"hub-leeds-central", "/hub/leeds-central", func(t *testing.T, doc *html.Node) {
			if h1 := findAll(doc, "h1"); len(h1) != 1 || text(h1[0]) != "Leeds Central Library" {
				t.Errorf("want the hub's name as the heading")
			}
			wantText(t, doc, "Library · Leeds City Council · hub id leeds-central",
				"Reporting Last heard from at",
				"Last speed test "+leedsWhen+": 34.2 down / 8.1 up Mbit/s, 12 ms.",
				"Meets USO It meets the Universal Service Obligation's decent broadband: 10 Mbit/s down and 1 up.",
				"Line: full fibre (FTTP), Example Fibre, contract 80 Mbit/s down, 20 up.")
		}},
		{"hub-bradford-care", "/hub/bradford-care", func(t *testing.T, doc *html.Node) {
			wantText(t, doc, "Not reporting Last heard from at", "network cable",
				"Last speed test "+ukTime(bradfordAt)+": 6.4 down / 0.6 up Mbit/s", "Below USO It is below")
		}},
		{"report", "/report.html", func(t *testing.T, doc *html.Node) {
			wantRow(t, doc, "Leeds Central Library", "leeds-central", "Leeds City Council", "library", "fttp (Example Fibre)",
				"80 / 20 3 34.2 / 8.1") // contract, speed tests, median
			wantRow(t, doc, "Bradford Care Home", "6.4 / 0.6", "below")
		}},
	} {
		t.Run(pg.name, func(t *testing.T) {
			url := s.metricsURL(pg.path)
			phone := filepath.Join(dir, pg.name+"-phone.png")
			dom := runChromium(t, chromium, "--dump-dom", screenshotFlag(phone), windowSize(phoneSize), url)
			doc, err := html.Parse(strings.NewReader(dom))
			if err != nil {
				t.Fatalf("parse the DOM of %s: %v", pg.path, err)
			}
			checkAccessible(t, doc)
			checkContrast(t, doc)
			pg.check(t, doc)
			desktop := filepath.Join(dir, pg.name+"-desktop.png")
			runChromium(t, chromium, screenshotFlag(desktop), windowSize(desktopSize), url)
			checkScreenshot(t, phone, phoneSize)
			checkScreenshot(t, desktop, desktopSize)
		})
	}
	t.Logf("screenshots in %s", dir)
	s.collector.stop(15 * time.Second)
}

// findChromium returns Debian's chromium. Without it the test is skipped,
// unless HUBMON_REQUIRE_CHROMIUM is set (make test sets it), and then it
// fails: CI must not pass by skipping.
func findChromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err == nil {
		return bin
	}
	if os.Getenv("HUBMON_REQUIRE_CHROMIUM") != "" {
		t.Fatal("chromium not found and HUBMON_REQUIRE_CHROMIUM is set: sudo apt-get install -y chromium fonts-dejavu-core (.ci/run does)")
	}
	t.Skip("chromium not found (sudo apt-get install -y chromium fonts-dejavu-core); set HUBMON_REQUIRE_CHROMIUM=1 to fail instead")
	return ""
}

// artifactsDir is where the screenshots go: $HUBMON_ARTIFACTS, or the
// test's temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HUBMON_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("HUBMON_ARTIFACTS: %v", err)
	}
	return dir
}

func screenshotFlag(path string) string { return "--screenshot=" + path }
func windowSize(s [2]int) string        { return fmt.Sprintf("--window-size=%d,%d", s[0], s[1]) }

// runChromium runs headless Chromium with a fresh profile for at most a
// minute and returns its standard output (the DOM, with --dump-dom). The
// browser and every process it started are killed when it overruns, and
// whatever is left of them when it exits.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append(chromiumFlags[:len(chromiumFlags):len(chromiumFlags)],
		"--user-data-dir="+t.TempDir()), args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group: the launcher script, the browser, renderers
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers of this run only
	}
	if ctx.Err() != nil {
		t.Fatalf("chromium %s: no result within %s; killed\n%s", strings.Join(args, " "), time.Since(t0).Round(time.Second), tail(stderr.String(), 3000))
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 3000))
	}
	return stdout.String()
}

// checkScreenshot checks that a screenshot is a PNG of the window's size
// with something drawn on it (text brings many shades).
func checkScreenshot(t *testing.T, path string, size [2]int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if got := img.Bounds().Size(); got != (image.Point{size[0], size[1]}) {
		t.Errorf("screenshot %s is %v, want %dx%d", path, got, size[0], size[1])
	}
	colours := map[[4]uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			c0, c1, c2, c3 := img.At(x, y).RGBA()
			colours[[4]uint32{c0, c1, c2, c3}] = true
		}
	}
	if len(b) < 10_000 || len(colours) < 20 {
		t.Errorf("screenshot %s looks empty: %d bytes, %d colours", path, len(b), len(colours))
	}
}

// ukTime is how the pages write a time.
func ukTime(t time.Time) string {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("15:04, Mon 2 Jan")
}

func speedtest(site string, seq int64, at time.Time, down, up float64) wire.Measurement {
	return wire.Measurement{Version: wire.Version, MessageID: fmt.Sprintf("%s-seed-%04d", site, seq), Site: site,
		AgentID: site + "-agent", Seq: seq, Probe: "local", Kind: wire.KindSpeedtest, MeasuredAt: at,
		DurationSeconds: 25, Success: true, Speedtest: &wire.Speedtest{ServerID: "collector", ServerHost: "127.0.0.1",
			DownloadBitsPerSecond: wire.Float(down), UploadBitsPerSecond: wire.Float(up),
			LatencySeconds: wire.Float(0.012), JitterSeconds: wire.Float(0.002),
			DownloadBytes: int64(down / 8 * 10), UploadBytes: int64(up / 8 * 10)}}
}

func status(site string, at time.Time) wire.Status {
	return wire.Status{Version: wire.Version, Site: site, AgentID: site + "-agent", State: wire.StateOnline, Session: 1,
		ConnectedAt: at.UTC(), SentAt: at.UTC(), AgentVersion: "1.4.0", OS: "linux", Arch: "arm64", UptimeSeconds: 60}
}

// seedPagesHistory writes measurements and agent statuses into the
// collector's history before it starts.
func seedPagesHistory(t *testing.T, path string, ms []wire.Measurement, sts []wire.Status) {
	t.Helper()
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var items []store.Item
	for i := range ms {
		b, _ := json.Marshal(&ms[i])
		items = append(items, store.Item{Measurement: &ms[i], Payload: b, ReceivedAt: ms[i].MeasuredAt.Add(time.Minute)})
	}
	for i := range sts {
		b, _ := json.Marshal(&sts[i])
		items = append(items, store.Item{Status: &sts[i], Payload: b, ReceivedAt: sts[i].SentAt})
	}
	if _, err := st.Commit(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

// publishStatus publishes an agent's status as the site, over MQTT.
func publishStatus(t *testing.T, brokerURL, user, password string, st wire.Status) {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(user).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect as %s: %v", user, tok.Error())
	}
	defer c.Disconnect(250)
	b, _ := json.Marshal(st)
	if tok := c.Publish(wire.Topic(user, wire.TopicStatus), 1, true, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish the status of %s: %v", user, tok.Error())
	}
}

// The rendered DOM.

func findAll(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	return strings.Contains(" "+v+" ", " "+class+" ")
}

// text is the text of n as a reader meets it: whitespace collapsed, a
// space for each <br> and around each block (list item, cell, paragraph).
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		switch {
		case n.Type == html.TextNode:
			b.WriteString(n.Data)
		case n.Type == html.ElementNode && (n.Data == "style" || n.Data == "script"):
			return
		case n.Type == html.ElementNode && blocks[n.Data]:
			b.WriteString(" ")
			defer b.WriteString(" ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

var blocks = map[string]bool{"br": true, "p": true, "div": true, "li": true, "ul": true, "tr": true, "td": true, "th": true,
	"caption": true, "h1": true, "h2": true, "header": true, "main": true, "nav": true}

// wantText checks that the page's text says each of want.
func wantText(t *testing.T, doc *html.Node, want ...string) {
	t.Helper()
	body := text(doc)
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("the page does not say %q:\n%s", w, body)
		}
	}
}

// wantRow checks that a table row whose header cell starts with hub says
// each of want, in cells of their own or within a cell's text.
func wantRow(t *testing.T, doc *html.Node, hub string, want ...string) {
	t.Helper()
	for _, tr := range findAll(doc, "tr") {
		ths := findAll(tr, "th")
		if len(ths) == 0 || !strings.HasPrefix(text(ths[0]), hub) {
			continue
		}
		row := text(tr)
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("the row of %s does not say %q: %q", hub, w, row)
			}
		}
		return
	}
	t.Errorf("no table row for %s:\n%s", hub, text(doc))
}

// checkAccessible checks the structure assistive technology relies on: the
// page's language, a title, one h1, a main landmark, a viewport for phones,
// tables with a caption and header cells that say what they head, a name
// for every link, every status said in words, and no script.
func checkAccessible(t *testing.T, doc *html.Node) {
	t.Helper()
	htmls := findAll(doc, "html")
	if lang, _ := attr(htmls[0], "lang"); lang == "" {
		t.Error("<html> has no lang")
	}
	if ts := findAll(doc, "title"); len(ts) != 1 || text(ts[0]) == "" {
		t.Errorf("want one non-empty <title>, got %d", len(ts))
	}
	if hs := findAll(doc, "h1"); len(hs) != 1 || text(hs[0]) == "" {
		t.Errorf("want one non-empty <h1>, got %d", len(hs))
	}
	if ms := findAll(doc, "main"); len(ms) != 1 {
		t.Errorf("want one <main> landmark, got %d", len(ms))
	}
	viewport := false
	for _, m := range findAll(doc, "meta") {
		name, _ := attr(m, "name")
		content, _ := attr(m, "content")
		viewport = viewport || name == "viewport" && strings.Contains(content, "width=device-width")
	}
	if !viewport {
		t.Error("no <meta name=viewport content=width=device-width>: phones would show it zoomed out")
	}
	if s := findAll(doc, "script"); len(s) > 0 {
		t.Errorf("%d <script> elements: the pages work without JavaScript", len(s))
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("<%s %s=...>: an event handler (JavaScript)", n.Data, a.Key)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	for i, table := range findAll(doc, "table") {
		caps := findAll(table, "caption")
		if len(caps) != 1 || text(caps[0]) == "" {
			t.Errorf("table %d has no caption", i)
		}
		for _, th := range findAll(table, "th") {
			if scope, _ := attr(th, "scope"); scope != "col" && scope != "row" && scope != "colgroup" && scope != "rowgroup" {
				t.Errorf("table %d: <th> %q has scope %q, want col or row", i, text(th), scope)
			}
		}
	}
	for _, a := range findAll(doc, "a") {
		if text(a) == "" {
			t.Errorf("a link with no text: %v", a.Attr)
		}
	}
	for _, n := range findAll(doc, "span") {
		if hasClass(n, "badge") && text(n) == "" {
			t.Error("a status badge with no words: colour alone")
		}
	}
}

// checkContrast reads the page's CSS (its <style> elements and style
// attributes) and checks every text colour against every background it can
// sit on, to WCAG 2 AA for normal text: 4.5:1. A rule that sets both a
// colour and a background (a badge) is checked as that pair; a colour set
// without a background is checked against the page's background and every
// background set without a colour (table headers); links keep the
// browser's colours unless the CSS sets them.
func checkContrast(t *testing.T, doc *html.Node) {
	t.Helper()
	var css strings.Builder
	for _, st := range findAll(doc, "style") {
		for c := st.FirstChild; c != nil; c = c.NextSibling {
			css.WriteString(c.Data)
		}
	}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if v, ok := attr(n, "style"); ok {
				fmt.Fprintf(&css, "\n[style]{%s}", v)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	rules, err := parseCSS(css.String())
	if err != nil {
		t.Fatalf("the page's CSS: %v", err)
	}
	pageFG, pageBG := rgb{0, 0, 0}, rgb{255, 255, 255} // the browser's
	links := true
	for _, r := range rules {
		if r.selector == "body" || r.selector == "html" {
			if r.fg != nil {
				pageFG = *r.fg
			}
			if r.bg != nil {
				pageBG = *r.bg
			}
		}
		if r.selector == "a" && r.fg != nil {
			links = false
		}
	}
	type pair struct {
		what   string
		fg, bg rgb
	}
	fgs := []pair{{what: "page text", fg: pageFG}}
	bgs := []pair{{what: "page background", bg: pageBG}}
	if links && len(findAll(doc, "a")) > 0 {
		fgs = append(fgs, pair{what: "link (browser default)", fg: rgb{0, 0, 0xee}}, pair{what: "visited link (browser default)", fg: rgb{0x55, 0x1a, 0x8b}})
	}
	var pairs []pair
	for _, r := range rules {
		switch {
		case r.fg != nil && r.bg != nil:
			pairs = append(pairs, pair{r.selector, *r.fg, *r.bg})
		case r.fg != nil:
			fgs = append(fgs, pair{what: r.selector, fg: *r.fg})
		case r.bg != nil:
			bgs = append(bgs, pair{what: r.selector, bg: *r.bg})
		}
	}
	for _, f := range fgs {
		for _, b := range bgs {
			pairs = append(pairs, pair{f.what + " on " + b.what, f.fg, b.bg})
		}
	}
	for _, p := range pairs {
		if c := contrast(p.fg, p.bg); c < 4.5 {
			t.Errorf("contrast of %s: %v on %v is %.2f:1, below WCAG AA's 4.5:1", p.what, p.fg, p.bg, c)
		}
	}
	if len(pairs) < 2 {
		t.Errorf("only %d colour pairs found in the CSS:\n%s", len(pairs), css.String())
	}
}

type rgb [3]uint8

func (c rgb) String() string { return fmt.Sprintf("#%02x%02x%02x", c[0], c[1], c[2]) }

type cssRule struct {
	selector string
	fg, bg   *rgb
}

// parseCSS reads the colour and background of each rule (one entry per
// selector of a list). It refuses what it cannot judge: at-rules, and
// colours it cannot read.
func parseCSS(css string) ([]cssRule, error) {
	css = regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(css, "")
	if strings.Contains(css, "@") {
		return nil, errors.New("an at-rule (@media, @import ...): the contrast check cannot judge it; extend it")
	}
	var out []cssRule
	for _, block := range strings.Split(css, "}") {
		sel, decls, ok := strings.Cut(block, "{")
		if !ok {
			if strings.TrimSpace(block) != "" {
				return nil, fmt.Errorf("cannot read %q", block)
			}
			continue
		}
		var r cssRule
		for _, d := range strings.Split(decls, ";") {
			prop, val, ok := strings.Cut(d, ":")
			if !ok {
				continue
			}
			prop, val = strings.ToLower(strings.TrimSpace(prop)), strings.ToLower(strings.TrimSpace(val))
			switch prop {
			case "color":
				c, err := cssColour(val)
				if err != nil {
					return nil, fmt.Errorf("%s{color:%s}: %v", strings.TrimSpace(sel), val, err)
				}
				r.fg = c
			case "background", "background-color":
				var c *rgb
				for _, tok := range strings.Fields(val) {
					if got, err := cssColour(tok); err == nil && got != nil {
						c = got
					}
				}
				if c == nil && prop == "background-color" && val != "transparent" && val != "inherit" {
					return nil, fmt.Errorf("%s{%s:%s}: cannot read the colour", strings.TrimSpace(sel), prop, val)
				}
				r.bg = c
			}
		}
		if r.fg == nil && r.bg == nil {
			continue
		}
		for _, s := range strings.Split(sel, ",") {
			r.selector = strings.Join(strings.Fields(s), " ")
			out = append(out, r)
		}
	}
	return out, nil
}

// cssColour reads #rgb, #rrggbb, rgb(r,g,b) and a few names; nil for
// inherit and currentColor (the text keeps its colour).
func cssColour(v string) (*rgb, error) {
	switch v {
	case "inherit", "currentcolor", "transparent":
		return nil, nil
	case "white":
		return &rgb{255, 255, 255}, nil
	case "black":
		return &rgb{0, 0, 0}, nil
	}
	if m := regexp.MustCompile(`^#([0-9a-f]{3}|[0-9a-f]{6})$`).FindStringSubmatch(v); m != nil {
		h := m[1]
		if len(h) == 3 {
			h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
		}
		n, _ := strconv.ParseUint(h, 16, 32)
		return &rgb{uint8(n >> 16), uint8(n >> 8), uint8(n)}, nil
	}
	if m := regexp.MustCompile(`^rgb\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)$`).FindStringSubmatch(v); m != nil {
		var c rgb
		for i := range c {
			n, _ := strconv.Atoi(m[i+1])
			c[i] = uint8(min(n, 255))
		}
		return &c, nil
	}
	return nil, fmt.Errorf("not a colour this check reads (#rgb, #rrggbb, rgb(), white, black)")
}

// contrast is the WCAG 2 contrast ratio of two colours.
func contrast(a, b rgb) float64 {
	lum := func(c rgb) float64 {
		var l [3]float64
		for i, v := range c {
			s := float64(v) / 255
			if s <= 0.04045 {
				l[i] = s / 12.92
			} else {
				l[i] = math.Pow((s+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	la, lb := lum(a), lum(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}
