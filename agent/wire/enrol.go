package wire

// Enrolment bundles carry one site's MQTT credentials from the council
// (`hubmon-collector enrol`) to the hub (`hubmon-agent enrol`). They are not
// MQTT messages, but like the messages they are a format both commands share,
// so they live here, standard library only, versioned, with golden fixtures.
//
// Bundle format version history:
//
//	1  2026-11: site, broker URL, user name, password, CA certificate (file)
//	   or the first 16 bytes of its SHA-256 (short code).
//
// A bundle has two forms:
//
//   - A file (JSON, MaxBundleBytes at most): every field, the council CA's
//     PEM included, and a SHA-256 checksum of them. Installing it needs no
//     network. Unknown fields are ignored; the known ones are validated
//     strictly.
//   - A short code (CodePrefix then Crockford base32 in groups of five, about
//     110-140 characters): a compact binary form with a CRC-32. It is meant
//     to be pasted (an email into an SSH session), and can be typed: case,
//     dashes and spaces do not matter, and O/I/L read as 0/1/1. A CA
//     certificate (400-1500 bytes) would make it 700-2500 characters, so a
//     code carries only the first 16 bytes of the CA certificate's SHA-256:
//     the agent takes the certificate from the broker's own TLS handshake
//     (the broker must send the CA in its chain) and accepts it only if the
//     hash matches. That needs the broker to be reachable while installing,
//     which it has to be for the agent to work at all; the file needs nothing.
//
// Either form holds the site's password: whoever has it can publish as the
// site. The checksums detect damage and typing mistakes, not tampering.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

const (
	// BundleVersion is the version of the bundle format this package writes.
	BundleVersion = 1
	// BundleFormat is the "format" of every bundle file.
	BundleFormat = "hubmon-enrolment"
	// MaxBundleBytes bounds a bundle file.
	MaxBundleBytes = 64 << 10
	// CodePrefix starts every short code.
	CodePrefix = "HM-"
	// SecretBytes is the length of the random secret behind a password that
	// NewPassword makes: 120 bits, written as 24 lower-case base32 characters.
	SecretBytes = 15
	// CodePinBytes is how much of the CA certificate's SHA-256 a code holds.
	CodePinBytes = 16
	// maxPasswordBytes bounds a password in a bundle.
	maxPasswordBytes = 256
)

// Bundle is one site's enrolment: what an agent needs to reach its broker.
type Bundle struct {
	// Format is BundleFormat.
	Format string `json:"format"`
	// Version is the bundle format version, BundleVersion.
	Version int `json:"version"`
	// Note tells a person who opens the file what it is. Not checked.
	Note string `json:"note,omitempty"`
	// Site is the hub's site id (ValidSite).
	Site string `json:"site"`
	// BrokerURL is the broker the agent publishes to: scheme://host:port,
	// the scheme mqtt or tcp (plain), mqtts, ssl or tls (TLS).
	BrokerURL string `json:"broker_url"`
	// Username is the MQTT user name; it is the site id (brokers tie a
	// site's topics and client id to it).
	Username string `json:"username"`
	// Password is the MQTT password.
	Password string `json:"password"`
	// CAPEM holds the PEM certificates the agent trusts for a TLS broker
	// (the council CA); empty for a plain broker, or for one whose
	// certificate the system's roots verify. Files only.
	CAPEM string `json:"ca_pem,omitempty"`
	// CASHA256 is the SHA-256 of CAPEM's first certificate, in hex. From a
	// code it is the first CodePinBytes bytes only, and CAPEM is empty: the
	// agent gets the certificate from the broker (see the package notes).
	CASHA256 string `json:"ca_sha256,omitempty"`
	// CreatedAt is when the bundle was made (UTC). Files only.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Code is the same enrolment as a short code, for convenience; it is
	// not read back. Files only.
	Code string `json:"code,omitempty"`
	// Checksum is "sha256:" and the hex SHA-256 of the fields above but
	// Note and Code (see checksum). Files only.
	Checksum string `json:"checksum"`
}

