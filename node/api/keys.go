package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
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

// loadKeys sets the server's keys to Config.APIKeys and those of
// Config.APIKeyFile; it reports false, keeping the keys as they were,
// when the file does not load.
func (s *Server) loadKeys() bool {
	keys := s.cfg.APIKeys
	if s.cfg.APIKeyFile != "" {
		more, err := LoadAPIKeys(s.cfg.APIKeyFile)
		if err != nil {
			s.log.Warn("api: the key file does not load: keeping the keys as they were", "err", err)
			if s.keys.Load() == nil {
				ks := newKeySet(keys)
				s.keys.Store(&ks)
			}
			return false
		}
		keys = append(slices.Clip(keys), more...)
	}
	ks := newKeySet(keys)
	s.keys.Store(&ks)
	return true
}

// watchKeyFile reloads the keys whenever Config.APIKeyFile's size or
// modification time changes, until ctx ends.
func (s *Server) watchKeyFile(ctx context.Context) {
	every := s.cfg.APIKeyFileEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	path := s.cfg.APIKeyFile
	stamp := func() string {
		fi, err := os.Stat(path)
		if err != nil {
			return "missing"
		}
		return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	}
	last := stamp()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if now := stamp(); now != last {
			last = now
			if s.loadKeys() {
				s.log.Info("api: reloaded the API keys", "file", path, "keys", len(*s.keys.Load()))
			}
		}
	}
}
