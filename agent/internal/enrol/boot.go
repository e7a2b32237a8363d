package enrol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hubmon/hubmon/agent/wire"
)

// DefaultBootPatterns are where a bundle copied onto the SD card's boot
// partition is found: Raspberry Pi OS mounts it at /boot/firmware (bookworm
// on) or /boot (before). A bundle keeps the name hubmon-collector gave it,
// SITE.hubmon-enrol, or is renamed hubmon-enrol (a PC may add .txt).
var DefaultBootPatterns = []string{
	"/boot/firmware/hubmon-enrol*", "/boot/firmware/*.hubmon-enrol*",
	"/boot/hubmon-enrol*", "/boot/*.hubmon-enrol*",
}

// ResultFileName is the note InstallBoot leaves beside the bundle, for the
// person who put the card in a PC: installed, or what went wrong.
const ResultFileName = "hubmon-enrol-result.txt"

// FindBoot returns the bundle files that patterns (filepath.Glob patterns)
// match: regular files, result notes left out, each once.
func FindBoot(patterns []string) ([]string, error) {
	var found []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("enrolment file pattern %q: %w", p, err)
		}
		for _, f := range m {
			if filepath.Base(f) == ResultFileName || slices.Contains(found, f) {
				continue
			}
			if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
				found = append(found, f)
			}
		}
	}
	return found, nil
}

// InstallBoot installs the bundle file that patterns find, if there is
// one (file "" and a nil error if there is none). Installed, the file is
// overwritten with zeros and deleted, so that the password does not stay on
// a card anyone can read in a PC (flash wear levelling may still keep a
// copy: the bundle's password is only good for this site's measurements).
// Either way a ResultFileName note is written beside it. A bundle that
// could not be installed stays where it is, for the next start to try again
// (a code's CA needs the network).
func InstallBoot(ctx context.Context, patterns []string, opts Options) (file string, res *Result, err error) {
	files, err := FindBoot(patterns)
	if err != nil || len(files) == 0 {
		return "", nil, err
	}
	if len(files) > 1 {
		err := fmt.Errorf("found %d enrolment files (%s): leave only the right one", len(files), strings.Join(files, ", "))
		for _, f := range files {
			writeResult(f, fmt.Sprintf("hubmon: NOT installed, %s:\n%v\n", stamp(), err))
		}
		return files[0], nil, err
	}
	file = files[0]
	res, err = installFile(ctx, file, opts)
	if err != nil {
		writeResult(file, fmt.Sprintf("hubmon: the enrolment file %s could NOT be installed (%s):\n%v\n\n"+
			"What to do: ask your council contact for a new enrolment file and copy it onto this card in place of the old one.\n",
			filepath.Base(file), stamp(), err))
		return file, nil, err
	}
	if err := wipe(file); err != nil {
		writeResult(file, fmt.Sprintf("hubmon: the enrolment for site %s was installed (%s), but the file could not be deleted (%v): delete %s from this card, it holds the hub's password.\n",
			res.Site, stamp(), err, filepath.Base(file)))
		return file, res, fmt.Errorf("installed, but could not delete %s, which holds the password: %w", file, err)
	}
	writeResult(file, fmt.Sprintf("hubmon: the enrolment for site %s was installed (%s).\nThe enrolment file, %s, was deleted from this card: it held the hub's password.\n",
		res.Site, stamp(), filepath.Base(file)))
	return file, res, nil
}

func installFile(ctx context.Context, file string, opts Options) (*Result, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, wire.MaxBundleBytes+1))
	f.Close()
	if err != nil {
		return nil, err
	}
	b, err := wire.DecodeBundle(data)
	if err != nil {
		return nil, err
	}
	return Install(ctx, b, opts)
}

// wipe overwrites file with zeros, then deletes it.
func wipe(file string) error {
	if f, err := os.OpenFile(file, os.O_WRONLY, 0); err == nil {
		if st, err := f.Stat(); err == nil {
			_, _ = f.Write(make([]byte, st.Size()))
			_ = f.Sync()
		}
		f.Close()
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	syncDir(filepath.Dir(file))
	return nil
}

func writeResult(bundle, text string) {
	// CRLF: the note is read on Windows PCs as often as anywhere
	_ = os.WriteFile(filepath.Join(filepath.Dir(bundle), ResultFileName), []byte(strings.ReplaceAll(text, "\n", "\r\n")), 0o644)
}

func stamp() string { return time.Now().UTC().Format("2006-01-02 15:04 UTC") }