// NewPassword returns a random password: SecretBytes bytes from crypto/rand
// as lower-case base32 without padding (24 characters of a-z and 2-7).
// Passwords of this form, and only those, fit in a short code.
func NewPassword() (string, error) {
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new password: %w", err)
	}
	return passwordEncoding.EncodeToString(b), nil
}

var passwordEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// BrokerAddress splits a broker URL as a bundle holds it into TLS or not,
// host and port. The scheme is mqtt or tcp (plain), or mqtts, ssl or tls
// (TLS); host and port are required; nothing else may be in it.
func BrokerAddress(raw string) (useTLS bool, host string, port int, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return false, "", 0, fmt.Errorf("%q is not a URL", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp":
	case "mqtts", "ssl", "tls":
		useTLS = true
	default:
		return false, "", 0, fmt.Errorf("%q: the scheme must be mqtts:// (TLS) or mqtt:// (plain)", raw)
	}
	switch {
	case u.User != nil:
		return false, "", 0, fmt.Errorf("%q: must not hold a user name or password", u.Redacted())
	case u.Opaque != "" || u.Hostname() == "":
		return false, "", 0, fmt.Errorf("%q: must be scheme://host:port", raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return false, "", 0, fmt.Errorf("%q: must be only scheme://host:port, with no path or query", raw)
	case u.Port() == "":
		return false, "", 0, fmt.Errorf("%q: the port is missing, like :8883 (mqtts) or :1883 (mqtt)", raw)
	}
	port, err = strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 {
		return false, "", 0, fmt.Errorf("%q: the port must be a number from 1 to 65535", raw)
	}
	return useTLS, u.Hostname(), port, nil
}

// CACertificates parses the PEM certificates of a bundle's CAPEM: at least
// one, nothing but certificates.
func CACertificates(caPEM string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(caPEM)
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("text after the last certificate is not PEM")
	}
	return certs, nil
}

// Fingerprint is the hex SHA-256 of a certificate, as CASHA256 holds it.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Validate checks every field but Checksum, Note and Code, and returns every
// problem, joined, each naming the field. The password is never shown.
func (b *Bundle) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if b.Format != BundleFormat {
		add("format", "must be %q (got %q)", BundleFormat, b.Format)
	}
	if b.Version != BundleVersion {
		add("version", "must be %d (got %d)", BundleVersion, b.Version)
	}
	switch {
	case b.Site == "":
		add("site", "missing")
	case !ValidSite(b.Site):
		add("site", "%q is not a site id (lower-case letters, digits and inner hyphens, at most 63)", b.Site)
	}
	if b.Username != b.Site {
		add("username", "must be the site id %q (got %q)", b.Site, b.Username)
	}
	switch {
	case b.Password == "":
		add("password", "missing")
	case len(b.Password) > maxPasswordBytes:
		add("password", "longer than %d bytes", maxPasswordBytes)
	case strings.ContainsFunc(b.Password, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }):
		add("password", "holds a control character or invalid UTF-8")
	}
	useTLS := false
	if b.BrokerURL == "" {
		add("broker_url", "missing")
	} else if t, _, _, err := BrokerAddress(b.BrokerURL); err != nil {
		add("broker_url", "%v", err)
	} else {
		useTLS = t
	}
	pin := strings.ToLower(b.CASHA256)
	if pin != "" {
		if _, err := hex.DecodeString(pin); err != nil || (len(pin) != 2*sha256.Size && len(pin) != 2*CodePinBytes) {
			add("ca_sha256", "must be %d or %d hex digits", 2*sha256.Size, 2*CodePinBytes)
			pin = ""
		}
	}
	if b.CAPEM != "" {
		certs, err := CACertificates(b.CAPEM)
		switch {
		case err != nil:
			add("ca_pem", "%v", err)
		case pin != "" && !strings.HasPrefix(Fingerprint(certs[0]), pin):
			add("ca_sha256", "is not the SHA-256 of ca_pem's first certificate")
		}
	}
	if (b.CAPEM != "" || b.CASHA256 != "") && b.BrokerURL != "" && !useTLS {
		add("ca_pem", "a CA certificate is only for a TLS broker (mqtts://), and broker_url is plain")
	}
	return errors.Join(errs...)
}

