package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// ErrICMPUnavailable is returned by NewLineQualityICMP when this system does
// not let the agent's user send ICMP echo without privileges: Linux allows it
// to the groups in sysctl net.ipv4.ping_group_range (e.g. "0 2147483647"
// allows everyone; the default "1 0" allows no one).
var ErrICMPUnavailable = errors.New("unprivileged ICMP echo is not available (sysctl net.ipv4.ping_group_range)")

// NewLineQualityICMP returns a line-quality prober that pings
// cfg.ICMPTarget (an IPv4 address or a name) with ICMP echo through an
// unprivileged "ping" socket (SOCK_DGRAM, IPPROTO_ICMP). Everything else is
// as NewLineQuality: the same SendInterval, Timeout, Period, OutageAfter,
// figures and outage rules (with its own outage state), Method "icmp" and
// Target cfg.ICMPTarget. It is a prober of its own because one run makes one
// measurement.
//
// It opens a ping socket once to see whether the system allows it; when it
// does not, it returns an error wrapping ErrICMPUnavailable and the reason:
// log that once (Info) and run the UDP prober alone. It also fails for an
// empty or invalid ICMPTarget (an IPv6 address, or not a valid host name).
func NewLineQualityICMP(cfg LineQualityConfig) (Prober, error) {
	if cfg.ICMPTarget == "" {
		return nil, fmt.Errorf("icmp target: %w: empty", errLQTarget)
	}
	p := newLineQuality(cfg, "icmp", cfg.ICMPTarget)
	if _, err := p.parseTarget(); err != nil {
		return nil, err
	}
	c, err := icmp.ListenPacket("udp4", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrICMPUnavailable, err)
	}
	_ = c.Close()
	p.open = openICMP
	return p, nil
}

// openICMP opens a ping socket for a run to to. The kernel gives the socket
// its own echo identifier and passes it only the replies that carry it;
// replies are matched further by source address, nonce and sequence number,
// which travel in the echo data (the 16-bit ICMP sequence number holds the
// low bits of the probe's).
func openICMP(to netip.AddrPort) (lqStream, error) {
	c, err := icmp.ListenPacket("udp4", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("open icmp ping socket: %w: %w", ErrICMPUnavailable, err)
	}
	return &lqICMP{
		conn:  c,
		to:    to.Addr(),
		dst:   &net.UDPAddr{IP: to.Addr().AsSlice()},
		nonce: lqNonce(),
		buf:   make([]byte, 1500),
	}, nil
}

type lqICMP struct {
	conn  *icmp.PacketConn
	to    netip.Addr
	dst   *net.UDPAddr // the form WriteTo wants for a ping socket
	nonce [8]byte
	buf   []byte // recv's only
}

func (c *lqICMP) send(seq uint64) error {
	m := icmp.Message{
		Type: ipv4.ICMPTypeEcho,
		Body: &icmp.Echo{ID: 0 /* set by the kernel */, Seq: int(uint16(seq)), Data: lqPayload(lqEchoRequest, c.nonce, seq)},
	}
	b, err := m.Marshal(nil)
	if err != nil {
		return fmt.Errorf("marshal icmp echo: %w", err)
	}
	_, err = c.conn.WriteTo(b, c.dst)
	return err
}

func (c *lqICMP) recv() (uint64, time.Time, error) {
	const protocolICMP = 1
	for {
		n, peer, err := c.conn.ReadFrom(c.buf)
		at := time.Now()
		if err != nil {
			return 0, at, err
		}
		ua, ok := peer.(*net.UDPAddr)
		if !ok {
			continue
		}
		if a, ok := netip.AddrFromSlice(ua.IP); !ok || a.Unmap() != c.to {
			continue
		}
		m, err := icmp.ParseMessage(protocolICMP, c.buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if !ok {
			continue
		}
		if seq, ok := lqParse(e.Data, lqEchoRequest, c.nonce); ok && uint16(seq) == uint16(e.Seq) {
			return seq, at, nil
		}
	}
}

func (c *lqICMP) close() error { return c.conn.Close() }
