package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

const (
	defaultDNSTimeout = 5 * time.Second
	// dnsParallel bounds the lookups in flight at once: enough to finish a
	// few resolvers x names quickly, few enough not to look like a flood to
	// a small hub router's resolver.
	dnsParallel = 4
	// maxChecks is the most results one DNS or HTTP message may hold
	// (wire's dns.results and http.results limit).
	maxChecks = 64
	// maxAddresses is wire's limit on dns.results[].addresses.
	maxAddresses = 1024
	// maxCheckErrorLen is wire's limit on a result's error text.
	maxCheckErrorLen = 1024
	// systemResolver names the system's resolver in config and results.
	systemResolver = "system"
)

// NewDNS returns a Prober that resolves every configured name (A and AAAA,
// as net.Resolver.LookupIPAddr does) with every configured resolver and
// reports one wire.DNSResult per (resolver, name), resolvers in config order,
// names in config order within each.
//
// Resolver "system" is the system's own resolver as any program on the hub
// sees it (cgo/getaddrinfo where available: /etc/hosts, nsswitch, search
// domains, a local cache if any). Any other resolver is host:port (or a bare
// IP address, port 53) of a DNS server, queried by Go's resolver over UDP,
// falling back to TCP for truncated answers; names are made fully qualified
// so that search domains do not add queries. Its host must be an IP address.
// Go's resolver reads /etc/hosts first, so a multi-label name listed there
// is answered from that file whichever server is configured.
//
// Each lookup is bounded by cfg.Timeout (default 5s) and by the ctx of
// Probe; at most 4 run at once. A run with any failed lookup returns an
// error ("2 of 6 lookups failed: ...") together with all results.
func NewDNS(cfg DNSConfig) Prober {
	p := &dnsProber{
		names:   append([]string(nil), cfg.Names...),
		timeout: cfg.Timeout,
		log:     cfg.Logger,
	}
	if p.timeout <= 0 {
		p.timeout = defaultDNSTimeout
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	resolvers := cfg.Resolvers
	if len(resolvers) == 0 {
		resolvers = []string{systemResolver}
	}
	for _, r := range resolvers {
		p.resolvers = append(p.resolvers, newDNSResolver(r))
	}
	return p
}

type dnsProber struct {
	names     []string
	resolvers []dnsResolver
	timeout   time.Duration
	log       *slog.Logger
}

// dnsResolver is one configured resolver. A net.Resolver keeps no state
// between lookups (Go's resolver has no cache), so one serves every run.
type dnsResolver struct {
	label string // as configured: "system" or host:port
	r     *net.Resolver
	named bool  // a server of its own, not the system's resolver
	err   error // the configured address is unusable
}

func newDNSResolver(label string) dnsResolver {
	if label == systemResolver {
		// Not net.DefaultResolver: a package variable anyone may change.
		return dnsResolver{label: label, r: &net.Resolver{}}
	}
	server, err := dnsServerAddr(label)
	if err != nil {
		return dnsResolver{label: label, err: err}
	}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		// network is "udp" first, "tcp" when an answer was truncated;
		// the address Go picked from resolv.conf is replaced by ours.
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}
	return dnsResolver{label: label, named: true, r: &net.Resolver{PreferGo: true, Dial: dial}}
}

// dnsServerAddr checks a named resolver's address: host:port or a bare IP
// address, the host an IP address (a name would need a resolver to find the
// resolver).
func dnsServerAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if net.ParseIP(s) == nil {
			return "", fmt.Errorf("resolver %q: want host:port or an IP address", s)
		}
		host, port = s, "53"
	}
	if net.ParseIP(host) == nil {
		return "", fmt.Errorf("resolver %q: host must be an IP address", s)
	}
	if port == "" {
		return "", fmt.Errorf("resolver %q: empty port", s)
	}
	return net.JoinHostPort(host, port), nil
}

func (p *dnsProber) Probe(ctx context.Context) (Result, error) {
	res := Result{Kind: wire.KindDNS}
	total := len(p.resolvers) * len(p.names)
	switch {
	case len(p.names) == 0:
		return res, errors.New("no names to resolve")
	case total > maxChecks:
		return res, fmt.Errorf("%d resolvers x %d names make %d lookups, more than the %d a measurement holds",
			len(p.resolvers), len(p.names), total, maxChecks)
	}
	results := make([]wire.DNSResult, total)
	errs := make([]error, total)
	sem := make(chan struct{}, dnsParallel)
	var wg sync.WaitGroup
	for i, r := range p.resolvers {
		for j, name := range p.names {
			k := i*len(p.names) + j
			wg.Go(func() {
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
					results[k], errs[k] = p.lookup(ctx, r, name)
				case <-ctx.Done():
					results[k], errs[k] = notRun(ctx, r.label, name)
				}
			})
		}
	}
	wg.Wait()
	res.DNS = &wire.DNS{Results: results}
	return res, joinCheckErrors("lookups", total, errs)
}

