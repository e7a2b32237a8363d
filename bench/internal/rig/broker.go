package rig

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Users of the bench broker. CollectorUser is the shipped ACL's; the others
// are added by the bench ACL.
const (
	CollectorUser = "hubmon-collector"
	// SimUserPrefix-0..n-1 publish for every site; SimAcksUser reads every
	// site's acks.
	SimUserPrefix = "hubmon-fleetsim"
	SimAcksUser   = SimUserPrefix + "-acks"
)

// SimPublisher is the user of the simulator's connection i.
func SimPublisher(i int) string { return SimUserPrefix + "-" + strconv.Itoa(i) }

// BrokerOptions configure a bench Mosquitto.
type BrokerOptions struct {
	// RepoRoot holds deploy/mosquitto/hubmon.conf and hubmon.acl.
	RepoRoot string
	// Dir receives the configuration, password file, persistence and log.
	Dir string
	// Password is every user's password.
	Password string
	// SimPublishers is how many simulator publishing users to allow.
	SimPublishers int
	// Readers may read every site's measurement and status topics (the
	// do-nothing subscribers that measure the broker's ceiling).
	Readers []string
	// Sites are real agents' users, under the shipped per-site pattern.
	Sites []string
}

// Broker is a running Mosquitto.
type Broker struct {
	*Proc
	Port int
	URL  string
}

// BenchACL is what the bench adds to the shipped ACL. The shipped pattern
// lets user S write only hubmon/v1/S/..., so a simulator that publishes for
// 20,000 sites from a few connections needs users that may write every
// site's topics.
func BenchACL(publishers int, readers []string) string {
	var b strings.Builder
	b.WriteString(`
# ---- bench only (bench/internal/rig): appended to the shipped ACL ----
# The fleet simulator publishes for every site from a few connections, so its
# users may write every site's measurement and status topics and read every
# ack. The per-site pattern above (one user, client id and TCP connection per
# site) is therefore not what the load benchmark exercises.
`)
	for i := range publishers {
		fmt.Fprintf(&b, "user %s\ntopic write hubmon/v1/+/measurement\ntopic write hubmon/v1/+/status\n", SimPublisher(i))
	}
	fmt.Fprintf(&b, "user %s\ntopic read hubmon/v1/+/ack\n", SimAcksUser)
	for _, r := range readers {
		fmt.Fprintf(&b, "user %s\ntopic read hubmon/v1/+/measurement\ntopic read hubmon/v1/+/status\n", r)
	}
	return b.String()
}

// StartBroker writes the bench configuration (the shipped one with a port
// and paths of its own, and BenchACL appended to the shipped ACL), the
// password file, and starts Mosquitto.
func StartBroker(o BrokerOptions) (*Broker, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		return nil, fmt.Errorf("mosquitto not found: apt-get install mosquitto")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	conf, err := os.ReadFile(filepath.Join(o.RepoRoot, "deploy/mosquitto/hubmon.conf"))
	if err != nil {
		return nil, err
	}
	acl, err := os.ReadFile(filepath.Join(o.RepoRoot, "deploy/mosquitto/hubmon.acl"))
	if err != nil {
		return nil, err
	}
	aclPath := filepath.Join(o.Dir, "hubmon.acl")
	if err := os.WriteFile(aclPath, append(acl, BenchACL(o.SimPublishers, o.Readers)...), 0o600); err != nil {
		return nil, err
	}
	users := []string{CollectorUser, SimAcksUser}
	for i := range o.SimPublishers {
		users = append(users, SimPublisher(i))
	}
	users = append(append(users, o.Readers...), o.Sites...)
	passwd := filepath.Join(o.Dir, "hubmon.passwd")
	var lines strings.Builder
	for _, u := range users {
		fmt.Fprintf(&lines, "%s:%s\n", u, o.Password)
	}
	if err := os.WriteFile(passwd, []byte(lines.String()), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command("mosquitto_passwd", "-U", passwd).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mosquitto_passwd -U: %v: %s", err, out)
	}
	// as root, Mosquitto switches to the user named in "user" (default
	// "mosquitto"), which could not read these files
	me, err := user.Current()
	if err != nil {
		return nil, err
	}
	text := strings.NewReplacer(
		"listener 1883 127.0.0.1", fmt.Sprintf("listener %d 127.0.0.1\nuser %s", port, me.Username),
		"/etc/mosquitto/hubmon.passwd", passwd,
		"/etc/mosquitto/hubmon.acl", aclPath,
	).Replace(string(conf))
	// the hubs' TLS listener needs the council's certificates, and Debian's
	// main config (not used here) says where to save: a few busy
	// connections on the plain listener are what this measures
	tlsListener := strings.Index(text, "\n# MQTT over TLS for the hubs")
	if tlsListener < 0 {
		return nil, fmt.Errorf("deploy/mosquitto/hubmon.conf changed: no TLS listener section to leave out")
	}
	text = text[:tlsListener+1] + "persistence_location " + o.Dir + "/\n"
	for _, want := range []string{passwd, aclPath, o.Dir + "/", strconv.Itoa(port)} {
		if !strings.Contains(text, want) {
			return nil, fmt.Errorf("deploy/mosquitto/hubmon.conf changed: could not set %q", want)
		}
	}
	confPath := filepath.Join(o.Dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(text+"log_type error\nlog_type warning\nlog_type notice\n"), 0o600); err != nil {
		return nil, err
	}
	p, err := Start("mosquitto", filepath.Join(o.Dir, "mosquitto.log"), nil, bin, "-c", confPath)
	if err != nil {
		return nil, err
	}
	b := &Broker{Proc: p, Port: port, URL: fmt.Sprintf("tcp://127.0.0.1:%d", port)}
	err = WaitFor("mosquitto to listen", 10*time.Second, func() (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("mosquitto exited: %v\n%s", p.Err(), p.Tail(2000))
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil, nil
	})
	if err != nil {
		p.Kill()
		return nil, err
	}
	return b, nil
}
