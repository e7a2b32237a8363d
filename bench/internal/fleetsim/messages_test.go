package fleetsim

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// Every message the simulator makes must be one the collector accepts, or the
// benchmark measures rejections.
func TestMessagesValidate(t *testing.T) {
	now := time.Now()
	g := newGenerator("sim", 50, 7, now)
	kinds := map[string]int{}
	seqs := map[string]int64{}
	subSecond := 0
	const n = 6000
	for i := range n {
		m := g.make(now.Add(time.Duration(i)*time.Millisecond), Mixed)
		site, kind, err := wire.ParseTopic(m.topic)
		if err != nil {
			t.Fatal(err)
		}
		if kind == wire.TopicStatus {
			st, err := wire.DecodeStatus(m.payload, site, now)
			if err != nil {
				t.Fatalf("status %s: %v", m.payload, err)
			}
			if !m.retained || m.id != "" || st.State != wire.StateOnline {
				t.Fatalf("status %+v: want retained, online, no id", m)
			}
			kinds[kind]++
			continue
		}
		meas, err := wire.DecodeMeasurement(m.payload, site, now.Add(time.Minute))
		if err != nil {
			t.Fatalf("measurement %s: %v", m.payload, err)
		}
		if meas.MessageID != m.id || meas.Probe != m.probe || !meas.MeasuredAt.Equal(m.measuredAt) || m.retained {
			t.Fatalf("message %+v does not match its payload %s", m, m.payload)
		}
		if meas.MeasuredAt.Location() != time.UTC {
			t.Fatalf("measured_at %v: want UTC", meas.MeasuredAt)
		}
		if meas.MeasuredAt.Nanosecond() != 0 {
			subSecond++
		}
		if meas.Seq != seqs[site]+1 {
			t.Fatalf("site %s seq %d after %d", site, meas.Seq, seqs[site])
		}
		seqs[site] = meas.Seq
		if !wire.ValidID(meas.AgentID) {
			t.Fatalf("agent id %q", meas.AgentID)
		}
		kinds[meas.Kind]++
	}
	if subSecond < kinds[wire.KindLineQuality] {
		t.Errorf("%d measured_at with sub-second precision: want nearly all", subSecond)
	}
	// each site's first message is its status, then the mix
	total := PerSitePerHour()
	for _, m := range Mix {
		want := m.PerHour / total * n
		if got := float64(kinds[m.Kind]); math.Abs(got-want) > 5*math.Sqrt(want)+60 {
			t.Errorf("%s: %v of %d messages, want about %.0f", m.Kind, got, n, want)
		}
	}
	t.Logf("kinds in %d messages: %v", n, kinds)
}

func TestFirstMessageIsStatus(t *testing.T) {
	g := newGenerator("hub", 3, 1, time.Now())
	for i := range 3 {
		m := g.make(time.Now(), Mixed)
		var st wire.Status
		if err := json.Unmarshal(m.payload, &st); err != nil || m.id != "" || st.Site != g.sites[i].name {
			t.Fatalf("message %d of a new fleet: %s, want site %s's status", i, m.payload, g.sites[i].name)
		}
	}
}

func TestNominalRate(t *testing.T) {
	// 60 statuses, 60 line-quality summaries, 12 DNS, 4 HTTP, 1/6 speed test an hour
	if r := NominalRate(20000); math.Abs(r-756.5) > 1 {
		t.Fatalf("NominalRate(20000) = %v, want about 756.5/s", r)
	}
}

func TestMeasurementsOnly(t *testing.T) {
	g := newGenerator("hub", 10, 1, time.Now())
	for range 1000 {
		if m := g.make(time.Now(), MeasurementsOnly); m.id == "" {
			t.Fatalf("a status with noStatus: %s", m.payload)
		}
	}
	if m := g.make(time.Now(), Mixed); m.id != "" {
		t.Fatalf("first message after measurements only: %s, want the site's status", m.payload)
	}
}

func TestEveryKind(t *testing.T) {
	const sites = 7
	g := newGenerator("hub", sites, 1, time.Now())
	g.make(time.Now(), MeasurementsOnly) // whatever came before
	seen := map[string]map[string]bool{}
	for range len(Mix) * sites {
		m := g.make(time.Now(), EveryKind)
		site, kind, _ := wire.ParseTopic(m.topic)
		if kind == wire.TopicMeasurement {
			kind = m.probe
		}
		if seen[site] == nil {
			seen[site] = map[string]bool{}
			if kind != wire.TopicStatus {
				t.Errorf("site %s: first message %s, want its status", site, kind)
			}
		}
		seen[site][kind] = true
	}
	for site, kinds := range seen {
		if len(kinds) != len(Mix) {
			t.Errorf("site %s published %v, want every kind once", site, kinds)
		}
	}
	if len(seen) != sites {
		t.Errorf("%d sites published, want %d", len(seen), sites)
	}
}
