// Package speedserver serves the Ookla-compatible speed-test protocol, so a
// council can run its own test server and the whole system runs with no
// internet.
//
// One TCP port carries two protocols, told apart by the first bytes a client
// sends: HTTP (GET /speedtest/latency.txt, GET /speedtest/random<N>x<N>.jpg,
// POST /speedtest/upload.php) and the plain-text line protocol (PING, HI,
// INITPLOSS, PLOSS, QUIT). The UDP port of the same number receives the
// packet-loss datagrams ("LOSS <nonce> <order> <uuid>") that PLOSS reports on.
//
// A Server is safe for concurrent use. Serve may be called for several
// listeners (say IPv4 and IPv6) and ServePacket for several packet conns;
// Close stops all of them and closes every open connection.
package speedserver

import (
	"bufio"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// MaxUploadBytes bounds one upload request body (default 64 MiB); larger -> 413.
	MaxUploadBytes int64
	// DownloadBytes is the size of one random*.jpg response (default 25 MiB,
	// enough for ~10 s at 20 Mbit/s per connection; the client reads until its
	// capture time ends and closes).
	DownloadBytes int64
	// MaxConnections bounds open TCP connections (default 64: 16 agents
	// testing at once with 4 connections); more are closed at once, so a
	// flood cannot take the collector's memory or uplink.
	MaxConnections int
	// Token, if set, must be on every HTTP request as ?token=...: a server
	// reachable from the internet then serves only the council's agents.
	Token string
}

// Defaults and limits. Clients send uploads of about 1 MB and read downloads
// for 10-15 s, so the transfer deadline leaves a wide margin for slow lines
// while still reclaiming connections from clients that stall.
const (
	defaultMaxUploadBytes = 64 << 20
	defaultDownloadBytes  = 25 << 20
	randomBufferBytes     = 4 << 20 // repeats every 4 MiB: too far apart for any transparent compressor
	writeChunkBytes       = 64 << 10

	sniffTimeout      = 30 * time.Second // to send the first bytes of a connection
	lineTimeout       = 30 * time.Second // between two lines of the text protocol
	maxLineBytes      = 256
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 60 * time.Second
	transferTimeout   = 2 * time.Minute // one download response or upload body
	maxHeaderBytes    = 16 << 10
)

// Server is an Ookla-compatible speed-test server. Create it with New.
type Server struct {
	log            *slog.Logger
	maxUploadBytes int64
	downloadBytes  int64
	maxConns       int
	token          string
	refused        atomic.Int64
	random         []byte // written repeatedly by downloads; never modified after New

	sent     atomic.Int64
	received atomic.Int64

	httpSrv   *http.Server
	httpLn    *connListener
	startHTTP sync.Once
	uploadBuf sync.Pool // *[]byte

	loss lossTable

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	packets   map[net.PacketConn]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup // goroutines of this package: Serve, ServePacket, serveConn, http.Server.Serve
}

// New returns a Server with opts; zero fields take their defaults.
func New(opts Options) *Server {
	s := &Server{
		log:            opts.Logger,
		maxUploadBytes: opts.MaxUploadBytes,
		downloadBytes:  opts.DownloadBytes,
		maxConns:       opts.MaxConnections,
		token:          opts.Token,
		listeners:      make(map[net.Listener]struct{}),
		packets:        make(map[net.PacketConn]struct{}),
		conns:          make(map[net.Conn]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxUploadBytes <= 0 {
		s.maxUploadBytes = defaultMaxUploadBytes
	}
	if s.downloadBytes <= 0 {
		s.downloadBytes = defaultDownloadBytes
	}
	if s.maxConns <= 0 {
		s.maxConns = 64
	}
	s.random = make([]byte, min(randomBufferBytes, s.downloadBytes))
	_, _ = rand.Read(s.random) // crypto/rand.Read never fails (Go 1.24+)
	s.uploadBuf.New = func() any { b := make([]byte, 64<<10); return &b }
	s.loss.sessions = make(map[string]*lossSession)

	s.httpLn = newConnListener()
	s.httpSrv = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s
}

// Refused is the number of connections closed because MaxConnections were open.
func (s *Server) Refused() int64 { return s.refused.Load() }

// BytesSent is the number of download body bytes written to clients so far.
func (s *Server) BytesSent() int64 { return s.sent.Load() }

// BytesReceived is the number of upload body bytes read from clients so far.
func (s *Server) BytesReceived() int64 { return s.received.Load() }

// Serve serves the TCP side (HTTP and the plain-text protocol, told apart by
// the first line) on ln until Close. It closes ln when it returns. It returns
// nil after Close, and the accept error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	if !track(s, s.listeners, ln) {
		_ = ln.Close()
		return nil
	}
	defer s.wg.Done()
	defer untrack(s, s.listeners, ln)
	s.startHTTP.Do(func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// Returns http.ErrServerClosed at Close; its listener fails no other way.
			_ = s.httpSrv.Serve(s.httpLn)
		}()
	})

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and retry, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("speed test server: accept failed", "error", err, "retry_seconds", backoff.Seconds())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.mu.Lock()
		full := len(s.conns) >= s.maxConns
		s.mu.Unlock()
		if full {
			s.refused.Add(1)
			_ = c.Close()
			continue
		}
		if !track(s, s.conns, c) {
			_ = c.Close()
			return nil
		}
		go s.serveConn(c)
	}
}

