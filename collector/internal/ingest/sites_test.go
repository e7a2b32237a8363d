package ingest

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hubmon/hubmon/agent/wire"
	"github.com/hubmon/hubmon/collector/internal/metrics"
	"github.com/hubmon/hubmon/collector/internal/store"
)

// knownSites is a sites registry that can change, as on a reload.
type knownSites struct {
	allowed atomic.Pointer[map[string]bool]
}

func (k *knownSites) set(sites ...string) {
	m := map[string]bool{}
	for _, s := range sites {
		m[s] = true
	}
	k.allowed.Store(&m)
}

func (k *knownSites) Known(site string) bool { return (*k.allowed.Load())[site] }

// TestUnknownSiteRejected: a site not in the sites file is refused, counted
// with reason unknown_site and not acknowledged (its agent keeps the
// message); once the site is added, the same message is stored.
func TestUnknownSiteRejected(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "hubmon.db"))
	if err != nil {
		t.Fatal(err)
	}
	health := metrics.NewHealth(prometheus.NewPedanticRegistry())
	sites := &knownSites{}
	sites.set("bradford-library")
	a := &acks{}
	in := New(Options{Store: st, Fleet: metrics.NewFleet(), Health: health, Sites: sites,
		Now: func() time.Time { return now }, AckDelay: 5 * time.Millisecond})
	in.SetPublisher(a.publish)
	t.Cleanup(func() { in.Close(); st.Close() })
	ctx := context.Background()
	p := golden(t) // a measurement of leeds-central-library
	status := []byte(`{"version":1,"site":"leeds-central-library","agent_id":"AGENT0001","state":"online","session":1,
		"connected_at":"2026-11-26T11:00:00Z","sent_at":"2026-11-26T11:00:00Z"}`)
	for _, m := range []struct {
		kind    string
		payload []byte
	}{{wire.TopicMeasurement, p}, {wire.TopicMeasurement, p}, {wire.TopicStatus, status}} {
		if err := in.Handle(ctx, site, m.kind, m.payload); err != nil {
			t.Fatalf("a rejection returned an error (the broker would redeliver forever): %v", err)
		}
	}
	if n, _ := st.Count(ctx); n != 0 {
		t.Fatalf("stored %d rows of an unknown site", n)
	}
	if got := testutil.ToFloat64(health.Rejected.WithLabelValues("unknown_site")); got != 3 {
		t.Errorf(`rejected{reason="unknown_site"} = %v, want 3`, got)
	}
	if got := testutil.ToFloat64(health.Messages.WithLabelValues("measurement", "rejected")); got != 2 {
		t.Errorf(`messages{kind="measurement",result="rejected"} = %v, want 2`, got)
	}
	time.Sleep(30 * time.Millisecond) // let a wrong ack arrive
	if stored, rejected := a.all(); len(stored)+len(rejected) != 0 {
		t.Fatalf("acks for an unknown site: stored %v rejected %v", stored, rejected)
	}

	sites.set("bradford-library", site) // the sites file is reloaded with it
	if err := in.Handle(ctx, site, wire.TopicMeasurement, p); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.Count(ctx); n != 1 {
		t.Fatalf("stored %d rows after the site was added, want 1", n)
	}
	waitFor(t, "the ack", func() bool { s, _ := a.all(); return len(s) == 1 })
}
