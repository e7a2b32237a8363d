package broker

import (
	"errors"
	"os"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
)

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name, user, pass, clientID string
		wantOK                     bool
	}{
		{"site", "site-a", "pass-a", "site-a", true},
		{"reader with any client id", testReader, "pass-ops", "mosq-Xy12", true},
		{"reader with its own name", testReader, "pass-ops", testReader, true},
		{"wrong password", "site-a", "pass-b", "site-a", false},
		{"empty password", "site-a", "", "site-a", false},
		{"password of an empty-password entry", "empty", "", "empty", false},
		{"unknown user", "site-z", "pass-a", "site-z", false},
		{"no user", "", "", "anything", false},
		{"client id differs from user", "site-a", "pass-a", "site-b", false},
		{"client id differs only by case", "site-a", "pass-a", "Site-a", false},
		{"user not a site id", "Site_C", "pass-c", "Site_C", false},
		{"reader using a site's client id", testReader, "pass-ops", "site-a", false},
		{"reader using the inline client id", testReader, "pass-ops", "inline", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			// An entry made from the empty password, as mosquitto_passwd allows.
			appendEntry(t, e.pwfile, "empty", mustHash(t, "", []byte("0123456789ab")))
			if err := e.b.Reload(); err != nil {
				t.Fatal(err)
			}
			c, err := dial(t, e.b.Addr(), tt.user, tt.pass, tt.clientID)
			switch {
			case tt.wantOK && err != nil:
				t.Fatalf("refused: %v", err)
			case !tt.wantOK && err == nil:
				t.Fatal("accepted")
			case !tt.wantOK && !errors.Is(err, pahopackets.ErrorRefusedNotAuthorised):
				// mochi maps its "bad user name or password" to the MQTT 3.1.1
				// return code 5, "not authorized".
				t.Fatalf("err = %v, want %v", err, pahopackets.ErrorRefusedNotAuthorised)
			}
			if c != nil {
				c.disconnect()
			}
		})
	}
}

func TestNoTakeoverOfAnotherUsersSession(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Readers = append(o.Readers, "ops2") })
	appendEntry(t, e.pwfile, "ops2", mustHash(t, "pass-ops2", []byte("0123456789ab")))
	if err := e.b.Reload(); err != nil {
		t.Fatal(err)
	}
	first := mustDial(t, e.b.Addr(), testReader, "pass-ops", func(o *paho.ClientOptions) { o.SetClientID("shared-id") })
	if _, err := dial(t, e.b.Addr(), "ops2", "pass-ops2", "shared-id"); err == nil {
		t.Fatal("ops2 took over ops's session")
	}
	if !first.IsConnectionOpen() {
		t.Fatal("first client lost its connection")
	}
	// The same user may take its own session over (an agent reconnecting
	// before the broker noticed the old connection died).
	mustDial(t, e.b.Addr(), testReader, "pass-ops", func(o *paho.ClientOptions) { o.SetClientID("shared-id") })
	first.waitLost(t)
}

func TestSubscribeACL(t *testing.T) {
	tests := []struct {
		name, user, pass, filter string
		wantOK                   bool
	}{
		{"site own ack", "site-a", "pass-a", "hubmon/v1/site-a/ack", true},
		{"site other's ack", "site-a", "pass-a", "hubmon/v1/site-b/ack", false},
		{"site own wildcard", "site-a", "pass-a", "hubmon/v1/site-a/#", false},
		{"site own measurement", "site-a", "pass-a", "hubmon/v1/site-a/measurement", false},
		{"site everything", "site-a", "pass-a", "#", false},
		{"site shared own ack", "site-a", "pass-a", "$share/g/hubmon/v1/site-a/ack", false},
		{"reader all hubmon", testReader, "pass-ops", "hubmon/v1/#", true},
		{"reader statuses", testReader, "pass-ops", "hubmon/v1/+/status", true},
		{"reader one site", testReader, "pass-ops", "hubmon/v1/site-a/measurement", true},
		{"reader everything", testReader, "pass-ops", "#", false},
		{"reader other version", testReader, "pass-ops", "hubmon/v2/#", false},
		{"reader wildcard version", testReader, "pass-ops", "hubmon/+/#", false},
		{"reader $SYS", testReader, "pass-ops", "$SYS/#", false},
		{"reader shared", testReader, "pass-ops", "$share/g/hubmon/v1/#", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := mustDial(t, e.b.Addr(), tt.user, tt.pass)
			tok := c.Subscribe(tt.filter, 1, nil)
			waitToken(t, tok)
			if err := tok.Error(); err != nil {
				t.Fatal(err)
			}
			// paho keys the result by the filter without "$share/<group>/".
			res := tok.(*paho.SubscribeToken).Result()
			if len(res) != 1 {
				t.Fatalf("SUBACK results %v, want one", res)
			}
			var code byte
			for _, c := range res {
				code = c
			}
			if granted := code < 0x80; granted != tt.wantOK {
				t.Fatalf("SUBACK code 0x%02x, want granted=%t", code, tt.wantOK)
			}
		})
	}
}

