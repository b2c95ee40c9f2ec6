package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func openTestStore(t *testing.T, path string) *BoltStore {
	t.Helper()
	s, err := OpenBoltStore(path)
	if err != nil {
		t.Fatalf("OpenBoltStore: %v", err)
	}
	return s
}

func testLog(i uint64) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       i/4 + 1,
		Type:       raft.LogCommand,
		Data:       []byte(fmt.Sprintf("cmd-%d", i)),
		Extensions: []byte{byte(i), 0xff},
		AppendedAt: time.Unix(1700000000, int64(i)*1000+7),
	}
}

func equalLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt) && a.AppendedAt.IsZero() == b.AppendedAt.IsZero()
}

func checkIndexes(t *testing.T, s *BoltStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil || f != first {
		t.Errorf("FirstIndex = %d, %v; want %d", f, err, first)
	}
	l, err := s.LastIndex()
	if err != nil || l != last {
		t.Errorf("LastIndex = %d, %v; want %d", l, err, last)
	}
}

func TestBoltStoreLogRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		log  raft.Log
	}{
		{"full", *testLog(3)},
		{"empty", raft.Log{Index: 1}},
		{"config", raft.Log{Index: 2, Term: 9, Type: raft.LogConfiguration, Data: []byte{1, 2, 3}}},
		{"extensions only", raft.Log{Index: 4, Term: 1, Type: raft.LogNoop, Extensions: []byte("ext")}},
		{"max index", raft.Log{Index: 1<<64 - 1, Term: 1<<64 - 1, Type: raft.LogType(255), AppendedAt: time.Unix(0, -5)}},
	}
	s := openTestStore(t, filepath.Join(t.TempDir(), "raft.db"))
	defer s.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.StoreLog(&tt.log); err != nil {
				t.Fatalf("StoreLog: %v", err)
			}
			var got raft.Log
			if err := s.GetLog(tt.log.Index, &got); err != nil {
				t.Fatalf("GetLog: %v", err)
			}
			if !equalLog(&got, &tt.log) {
				t.Errorf("GetLog = %+v, want %+v", got, tt.log)
			}
		})
	}
}

func TestBoltStoreGetLogErrors(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "raft.db"))
	defer s.Close()
	if err := s.StoreLogs([]*raft.Log{testLog(1), testLog(2)}); err != nil {
		t.Fatal(err)
	}
	// Plant bad bytes under index 5 and an entry for index 2 under index 6.
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		if err := b.Put(indexKey(5), []byte{logFormatV1, 1, 2}); err != nil {
			return err
		}
		return b.Put(indexKey(6), encodeLog(testLog(2)))
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		index uint64
		want  error
	}{
		{0, raft.ErrLogNotFound},
		{3, raft.ErrLogNotFound},
		{5, ErrCorruptLog},
		{6, ErrCorruptLog},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.index), func(t *testing.T) {
			var l raft.Log
			err := s.GetLog(tt.index, &l)
			if !errors.Is(err, tt.want) {
				t.Fatalf("GetLog(%d) = %v, want %v", tt.index, err, tt.want)
			}
			if tt.want == ErrCorruptLog && !strings.Contains(err.Error(), fmt.Sprintf("raft log %d", tt.index)) {
				t.Errorf("error %q does not name index %d", err, tt.index)
			}
		})
	}
}