// serveConn sniffs the first bytes of c and hands it to net/http or to the
// text protocol.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	isHTTP, err := sniffHTTP(r)
	if err != nil {
		s.closeConn(c)
		return
	}
	if !isHTTP {
		s.serveText(c, r)
		return
	}
	_ = c.SetReadDeadline(time.Time{}) // net/http sets its own
	pc := &peekedConn{Conn: c, r: r, s: s}
	if !s.httpLn.hand(pc) {
		s.closeConn(c)
	}
}

// httpMethods are the request lines this server answers with HTTP.
var httpMethods = [...]string{"GET ", "POST ", "HEAD "}

// sniffHTTP reports whether the buffered stream starts with an HTTP method
// this server serves. It peeks only as many bytes as it needs, so a short text
// command such as "HI\n" does not block it.
func sniffHTTP(r *bufio.Reader) (bool, error) {
	for n := 1; ; n++ {
		b, err := r.Peek(n)
		if err != nil {
			return false, err
		}
		prefix := false
		for _, m := range httpMethods {
			if len(b) <= len(m) && m[:len(b)] == string(b) {
				if len(b) == len(m) {
					return true, nil
				}
				prefix = true
			}
		}
		if !prefix {
			return false, nil
		}
	}
}

// ServePacket answers/counts the UDP packet-loss datagrams on pc until Close
// (may be skipped if pc is nil). Datagrams are counted for the text
// connection that announced their uuid with HI and INITPLOSS; others are
// dropped. Nothing is sent back, so the port cannot be used to reflect
// traffic at a spoofed address. It returns nil after Close (or for a nil pc)
// and the read error otherwise.
func (s *Server) ServePacket(pc net.PacketConn) error {
	if pc == nil {
		return nil
	}
	if !track(s, s.packets, pc) {
		_ = pc.Close()
		return nil
	}
	defer s.wg.Done()
	defer untrack(s, s.packets, pc)
	buf := make([]byte, 2048)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.loss.count(buf[:n])
	}
}

// Close stops both and closes open connections. It waits for this package's
// goroutines; net/http's handlers end as their connections close.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for pc := range s.packets {
		if err := pc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()

	_ = s.httpLn.Close()
	_ = s.httpSrv.Close() // closes the connections it accepted from httpLn
	s.wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track adds v to set and one to s.wg, unless s is closed; the caller calls
// s.wg.Done when it is finished with v. Adding under s.mu, after checking
// closed, orders every wg.Add before the wg.Wait in Close.
func track[T comparable](s *Server, set map[T]struct{}, v T) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	set[v] = struct{}{}
	s.wg.Add(1)
	return true
}

func untrack[T comparable](s *Server, set map[T]struct{}, v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(set, v)
}

// closeConn closes a connection accepted by Serve and forgets it.
func (s *Server) closeConn(c net.Conn) {
	_ = c.Close()
	untrack(s, s.conns, c)
}

// peekedConn is a connection whose first bytes were read into r while
// sniffing; reads drain r first. Closing it also forgets it in the server.
type peekedConn struct {
	net.Conn
	r    *bufio.Reader
	s    *Server
	once sync.Once
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *peekedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { untrack(c.s, c.s.conns, c.Conn) })
	return err
}

// CloseWrite lets net/http half-close TCP connections, as it does for its own.
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// connListener is a net.Listener that yields the connections handed to it,
// so net/http can serve connections that were accepted and sniffed elsewhere.
type connListener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// hand passes c to the goroutine in Accept; it reports false when the
// listener is closed, and then c is the caller's to close.
func (l *connListener) hand(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr is not meaningful for a listener fed by several real ones.
func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }
