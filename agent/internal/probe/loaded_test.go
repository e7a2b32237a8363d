package probe

import (
	"strings"
	"testing"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

func TestBufferbloatGrade(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, tt := range []struct {
		added time.Duration
		want  string
	}{
		{0, "A+"},
		{ms(4.999), "A+"},
		{ms(5), "A"},
		{ms(29.9), "A"},
		{ms(30), "B"},
		{ms(59.9), "B"},
		{ms(60), "C"},
		{ms(199.9), "C"},
		{ms(200), "D"},
		{ms(399.9), "D"},
		{ms(400), "F"},
		{3 * time.Second, "F"},
	} {
		if got := bufferbloatGrade(tt.added); got != tt.want {
			t.Errorf("bufferbloatGrade(%s) = %s, want %s", tt.added, got, tt.want)
		}
	}
}

func TestAddedLatency(t *testing.T) {
	for _, tt := range []struct{ loaded, idle, want time.Duration }{
		{50 * time.Millisecond, 10 * time.Millisecond, 40 * time.Millisecond},
		{10 * time.Millisecond, 10 * time.Millisecond, 0},
		{9 * time.Millisecond, 10 * time.Millisecond, 0}, // noise: nothing added
	} {
		if got := addedLatency(tt.loaded, tt.idle); got != tt.want {
			t.Errorf("addedLatency(%s, %s) = %s, want %s", tt.loaded, tt.idle, got, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []time.Duration
		want time.Duration
		ok   bool
	}{
		{nil, 0, false},
		{[]time.Duration{7}, 7, true},
		{[]time.Duration{9, 1, 5}, 5, true},
		{[]time.Duration{9, 1, 5, 3}, 4, true},
	} {
		got, ok := median(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("median(%v) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLoadResource(t *testing.T) {
	for _, tt := range []struct{ server, want string }{
		{"http://127.0.0.1:8080/speedtest/upload.php", "http://127.0.0.1:8080/speedtest/latency.txt"},
		{"http://127.0.0.1:8080/speedtest/upload.php?token=abc", "http://127.0.0.1:8080/speedtest/latency.txt?token=abc"},
		{"https://speedtest.example.net:8080/st/upload.php", "https://speedtest.example.net:8080/st/latency.txt"},
	} {
		got, err := loadConfig{serverURL: tt.server}.resource("latency.txt")
		if err != nil || got != tt.want {
			t.Errorf("resource of %s = %q, %v; want %q", tt.server, got, err, tt.want)
		}
	}
}

// TestWireBufferbloatGrade: the grades the probe makes are the ones the
// schema accepts, and nothing else is.
func TestWireBufferbloatGrade(t *testing.T) {
	valid := func(grade string) error {
		m := wire.Measurement{
			Version: wire.Version, MessageID: "MSG-0000001", Site: "test-site", AgentID: "AGENT-0001",
			Seq: 1, Probe: "local", Kind: wire.KindSpeedtest, MeasuredAt: time.Now().UTC(), Success: false,
			Error: "x", Speedtest: &wire.Speedtest{BufferbloatGrade: grade},
		}
		return m.Validate("test-site", time.Now())
	}
	for _, added := range []time.Duration{0, 10 * time.Millisecond, 40 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond, time.Second} {
		if g := bufferbloatGrade(added); valid(g) != nil {
			t.Errorf("grade %q: %v", g, valid(g))
		}
	}
	for _, g := range []string{"E", "a+", "A-", " A"} {
		if err := valid(g); err == nil || !strings.Contains(err.Error(), "speedtest.bufferbloat_grade") {
			t.Errorf("grade %q: err = %v, want a bufferbloat_grade error", g, err)
		}
	}
}

func TestPingInterval(t *testing.T) {
	for _, tt := range []struct {
		mbit float64
		want time.Duration
	}{
		{0, loadedPingEvery}, // rate not known yet
		{0.1, pingEveryMax},
		{0.5, 960 * time.Millisecond},
		{1, 480 * time.Millisecond},
		{2.4, 200 * time.Millisecond},
		{500, loadedPingEvery},
	} {
		got := pingInterval(loadedPingEvery, tt.mbit*1e6/8)
		if d := got - tt.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("pingInterval at %g Mbit/s = %s, want %s", tt.mbit, got, tt.want)
		}
	}
}
