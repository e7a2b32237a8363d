package publish

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// ErrCredentialsRefused is in the error of a connection the broker refused
// for its user name or password.
var ErrCredentialsRefused = errors.New("the broker refused the user name or password")

// explainConnect puts a failed connection to the broker into words a person
// can act on (hub staff read the log, or `hubmon-agent check`), keeping
// the cause wrapped: a refused password, a certificate the agent cannot
// trust, a broker that does not speak TLS, nothing listening.
func explainConnect(err error, o Options) error {
	if err == nil {
		return nil
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		verify    *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return fmt.Errorf("%w (user %q): the password in the agent's config is wrong, or the council gave the site a new one; "+
			"ask your council contact for a new enrolment and install it with hubmon-agent enrol: %w", ErrCredentialsRefused, o.Username, err)
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return fmt.Errorf("the broker refused the client id %q (the site id): %w", o.Site, err)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("the broker's TLS certificate is not signed by a CA this agent trusts (broker.ca_file, or the system's CAs if none): "+
			"either the agent has the wrong CA (install the council's current enrolment), or this is not the council's broker: %w", err)
	case errors.As(err, &hostname):
		return fmt.Errorf("the broker's TLS certificate is not for the host in broker.url (%s): check the URL, or tell the council: %w", hostname.Host, err)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("the broker's TLS certificate has expired or is not valid yet: check the hub's clock, or tell the council: %w", err)
	case errors.As(err, &verify):
		return fmt.Errorf("the broker's TLS certificate could not be verified: %w", err)
	case errors.As(err, &record):
		return fmt.Errorf("the broker does not answer in TLS at %s: the URL should be mqtt:// (tcp://), or the port is wrong: %w", o.BrokerURL, err)
	case tlsURL(o.BrokerURL) && errors.Is(err, syscall.ECONNRESET):
		// Mosquitto drops a TLS handshake on a plain listener
		return fmt.Errorf("the broker closed the connection before TLS was set up: the URL should probably be mqtt:// (tcp://), or the port is wrong (%s): %w", o.BrokerURL, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nothing accepts connections at %s (the broker is down, or the address or port is wrong): %w", o.BrokerURL, err)
	case strings.Contains(err.Error(), "first record does not look like a TLS handshake"):
		return fmt.Errorf("the broker does not answer in TLS at %s: the URL should be mqtt:// (tcp://), or the port is wrong: %w", o.BrokerURL, err)
	}
	return err
}

func tlsURL(u string) bool {
	scheme, _, _ := strings.Cut(u, "://")
	switch strings.ToLower(scheme) {
	case "ssl", "tls", "mqtts":
		return true
	}
	return false
}
