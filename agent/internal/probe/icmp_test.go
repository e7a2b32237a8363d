package probe

import (
	"errors"
	"testing"
	"time"
)

// TestLineQualityICMP pings 127.0.0.1 when this system lets the user send
// unprivileged ICMP echo (net.ipv4.ping_group_range), and otherwise checks
// that the constructor says why it cannot.
func TestLineQualityICMP(t *testing.T) {
	cfg := LineQualityConfig{
		UDPTarget:    "127.0.0.1:9",
		ICMPTarget:   "127.0.0.1",
		SendInterval: 20 * time.Millisecond,
		Timeout:      250 * time.Millisecond,
		Period:       300 * time.Millisecond,
		// Never the real gateway from a test.
		NoGatewayCheck: true,
	}
	p, err := NewLineQualityICMP(cfg)
	if err != nil {
		if !errors.Is(err, ErrICMPUnavailable) || p != nil {
			t.Fatalf("NewLineQualityICMP = %v, %v; want ErrICMPUnavailable", p, err)
		}
		t.Skipf("ICMP not available here (the UDP stream runs alone): %v", err)
	}
	lq := probeLQ(t, p)
	if lq.Method != "icmp" || lq.Target != "127.0.0.1" {
		t.Errorf("method %q target %q", lq.Method, lq.Target)
	}
	if lq.Sent < 3 || lq.Received != lq.Sent || lq.RTTP50Seconds == nil {
		t.Errorf("sent %d received %d p50 %v; want all answered", lq.Sent, lq.Received, lq.RTTP50Seconds)
	}
	// A second run on the same prober.
	if lq := probeLQ(t, p); lq.Received != lq.Sent || lq.Sent == 0 {
		t.Errorf("second run: sent %d received %d", lq.Sent, lq.Received)
	}
}

func TestLineQualityICMPInvalidTarget(t *testing.T) {
	for _, target := range []string{"", "::1", "2001:db8::1", "bad host", "999.1.2.3"} {
		p, err := NewLineQualityICMP(LineQualityConfig{UDPTarget: "127.0.0.1:9", ICMPTarget: target})
		if err == nil || errors.Is(err, ErrICMPUnavailable) || p != nil {
			t.Errorf("target %q: %v, %v; want an invalid-target error", target, p, err)
		}
	}
}
