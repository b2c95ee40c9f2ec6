package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

var (
	// ErrKeyNotFound is returned by BoltStore.Get and GetUint64 for a key
	// never set. Its text is exactly "not found" because hashicorp/raft
	// compares err.Error() with that string when it reads its current term.
	ErrKeyNotFound = errors.New("not found")

	// ErrCorruptLog is wrapped by every error that reports a stored raft log
	// entry whose bytes cannot be decoded.
	ErrCorruptLog = errors.New("corrupt raft log entry")
)

var (
	bucketLogs   = []byte("logs")
	bucketStable = []byte("stable")
)

// openTimeout is how long OpenBoltStore waits for the file lock before it
// reports the store as in use by another process.
const openTimeout = time.Second

// logFormatV1 is the leading byte of an encoded raft.Log:
//
//	version u8 | index u64 | term u64 | type u8 | hasTime u8 | [unixNano i64]
//	| len(data) u32 | data | len(extensions) u32 | extensions
//
// All integers are big-endian. The unixNano field is present only when
// hasTime is 1; a zero AppendedAt is stored as hasTime 0.
const logFormatV1 = 1

// BoltStore is a raft.LogStore and raft.StableStore in one bbolt file.
// Logs are kept in one bucket keyed by the big-endian index, so cursor order
// is index order; stable keys live in a second bucket. Every write commits
// with bbolt's default fsync. It is safe for concurrent use.
type BoltStore struct {
	db *bolt.DB
}

var (
	_ raft.LogStore    = (*BoltStore)(nil)
	_ raft.StableStore = (*BoltStore)(nil)
)

// OpenBoltStore opens the store at path, creating the file (mode 0600) and
// its buckets if needed. If another process holds the file it fails after a
// short timeout with an error wrapping bbolt.ErrTimeout.
func OpenBoltStore(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("raft store %s is in use by another process: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open raft store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketLogs, bucketStable} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("create buckets in raft store %s: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

// Close closes the underlying file. The store must not be used afterwards.
func (s *BoltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close raft store: %w", err)
	}
	return nil
}

// FirstIndex returns the lowest stored log index, or 0 if there are none.
func (s *BoltStore) FirstIndex() (uint64, error) {
	return s.edgeIndex((*bolt.Cursor).First)
}

// LastIndex returns the highest stored log index, or 0 if there are none.
func (s *BoltStore) LastIndex() (uint64, error) {
	return s.edgeIndex((*bolt.Cursor).Last)
}

func (s *BoltStore) edgeIndex(move func(*bolt.Cursor) ([]byte, []byte)) (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := move(tx.Bucket(bucketLogs).Cursor()); len(k) == 8 {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read raft log index: %w", err)
	}
	return idx, nil
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound
// if there is none, and an error wrapping ErrCorruptLog if its bytes are bad.
// The slices in log are copies owned by the caller.
func (s *BoltStore) GetLog(index uint64, log *raft.Log) error {
	return s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(indexKey(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		if err := decodeLog(v, log); err != nil {
			return fmt.Errorf("raft log %d: %w", index, err)
		}
		if log.Index != index {
			return fmt.Errorf("raft log %d: %w: holds index %d", index, ErrCorruptLog, log.Index)
		}
		return nil
	})
}

// StoreLog stores one log entry.
func (s *BoltStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores the entries in one transaction: all of them or none.
func (s *BoltStore) StoreLogs(logs []*raft.Log) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		for _, l := range logs {
			if err := b.Put(indexKey(l.Index), encodeLog(l)); err != nil {
				return fmt.Errorf("put %d: %w", l.Index, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store raft logs: %w", err)
	}
	return nil
}

// DeleteRange deletes the entries with indexes in [min, max], inclusive, in
// one transaction.
func (s *BoltStore) DeleteRange(min, max uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		first := indexKey(min)
		// Seek again after each delete rather than Next: it stays correct
		// whatever the cursor does after a delete.
		for k, _ := c.Seek(first); k != nil && binary.BigEndian.Uint64(k) <= max; k, _ = c.Seek(first) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete raft logs %d..%d: %w", min, max, err)
	}
	return nil
}

// Set stores val under key. key must not be empty.
func (s *BoltStore) Set(key, val []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStable).Put(key, val)
	})
	if err != nil {
		return fmt.Errorf("set raft stable key %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of the value under key, or ErrKeyNotFound itself
// (unwrapped, so its text stays "not found") if there is none.
func (s *BoltStore) Get(key []byte) ([]byte, error) {
	var val []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStable).Get(key)
		if v == nil {
			return ErrKeyNotFound
		}
		val = append([]byte{}, v...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return val, nil
}

// SetUint64 stores val under key as 8 big-endian bytes.
func (s *BoltStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value stored by SetUint64 under key, or
// ErrKeyNotFound itself if there is none.
func (s *BoltStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft stable key %q: value has %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func indexKey(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

// encodeLog encodes l in format logFormatV1. AppendedAt must lie within the
// range of UnixNano (years 1678 to 2262) or be zero.
func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 1+8+8+1+1+8+4+len(l.Data)+4+len(l.Extensions))
	b = append(b, logFormatV1)
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	if l.AppendedAt.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(l.AppendedAt.UnixNano()))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Extensions)))
	return append(b, l.Extensions...)
}

// decodeLog decodes b, as written by encodeLog, into l. It copies the byte
// slices, so b may be bbolt memory. It never panics; a bad b gives an error
// wrapping ErrCorruptLog. Empty Data and Extensions decode as nil.
func decodeLog(b []byte, l *raft.Log) error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrCorruptLog, why) }
	if len(b) < 19 {
		return bad("truncated header")
	}
	if b[0] != logFormatV1 {
		return bad(fmt.Sprintf("unknown format version %d", b[0]))
	}
	out := raft.Log{
		Index: binary.BigEndian.Uint64(b[1:]),
		Term:  binary.BigEndian.Uint64(b[9:]),
		Type:  raft.LogType(b[17]),
	}
	hasTime, b := b[18], b[19:]
	switch {
	case hasTime == 1 && len(b) >= 8:
		out.AppendedAt = time.Unix(0, int64(binary.BigEndian.Uint64(b)))
		b = b[8:]
	case hasTime == 1:
		return bad("truncated time")
	case hasTime != 0:
		return bad(fmt.Sprintf("bad time flag %d", hasTime))
	}
	for _, f := range []*[]byte{&out.Data, &out.Extensions} {
		if len(b) < 4 {
			return bad("truncated length")
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return bad(fmt.Sprintf("length %d exceeds %d remaining bytes", n, len(b)-4))
		}
		if n > 0 {
			*f = append([]byte(nil), b[4:4+n]...)
		}
		b = b[4+n:]
	}
	if len(b) != 0 {
		return bad(fmt.Sprintf("%d trailing bytes", len(b)))
	}
	*l = out
	return nil
}
