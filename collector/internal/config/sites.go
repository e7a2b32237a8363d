package config

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hubmon/hubmon/agent/wire"
)

// The sites file lists the hubs the collector accepts messages from, with
// what the reports and dashboards say about them (testdata/sites-valid.yml
// has every field explained). It is decoded and validated like the config:
// strictly, every problem at once, each with its line, field path and value.

// SiteSpec is one hub as written in the sites file.
type SiteSpec struct {
	// ID is the site id the hub's agent publishes as (wire.ValidSite).
	// Required, unique.
	ID string `yaml:"id"`
	// Name is the hub's name for people. Required.
	Name string `yaml:"name"`
	// HubType is library, care_home, community_centre or other. Required.
	HubType string `yaml:"hub_type"`
	// Council is the local authority's name. Optional.
	Council string `yaml:"council"`
	// ONSCode is the ONS code of the local authority, a letter and 8
	// digits, like E08000035 (Leeds). Optional.
	ONSCode string `yaml:"ons_code"`
	// Postcode is the hub's UK postcode; it is normalised to upper case
	// with one space ("ls1 3ab" -> "LS1 3AB"). Optional.
	Postcode string `yaml:"postcode"`
	// Latitude and Longitude place the hub on a map, in degrees (WGS 84);
	// both or neither; within the UK and nearby (latitude 49 to 61,
	// longitude -9 to 2).
	Latitude  Number `yaml:"latitude"`
	Longitude Number `yaml:"longitude"`
	// OpeningHours are when the hub is open to the public, in Timezone.
	// Left out: not known (no opening-hours figures for the hub).
	OpeningHours *OpeningHours `yaml:"opening_hours"`
	// Timezone is the IANA zone of the opening hours. Default
	// "Europe/London".
	Timezone string `yaml:"timezone"`
	// PublicSeats is how many public computers or seats with devices the
	// hub offers (for the per-seat capacity profile). Left out: not known.
	// 0 to 10000.
	PublicSeats *int `yaml:"public_seats"`
	// ContractDownloadMbps and ContractUploadMbps are the line's contracted
	// (or advertised) speeds in Mbit/s. Optional; more than 0, at most
	// 100000.
	ContractDownloadMbps Number `yaml:"contract_download_mbps"`
	ContractUploadMbps   Number `yaml:"contract_upload_mbps"`
	// Access is the line's technology: adsl, fttc, fttp, fixed_wireless,
	// mobile (4G/5G), satellite, cable or other. Optional.
	Access string `yaml:"access"`
	// Provider is the internet service provider's name. Optional.
	Provider string `yaml:"provider"`
}

func (s *SiteSpec) applyDefaults() { s.Timezone = DefaultTimezone }

// DefaultTimezone is the time zone of a site that names none.
const DefaultTimezone = "Europe/London"

// Site is a validated hub of the sites file.
type Site struct {
	ID, Name, HubType, Council, ONSCode, Postcode, Access, Provider string
	// HasLocation is false when the file gives no coordinates.
	HasLocation         bool
	Latitude, Longitude float64
	// HasHours is false when the opening hours are not known.
	HasHours bool
	Hours    Week
	Timezone string
	Location *time.Location
	// PublicSeats is -1 when not known.
	PublicSeats int
	// ContractDownloadMbps and ContractUploadMbps are 0 when not known.
	ContractDownloadMbps, ContractUploadMbps float64
}

// UnknownSite is the Site of an id that is not in the sites file (an
// auto-registered one): default time zone, nothing else known.
func UnknownSite(id string) Site {
	loc, err := loadLocation(DefaultTimezone)
	if err != nil {
		loc = time.UTC
	}
	return Site{ID: id, Timezone: DefaultTimezone, Location: loc, PublicSeats: -1}
}

// sitesFile is the sites file's layout.
type sitesFile struct {
	// Sites are the hubs. At most MaxSites.
	Sites []SiteSpec `yaml:"sites"`
}

// MaxSites bounds the sites of one file.
const MaxSites = 100000

// HubTypes and AccessTypes are the values hub_type and access take.
var (
	HubTypes    = []string{"library", "care_home", "community_centre", "other"}
	AccessTypes = []string{"adsl", "fttc", "fttp", "fixed_wireless", "mobile", "satellite", "cable", "other"}
)

// LoadSites reads, parses and validates the sites file at path. getenv
// looks up ${NAME} variables (nil for none). Problems are joined into one
// error, a line each, prefixed with path and the line number.
func LoadSites(path string, getenv func(string) string) ([]Site, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sites file: %w", err)
	}
	return parseSites(data, getenv, path)
}

// ParseSites is LoadSites for a file held in memory; problems are prefixed
// with "line N:".
func ParseSites(data []byte, getenv func(string) string) ([]Site, error) {
	return parseSites(data, getenv, "")
}

func parseSites(data []byte, getenv func(string) string, file string) ([]Site, error) {
	var f sitesFile
	d := newDecoder(getenv)
	d.decode(data, &f)
	sites, probs := f.check()
	if err := d.report(file, probs); err != nil {
		return nil, err
	}
	return sites, nil
}

var (
	onsRE      = regexp.MustCompile(`^[A-Z][0-9]{8}$`)
	postcodeRE = regexp.MustCompile(`^([A-Z][A-HJ-Y]?[0-9][A-Z0-9]?) ([0-9][A-Z]{2})$`)
)

