package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goldenBundle is testdata/enrol-v1.hubmon-enrol: the file an agent of
// every later version must still install.
func goldenBundle(t *testing.T) *Bundle {
	t.Helper()
	ca, err := os.ReadFile("testdata/enrol-ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	return &Bundle{
		Note:      "hubmon enrolment for site leeds-central-library: keep it secret",
		Site:      "leeds-central-library",
		BrokerURL: "mqtts://mqtt.council.example:8883",
		Username:  "leeds-central-library",
		Password:  "abcdefghijklmnopqrstuvwx",
		CAPEM:     string(ca),
		CreatedAt: time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC),
	}
}

func TestBundleGolden(t *testing.T) {
	b := goldenBundle(t)
	got, err := b.MarshalFile()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "enrol-v1.hubmon-enrol")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("bundle file changed (run go test -update if intended, and keep old versions decodable):\n got %s\nwant %s", got, want)
	}

	dec, err := DecodeBundle(want)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Site != b.Site || dec.Password != b.Password || dec.CAPEM != b.CAPEM || dec.BrokerURL != b.BrokerURL || !dec.CreatedAt.Equal(b.CreatedAt) {
		t.Fatalf("decoded %+v", dec)
	}
	certs, _ := CACertificates(b.CAPEM)
	if dec.CASHA256 != Fingerprint(certs[0]) {
		t.Fatalf("ca_sha256 %q", dec.CASHA256)
	}

	// the code in the file decodes to the same credentials, with the CA
	// pinned by its hash
	if dec.Code == "" || !strings.HasPrefix(dec.Code, CodePrefix) {
		t.Fatalf("code %q", dec.Code)
	}
	t.Logf("code (%d characters): %s", len(dec.Code), dec.Code)
	fromCode, err := DecodeBundle([]byte(dec.Code))
	if err != nil {
		t.Fatal(err)
	}
	want2 := &Bundle{Format: BundleFormat, Version: 1, Site: b.Site, Username: b.Site, Password: b.Password,
		BrokerURL: "mqtts://mqtt.council.example:8883", CASHA256: Fingerprint(certs[0])[:2*CodePinBytes]}
	if *fromCode != *want2 {
		t.Fatalf("from code:\n got %+v\nwant %+v", fromCode, want2)
	}
}

