package speedserver

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// helloLine answers HI; clients read the version between "HELLO " and the newline.
const helloLine = "HELLO 2.11 (2.11.0) 2026-11-01.1\n"

// Packet-loss bookkeeping limits. A session lives as long as the text
// connection that opened it; at the client's 15 datagrams a second, maxOrder
// covers more than an hour.
const (
	maxLossSessions = 1024
	maxOrder        = 1 << 16
	maxUUIDBytes    = 64
)

var errLineTooLong = errors.New("line too long")

// serveText runs the plain-text protocol on c until the client quits, sends a
// line this server does not understand, stalls or the server closes. r holds
// the bytes already sniffed.
func (s *Server) serveText(c net.Conn, r *bufio.Reader) {
	defer s.closeConn(c)

	var (
		uuid string
		sess *lossSession
		line = make([]byte, 0, maxLineBytes)
		out  = make([]byte, 0, 64)
	)
	defer func() {
		if sess != nil {
			s.loss.remove(sess)
		}
	}()
	for {
		_ = c.SetReadDeadline(time.Now().Add(lineTimeout))
		var err error
		line, err = readLine(r, line[:0])
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(string(line), " ")
		out = out[:0]
		switch cmd {
		case "PING":
			out = append(out, "PONG "...)
			out = strconv.AppendInt(out, time.Now().UnixMilli(), 10)
			out = append(out, '\n')
		case "HI":
			if arg != "" {
				if !validUUID(arg) {
					return
				}
				uuid = strings.ToLower(arg)
			}
			out = append(out, helloLine...)
		case "INITPLOSS":
			if sess != nil {
				s.loss.remove(sess)
				sess = nil
			}
			if uuid != "" {
				if sess = s.loss.add(uuid); sess == nil {
					return // too many sessions
				}
			}
			out = append(out, "OK\n"...)
		case "PLOSS":
			out = sess.appendReport(out)
		case "QUIT":
			return
		default:
			s.log.Debug("speed test server: unknown command, closing", "remote", c.RemoteAddr().String(), "command", strconv.QuoteToASCII(truncate(cmd, 32)))
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(lineTimeout))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// readLine appends the next line of r to buf, without its "\n" or "\r\n".
// A line longer than maxLineBytes is an error, found as soon as its bytes
// arrive rather than when its newline does.
func readLine(r *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		b, err := r.ReadByte()
		if err != nil {
			return buf, err
		}
		if b == '\n' {
			return bytes.TrimSuffix(buf, []byte{'\r'}), nil
		}
		if len(buf) >= maxLineBytes {
			return buf, errLineTooLong
		}
		buf = append(buf, b)
	}
}

// validUUID accepts what clients send after HI: a UUID, or at least a short
// token of letters, digits and hyphens.
func validUUID(s string) bool {
	if len(s) == 0 || len(s) > maxUUIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// lossTable maps the uuid a text connection announced to its counters.
type lossTable struct {
	mu       sync.Mutex
	sessions map[string]*lossSession
}

// lossSession counts the datagrams of one INITPLOSS.
type lossSession struct {
	uuid string

	mu       sync.Mutex
	received int64 // datagrams accepted, duplicates included
	dup      int64
	max      int64    // highest order received; -1 before the first
	seen     []uint64 // bitset of orders received, grown as needed
}

// add starts a session for uuid, replacing an older one with the same uuid.
// It returns nil when the table is full.
func (t *lossTable) add(uuid string) *lossSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.sessions[uuid]; !ok && len(t.sessions) >= maxLossSessions {
		return nil
	}
	sess := &lossSession{uuid: uuid, max: -1}
	t.sessions[uuid] = sess
	return sess
}

// remove forgets sess, unless a newer session took its uuid.
func (t *lossTable) remove(sess *lossSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions[sess.uuid] == sess {
		delete(t.sessions, sess.uuid)
	}
}

// count records one datagram "LOSS <nonce> <order> <uuid>"; malformed
// datagrams, orders out of range and unknown uuids are ignored.
func (t *lossTable) count(p []byte) {
	f := bytes.Fields(p)
	if len(f) != 4 || string(f[0]) != "LOSS" {
		return
	}
	if _, err := strconv.ParseUint(string(f[1]), 10, 64); err != nil {
		return
	}
	order, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil || order < 0 || order >= maxOrder {
		return
	}
	if len(f[3]) > maxUUIDBytes {
		return
	}
	t.mu.Lock()
	sess := t.sessions[string(bytes.ToLower(f[3]))]
	t.mu.Unlock()
	if sess != nil {
		sess.record(order)
	}
}

func (s *lossSession) record(order int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	word, bit := order/64, uint64(1)<<(order%64)
	for int64(len(s.seen)) <= word {
		s.seen = append(s.seen, 0)
	}
	s.received++
	if s.seen[word]&bit != 0 {
		s.dup++
	} else {
		s.seen[word] |= bit
	}
	s.max = max(s.max, order)
}

// appendReport appends "PLOSS <received> <dup> <max-order>\n". A nil session
// (no INITPLOSS, or no uuid) reports nothing received; so does a session that
// received nothing, whose max-order is then 0 (clients treat received == 0 as
// "not applicable").
func (s *lossSession) appendReport(b []byte) []byte {
	var received, dup, maxOrder int64
	if s != nil {
		s.mu.Lock()
		received, dup, maxOrder = s.received, s.dup, max(s.max, 0)
		s.mu.Unlock()
	}
	b = append(b, "PLOSS "...)
	b = strconv.AppendInt(b, received, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, dup, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, maxOrder, 10)
	return append(b, '\n')
}
