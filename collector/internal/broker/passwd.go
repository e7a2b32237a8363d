package broker

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mosquitto's password-file format (mosquitto_passwd, Mosquitto 2.0): one
// "user:hash" per line, hash one of
//
//	$7$<iterations>$<base64 salt>$<base64 key>  PBKDF2-HMAC-SHA512 (the default since 2.0)
//	$6$<base64 salt>$<base64 digest>            SHA512(password || salt) (1.6 and earlier)
//
// Salts are 12 bytes, keys and digests 64 bytes, base64 with padding.
const (
	saltBytes         = 12
	keyBytes          = sha512.Size
	defaultIterations = 101 // mosquitto_passwd's default
	maxIterations     = 1 << 24
)

// credential is one verified-able password entry.
type credential struct {
	pbkdf2     bool
	iterations int
	salt, key  []byte
	text       string // the entry as written, to notice changes on reload
}

// verify reports whether password matches c. Empty passwords never match.
func (c *credential) verify(password []byte) bool {
	if len(password) == 0 {
		return false
	}
	var got []byte
	if c.pbkdf2 {
		k, err := pbkdf2.Key(sha512.New, string(password), c.salt, c.iterations, len(c.key))
		if err != nil {
			return false
		}
		got = k
	} else {
		h := sha512.New()
		h.Write(password)
		h.Write(c.salt)
		got = h.Sum(nil)
	}
	return subtle.ConstantTimeCompare(got, c.key) == 1
}

// passwords is an immutable parsed password file.
type passwords struct {
	users map[string]*credential
}

// dummy is verified against for unknown users, so that a refusal takes about
// as long for an unknown user as for a wrong password.
var dummy = func() *credential {
	c, err := parseCredential("$7$101$AAAAAAAAAAAAAAAA$" + strings.Repeat("A", 86) + "==")
	if err != nil {
		panic(err)
	}
	return c
}()

// loadPasswords reads and parses a password file.
func loadPasswords(path string) (*passwords, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	p, err := parsePasswords(data)
	if err != nil {
		return nil, fmt.Errorf("password file %q: %w", path, err)
	}
	return p, nil
}

// parsePasswords parses the content of a password file. Blank lines and lines
// starting with '#' are ignored. Errors name the line and the user but never
// quote the entry, which might be a plain-text password.
func parsePasswords(data []byte) (*passwords, error) {
	p := &passwords{users: map[string]*credential{}}
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n := i + 1
		user, entry, ok := strings.Cut(line, ":")
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: want user:hash", n))
			continue
		}
		if err := checkUserName(user); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		if _, dup := p.users[user]; dup {
			errs = append(errs, fmt.Errorf("line %d: user %q appears twice", n, user))
			continue
		}
		c, err := parseCredential(entry)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: user %q: %w", n, user, err))
			continue
		}
		p.users[user] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func parseCredential(entry string) (*credential, error) {
	parts := strings.Split(entry, "$")
	c := &credential{text: entry}
	var salt, key string
	switch {
	case len(parts) == 5 && parts[0] == "" && parts[1] == "7":
		it, err := strconv.Atoi(parts[2])
		if err != nil || it < 1 || it > maxIterations {
			return nil, fmt.Errorf("$7$ entry: iterations must be 1-%d", maxIterations)
		}
		c.pbkdf2, c.iterations = true, it
		salt, key = parts[3], parts[4]
	case len(parts) == 4 && parts[0] == "" && parts[1] == "6":
		salt, key = parts[2], parts[3]
	default:
		return nil, errors.New("not a $6$ or $7$ hash (a plain-text password? run mosquitto_passwd -U)")
	}
	var err error
	if c.salt, err = decodeB64(salt); err != nil || len(c.salt) == 0 {
		return nil, errors.New("salt is not base64")
	}
	if c.key, err = decodeB64(key); err != nil || len(c.key) != keyBytes {
		return nil, fmt.Errorf("hash is not %d bytes of base64", keyBytes)
	}
	return c, nil
}

func decodeB64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// checkUserName refuses names that cannot be written to a password file
// unambiguously.
func checkUserName(user string) error {
	switch {
	case user == "":
		return errors.New("empty user name")
	case len(user) > 0xffff:
		return errors.New("user name longer than 65535 bytes")
	case !utf8.ValidString(user):
		return errors.New("user name is not valid UTF-8")
	case strings.HasPrefix(user, "#"):
		return fmt.Errorf("user name %q starts with '#'", user)
	case strings.ContainsFunc(user, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("user name %q contains ':', a space or a control character", user)
	}
	return nil
}

// HashPassword returns a Mosquitto-compatible password-file entry value for
// password: "$7$101$<base64 salt>$<base64 hash>", PBKDF2-HMAC-SHA512 with a
// random 12-byte salt, as mosquitto_passwd writes by default.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("hash password: empty password")
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return hashPBKDF2(password, salt, defaultIterations)
}