func TestCodeTolerant(t *testing.T) {
	b := goldenBundle(t)
	code, err := b.EncodeCode()
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(code, CodePrefix)
	for name, typed := range map[string]string{
		"as printed":           code,
		"lower case":           strings.ToLower(code),
		"spaces, no dashes":    "HM " + strings.ReplaceAll(body, "-", " "),
		"line breaks":          "  hm-" + body[:20] + "\n" + body[20:] + "\n",
		"no dashes":            "HM-" + strings.ReplaceAll(body, "-", ""),
		"O and I for 0 and 1":  strings.NewReplacer("0", "O", "1", "I").Replace(code),
		"l for 1, o for 0":     strings.NewReplacer("0", "o", "1", "l").Replace(code),
		"without the prefix":   body,
		"prefix and no groups": "hm" + strings.ReplaceAll(body, "-", ""),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseCode(typed)
			if err != nil {
				t.Fatal(err)
			}
			if got.Password != b.Password || got.Site != b.Site {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestCodeWithoutCA(t *testing.T) {
	pw, err := NewPassword()
	if err != nil || len(pw) != 24 {
		t.Fatalf("NewPassword: %q %v", pw, err)
	}
	b := &Bundle{Format: BundleFormat, Version: 1, Site: "hub-1", Username: "hub-1", Password: pw, BrokerURL: "mqtt://[::1]:1883"}
	code, err := b.EncodeCode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCode(code)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *b {
		t.Fatalf("got %+v, want %+v", got, b)
	}
	b.Password = "chosen by a person"
	if _, err := b.EncodeCode(); err == nil {
		t.Fatal("a password not made by NewPassword went into a code")
	}
}

// recode returns the code of payload p with its length byte and CRC fixed.
func recode(p []byte) string {
	p[1] = byte(len(p))
	binary.BigEndian.PutUint32(p[len(p)-4:], crc32.ChecksumIEEE(p[:len(p)-4]))
	return CodePrefix + toBase32(p)
}

func TestCodeMistakes(t *testing.T) {
	code, err := goldenBundle(t).EncodeCode()
	if err != nil {
		t.Fatal(err)
	}
	chars, _ := codeChars(code)
	n := len(chars)
	swap := func(i int) string { // change the i-th base32 character
		c := []byte(string(chars))
		if c[i] == 'A' {
			c[i] = 'B'
		} else {
			c[i] = 'A'
		}
		return CodePrefix + string(c)
	}
	payload := fromBase32(chars)[:int(fromBase32(chars[:4])[1])]
	newer := append([]byte(nil), payload...)
	newer[0] = 2
	tests := []struct {
		name, code, want string
	}{
		{"12 characters missing", CodePrefix + string(chars[:n-12]), "the enrolment code is incomplete: 12 characters missing"},
		{"only the start", "HM-0A", "the enrolment code is incomplete: at least"},
		{"3 characters too many", code + "-ABC", "the enrolment code has 3 characters too many"},
		{"a character mistyped", swap(n / 2), "the enrolment code has a mistake in it (its checksum does not match)"},
		{"the last character mistyped", swap(n - 1), "checksum does not match"},
		{"a U", strings.Replace(code, code[10:11], "U", 1), "character 11, \"U\", is not used in codes"},
		{"punctuation", code[:12] + "." + code[13:], "character 13, \".\", is not used in codes"},
		{"newer version", recode(newer), "made by a newer hubmon-collector: upgrade hubmon-agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeBundle([]byte(tt.code))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "abcdefghijklmnopqrstuvwx") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestBundleFileRejects(t *testing.T) {
	good, err := os.ReadFile("testdata/enrol-v1.hubmon-enrol")
	if err != nil {
		t.Fatal(err)
	}
	// edit changes a field of the file and, with reseal, fixes the checksum
	edit := func(f func(m map[string]any), reseal bool) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		out, _ := json.Marshal(m)
		if reseal {
			var b Bundle
			json.Unmarshal(out, &b)
			m["checksum"] = b.checksum()
			out, _ = json.Marshal(m)
		}
		return out
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)/2], "the enrolment file is damaged or incomplete"},
		{"password edited", edit(func(m map[string]any) { m["password"] = "other" }, false), "its checksum does not match"},
		{"no checksum", edit(func(m map[string]any) { delete(m, "checksum") }, false), "has no checksum"},
		{"newer version", edit(func(m map[string]any) { m["version"] = 2 }, false), "version 2, made by a newer hubmon-collector: upgrade hubmon-agent"},
		{"not a bundle", []byte(`{"site": "x"}`), "not a hubmon enrolment file"},
		{"empty", []byte("\n"), "it is empty"},
		{"YAML", []byte("site: x\n"), "not an enrolment bundle"},
		{"CA does not parse", edit(func(m map[string]any) {
			m["ca_pem"] = strings.Replace(m["ca_pem"].(string), "MII", "MIX", 1)
			delete(m, "ca_sha256")
		}, true), "ca_pem: certificate 1 does not parse"},
		{"CA is a key", edit(func(m map[string]any) {
			m["ca_pem"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
			delete(m, "ca_sha256")
		}, true), `ca_pem: PEM block 1 is a "PRIVATE KEY", not a CERTIFICATE`},
		{"CA hash differs", edit(func(m map[string]any) { m["ca_sha256"] = strings.Repeat("ab", 32) }, true), "ca_sha256: is not the SHA-256 of ca_pem's first certificate"},
		{"CA with a plain broker", edit(func(m map[string]any) { m["broker_url"] = "mqtt://mqtt.council.example:1883" }, true), "a CA certificate is only for a TLS broker"},
		{"bad site, user, URL", edit(func(m map[string]any) {
			m["site"], m["username"], m["broker_url"] = "Leeds Library", "leeds", "https://x.example/"
		}, true), "site: \"Leeds Library\" is not a site id"},
		{"no port", edit(func(m map[string]any) { m["broker_url"] = "mqtts://mqtt.council.example" }, true), "the port is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeBundle(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "abcdefghijklmnopqrstuvwx") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
	// unknown fields are ignored (a later version may add some)
	if _, err := DecodeBundle(edit(func(m map[string]any) { m["speedtest_url"] = "http://x" }, false)); err != nil {
		t.Fatalf("unknown field: %v", err)
	}
}
