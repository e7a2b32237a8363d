package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConnectErrorsInPlainWords connects to a real Mosquitto with a
// password file and a TLS listener, the wrong way in each case, and checks
// that the error says what is wrong in words a person can act on.
func TestConnectErrorsInPlainWords(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeCA(t, dir)
	otherCA, _, _ := writeCA(t, t.TempDir())
	passwd := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", passwd, site, "right").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	plain, tlsPort := freePort(t), freePort(t)
	me, _ := user.Current()
	m := &mosquitto{tb: t, port: plain, conf: filepath.Join(dir, "mosquitto.conf")}
	os.WriteFile(m.conf, fmt.Appendf(nil, `user %s
allow_anonymous false
password_file %s
persistence false
listener %d 127.0.0.1
listener %d 127.0.0.1
certfile %s
keyfile %s
`, me.Username, passwd, plain, tlsPort, certFile, keyFile), 0o644)
	m.start()
	t.Cleanup(m.stop)

	tlsURL := fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort)
	trusted, _ := TLSConfig(caFile, "", "")
	untrusted, _ := TLSConfig(otherCA, "", "")
	tests := []struct {
		name, url, password string
		tls                 bool
		trust               bool
		want                string
	}{
		{"the right password", tlsURL, "right", true, true, ""},
		{"a wrong password", tlsURL, "wrong", true, true, "the broker refused the user name or password (user \"" + site + "\"): the password in the agent's config is wrong"},
		{"a wrong password, plain", m.url(), "wrong", false, false, "the broker refused the user name or password"},
		{"another CA", tlsURL, "right", true, false, "the broker's TLS certificate is not signed by a CA this agent trusts"},
		{"TLS to a plain port", fmt.Sprintf("ssl://127.0.0.1:%d", plain), "right", true, true, "the broker closed the connection before TLS was set up: the URL should probably be mqtt://"},
		{"nobody there", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), "right", false, false, "nothing accepts connections at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Site: site, Username: site, Password: tt.password, BrokerURL: tt.url, Outbox: newOutbox(t),
				ConnectTimeout: 3 * time.Second, AckTimeout: time.Minute, StatusInterval: time.Hour}
			if tt.tls {
				o.TLS = untrusted
				if tt.trust {
					o.TLS = trusted
				}
			}
			p := New(o)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := p.session(ctx)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("session: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v\nwant %q", err, tt.want)
			}
			if strings.Contains(tt.want, "password") != errors.Is(err, ErrCredentialsRefused) {
				t.Fatalf("errors.Is(ErrCredentialsRefused) wrong for %v", err)
			}
		})
	}
}
