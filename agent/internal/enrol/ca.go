package enrol

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/hubmon/hubmon/agent/wire"
)

// FetchCA takes the council CA certificate from the TLS handshake of the
// broker at brokerURL: the certificate in the chain the broker sends whose
// SHA-256 starts with pin (hex), which must be a CA that the broker's own
// certificate verifies against, for the broker's host name. It returns it
// as PEM. Only a TLS handshake is made; no MQTT.
//
// The pin makes this safe on any network: a broker that is not the
// council's cannot present a certificate with that hash, nor a chain that
// verifies to it.
func FetchCA(ctx context.Context, brokerURL, pin string) ([]byte, error) {
	useTLS, host, port, err := wire.BrokerAddress(brokerURL)
	if err != nil {
		return nil, err
	}
	if !useTLS {
		return nil, fmt.Errorf("the enrolment names a CA but its broker %s is not TLS", brokerURL)
	}
	pin = strings.ToLower(pin)
	if len(pin) < 2*wire.CodePinBytes {
		return nil, errors.New("the enrolment's CA fingerprint is too short")
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	var found *x509.Certificate
	var verifyErr error
	d := tls.Dialer{Config: &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: host,
		// the chain is checked below, against the pinned CA, since the
		// system's roots do not know it
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			found, verifyErr = checkPinnedChain(cs.PeerCertificates, host, pin)
			return verifyErr
		},
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if verifyErr != nil {
		return nil, fmt.Errorf("the broker at %s: %w", addr, verifyErr)
	}
	if err != nil {
		return nil, fmt.Errorf("could not reach the broker at %s to take the council's CA certificate from it (%v): check the hub's connection and try again, or install the enrolment file instead of the code", addr, err)
	}
	conn.Close()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: found.Raw}), nil
}

// checkPinnedChain finds the certificate of chain whose SHA-256 starts with
// pin and verifies chain[0] for host against it.
func checkPinnedChain(chain []*x509.Certificate, host, pin string) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("it sent no certificate")
	}
	var ca *x509.Certificate
	inter := x509.NewCertPool()
	var names []string
	for _, c := range chain {
		names = append(names, fmt.Sprintf("%q", c.Subject.CommonName))
		if ca == nil && strings.HasPrefix(wire.Fingerprint(c), pin) {
			ca = c
			continue
		}
		inter.AddCert(c)
	}
	if ca == nil {
		return nil, fmt.Errorf("it did not send the council CA certificate the code names (SHA-256 %s...); it sent %s. "+
			"The broker's certfile must hold the CA certificate after its own (see deploy/mosquitto/hubmon.conf); or install the enrolment file instead of the code",
			pin[:16], strings.Join(names, ", "))
	}
	if !ca.IsCA && ca != chain[0] {
		return nil, fmt.Errorf("the certificate the code names, %q, is not a CA certificate", ca.Subject.CommonName)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host}); err != nil {
		return nil, fmt.Errorf("its certificate is not valid under the council CA the code names: %w", err)
	}
	return ca, nil
}