func TestBoltStoreIndexesAndDeleteRange(t *testing.T) {
	tests := []struct {
		name        string
		deletes     [][2]uint64 // inclusive ranges, applied in order
		first, last uint64
	}{
		{"none", nil, 1, 100},
		{"compact prefix", [][2]uint64{{1, 60}}, 61, 100},
		{"conflict suffix", [][2]uint64{{71, 100}}, 1, 70},
		{"prefix then suffix", [][2]uint64{{1, 10}, {90, 100}}, 11, 89},
		{"middle", [][2]uint64{{20, 30}}, 1, 100},
		{"past the end", [][2]uint64{{95, 1 << 62}}, 1, 94},
		{"all", [][2]uint64{{1, 100}}, 0, 0},
		{"empty range", [][2]uint64{{200, 300}}, 1, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t, filepath.Join(t.TempDir(), "raft.db"))
			defer s.Close()
			checkIndexes(t, s, 0, 0)
			var logs []*raft.Log
			for i := uint64(1); i <= 100; i++ {
				logs = append(logs, testLog(i))
			}
			if err := s.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			deleted := map[uint64]bool{}
			for _, d := range tt.deletes {
				if err := s.DeleteRange(d[0], d[1]); err != nil {
					t.Fatal(err)
				}
				for i := d[0]; i <= d[1] && i <= 100; i++ {
					deleted[i] = true
				}
			}
			checkIndexes(t, s, tt.first, tt.last)
			for i := uint64(1); i <= 100; i++ {
				var l raft.Log
				err := s.GetLog(i, &l)
				if deleted[i] && !errors.Is(err, raft.ErrLogNotFound) {
					t.Errorf("GetLog(%d) after delete = %v, want ErrLogNotFound", i, err)
				}
				if !deleted[i] && (err != nil || !equalLog(&l, testLog(i))) {
					t.Errorf("GetLog(%d) = %+v, %v; want %+v", i, l, err, testLog(i))
				}
			}
		})
	}
}

func TestBoltStoreStable(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "raft.db"))
	defer s.Close()
	if err := s.Set([]byte("a"), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(nil, []byte("x")); err == nil {
		t.Error("Set with an empty key succeeded")
	}
	tests := []struct {
		key     string
		want    string
		wantErr error
	}{
		{"a", "hello", nil},
		{"empty", "", nil},
		{"CurrentTerm", "\x00\x00\x00\x00\x00\x00\x00\x2a", nil},
		{"missing", "", ErrKeyNotFound},
	}
	for _, tt := range tests {
		t.Run("Get "+tt.key, func(t *testing.T) {
			got, err := s.Get([]byte(tt.key))
			if err != tt.wantErr || string(got) != tt.want {
				t.Errorf("Get(%q) = %q, %v; want %q, %v", tt.key, got, err, tt.want, tt.wantErr)
			}
		})
	}
	uints := []struct {
		key     string
		want    uint64
		wantErr bool
		notFnd  bool
	}{
		{"CurrentTerm", 42, false, false},
		{"missing", 0, true, true},
		{"a", 0, true, false},
	}
	for _, tt := range uints {
		t.Run("GetUint64 "+tt.key, func(t *testing.T) {
			got, err := s.GetUint64([]byte(tt.key))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("GetUint64(%q) = %d, %v; want %d, err %v", tt.key, got, err, tt.want, tt.wantErr)
			}
			// hashicorp/raft compares this exact text.
			if tt.notFnd && (err.Error() != "not found" || !errors.Is(err, ErrKeyNotFound)) {
				t.Errorf("GetUint64(%q) error = %q, want exactly \"not found\"", tt.key, err)
			}
		})
	}
}

func TestBoltStoreReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s := openTestStore(t, path)
	for i := uint64(1); i <= 10; i++ {
		if err := s.StoreLog(testLog(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRange(1, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("term"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, path)
	defer s.Close()
	checkIndexes(t, s, 4, 10)
	for i := uint64(4); i <= 10; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil || !equalLog(&l, testLog(i)) {
			t.Errorf("GetLog(%d) = %+v, %v", i, l, err)
		}
	}
	if v, err := s.GetUint64([]byte("term")); err != nil || v != 7 {
		t.Errorf("GetUint64(term) = %d, %v; want 7", v, err)
	}
}

func TestBoltStoreInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s := openTestStore(t, path)
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		s2, err := OpenBoltStore(path)
		if err == nil {
			s2.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, bolt.ErrTimeout) || !strings.Contains(err.Error(), "is in use by another process") {
			t.Fatalf("second OpenBoltStore = %v, want in-use error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second OpenBoltStore hung")
	}
}

// appendFSM is a raft.FSM that records the data of every applied command.
type appendFSM struct {
	mu   sync.Mutex
	cmds []string
}

func (f *appendFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return nil
}

func (f *appendFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("appendFSM does not snapshot")
}

func (f *appendFSM) Restore(io.ReadCloser) error { return errors.New("appendFSM does not restore") }

func (f *appendFSM) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func startTestRaft(t *testing.T, s *BoltStore, snaps raft.SnapshotStore, fsm raft.FSM, bootstrap bool) *raft.Raft {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 1 << 20
	conf.SnapshotInterval = time.Hour
	conf.Logger = hclog.NewNullLogger()
	addr, trans := raft.NewInmemTransport("n1")
	r, err := raft.NewRaft(conf, fsm, s, s, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	if bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
		if err := r.BootstrapCluster(cfg).Error(); err != nil {
			t.Fatalf("BootstrapCluster: %v", err)
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for r.State() != raft.Leader {
		select {
		case <-tick.C:
		case <-deadline:
			r.Shutdown()
			t.Fatalf("no leader after 10s; state %v", r.State())
		}
	}
	return r
}

func TestBoltStoreRaftRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 1, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("cmd-%d", i))
	}

	s := openTestStore(t, path)
	fsm := &appendFSM{}
	r := startTestRaft(t, s, snaps, fsm, true)
	for _, c := range want {
		if err := r.Apply([]byte(c), 5*time.Second).Error(); err != nil {
			t.Fatalf("Apply(%s): %v", c, err)
		}
	}
	lastBefore := r.LastIndex()
	if err := r.Shutdown().Error(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := fsm.commands(); !slices.Equal(got, want) {
		t.Fatalf("first run FSM = %q, want %q", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, path)
	defer s.Close()
	if last, err := s.LastIndex(); err != nil || last != lastBefore {
		t.Fatalf("reopened LastIndex = %d, %v; want %d", last, err, lastBefore)
	}
	var l raft.Log
	if err := s.GetLog(lastBefore, &l); err != nil || string(l.Data) != want[9] || l.Type != raft.LogCommand {
		t.Fatalf("GetLog(%d) = %+v, %v; want the last command", lastBefore, l, err)
	}
	if list, err := snaps.List(); err != nil || len(list) != 0 {
		t.Fatalf("snapshots = %v, %v; want none", list, err)
	}

	fsm = &appendFSM{}
	r = startTestRaft(t, s, snaps, fsm, false)
	defer r.Shutdown()
	if err := r.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if got := fsm.commands(); !slices.Equal(got, want) {
		t.Errorf("replayed FSM = %q, want %q", got, want)
	}
	if last, err := s.LastIndex(); err != nil || last <= lastBefore || last != r.LastIndex() {
		t.Errorf("LastIndex after restart = %d, %v; want raft's %d (> %d)", last, err, r.LastIndex(), lastBefore)
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func FuzzDecodeLog(f *testing.F) {
	for _, l := range []*raft.Log{testLog(1), testLog(1 << 40), {}, {Index: 3, Data: []byte("x")}} {
		f.Add(encodeLog(l))
	}
	f.Add([]byte{})
	f.Add([]byte{logFormatV1})
	f.Add([]byte{2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(b, &l); err != nil {
			if !errors.Is(err, ErrCorruptLog) {
				t.Fatalf("decode error %v does not wrap ErrCorruptLog", err)
			}
			return
		}
		// The format is canonical: a valid encoding re-encodes to itself,
		// and decode(encode(l)) gives l back.
		enc := encodeLog(&l)
		if !bytes.Equal(enc, b) {
			t.Fatalf("encode(decode(b)) = %x, want %x", enc, b)
		}
		var l2 raft.Log
		if err := decodeLog(enc, &l2); err != nil || !equalLog(&l, &l2) {
			t.Fatalf("decode(encode(%+v)) = %+v, %v", l, l2, err)
		}
	})
}