// checksum is "sha256:" and the hex SHA-256 of the checked fields, each
// written as "<length>:<value>," in a fixed order (a netstring), so that no
// two bundles share the input.
func (b *Bundle) checksum() string {
	h := sha256.New()
	created := ""
	if !b.CreatedAt.IsZero() {
		created = b.CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	for _, v := range []string{b.Format, strconv.Itoa(b.Version), b.Site, b.BrokerURL, b.Username, b.Password,
		b.CAPEM, strings.ToLower(b.CASHA256), created} {
		fmt.Fprintf(h, "%d:%s,", len(v), v)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// MarshalFile completes b (Format, Version, CASHA256 from CAPEM, Code when
// the password fits in one, Checksum), validates it and returns the bundle
// file: indented JSON with a final newline.
func (b *Bundle) MarshalFile() ([]byte, error) {
	b.Format, b.Version = BundleFormat, BundleVersion
	if b.CAPEM != "" {
		if certs, err := CACertificates(b.CAPEM); err == nil {
			b.CASHA256 = Fingerprint(certs[0])
		}
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("enrolment bundle: %w", err)
	}
	b.Code = ""
	if c, err := b.EncodeCode(); err == nil {
		b.Code = c
	}
	b.Checksum = b.checksum()
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("enrolment bundle: %w", err)
	}
	return append(out, '\n'), nil
}

// DecodeBundle reads an enrolment bundle: a bundle file (JSON) or a short
// code (the text of one, as typed or pasted). Its errors say in plain words
// what is wrong, for the person installing it.
func DecodeBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("too large for an enrolment bundle (%d bytes; at most %d)", len(data), MaxBundleBytes)
	}
	text := strings.TrimSpace(strings.TrimPrefix(string(data), "\uFEFF"))
	switch {
	case text == "":
		return nil, errors.New("it is empty: not an enrolment bundle")
	case strings.HasPrefix(text, "{"):
		return decodeFile([]byte(text))
	case LooksLikeCode(text):
		return ParseCode(text)
	}
	return nil, errors.New("not an enrolment bundle: a bundle file starts with '{', a code with " + CodePrefix)
}

func decodeFile(data []byte) (*Bundle, error) {
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("the enrolment file is damaged or incomplete (not valid JSON: %v)", err)
	}
	switch {
	case head.Format != BundleFormat:
		return nil, fmt.Errorf("not a hubmon enrolment file (format %q, want %q)", head.Format, BundleFormat)
	case head.Version > BundleVersion:
		return nil, fmt.Errorf("the enrolment file is version %d, made by a newer hubmon-collector: upgrade hubmon-agent (it reads version %d)", head.Version, BundleVersion)
	case head.Version < 1:
		return nil, fmt.Errorf("the enrolment file has no valid version (got %d)", head.Version)
	}
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("the enrolment file is damaged: %v", err)
	}
	if b.Checksum == "" {
		return nil, errors.New("the enrolment file has no checksum: it is incomplete")
	}
	if b.Checksum != b.checksum() {
		return nil, errors.New("the enrolment file is damaged or was edited: its checksum does not match; ask for it again")
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("the enrolment file is not valid: %w", err)
	}
	b.CASHA256 = strings.ToLower(b.CASHA256)
	return &b, nil
}

// The short code: CodePrefix, then the bytes below in Crockford's base32
// (0-9 and A-Z without I, L, O and U), in groups of five joined by '-'.
//
//	0      version (1)
//	1      n, the length of all of it in bytes, the CRC included
//	2      flags: 1 TLS, 2 CA pin present
//	3      site length s, then s bytes
//	       host length h, then h bytes
//	       port, 2 bytes big-endian
//	       the password's secret, SecretBytes bytes
//	       the CA pin, CodePinBytes bytes (with flag 2)
//	n-4    CRC-32 (IEEE) of bytes 0 to n-5, 4 bytes big-endian
//
// A binary layout rather than compressed JSON: for some 80 bytes of mostly
// random data, deflate's own headers cost more than it saves.
const (
	crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	codeGroup = 5
	flagTLS   = 1
	flagPin   = 2
	crcBytes  = 4
)

