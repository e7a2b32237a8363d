package broker

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestPutUserModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	if ok, err := HasUser(path, "site-a"); ok || err != nil {
		t.Fatalf("HasUser on a missing file: %t %v", ok, err)
	}
	if err := PutUser(path, "site-a", "one", ReplaceOnly); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("ReplaceOnly of a new user: %v", err)
	}
	if err := PutUser(path, "site-a", "one", AddOnly); err != nil {
		t.Fatal(err)
	}
	if ok, err := HasUser(path, "site-a"); !ok || err != nil {
		t.Fatalf("HasUser after adding: %t %v", ok, err)
	}
	if err := PutUser(path, "site-a", "two", AddOnly); !errors.Is(err, ErrUserExists) {
		t.Fatalf("AddOnly of an existing user: %v", err)
	}
	if p, _ := loadPasswords(path); !p.users["site-a"].verify([]byte("one")) {
		t.Fatal("a refused AddOnly changed the password")
	}
	if err := PutUser(path, "site-a", "three", ReplaceOnly); err != nil {
		t.Fatal(err)
	}
	if p, _ := loadPasswords(path); !p.users["site-a"].verify([]byte("three")) {
		t.Fatal("ReplaceOnly did not replace the password")
	}
}

// TestPutUserKeepsOwner: Mosquitto reads its password file as its own user;
// adding a site as root must not leave the file owned by root.
func TestPutUserKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file another owner")
	}
	path := filepath.Join(t.TempDir(), "passwd")
	if err := AddUser(path, "site-a", "one"); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	if err := os.Chown(path, 4321, 4322); err != nil {
		t.Fatal(err)
	}
	if err := PutUser(path, "site-b", "two", AddOnly); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	if s.Uid != 4321 || s.Gid != 4322 || st.Mode().Perm() != 0o640 {
		t.Fatalf("owner %d:%d mode %v, want 4321:4322 0640", s.Uid, s.Gid, st.Mode().Perm())
	}
}