func hashPBKDF2(password string, salt []byte, iterations int) (string, error) {
	key, err := pbkdf2.Key(sha512.New, password, salt, iterations, keyBytes)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return fmt.Sprintf("$7$%d$%s$%s", iterations,
		base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key)), nil
}

// ErrUserExists and ErrNoSuchUser are PutUser's refusals.
var (
	ErrUserExists = errors.New("user is already in the password file")
	ErrNoSuchUser = errors.New("user is not in the password file")
)

// PutMode says what PutUser does with a user already in the file.
type PutMode int

const (
	// AddOrReplace adds the user, or replaces its entry.
	AddOrReplace PutMode = iota
	// AddOnly refuses (ErrUserExists) if the user is in the file.
	AddOnly
	// ReplaceOnly refuses (ErrNoSuchUser) if the user is not in the file.
	ReplaceOnly
)

// AddUser adds user with password to the password file at path, or replaces
// the user's entry: PutUser with AddOrReplace.
func AddUser(path, user, password string) error {
	return PutUser(path, user, password, AddOrReplace)
}

// PutUser adds user with password to the password file at path, or replaces
// the user's entry (as mode allows), keeping every other line as it is. It
// creates the file with mode 0600 if needed, and replaces it atomically (a
// temporary file in the same directory, then rename) with the mode and owner
// of the file it replaces. It refuses to write a file the broker could not
// load. The broker picks the change up on Reload (SIGHUP).
func PutUser(path, user, password string, mode PutMode) error {
	if err := checkUserName(user); err != nil {
		return fmt.Errorf("add user to %q: %w", path, err)
	}
	entry, err := HashPassword(password)
	if err != nil {
		return fmt.Errorf("add user %q to %q: %w", user, path, err)
	}
	old, err := os.ReadFile(path)
	perm := fs.FileMode(0o600)
	var owner *fileOwner
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("add user %q: read password file: %w", user, err)
	default:
		if st, err := os.Stat(path); err == nil {
			perm, owner = st.Mode().Perm(), ownerOf(st)
		}
	}

	newLine := user + ":" + entry
	var out bytes.Buffer
	replaced := false
	if len(old) > 0 {
		lines := strings.SplitAfter(string(old), "\n")
		for _, raw := range lines {
			if raw == "" {
				continue
			}
			line := strings.TrimRight(raw, "\r\n")
			if u, _, ok := strings.Cut(line, ":"); ok && u == user && !strings.HasPrefix(line, "#") {
				if !replaced {
					out.WriteString(newLine + "\n")
					replaced = true
				}
				continue // drop duplicates of user
			}
			out.WriteString(raw)
			if !strings.HasSuffix(raw, "\n") {
				out.WriteString("\n")
			}
		}
	}
	switch {
	case replaced && mode == AddOnly:
		return fmt.Errorf("add user %q to %q: %w", user, path, ErrUserExists)
	case !replaced && mode == ReplaceOnly:
		return fmt.Errorf("replace user %q in %q: %w", user, path, ErrNoSuchUser)
	}
	if !replaced {
		out.WriteString(newLine + "\n")
	}
	if _, err := parsePasswords(out.Bytes()); err != nil {
		return fmt.Errorf("add user %q: password file %q has other broken lines, not writing it: %w", user, path, err)
	}
	if err := writeFileAtomic(path, out.Bytes(), perm, owner); err != nil {
		return fmt.Errorf("add user %q: %w", user, err)
	}
	return nil
}

// HasUser reports whether user has an entry in the password file at path. A
// missing file has no users.
func HasUser(path, user string) (bool, error) {
	p, err := loadPasswords(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return p.users[user] != nil, nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory with mode (and owner, if not nil: the broker may run as another
// user than the one adding a site), synced, then renamed over path.
func writeFileAtomic(path string, data []byte, mode fs.FileMode, owner *fileOwner) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write password file: %w", err)
	}
	if err := owner.apply(f); err != nil {
		f.Close()
		return fmt.Errorf("write password file: keep the owner of %q (run as root, or as its owner): %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write password file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write password file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
