package main

// How hubmon-agent check prints: a line per step for people, live on a
// terminal (the step running, the speed test's rate as it goes), plain lines
// otherwise (a log, a pipe), or JSON at the end with -json.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hubmon/hubmon/agent/internal/probe"
)

// checkDisplay is how the output looks.
type checkDisplay struct {
	json bool
	// live: a terminal; the line of the running step is rewritten.
	live bool
	// color: green, red and grey marks.
	color bool
	// unicode: ✓ ✗ – instead of ASCII.
	unicode bool
}

// detectDisplay: live on a terminal that is not TERM=dumb; colour and
// Unicode marks too, unless NO_COLOR is set or the locale is not UTF-8.
func detectDisplay(w io.Writer, getenv func(string) string) checkDisplay {
	f, ok := w.(*os.File)
	var d checkDisplay
	d.live = ok && isTerminal(f) && getenv("TERM") != "dumb"
	fancy := d.live && getenv("NO_COLOR") == ""
	d.color = fancy
	d.unicode = fancy && utf8Locale(getenv)
	return d
}

// utf8Locale reports whether the locale's character set is UTF-8 (the
// first of LC_ALL, LC_CTYPE and LANG that is set decides).
func utf8Locale(getenv func(string) string) bool {
	for _, name := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := getenv(name); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}

const (
	// checkTitleWidth fits the longest step title.
	checkTitleWidth = 21
	// checkLineWidth is where text wraps: a Raspberry Pi's console and
	// most terminals are 80 columns wide.
	checkLineWidth = 80
	ansiReset      = "\033[0m"
	ansiClearLine  = "\r\033[K"
)

// checkPrinter prints the checklist. Its methods may be called from the
// speed test's goroutines (speedProgress) while the main goroutine prints:
// they are serialised.
type checkPrinter struct {
	w io.Writer
	d checkDisplay

	mu      sync.Mutex
	step    int    // the step running, 0 between steps
	title   string // its title
	showing bool   // a live line is on the screen, without its newline
	phase   string // the speed test's phase last printed
}

func newCheckPrinter(w io.Writer, d checkDisplay) *checkPrinter {
	return &checkPrinter{w: w, d: d}
}

// mark returns the mark of a status, padded to one width, coloured if
// wanted; "running" is the mark of a step in progress.
func (p *checkPrinter) mark(s checkStatus) string {
	type marks struct{ text, color string }
	var m marks
	switch s {
	case checkPass:
		m = marks{"ok", "\033[32m"}
		if p.d.unicode {
			m.text = "✓"
		}
	case checkFail:
		m = marks{"FAIL", "\033[1;31m"}
		if p.d.unicode {
			m.text = "✗"
		}
	case checkSkip:
		m = marks{"--", "\033[2m"}
		if p.d.unicode {
			m.text = "–"
		}
	default: // running
		m = marks{"..", "\033[2m"}
		if p.d.unicode {
			m.text = "…"
		}
	}
	width := 4
	if p.d.unicode {
		width = 1
	}
	text := fmt.Sprintf("%*s", width, m.text)
	if p.d.color {
		text = m.color + text + ansiReset
	}
	return text
}

// prefix is the start of a step's line; its visible width is the indent of
// the lines that follow.
func (p *checkPrinter) prefix(s checkStatus, n int, title string) (string, int) {
	width := 4
	if p.d.unicode {
		width = 1
	}
	plain := fmt.Sprintf(" %2d. %-*s ", n, checkTitleWidth, title)
	return " " + p.mark(s) + plain, 1 + width + utf8.RuneCountInString(plain)
}

func (p *checkPrinter) header(configPath string) {
	if p.d.json {
		return
	}
	fmt.Fprintf(p.w, "hubmon-agent %s: checking this hub's broadband monitor (settings: %s)\n\n", version, configPath)
}

// start shows, on a terminal, that step n is running.
func (p *checkPrinter) start(n int, title string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.step, p.title, p.phase = n, title, ""
	if p.d.json || !p.d.live {
		return
	}
	pre, _ := p.prefix("running", n, title)
	fmt.Fprint(p.w, ansiClearLine+pre)
	p.showing = true
}

// speedProgress shows the speed test's progress: the rate as it goes on a
// terminal, a line per phase otherwise.
func (p *checkPrinter) speedProgress(sp probe.SpeedtestProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d.json || p.step == 0 {
		return // JSON, or the step is over (a cancelled run's last calls)
	}
	words := map[string]string{
		"server selection": "finding the speed-test server",
		"ping":             "measuring the latency",
		"download":         "measuring the download",
		"upload":           "measuring the upload",
	}[sp.Phase]
	if words == "" {
		words = sp.Phase
	}
	if !p.d.live {
		// a line per phase, marked as running, for a log
		if sp.Phase != p.phase {
			pre, _ := p.prefix("running", p.step, p.title)
			fmt.Fprintf(p.w, "%s%s...\n", pre, words)
		}
		p.phase = sp.Phase
		return
	}
	p.phase = sp.Phase
	pre, _ := p.prefix("running", p.step, p.title)
	text := words + "..."
	if sp.Planned > 0 {
		// short enough for an 80-column console: a line that wraps cannot
		// be rewritten
		text = fmt.Sprintf("%-8s %s %6.1f Mbit/s", sp.Phase, p.bar(float64(sp.Elapsed)/float64(sp.Planned)), sp.BitsPerSecond/1e6)
	}
	fmt.Fprint(p.w, ansiClearLine+pre+text)
	p.showing = true
}

