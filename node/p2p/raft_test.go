package p2p

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// listFSM records the commands applied to it.
type listFSM struct {
	mu   sync.Mutex
	cmds []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return nil
}

func (f *listFSM) applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return listSnapshot(f.applied()), nil }

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	var cmds []string
	for len(b) > 0 {
		n := int(b[0])
		cmds = append(cmds, string(b[1:1+n]))
		b = b[1+n:]
	}
	f.mu.Lock()
	f.cmds = cmds
	f.mu.Unlock()
	return nil
}

// listSnapshot is a listFSM's commands, each written behind a length byte.
type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	var b []byte
	for _, c := range s {
		b = append(append(b, byte(len(c))), c...)
	}
	if _, err := sink.Write(b); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

// raftNode is one member of a test cluster: a host, its transport and a
// Raft on them.
type raftNode struct {
	h    *Host
	r    *raft.Raft
	fsm  *listFSM
	down bool
}

func (n *raftNode) id() string { return n.h.ID().String() }

// stop shuts Raft down (closing its transport) and closes the host.
func (n *raftNode) stop(t testing.TB) {
	if n.down {
		return
	}
	n.down = true
	if err := n.r.Shutdown().Error(); err != nil {
		t.Errorf("raft %s shutdown: %v", n.id(), err)
	}
	n.h.Close()
}

// newRaftCluster starts n hosts that know each other's addresses, and a
// Raft on each, bootstrapped with all n as voters.
func newRaftCluster(t *testing.T, n int) []*raftNode {
	t.Helper()
	nodes := make([]*raftNode, n)
	for i := range nodes {
		nodes[i] = &raftNode{h: newHost(t, HostConfig{Listen: []string{loopTCP}, Logger: quiet}), fsm: &listFSM{}}
	}
	var servers []raft.Server
	for _, a := range nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(a.id()), Address: raft.ServerAddress(a.id())})
		for _, b := range nodes {
			if a != b {
				a.h.Peerstore().AddAddrs(b.h.ID(), b.h.Addrs(), peerstore.PermanentAddrTTL)
			}
		}
	}
	for _, nd := range nodes {
		trans, err := NewRaftTransport(nd.h, RaftTransportConfig{Timeout: 2 * time.Second, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if got := trans.LocalAddr(); string(got) != nd.id() {
			t.Errorf("transport address %q, want the peer ID %q", got, nd.id())
		}
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(nd.id())
		conf.HeartbeatTimeout = 200 * time.Millisecond
		conf.ElectionTimeout = 200 * time.Millisecond
		conf.LeaderLeaseTimeout = 100 * time.Millisecond
		conf.CommitTimeout = 10 * time.Millisecond
		conf.Logger = NewRaftLogger(quiet)
		logs := raft.NewInmemStore()
		r, err := raft.NewRaft(conf, nd.fsm, logs, logs, raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			trans.Close()
			t.Fatal(err)
		}
		nd.r = r
		t.Cleanup(func() { nd.stop(t) })
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// waitFor polls cond every 20ms until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no %s after %v", what, d)
		}
	}
}

// waitLeader waits until exactly one of the running nodes leads and the
// others agree on it, and returns it.
func waitLeader(t *testing.T, nodes []*raftNode) *raftNode {
	t.Helper()
	var leader *raftNode
	waitFor(t, 10*time.Second, "leader", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.down {
				continue
			}
			if n.r.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range nodes {
			if _, id := n.r.LeaderWithID(); !n.down && string(id) != leader.id() {
				return false
			}
		}
		return true
	})
	return leader
}

// applyAll applies cmds on leader and waits until every running node's
// FSM holds want.
func applyAll(t *testing.T, nodes []*raftNode, leader *raftNode, cmds, want []string) {
	t.Helper()
	for _, c := range cmds {
		if err := leader.r.Apply([]byte(c), 5*time.Second).Error(); err != nil {
			t.Fatalf("apply %q on %s: %v", c, leader.id(), err)
		}
	}
	for _, n := range nodes {
		if n.down {
			continue
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("%v on %s", want, n.id()), func() bool {
			return slices.Equal(n.fsm.applied(), want)
		})
	}
}

// TestRaftCluster runs three Raft nodes over RaftProtocol: they elect a
// leader and replicate to every FSM, and when the leader dies the other
// two elect a new one and go on committing.
func TestRaftCluster(t *testing.T) {
	nodes := newRaftCluster(t, 3)
	leader := waitLeader(t, nodes)
	applyAll(t, nodes, leader, []string{"a", "b", "c"}, []string{"a", "b", "c"})

	leader.stop(t)
	next := waitLeader(t, nodes)
	if next == leader {
		t.Fatal("the stopped node still leads")
	}
	applyAll(t, nodes, next, []string{"d", "e"}, []string{"a", "b", "c", "d", "e"})

	// The survivors protect each other's connections.
	for _, n := range nodes {
		for _, m := range nodes {
			if n != m && !n.down && !m.down && !n.h.ConnManager().IsProtected(m.h.ID(), raftProtectTag) {
				t.Errorf("%s does not protect raft peer %s", n.id(), m.id())
			}
		}
	}
}

func TestRaftStreamLayerAddr(t *testing.T) {
	h := newHost(t, HostConfig{Listen: []string{loopTCP}, Logger: quiet})
	l, err := NewRaftStreamLayer(h)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Addr().String(); got != h.ID().String() {
		t.Errorf("Addr %q, want the peer ID %q", got, h.ID())
	}
}

// TestRaftDialErrors: Dial refuses an address that is not a peer ID, and
// gives up on a peer that never answers within its timeout.
func TestRaftDialErrors(t *testing.T) {
	h := newHost(t, HostConfig{Listen: []string{loopTCP}, Logger: quiet})
	l, err := NewRaftStreamLayer(h)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	// A TCP listener that accepts and then says nothing: the libp2p
	// handshake hangs until the dial's timeout.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer mute.Close()
	wg.Go(func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	})
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	silent, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", mute.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	h.Peerstore().AddAddrs(silent, []ma.Multiaddr{addr}, peerstore.PermanentAddrTTL)

	for _, tc := range []struct {
		name    string
		addr    raft.ServerAddress
		badAddr bool
	}{
		{"not a peer ID", "127.0.0.1:4001", true},
		{"empty", "", true},
		{"silent peer", raft.ServerAddress(silent.String()), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				c, err := l.Dial(tc.addr, 300*time.Millisecond)
				if c != nil {
					c.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("dial succeeded")
				}
				if errors.Is(err, ErrRaftAddress) != tc.badAddr {
					t.Errorf("err %v; ErrRaftAddress %v, want %v", err, errors.Is(err, ErrRaftAddress), tc.badAddr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("dial with a 300ms timeout still running after 5s")
			}
		})
	}
}

// TestRaftLoggerLevels checks how Raft's hclog lines map onto slog levels:
// Info at Debug, Error at Error, and an Error whose error is only a
// connection's end (a reset stream, EOF) at Debug.
func TestRaftLoggerLevels(t *testing.T) {
	var logs bytes.Buffer
	log := NewRaftLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))).Named("raft-net")
	reset := &network.StreamError{ErrorCode: 0, TransportError: errors.New("connection closed")}
	for _, c := range []struct {
		log   func(string, ...any)
		msg   string
		err   error
		level string
	}{
		{log.Info, "started", nil, "DEBUG"},
		{log.Error, "failed to decode incoming command", errors.New("bad frame"), "ERROR"},
		{log.Error, "failed to decode incoming command", fmt.Errorf("read: %w", reset), "DEBUG"},
		{log.Warn, "failed to flush", io.EOF, "DEBUG"},
		{log.Warn, "slow", errors.New("late"), "WARN"},
	} {
		logs.Reset()
		if c.err != nil {
			c.log(c.msg, "error", c.err)
		} else {
			c.log(c.msg)
		}
		if line := logs.String(); !strings.Contains(line, "level="+c.level) || !strings.Contains(line, "logger=raft-net") {
			t.Errorf("%s %v: logged %q, want level %s", c.msg, c.err, line, c.level)
		}
	}
}