// LooksLikeCode reports whether s could be meant as a short code (rather
// than a file name): it starts with "HM", in any case, then a dash, a space
// or the code itself.
func LooksLikeCode(s string) bool {
	_, ok := strings.CutPrefix(strings.ToUpper(strings.TrimSpace(s)), "HM")
	return ok
}

// EncodeCode returns b as a short code. The password must be one that
// NewPassword makes, and the site and host short enough to fit.
func (b *Bundle) EncodeCode() (string, error) {
	useTLS, host, port, err := BrokerAddress(b.BrokerURL)
	if err != nil {
		return "", fmt.Errorf("short code: broker_url: %w", err)
	}
	secret, err := passwordEncoding.DecodeString(b.Password)
	if err != nil || len(secret) != SecretBytes || passwordEncoding.EncodeToString(secret) != b.Password {
		return "", errors.New("short code: only a password made by hubmon-collector enrol fits in a code")
	}
	var pin []byte
	if b.CAPEM != "" {
		certs, err := CACertificates(b.CAPEM)
		if err != nil {
			return "", fmt.Errorf("short code: ca_pem: %w", err)
		}
		sum := sha256.Sum256(certs[0].Raw)
		pin = sum[:CodePinBytes]
	} else if b.CASHA256 != "" {
		if pin, err = hex.DecodeString(b.CASHA256); err != nil || len(pin) < CodePinBytes {
			return "", errors.New("short code: ca_sha256 is not a SHA-256")
		}
		pin = pin[:CodePinBytes]
	}
	flags := byte(0)
	if useTLS {
		flags |= flagTLS
	}
	if pin != nil {
		flags |= flagPin
	}
	if !ValidSite(b.Site) {
		return "", fmt.Errorf("short code: %q is not a site id", b.Site)
	}
	p := []byte{BundleVersion, 0, flags, byte(len(b.Site))}
	p = append(p, b.Site...)
	if len(host) > 255 {
		return "", errors.New("short code: the broker's host name is too long")
	}
	p = append(p, byte(len(host)))
	p = append(p, host...)
	p = binary.BigEndian.AppendUint16(p, uint16(port))
	p = append(p, secret...)
	p = append(p, pin...)
	n := len(p) + crcBytes
	if n > 255 {
		return "", errors.New("short code: the site id and host name are too long for a code; use the file")
	}
	p[1] = byte(n)
	p = binary.BigEndian.AppendUint32(p, crc32.ChecksumIEEE(p))

	chars := toBase32(p)
	var sb strings.Builder
	sb.WriteString(CodePrefix)
	for i := 0; i < len(chars); i += codeGroup {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(chars[i:min(i+codeGroup, len(chars))])
	}
	return sb.String(), nil
}

func toBase32(p []byte) string {
	var sb strings.Builder
	var acc uint32
	bits := 0
	for _, c := range p {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(crockford[(acc>>bits)&31])
		}
	}
	if bits > 0 {
		sb.WriteByte(crockford[(acc<<(5-bits))&31])
	}
	return sb.String()
}