// bar draws a progress bar of done (0 to 1).
func (p *checkPrinter) bar(done float64) string {
	const width = 16
	n := int(min(max(done, 0), 1) * width)
	if p.d.unicode {
		return "▕" + strings.Repeat("█", n) + strings.Repeat("░", width-n) + "▏"
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// result prints a step's outcome: the mark, what was found and, for a
// failure, what to do; then a note or the technical details.
func (p *checkPrinter) result(r checkResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.step = 0
	if p.d.json {
		return
	}
	if p.showing {
		fmt.Fprint(p.w, ansiClearLine)
		p.showing = false
	}
	pre, indent := p.prefix(r.Status, r.Step, r.Title)
	text := r.Summary
	if r.Status != checkSkip {
		text += " (" + shortDuration(secondsDuration(r.DurationSeconds)) + ")"
	}
	pad := strings.Repeat(" ", indent)
	for i, line := range wrap(text, checkLineWidth-indent) {
		if i == 0 {
			fmt.Fprintln(p.w, pre+line)
		} else {
			fmt.Fprintln(p.w, pad+line)
		}
	}
	if r.Advice != "" {
		lead := "Note: "
		if r.Status == checkFail {
			lead = "What to do: "
		}
		for _, line := range wrap(lead+lowerFirst(r.Advice), checkLineWidth-indent) {
			fmt.Fprintln(p.w, pad+line)
		}
	}
	if r.Detail != "" {
		for i, line := range strings.Split(strings.TrimSpace(r.Detail), "\n") {
			if i == 0 {
				fmt.Fprintln(p.w, pad+"Details: "+line)
			} else {
				fmt.Fprintln(p.w, pad+"  "+line)
			}
		}
	}
}

// note prints a remark between steps, indented like the findings.
func (p *checkPrinter) note(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d.json {
		return
	}
	_, indent := p.prefix(checkPass, 1, "")
	for _, line := range wrap("Note: "+lowerFirst(text), checkLineWidth-indent) {
		fmt.Fprintln(p.w, strings.Repeat(" ", indent)+line)
	}
}

func (p *checkPrinter) interrupted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.step = 0
	if p.d.json {
		return
	}
	if p.showing {
		fmt.Fprint(p.w, ansiClearLine)
		p.showing = false
	}
	fmt.Fprintln(p.w, "\nInterrupted: the check did not finish.")
}

// footer ends the checklist with the verdict, or prints the JSON report.
func (p *checkPrinter) footer(rep checkReport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d.json {
		p.w.Write(marshalReport(rep))
		return
	}
	failed := 0
	for _, r := range rep.Steps {
		if r.Status == checkFail {
			failed++
		}
	}
	fmt.Fprintln(p.w)
	var text string
	switch {
	case rep.Passed:
		text = "All checks passed: this hub's broadband monitor is working."
		if !rep.ServiceRunning {
			text += " The hubmon service is not running on this Pi, though, so nothing is measured between checks: start it with: sudo systemctl enable --now hubmon-agent"
		}
	case failed == 0:
		text = "The check could not finish: see the notes above."
	case failed == 1:
		text = "1 problem found. What to do is on its line above."
	default:
		text = fmt.Sprintf("%d problems found. Start with the first: the others may have the same cause.", failed)
	}
	for _, line := range wrap(text, checkLineWidth) {
		fmt.Fprintln(p.w, line)
	}
}

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// wrap breaks text into lines of at most width runes, at spaces (a longer
// word stays whole).
func wrap(text string, width int) []string {
	var lines []string
	var cur strings.Builder
	curLen := 0
	for _, word := range strings.Fields(text) {
		n := utf8.RuneCountInString(word)
		if curLen > 0 && curLen+1+n > width {
			lines = append(lines, cur.String())
			cur.Reset()
			curLen = 0
		}
		if curLen > 0 {
			cur.WriteByte(' ')
			curLen++
		}
		cur.WriteString(word)
		curLen += n
	}
	if curLen > 0 || len(lines) == 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// lowerFirst lowers the first letter of s unless it starts a word in
// capitals (NTP).
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	if next, _ := utf8.DecodeRuneInString(s[n:]); unicode.IsUpper(next) {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}
