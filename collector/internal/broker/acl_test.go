package broker

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSiteACL(t *testing.T) {
	all := []string{"write hubmon/v1/hub-1/measurement", "write hubmon/v1/hub-1/status", "read hubmon/v1/hub-1/ack"}
	tests := []struct {
		name, acl string
		missing   []string
		err       string
	}{
		{name: "the shipped ACL", acl: "@../../../deploy/mosquitto/hubmon.acl"},
		{name: "only the collector", acl: "user hubmon-collector\ntopic read hubmon/v1/+/measurement\n", missing: all},
		{name: "wildcard pattern", acl: "pattern write hubmon/v1/%u/#\npattern read hubmon/v1/%c/ack\n"},
		{name: "readwrite by default", acl: "pattern hubmon/v1/%u/#\n"},
		{name: "a user section", acl: "user hub-1\ntopic write hubmon/v1/hub-1/+\ntopic read hubmon/v1/hub-1/ack\n"},
		{name: "another user's section", acl: "user hub-2\ntopic readwrite hubmon/v1/#\n", missing: all},
		{name: "anonymous topics", acl: "topic readwrite hubmon/v1/#\nuser hub-2\n", missing: all},
		{name: "read is not write", acl: "pattern read hubmon/v1/%u/#\n", missing: all[:2]},
		{name: "a deny", acl: "pattern write hubmon/v1/%u/#\npattern read hubmon/v1/%u/ack\n\nuser hub-1\ntopic deny hubmon/v1/hub-1/status\n",
			err: "line 5 denies hubmon/v1/hub-1/status"},
		{name: "unknown keyword", acl: "patern write x\n", err: `line 1: unknown keyword "patern"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := strings.TrimPrefix(tt.acl, "@")
			if path == tt.acl {
				path = filepath.Join(t.TempDir(), "acl")
				writeFile(t, path, tt.acl)
			}
			missing, err := SiteACL(path, "hub-1")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(missing, tt.missing) {
				t.Fatalf("missing %q, want %q", missing, tt.missing)
			}
		})
	}
}

func TestAddSiteACL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acl")
	orig := "user hubmon-collector\ntopic read hubmon/v1/+/measurement" // no final newline
	writeFile(t, path, orig)
	os.Chmod(path, 0o640)
	if err := AddSiteACL(path, "hub-1"); err != nil {
		t.Fatal(err)
	}
	if missing, err := SiteACL(path, "hub-1"); err != nil || len(missing) != 0 {
		t.Fatalf("after AddSiteACL: missing %q, %v", missing, err)
	}
	if missing, _ := SiteACL(path, "hub-2"); len(missing) != 3 {
		t.Fatalf("hub-2 got access from hub-1's lines: missing %q", missing)
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), orig+"\n\n# site hub-1") {
		t.Fatalf("file:\n%s", got)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if err := AddSiteACL(path, "Hub 1"); err == nil {
		t.Fatal("added a user section for an invalid site id")
	}
}

func TestMosquittoFiles(t *testing.T) {
	pw, acl, err := MosquittoFiles("../../../deploy/mosquitto/hubmon.conf")
	if err != nil || pw != "/etc/mosquitto/hubmon.passwd" || acl != "/etc/mosquitto/hubmon.acl" {
		t.Fatalf("shipped config: %q %q %v", pw, acl, err)
	}
	path := filepath.Join(t.TempDir(), "m.conf")
	writeFile(t, path, "listener 1\npassword_file /a\nlistener 2\npassword_file /b\n")
	if _, _, err := MosquittoFiles(path); err == nil || !strings.Contains(err.Error(), "a second password_file") {
		t.Fatalf("two password files: %v", err)
	}
}