// codeChars returns the base32 characters of a code as typed: the prefix,
// dashes and white space removed, upper-cased, O read as 0 and I, L as 1.
func codeChars(s string) ([]byte, error) {
	// the prefix: "HM" (a code's first character is always 0)
	rs := []rune(s)
	var chars []byte
	start := 0
	for start < len(rs) && unicode.IsSpace(rs[start]) {
		start++
	}
	if LooksLikeCode(s) {
		start += 2
	}
	for i := start; i < len(rs); i++ {
		r := unicode.ToUpper(rs[i])
		switch {
		case r == '-' || unicode.IsSpace(r):
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if r > unicode.MaxASCII || strings.IndexByte(crockford, byte(r)) < 0 {
			return nil, fmt.Errorf("the enrolment code has a mistake: character %d, %q, is not used in codes (they use 0-9 and A-Z but U)", i+1, string(rs[i]))
		}
		chars = append(chars, byte(r))
	}
	return chars, nil
}

func fromBase32(chars []byte) []byte {
	var out []byte
	var acc uint32
	bits := 0
	for _, c := range chars {
		acc = acc<<5 | uint32(strings.IndexByte(crockford, c))
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	return out
}

// charsFor is the number of base32 characters n bytes take.
func charsFor(n int) int { return (n*8 + 4) / 5 }

// ParseCode decodes a short code as typed or pasted. Errors say what is
// wrong in words a person can act on: characters missing or too many, a
// character that is never in a code, a mistake the checksum caught, a code
// from a newer hubmon.
func ParseCode(s string) (*Bundle, error) {
	chars, err := codeChars(s)
	if err != nil {
		return nil, err
	}
	const minBytes = 3 + 1 + 1 + 1 + 1 + 2 + SecretBytes + crcBytes
	if len(chars) < charsFor(2) {
		return nil, fmt.Errorf("the enrolment code is incomplete: at least %d characters missing", charsFor(minBytes)-len(chars))
	}
	head := fromBase32(chars[:charsFor(2)])
	if head[0] > BundleVersion {
		return nil, fmt.Errorf("the enrolment code is version %d, made by a newer hubmon-collector: upgrade hubmon-agent", head[0])
	}
	n := int(head[1])
	if head[0] != BundleVersion || n < minBytes {
		return nil, errors.New("the enrolment code has a mistake in its first characters: compare them with the original")
	}
	want := charsFor(n)
	switch {
	case len(chars) < want:
		return nil, fmt.Errorf("the enrolment code is incomplete: %d characters missing (it should have %d, not counting %q and the dashes)", want-len(chars), want, CodePrefix)
	case len(chars) > want:
		return nil, fmt.Errorf("the enrolment code has %d characters too many (it should have %d, not counting %q and the dashes)", len(chars)-want, want, CodePrefix)
	}
	p := fromBase32(chars)[:n]
	if crc32.ChecksumIEEE(p[:n-crcBytes]) != binary.BigEndian.Uint32(p[n-crcBytes:]) {
		return nil, errors.New("the enrolment code has a mistake in it (its checksum does not match): compare it with the original character by character")
	}
	bad := errors.New("the enrolment code's checksum matches but its content is not valid: ask for a new code")
	r := p[2 : n-crcBytes]
	flags, r := r[0], r[1:]
	field := func() (string, bool) {
		if len(r) < 1 || len(r) < 1+int(r[0]) {
			return "", false
		}
		v := string(r[1 : 1+int(r[0])])
		r = r[1+int(r[0]):]
		return v, true
	}
	site, ok1 := field()
	host, ok2 := field()
	if !ok1 || !ok2 || len(r) < 2+SecretBytes {
		return nil, bad
	}
	port := int(binary.BigEndian.Uint16(r))
	secret := r[2 : 2+SecretBytes]
	r = r[2+SecretBytes:]
	b := &Bundle{Format: BundleFormat, Version: BundleVersion, Site: site, Username: site, Password: passwordEncoding.EncodeToString(secret)}
	if flags&flagPin != 0 {
		if len(r) < CodePinBytes {
			return nil, bad
		}
		b.CASHA256 = hex.EncodeToString(r[:CodePinBytes])
		r = r[CodePinBytes:]
	}
	if len(r) != 0 || flags&^(flagTLS|flagPin) != 0 {
		return nil, bad
	}
	scheme := "mqtt"
	if flags&flagTLS != 0 {
		scheme = "mqtts"
	}
	b.BrokerURL = scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", bad, err)
	}
	return b, nil
}
