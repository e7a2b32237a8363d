package main_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// brokerCerts are a council CA and a broker certificate for 127.0.0.1 and
// localhost signed by it, in the files deploy/mosquitto/hubmon.conf names
// (under /etc/mosquitto/certs/ there).
type brokerCerts struct {
	dir    string
	caFile string // hubmon-ca.pem
}

// writeBrokerCerts writes hubmon-ca.pem, hubmon-server-chain.pem (the
// broker's certificate, then the CA's) and hubmon-server.key into dir.
func writeBrokerCerts(tb testing.TB, dir string) *brokerCerts {
	tb.Helper()
	caKey, caDER := newCACert(tb, "hubmon e2e council CA")
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mqtt.council.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	c := &brokerCerts{dir: dir, caFile: filepath.Join(dir, "hubmon-ca.pem")}
	writePEM(tb, c.caFile, "CERTIFICATE", caDER)
	writePEM(tb, filepath.Join(dir, "hubmon-server-chain.pem"), "CERTIFICATE", leafDER, caDER)
	writePEM(tb, filepath.Join(dir, "hubmon-server.key"), "EC PRIVATE KEY", keyDER)
	return c
}

// newCACert makes a self-signed CA certificate.
func newCACert(tb testing.TB, name string) (*ecdsa.PrivateKey, []byte) {
	tb.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return key, der
}

func writePEM(tb testing.TB, path, typ string, ders ...[]byte) {
	tb.Helper()
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: d})...)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		tb.Fatal(err)
	}
}
