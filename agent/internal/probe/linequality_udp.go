package probe

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// The hubmon echo protocol, version 1 (the responder is the collector's
// collector/internal/echo, which the agent does not import; keep the two in
// step). A request is "HUBMON-ECHO1 " and 0-64 bytes of client data; the
// reply is the same datagram with the space changed to 'R'. The agent's data
// is 16 bytes: a random nonce chosen for each run (8 bytes) and the probe's
// sequence number (8 bytes, big-endian), so a probe is 29 bytes of UDP
// payload. Send times stay in the agent (monotonic clock); nothing in the
// reply is trusted but the nonce and sequence number it echoes (and its
// source port).
const (
	lqEchoRequest = "HUBMON-ECHO1 "
	lqEchoReply   = "HUBMON-ECHO1R"
	lqPayloadLen  = len(lqEchoRequest) + 16
)

// lqPayload is the probe datagram (UDP) or echo data (ICMP) for seq.
func lqPayload(prefix string, nonce [8]byte, seq uint64) []byte {
	b := make([]byte, 0, lqPayloadLen)
	b = append(b, prefix...)
	b = append(b, nonce[:]...)
	return binary.BigEndian.AppendUint64(b, seq)
}

// lqParse returns the sequence number of b if it is a payload with prefix and
// nonce.
func lqParse(b []byte, prefix string, nonce [8]byte) (uint64, bool) {
	if len(b) != lqPayloadLen || string(b[:len(prefix)]) != prefix || [8]byte(b[len(prefix):len(prefix)+8]) != nonce {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[len(prefix)+8:]), true
}

func lqNonce() [8]byte {
	var n [8]byte
	_, _ = rand.Read(n[:]) // crypto/rand.Read never fails (Go 1.24+)
	return n
}

// openUDP opens an unconnected UDP socket for a run to to. (Unconnected: a
// connected socket would turn an ICMP "port unreachable" into an error on a
// later send.)
func openUDP(to netip.AddrPort) (lqStream, error) {
	network := "udp6"
	if to.Addr().Is4() {
		network = "udp4"
	}
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, fmt.Errorf("open udp socket: %w", err)
	}
	return &lqUDP{conn: c, to: to, nonce: lqNonce(), buf: make([]byte, 512)}, nil
}

type lqUDP struct {
	conn  *net.UDPConn
	to    netip.AddrPort
	nonce [8]byte
	buf   []byte // recv's only
}

func (u *lqUDP) send(seq uint64) error {
	_, err := u.conn.WriteToUDPAddrPort(lqPayload(lqEchoRequest, u.nonce, seq), u.to)
	return err
}

func (u *lqUDP) recv() (uint64, time.Time, error) {
	for {
		n, from, err := u.conn.ReadFromUDPAddrPort(u.buf)
		at := time.Now()
		if err != nil {
			return 0, at, err
		}
		// The source address is not checked: a responder listening on a
		// wildcard address of a host with several may answer from another
		// of them. The run's random nonce is what identifies a reply.
		if from.Port() != u.to.Port() {
			continue
		}
		if seq, ok := lqParse(u.buf[:n], lqEchoReply, u.nonce); ok {
			return seq, at, nil
		}
	}
}

func (u *lqUDP) close() error { return u.conn.Close() }
