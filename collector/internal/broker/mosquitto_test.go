package broker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestHashAcceptedByMosquitto starts the real Mosquitto with a password file
// written by AddUser and logs in with the password.
func TestHashAcceptedByMosquitto(t *testing.T) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Skip("mosquitto not installed")
	}
	dir := t.TempDir()
	pwfile := filepath.Join(dir, "passwd")
	if err := AddUser(pwfile, "site-a", "s3cret pass"); err != nil {
		t.Fatal(err)
	}
	if err := AddUser(pwfile, "ops", "other"); err != nil {
		t.Fatal(err)
	}

	// A free port: Mosquitto cannot report the one it picked.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()

	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\npersistence false\nlog_dest stderr\n", addr.Port, pwfile)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else Mosquitto drops to "mosquitto", who cannot read the 0600 file
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	writeFile(t, confPath, conf)

	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})

	deadline := time.Now().Add(waitLimit)
	for {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("mosquitto exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not listening on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	mustDial(t, addr, "site-a", "s3cret pass").disconnect()
	mustDial(t, addr, "ops", "other").disconnect()
	if _, err := dial(t, addr, "site-a", "s3cret pasS", ""); err == nil {
		t.Fatal("mosquitto accepted a wrong password")
	}
}

// TestProtocolVersions publishes with the real mosquitto_pub in every MQTT
// version it speaks.
func TestProtocolVersions(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Skip("mosquitto_pub not installed")
	}
	tests := []struct {
		version, pass string
		fail          bool // the Handler fails
		wantOK        bool
	}{
		{"mqttv31", "pass-a", false, true},
		{"mqttv311", "pass-a", false, true},
		{"mqttv5", "pass-a", false, true},
		{"mqttv311", "wrong", false, false},
		{"mqttv5", "wrong", false, false},
		{"mqttv311", "pass-a", true, false},
		{"mqttv5", "pass-a", true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s pass=%s handler_fails=%t", tt.version, tt.pass, tt.fail), func(t *testing.T) {
			e := newEnv(t)
			e.rec.fail.Store(tt.fail)
			host, port, _ := net.SplitHostPort(e.b.Addr().String())
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-V", tt.version,
				"-u", "site-a", "-P", tt.pass, "-i", "site-a",
				"-t", "hubmon/v1/site-a/measurement", "-q", "1", "-m", "m-"+tt.version).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("mosquitto_pub did not finish: %s", out)
			}
			if ok := err == nil; ok != tt.wantOK {
				t.Fatalf("mosquitto_pub: err=%v, want success=%t\n%s", err, tt.wantOK, out)
			}
			got := e.rec.snapshot()
			wantCalls := 0
			if tt.pass == "pass-a" {
				wantCalls = 1 // called once, whether or not it fails
			}
			if len(got) != wantCalls {
				t.Fatalf("handler calls = %v, want %d", got, wantCalls)
			}
		})
	}
}

// TestReaderWithMosquittoSub reads with the real mosquitto_sub, as operators do.
func TestReaderWithMosquittoSub(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Skip("mosquitto_sub not installed")
	}
	for _, version := range []string{"mqttv311", "mqttv5"} {
		t.Run(version, func(t *testing.T) {
			e := newEnv(t)
			agent := mustDial(t, e.b.Addr(), "site-a", "pass-a")
			tok := agent.Publish("hubmon/v1/site-a/status", 1, true, "online")
			waitToken(t, tok)
			if err := tok.Error(); err != nil {
				t.Fatal(err)
			}
			host, port, _ := net.SplitHostPort(e.b.Addr().String())
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-V", version,
				"-u", testReader, "-P", "pass-ops", "-t", "hubmon/v1/#", "-q", "1", "-C", "1", "-v").CombinedOutput()
			if err != nil {
				t.Fatalf("mosquitto_sub: %v\n%s", err, out)
			}
			if got, want := string(out), "hubmon/v1/site-a/status online\n"; got != want {
				t.Fatalf("mosquitto_sub printed %q, want %q", got, want)
			}
		})
	}
}