// normalisePostcode upper-cases a postcode and puts one space before its
// last three characters (the inward code).
func normalisePostcode(s string) string {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	if len(s) < 5 {
		return s
	}
	return s[:len(s)-3] + " " + s[len(s)-3:]
}

// validPostcode reports whether p (normalised) has the shape of a UK
// postcode; GIR 0AA (Girobank) is one too.
func validPostcode(p string) bool { return p == "GIR 0AA" || postcodeRE.MatchString(p) }

// check validates the file and returns its sites.
func (f *sitesFile) check() ([]Site, []*problem) {
	var k checker
	z := zones{}
	if len(f.Sites) > MaxSites {
		k.add("sites", len(f.Sites), "at most %d sites", MaxSites)
	}
	out := make([]Site, 0, len(f.Sites))
	ids := map[string]int{}
	for i := range f.Sites {
		s := &f.Sites[i]
		path := fmt.Sprintf("sites[%d]", i)
		n := len(k.probs)
		site := s.check(&k, path, z)
		if s.ID != "" {
			if j, ok := ids[s.ID]; ok {
				k.add(path+".id", s.ID, "already the id of sites[%d]", j)
			} else {
				ids[s.ID] = i
			}
		}
		if len(k.probs) == n {
			out = append(out, site)
		}
	}
	return out, k.probs
}

func (s *SiteSpec) check(k *checker, path string, z zones) Site {
	site := Site{ID: s.ID, HubType: s.HubType, ONSCode: s.ONSCode, Access: s.Access, Timezone: s.Timezone, PublicSeats: -1}
	switch {
	case s.ID == "":
		k.addNoValue(path+".id", "required")
	case !wire.ValidSite(s.ID):
		k.add(path+".id", s.ID, "must be lower-case letters, digits and inner hyphens, at most 63 (the agent's site)")
	}
	site.Name = k.label(path+".name", s.Name, true)
	k.oneOf(path+".hub_type", s.HubType, HubTypes, true)
	site.Council = k.label(path+".council", s.Council, false)
	if s.ONSCode != "" && !onsRE.MatchString(s.ONSCode) {
		k.add(path+".ons_code", s.ONSCode, "must be a letter and 8 digits, like E08000035")
	}
	if s.Postcode != "" {
		site.Postcode = normalisePostcode(s.Postcode)
		if !validPostcode(site.Postcode) {
			k.add(path+".postcode", s.Postcode, `not a UK postcode, like "LS1 3AB"`)
		}
	}
	lat := k.decimal(path+".latitude", s.Latitude, 49, 61)
	lon := k.decimal(path+".longitude", s.Longitude, -9, 2)
	switch {
	case s.Latitude != "" && s.Longitude == "":
		k.addNoValue(path+".longitude", "required with latitude")
	case s.Latitude == "" && s.Longitude != "":
		k.addNoValue(path+".latitude", "required with longitude")
	case lat && lon:
		site.HasLocation = true
		site.Latitude, _ = s.Latitude.Value()
		site.Longitude, _ = s.Longitude.Value()
	}
	if s.Timezone == "" {
		k.addNoValue(path+".timezone", `required: an IANA zone name, like "Europe/London"`)
	} else if loc, err := z.load(s.Timezone); err != nil {
		k.add(path+".timezone", s.Timezone, `unknown time zone: use an IANA zone name, like "Europe/London"`)
	} else {
		site.Location = loc
	}
	if s.OpeningHours != nil {
		site.Hours = s.OpeningHours.check(k, path+".opening_hours")
		site.HasHours = !site.Hours.Empty()
	}
	if s.PublicSeats != nil {
		k.number(path+".public_seats", int64(*s.PublicSeats), 0, 10000)
		site.PublicSeats = *s.PublicSeats
	}
	for _, c := range []struct {
		name string
		n    Number
		v    *float64
	}{{"contract_download_mbps", s.ContractDownloadMbps, &site.ContractDownloadMbps}, {"contract_upload_mbps", s.ContractUploadMbps, &site.ContractUploadMbps}} {
		if k.decimal(path+"."+c.name, c.n, 0, 100000) {
			if v, _ := c.n.Value(); v > 0 {
				*c.v = v
			} else {
				k.add(path+"."+c.name, verbatim(c.n), "must be more than 0 (leave it out when not known)")
			}
		}
	}
	k.oneOf(path+".access", s.Access, AccessTypes, false)
	site.Provider = k.label(path+".provider", s.Provider, false)
	return site
}

// label checks a free-text value that becomes a Prometheus label and a
// report cell: valid UTF-8 without control characters, trimmed, at most
// 200 characters. It returns the value trimmed.
func (c *checker) label(field, v string, required bool) string {
	t := strings.TrimSpace(v)
	switch {
	case t == "" && required:
		c.addNoValue(field, "required")
	case !utf8.ValidString(t):
		c.addNoValue(field, "not valid UTF-8")
	case strings.ContainsFunc(t, unicode.IsControl):
		c.add(field, v, "must not hold control characters (new lines, tabs)")
	case utf8.RuneCountInString(t) > 200:
		c.add(field, v, "at most 200 characters")
	}
	return t
}

// oneOf checks that v, if set, is one of allowed.
func (c *checker) oneOf(field, v string, allowed []string, required bool) {
	if v == "" {
		if required {
			c.addNoValue(field, "required: one of %s", strings.Join(allowed, ", "))
		}
		return
	}
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.add(field, v, "must be one of %s", strings.Join(allowed, ", "))
}

// FormatCoordinate writes a latitude or longitude as a label value.
func FormatCoordinate(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