// notRun is the result of a lookup that never started: the run ended first.
func notRun(ctx context.Context, resolver, name string) (wire.DNSResult, error) {
	text := interruptedText(ctx)
	return wire.DNSResult{Resolver: resolver, Name: name, Error: text},
		&checkError{subject: resolver + " " + name, text: text, err: context.Cause(ctx)}
}

func (p *dnsProber) lookup(ctx context.Context, r dnsResolver, name string) (wire.DNSResult, error) {
	out := wire.DNSResult{Resolver: r.label, Name: name}
	subject := r.label + " " + name
	if r.err != nil {
		out.Error = clipCheckError(r.err.Error())
		return out, &checkError{subject: subject, text: out.Error, err: r.err}
	}
	if ctx.Err() != nil {
		return notRun(ctx, r.label, name)
	}
	query := name
	if r.named && !strings.HasSuffix(query, ".") {
		query += "."
	}
	lctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	addrs, err := r.r.LookupIPAddr(lctx, query)
	took := time.Since(start)
	p.log.Debug("dns lookup", "resolver", r.label, "name", name, "duration_seconds", took.Seconds(),
		"addresses", len(addrs), "err", err)
	if err == nil {
		out.Success = true
		out.ResolveSeconds = wire.Float(took.Seconds())
		out.Addresses = min(len(addrs), maxAddresses)
		return out, nil
	}
	text, answered := lookupErrorText(ctx, lctx, err, p.timeout)
	if answered {
		// The resolver gave an outcome (NXDOMAIN, a server error, a
		// refusal): how long that took is a measurement too. A timeout
		// or an interrupted run only measured our own patience.
		out.ResolveSeconds = wire.Float(took.Seconds())
	}
	out.Error = clipCheckError(text)
	return out, &checkError{subject: subject, text: out.Error, err: err}
}

// lookupErrorText says why a lookup failed; answered is false when it ended
// by running out of time (or the run being interrupted) rather than by an
// outcome. ctx is the run's context, lctx the lookup's.
func lookupErrorText(ctx, lctx context.Context, err error, timeout time.Duration) (text string, answered bool) {
	if ctx.Err() != nil {
		return interruptedText(ctx), false
	}
	if errors.Is(lctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("timeout after %s", timeout), false
	}
	var de *net.DNSError
	if !errors.As(err, &de) {
		return err.Error(), true
	}
	text = dnsErrorText(de)
	return text, !de.IsTimeout
}

// dnsErrorText names a resolver's failure, for DNS and HTTP results alike.
func dnsErrorText(de *net.DNSError) string {
	switch {
	case de.IsNotFound:
		// Go sets IsNotFound for NXDOMAIN and also for a name that exists
		// but has no A or AAAA record.
		return "NXDOMAIN"
	case de.IsTimeout:
		return "timeout: no answer from the DNS server"
	case strings.Contains(de.Err, "connection refused"):
		// Go's resolver keeps only the text of the socket error.
		return "refused: nothing answers DNS at the server (connection refused)"
	case de.Err == "server misbehaving":
		return "server error (SERVFAIL, REFUSED or a malformed answer)"
	}
	return de.Err
}

// interruptedText describes a check cut short because the whole run ended.
func interruptedText(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "not finished: the probe's run timed out"
	}
	return "cancelled"
}

// checkError is one failed check of a multi-check probe (a lookup, a
// service): subject says which, text what happened; err is the cause, for
// errors.Is and As.
type checkError struct {
	subject string
	text    string
	err     error
}

func (e *checkError) Error() string { return e.subject + ": " + e.text }
func (e *checkError) Unwrap() error { return e.err }

// checkErrors reports the failed checks of a run: "2 of 6 lookups failed:
// a: x; b: y". It wraps every failure.
type checkErrors struct {
	what  string
	total int
	errs  []error
}

// checkErrorsShown is how many failures the message spells out; the rest
// are counted ("; and 3 more"), to keep it inside the wire's error length.
const checkErrorsShown = 4

func (e *checkErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d %s failed: ", len(e.errs), e.total, e.what)
	for i, err := range e.errs {
		if i == checkErrorsShown {
			fmt.Fprintf(&b, "; and %d more", len(e.errs)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *checkErrors) Unwrap() []error { return e.errs }

// joinCheckErrors returns nil when every entry of errs is nil.
func joinCheckErrors(what string, total int, errs []error) error {
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &checkErrors{what: what, total: total, errs: failed}
}

// clipCheckError keeps a result's error text within the wire's limit.
func clipCheckError(s string) string { return clipWireText(s, maxCheckErrorLen) }

// clipWireText cuts s to at most n bytes, without splitting a UTF-8
// sequence, marking the cut with "...".
func clipWireText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("...")
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}
