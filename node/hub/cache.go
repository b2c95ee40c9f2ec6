package hub

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// sidecarExt names the file beside a cached file that records its sha256.
const sidecarExt = ".sha256"

// The sidecar is one line, "SHA256HEX SIZE MTIME_UNIX_NANOS": the file's
// sha256, once verified, and the size and modification time it had then.
// While those stay the same the file is taken as it was verified; when they
// change it is hashed again.

// writeSidecar records sum as the sha256 of the file at p, as it is now.
func writeSidecar(p, sum string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("%s %d %d\n", sum, st.Size(), st.ModTime().UnixNano())
	tmp := p + sidecarExt + ".tmp"
	if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p+sidecarExt)
}

// readSidecar returns what the sidecar of p records.
func readSidecar(p string) (sum string, size, mtime int64, ok bool) {
	b, err := os.ReadFile(p + sidecarExt)
	if err != nil {
		return "", 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || etagSHA256(f[0]) == "" {
		return "", 0, 0, false
	}
	size, err1 := strconv.ParseInt(f[1], 10, 64)
	mtime, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return strings.ToLower(f[0]), size, mtime, true
}

// cached reports whether p is a complete file of the cache, and its sha256:
// its sidecar is there and records its size and time, or else its content
// still hashes to the sha256 recorded.
func (pl *puller) cached(p string) (string, bool) {
	sum, size, mtime, ok := readSidecar(p)
	if !ok {
		return "", false
	}
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	if st.Size() == size && st.ModTime().UnixNano() == mtime {
		return sum, true
	}
	got, err := fileSHA256(p)
	if err != nil || got != sum {
		pl.log.Warn("hub cache entry changed; pulling again", "path", p)
		return "", false
	}
	if err := writeSidecar(p, sum); err != nil {
		pl.log.Warn("hub sidecar", "path", p, "err", err)
	}
	return sum, true
}

// fileSHA256 returns the hex sha256 of the file at p.
func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
