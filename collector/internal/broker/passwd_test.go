package broker

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// Entries made by mosquitto_passwd 2.0.11 (-b; -H sha512 for the $6$ one).
var mosquittoVectors = []struct {
	name, password, entry string
}{
	{"pbkdf2", "secret", "$7$101$uGJ539UXjSII6kNg$IT4b6mU7BkRMyTISs3yA88zzCVq6VvrX7D79hOH1zQ/kJoA4OrmLEpzdBUztboO/+rbZ9HLupHcWNAD58pPEag=="},
	{"sha512", "secret2", "$6$uizZ9uoK6S9TRl6o$sGdjZoEwGNtnuQXo6wFOSnzWGYMfNsBMgXBzW7YKN6IXMXVMyc2AfPuKJj2xjIDbLFX4NhRdrd9ddmit2Sntbg=="},
	{"pbkdf2 empty", "", "$7$101$b4VOaBj+Oi/VAoGp$alsD87EegIGRop6kvv8f+bzFVk77UCD3CZI6Z5BRqiAF+Zonky0iNDv6u3HyxMGH1aWrATIa9inhIry3f+ekoA=="},
}

func TestVerifyMosquittoVectors(t *testing.T) {
	for _, v := range mosquittoVectors {
		t.Run(v.name, func(t *testing.T) {
			c, err := parseCredential(v.entry)
			if err != nil {
				t.Fatal(err)
			}
			// Empty passwords never match, even an entry made from "".
			if got, want := c.verify([]byte(v.password)), v.password != ""; got != want {
				t.Errorf("verify(right password) = %t, want %t", got, want)
			}
			for _, wrong := range []string{"", "Secret", v.password + "x", "x"} {
				if wrong != v.password && c.verify([]byte(wrong)) {
					t.Errorf("verify(%q) = true", wrong)
				}
			}
		})
	}
}

