package publish

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCA makes a council CA and a server certificate for 127.0.0.1 signed
// by it, as PEM files in dir.
func writeCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hubmon test council CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return
}

// TestTLSBroker publishes over ssl:// to a real Mosquitto TLS listener whose
// certificate is signed by a council CA the agent is told to trust, and
// refuses a broker whose certificate it cannot verify.
func TestTLSBroker(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeCA(t, dir)
	plain, tlsPort := freePort(t), freePort(t)
	me, _ := user.Current()
	m := &mosquitto{tb: t, port: plain, conf: filepath.Join(dir, "mosquitto.conf")}
	os.WriteFile(m.conf, fmt.Appendf(nil, `user %s
per_listener_settings false
allow_anonymous true
persistence false
listener %d 127.0.0.1
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
`, me.Username, plain, tlsPort, caFile, certFile, keyFile), 0o644)
	m.start()
	t.Cleanup(m.stop)
	f := startFakeCollector(t, m.url(), true)

	tc, err := TLSConfig(caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	o := newOutbox(t)
	add(t, o, 3)
	run(t, Options{BrokerURL: fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort), Outbox: o, TLS: tc})
	waitFor(t, "delivery over TLS", 20*time.Second, func() bool { return backlog(o) == 0 })
	if d, _ := f.count(); d != 3 {
		t.Fatalf("collector saw %d, want 3", d)
	}

	// the system roots do not know the council CA: the agent must refuse
	untrusted, _ := TLSConfig("", "", "")
	o2 := newOutbox(t)
	add(t, o2, 1)
	p, _ := run(t, Options{BrokerURL: fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort), Outbox: o2, TLS: untrusted})
	time.Sleep(time.Second)
	if p.Connected() || backlog(o2) != 1 {
		t.Fatal("agent connected to a broker whose certificate it cannot verify")
	}
	if _, err := TLSConfig(filepath.Join(dir, "server.key"), "", ""); err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
		t.Fatalf("TLSConfig with a key as CA: %v", err)
	}
}