func TestWillTopicChecked(t *testing.T) {
	tests := []struct {
		name, user, pass, willTopic string
	}{
		{"another site's status", "site-a", "pass-a", "hubmon/v1/site-b/status"},
		{"own ack", "site-a", "pass-a", "hubmon/v1/site-a/ack"},
		{"outside hubmon", "site-a", "pass-a", "$SYS/broker/x"},
		{"reader", testReader, "pass-ops", "hubmon/v1/site-a/status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			_, err := dial(t, e.b.Addr(), tt.user, tt.pass, "", func(o *paho.ClientOptions) {
				o.SetWill(tt.willTopic, "offline", 1, true)
			})
			if err == nil {
				t.Fatal("accepted a will on a topic the user may not publish to")
			}
		})
	}
}

func TestReload(t *testing.T) {
	e := newEnv(t)
	a := mustDial(t, e.b.Addr(), "site-a", "pass-a")
	b := mustDial(t, e.b.Addr(), "site-b", "pass-b")

	t.Run("new user", func(t *testing.T) {
		if _, err := dial(t, e.b.Addr(), "site-d", "pass-d", ""); err == nil {
			t.Fatal("site-d accepted before it was added")
		}
		if err := AddUser(e.pwfile, "site-d", "pass-d"); err != nil {
			t.Fatal(err)
		}
		if err := e.b.Reload(); err != nil {
			t.Fatal(err)
		}
		mustDial(t, e.b.Addr(), "site-d", "pass-d").disconnect()
	})
	t.Run("broken file keeps the old users", func(t *testing.T) {
		good, err := os.ReadFile(e.pwfile)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, e.pwfile, string(good)+"site-e:plaintext-secret\n")
		err = e.b.Reload()
		if err == nil {
			t.Fatal("Reload accepted a broken file")
		}
		if strings.Contains(err.Error(), "plaintext-secret") {
			t.Fatalf("error quotes the broken entry: %v", err)
		}
		mustDial(t, e.b.Addr(), "site-d", "pass-d").disconnect()
		writeFile(t, e.pwfile, string(good))
	})
	t.Run("removed user is disconnected", func(t *testing.T) {
		content, err := os.ReadFile(e.pwfile)
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, l := range strings.SplitAfter(string(content), "\n") {
			if !strings.HasPrefix(l, "site-a:") {
				kept = append(kept, l)
			}
		}
		writeFile(t, e.pwfile, strings.Join(kept, ""))
		if err := e.b.Reload(); err != nil {
			t.Fatal(err)
		}
		a.waitLost(t)
		if _, err := dial(t, e.b.Addr(), "site-a", "pass-a", ""); err == nil {
			t.Fatal("removed user accepted")
		}
		// site-b's entry did not change: still connected and publishing.
		tok := b.Publish("hubmon/v1/site-b/measurement", 1, false, "still here")
		waitToken(t, tok)
		if err := tok.Error(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("changed password disconnects", func(t *testing.T) {
		if err := AddUser(e.pwfile, "site-b", "new-pass-b"); err != nil {
			t.Fatal(err)
		}
		if err := e.b.Reload(); err != nil {
			t.Fatal(err)
		}
		b.waitLost(t)
		if _, err := dial(t, e.b.Addr(), "site-b", "pass-b", ""); err == nil {
			t.Fatal("old password accepted")
		}
		mustDial(t, e.b.Addr(), "site-b", "new-pass-b").disconnect()
	})
}