// TestMosquittoPasswdFile checks files written by the real mosquitto_passwd,
// in both formats it offers, end to end through the broker.
func TestMosquittoPasswdFile(t *testing.T) {
	tool, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd not installed")
	}
	path := filepath.Join(t.TempDir(), "passwd")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
		}
	}
	run("-b", "-c", path, "site-a", "pw-default")
	run("-H", "sha512", "-b", path, "site-b", "pw-sha512")
	run("-H", "sha512-pbkdf2", "-b", path, "site-c", "pw-pbkdf2")

	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for user, prefix := range map[string]string{"site-a:": "$7$", "site-b:": "$6$", "site-c:": "$7$"} {
		if !strings.Contains(string(content), user+prefix) {
			t.Fatalf("mosquitto_passwd did not write a %s entry for %s:\n%s", prefix, user, content)
		}
	}

	rec := newRecorder()
	b, err := Start(Options{Listen: "127.0.0.1:0", PasswordFile: path, Handler: rec.handle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for user, pass := range map[string]string{"site-a": "pw-default", "site-b": "pw-sha512", "site-c": "pw-pbkdf2"} {
		t.Run(user, func(t *testing.T) {
			mustDial(t, b.Addr(), user, pass).disconnect()
			if _, err := dial(t, b.Addr(), user, pass+"x", ""); err == nil {
				t.Fatal("wrong password accepted")
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	format := regexp.MustCompile(`^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$`)
	h1, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	h2, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{h1, h2} {
		if !format.MatchString(h) {
			t.Fatalf("%q is not a mosquitto $7$ entry", h)
		}
		c, err := parseCredential(h)
		if err != nil {
			t.Fatal(err)
		}
		if !c.verify([]byte("correct horse")) || c.verify([]byte("correct horsE")) {
			t.Fatalf("%q does not verify as it should", h)
		}
	}
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	if _, err := HashPassword(""); err == nil {
		t.Fatal("HashPassword accepted an empty password")
	}
	// Same salt and password as the mosquitto_passwd vector: same entry.
	v := mosquittoVectors[0]
	c, err := parseCredential(v.entry)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := hashPBKDF2(v.password, c.salt, 101); err != nil || got != v.entry {
		t.Fatalf("hashPBKDF2 = %q, %v; want %q", got, err, v.entry)
	}
}

func TestAddUser(t *testing.T) {
	dir := t.TempDir()
	t.Run("creates 0600", func(t *testing.T) {
		path := filepath.Join(dir, "new")
		if err := AddUser(path, "site-a", "pw"); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", st.Mode().Perm())
		}
		p, err := loadPasswords(path)
		if err != nil {
			t.Fatal(err)
		}
		if c := p.users["site-a"]; c == nil || !c.verify([]byte("pw")) {
			t.Fatal("added user does not verify")
		}
	})
	t.Run("keeps other lines, replaces the user", func(t *testing.T) {
		path := filepath.Join(dir, "existing")
		orig := "# hubs\n" +
			"site-a:" + mosquittoVectors[0].entry + "\r\n" +
			"\n" +
			"site-b:" + mosquittoVectors[1].entry // no final newline
		if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := AddUser(path, "site-a", "new"); err != nil {
			t.Fatal(err)
		}
		if err := AddUser(path, "site-c", "third"); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(got), "\n")
		if len(lines) != 6 || lines[0] != "# hubs" || !strings.HasPrefix(lines[1], "site-a:$7$101$") ||
			lines[2] != "" || lines[3] != "site-b:"+mosquittoVectors[1].entry ||
			!strings.HasPrefix(lines[4], "site-c:$7$") || lines[5] != "" {
			t.Fatalf("file after AddUser:\n%s", got)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
			t.Fatalf("mode changed to %v", st.Mode().Perm())
		}
		p, err := loadPasswords(path)
		if err != nil {
			t.Fatal(err)
		}
		if !p.users["site-a"].verify([]byte("new")) || p.users["site-a"].verify([]byte("secret")) {
			t.Fatal("site-a's password not replaced")
		}
		if !p.users["site-b"].verify([]byte("secret2")) || !p.users["site-c"].verify([]byte("third")) {
			t.Fatal("other users broken")
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp") {
				t.Fatalf("temporary file left: %s", e.Name())
			}
		}
	})
	t.Run("keeps owner and group", func(t *testing.T) {
		// the packaged collector runs as hubmon and reads a root:hubmon 0640
		// file that root adds users to
		if os.Geteuid() != 0 {
			t.Skip("needs root, to give the file away")
		}
		path := filepath.Join(dir, "owned")
		if err := os.WriteFile(path, []byte("# hubs\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		const uid, gid = 4242, 4343
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := AddUser(path, "site-a", "pw"); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != uid || sys.Gid != gid || st.Mode().Perm() != 0o640 {
			t.Fatalf("after AddUser: owner %d:%d mode %v, want %d:%d 0640", sys.Uid, sys.Gid, st.Mode().Perm(), uid, gid)
		}
	})
	t.Run("refuses", func(t *testing.T) {
		path := filepath.Join(dir, "refuse")
		for _, user := range []string{"", "a:b", "a b", "#a", "a\nb"} {
			if err := AddUser(path, user, "pw"); err == nil {
				t.Errorf("AddUser(%q) succeeded", user)
			}
		}
		if err := AddUser(path, "site-a", ""); err == nil {
			t.Error("AddUser with an empty password succeeded")
		}
		broken := "site-b:plain-text-password\n"
		if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
			t.Fatal(err)
		}
		err := AddUser(path, "site-a", "pw")
		if err == nil {
			t.Fatal("AddUser wrote beside a broken line")
		}
		if strings.Contains(err.Error(), "plain-text-password") {
			t.Fatalf("error quotes the broken entry: %v", err)
		}
		if got, _ := os.ReadFile(path); string(got) != broken {
			t.Fatalf("file changed:\n%s", got)
		}
	})
}

func TestParsePasswordsErrors(t *testing.T) {
	good := "site-a:" + mosquittoVectors[0].entry + "\n"
	tests := []struct {
		name, line, want string
	}{
		{"no colon", "site-b", "line 2: want user:hash"},
		{"plain text", "site-b:hunter2", `line 2: user "site-b": not a $6$ or $7$ hash`},
		{"unknown algorithm", "site-b:$5$abc$def", "not a $6$ or $7$ hash"},
		{"bad iterations", "site-b:$7$0$AAAA$" + strings.Repeat("A", 86) + "==", "iterations"},
		{"huge iterations", "site-b:$7$999999999$AAAA$" + strings.Repeat("A", 86) + "==", "iterations"},
		{"bad salt", "site-b:$6$!!!!$" + strings.Repeat("A", 86) + "==", "salt"},
		{"short hash", "site-b:$6$AAAA$AAAA", "hash is not 64 bytes"},
		{"empty user", ":" + mosquittoVectors[0].entry, "empty user name"},
		{"space in user", "site b:" + mosquittoVectors[0].entry, "contains"},
		{"duplicate", "site-a:" + mosquittoVectors[1].entry, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parsePasswords([]byte(good + tt.line + "\n"))
			if err == nil {
				t.Fatal("parsed")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes a password: %v", err)
			}
		})
	}
	t.Run("comments, blank lines, CRLF", func(t *testing.T) {
		p, err := parsePasswords([]byte("# c\r\n\r\n" + "site-a:" + mosquittoVectors[0].entry + "\r\n  \n"))
		if err != nil {
			t.Fatal(err)
		}
		if !p.users["site-a"].verify([]byte("secret")) {
			t.Fatal("site-a does not verify")
		}
	})
}

// mustHash returns a $7$ entry for password (which may be empty) and salt.
func mustHash(tb testing.TB, password string, salt []byte) string {
	tb.Helper()
	h, err := hashPBKDF2(password, salt, defaultIterations)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func appendEntry(tb testing.TB, path, user, entry string) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(user + ":" + entry + "\n"); err != nil {
		tb.Fatal(err)
	}
}
