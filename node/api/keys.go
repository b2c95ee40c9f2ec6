package api

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
)

// LoadAPIKeys reads API keys from a file: one key per line, surrounding
// spaces ignored, blank lines and lines starting with '#' skipped. A file
// without any key is an error, so that a mistaken path or an empty file
// never turns authentication off.
func LoadAPIKeys(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("api keys: %s:%d: a key must not contain spaces", path, n)
		}
		keys = append(keys, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("api keys: %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("api keys: %s holds no key", path)
	}
	return keys, nil
}

// keySet checks bearer tokens against the configured keys in constant time
// per key: it compares SHA-256 digests, so neither a key's length nor its
// content leaks through timing.
type keySet [][sha256.Size]byte

func newKeySet(keys []string) keySet {
	var s keySet
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			s = append(s, sha256.Sum256([]byte(k)))
		}
	}
	return s
}

// allows reports whether token is one of the keys. Every key is compared,
// whatever matches.
func (s keySet) allows(token string) bool {
	d := sha256.Sum256([]byte(token))
	ok := 0
	for i := range s {
		ok |= subtle.ConstantTimeCompare(d[:], s[i][:])
	}
	return ok == 1
}
