package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadSitesInvalid loads each testdata/sites-invalid-*.yml and compares
// the error with sites-invalid-*.err. Run with -update to rewrite them.
func TestLoadSitesInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/sites-invalid-*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/sites-invalid-*.yml: %v", err)
	}
	for _, file := range files {
		golden := strings.TrimSuffix(file, ".yml") + ".err"
		t.Run(filepath.Base(file), func(t *testing.T) {
			sites, err := LoadSites(file, testEnv)
			if err == nil {
				t.Fatalf("LoadSites succeeded, want an error; sites: %+v", sites)
			}
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("LoadSites(%s) error differs from %s (run go test -update to accept it)\ngot:\n%s\nwant:\n%s", file, golden, got, want)
			}
		})
	}
	errs, _ := filepath.Glob("testdata/sites-invalid-*.err")
	for _, e := range errs {
		if _, err := os.Stat(strings.TrimSuffix(e, ".err") + ".yml"); err != nil {
			t.Errorf("%s has no .yml", e)
		}
	}
}

func TestLoadSitesValid(t *testing.T) {
	sites, err := LoadSites("testdata/sites-valid.yml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 3 {
		t.Fatalf("%d sites, want 3", len(sites))
	}
	london, _ := time.LoadLocation("Europe/London")
	h := func(from, to string) TimeRange {
		t.Helper()
		r, err := parseTimeRange(from + "-" + to)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	leeds := Site{
		ID: "leeds-central-library", Name: "Leeds Central Library", HubType: "library", Council: "Leeds City Council",
		ONSCode: "E08000035", Postcode: "LS1 3AB", Access: "fttc", Provider: "BT",
		HasLocation: true, Latitude: 53.8003, Longitude: -1.5491,
		HasHours: true, Timezone: "Europe/London", Location: london, PublicSeats: 24,
		ContractDownloadMbps: 80, ContractUploadMbps: 20,
	}
	for _, d := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday} {
		leeds.Hours[d] = []TimeRange{h("09:00", "20:00")}
	}
	leeds.Hours[time.Friday] = []TimeRange{h("09:00", "17:00")}
	leeds.Hours[time.Saturday] = []TimeRange{h("10:00", "13:00"), h("14:00", "17:00")}
	diff(t, sites[0], leeds)

	least := Site{ID: "chapeltown-community-centre", Name: "Chapeltown Community Centre", HubType: "community_centre",
		Timezone: "Europe/London", Location: london, PublicSeats: -1}
	diff(t, sites[1], least)

	grange := sites[2]
	if grange.PublicSeats != 0 || grange.ContractUploadMbps != 0.75 || grange.Postcode != "LS16 6EB" ||
		len(grange.Hours[time.Monday]) != 2 || grange.Hours[time.Monday][1].To != 24*time.Hour || !grange.Hours.Open(time.Sunday, time.Hour) {
		t.Errorf("grange: %+v", grange)
	}
}

// TestParseSitesVariables: ${VAR} works in the sites file as in the config.
func TestParseSitesVariables(t *testing.T) {
	sites, err := ParseSites([]byte("sites:\n  - {id: leeds-1, name: \"Leeds ${HUB}\", hub_type: library}\n"),
		func(n string) string { return map[string]string{"HUB": "One"}[n] })
	if err != nil || len(sites) != 1 || sites[0].Name != "Leeds One" {
		t.Fatalf("%+v %v", sites, err)
	}
	if _, err := ParseSites([]byte("sites:\n  - {id: leeds-1, name: \"Leeds ${HUB}\", hub_type: library}\n"), nil); err == nil ||
		err.Error() != "line 2: sites[0].name: environment variable HUB is not set (or is empty)" {
		t.Fatalf("unset variable: %v", err)
	}
	if sites, err := ParseSites(nil, nil); err != nil || len(sites) != 0 {
		t.Fatalf("empty file: %v %v", sites, err)
	}
}

func TestPostcodes(t *testing.T) {
	for in, want := range map[string]string{
		"ls13ab": "LS1 3AB", "LS1 3AB": "LS1 3AB", " sw1a  1aa ": "SW1A 1AA", "M1 1AE": "M1 1AE",
		"EC1A 1BB": "EC1A 1BB", "W1A 0AX": "W1A 0AX", "gir0aa": "GIR 0AA", "B33 8TH": "B33 8TH",
		"CR2 6XH": "CR2 6XH", "DN55 1PT": "DN55 1PT",
	} {
		got := normalisePostcode(in)
		if got != want || !validPostcode(got) {
			t.Errorf("%q -> %q (valid %v), want %q", in, got, validPostcode(got), want)
		}
	}
	for _, bad := range []string{"LS1", "LS1 3A", "123 4AB", "LS1 ABC", "QQ1 1AA X", "L$1 3AB"} {
		if p := normalisePostcode(bad); validPostcode(p) {
			t.Errorf("%q (%q) accepted", bad, p)
		}
	}
}

func TestProfilesRules(t *testing.T) {
	th := Defaults().Thresholds
	rules := th.Rules()
	if len(rules) != 4 || th.BelowRatioValue() != 0.9 {
		t.Fatalf("rules %+v", rules)
	}
	want := Rule{Name: "video_call", MinDownloadBitsPerSecond: 1.5e6, MinUploadBitsPerSecond: 1.5e6,
		MaxIdleRTTSeconds: 0.15, MaxAddedLatencySeconds: 0.06, MaxLossRatio: 0.01, MaxJitterSeconds: 0.03,
		HasMaxIdleRTT: true, HasMaxAdded: true, HasMaxLoss: true, HasMaxJitter: true}
	diff(t, rules[2], want)
	if !rules[3].PerSeat() || rules[3].MinDownloadBitsPerSeat != 2.5e6 || rules[0].PerSeat() {
		t.Errorf("per seat: %+v", rules[3])
	}
}

// TestSitesShareTimeZones: sites of one zone share its *time.Location (a
// zone's table is kilobytes; a file may list 20,000 hubs).
func TestSitesShareTimeZones(t *testing.T) {
	list, err := ParseSites([]byte(`sites:
  - {id: a, name: A, hub_type: other}
  - {id: b, name: B, hub_type: other}
  - {id: c, name: C, hub_type: other, timezone: America/New_York}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if list[0].Location != list[1].Location || list[0].Location == list[2].Location || list[2].Location.String() != "America/New_York" {
		t.Errorf("locations %p %p %p (%s)", list[0].Location, list[1].Location, list[2].Location, list[2].Location)
	}
}

// A national fleet's sites file loads: the bound on values walked is on
// what aliases add, not on what the file holds (it once refused any file
// of more than about 2,500 hubs).
func TestParseSitesLarge(t *testing.T) {
	var b strings.Builder
	b.WriteString("sites:\n")
	for i := range 20000 {
		fmt.Fprintf(&b, `  - id: hub-%05d
    name: Hub %d
    hub_type: library
    council: Leeds City Council
    ons_code: E08000035
    postcode: LS1 3AB
    latitude: 53.8
    longitude: -1.5
    opening_hours:
      monday: ["09:00-20:00"]
      tuesday: ["09:00-20:00"]
      wednesday: ["09:00-20:00"]
      thursday: ["09:00-20:00"]
      friday: ["09:00-17:00"]
      saturday: ["10:00-13:00", "14:00-17:00"]
`, i, i)
	}
	sites, err := ParseSites([]byte(b.String()), nil)
	if err != nil {
		t.Fatal(firstLines(err.Error(), 3))
	}
	if len(sites) != 20000 {
		t.Fatalf("%d sites, want 20000", len(sites))
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
