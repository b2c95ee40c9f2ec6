package p2p

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

const loopTCP = "/ip4/127.0.0.1/tcp/0"

func newHost(t testing.TB, cfg HostConfig) *Host {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	h, err := NewHost(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestIdentityPersists(t *testing.T) {
	dir := t.TempDir()
	h1 := newHost(t, HostConfig{DataDir: dir, Listen: []string{loopTCP}})
	id := h1.ID()
	h1.Close()
	st, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v, want 0600", st.Mode().Perm())
	}
	h2 := newHost(t, HostConfig{DataDir: dir, Listen: []string{loopTCP}})
	if h2.ID() != id {
		t.Errorf("restarted as %s, was %s", h2.ID(), id)
	}
	if other := newHost(t, HostConfig{DataDir: t.TempDir()}); other.ID() == id {
		t.Error("two data dirs gave one identity")
	}

	// A key others can read is refused.
	os.Chmod(filepath.Join(dir, IdentityFile), 0o644)
	if _, err := NewHost(context.Background(), HostConfig{DataDir: dir, Logger: quiet}); !errors.Is(err, ErrIdentity) {
		t.Errorf("world-readable key: %v, want ErrIdentity", err)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, IdentityFile), []byte("not a key"), 0o600)
	if _, err := NewHost(context.Background(), HostConfig{DataDir: bad, Logger: quiet}); !errors.Is(err, ErrIdentity) {
		t.Errorf("malformed key: %v, want ErrIdentity", err)
	}
}

func TestPrivateNetwork(t *testing.T) {
	psk := bytes.Repeat([]byte{7}, PSKSize)
	other := bytes.Repeat([]byte{8}, PSKSize)
	member := newHost(t, HostConfig{Listen: []string{loopTCP}, PSK: psk})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		psk  []byte
		ok   bool
	}{{"same key", psk, true}, {"no key", nil, false}, {"other key", other, false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, HostConfig{Listen: []string{loopTCP}, PSK: tc.psk})
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			defer ccancel()
			err := h.Connect(cctx, member.AddrInfo())
			if tc.ok && err != nil {
				t.Errorf("member could not connect: %v", err)
			}
			if !tc.ok && err == nil {
				t.Error("a peer without the key connected")
			}
		})
	}
	if _, err := NewHost(ctx, HostConfig{Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, PSK: psk, Logger: quiet}); !errors.Is(err, ErrQUICWithPSK) {
		t.Errorf("QUIC with a PSK: %v, want ErrQUICWithPSK", err)
	}
	if _, err := NewHost(ctx, HostConfig{PSK: psk[:5], Logger: quiet}); err == nil {
		t.Error("a 5-byte PSK was taken")
	}
}

func TestQUICAndTCP(t *testing.T) {
	srv := newHost(t, HostConfig{Listen: []string{loopTCP, "/ip4/127.0.0.1/udp/0/quic-v1"}})
	if len(srv.Addrs()) != 2 {
		t.Fatalf("listening on %v", srv.Addrs())
	}
	for _, a := range srv.Addrs() {
		c := newHost(t, HostConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Connect(ctx, peer.AddrInfo{ID: srv.ID(), Addrs: []ma.Multiaddr{a}})
		cancel()
		if err != nil {
			t.Errorf("connect over %v: %v", a, err)
		}
	}
}

// TestCorruptReplyRefused has a peer answer the hello with garbage: the
// client refuses it with ErrProtocol, naming the peer.
func TestCorruptReplyRefused(t *testing.T) {
	srv := newHost(t, HostConfig{Listen: []string{loopTCP}})
	srv.SetStreamHandler(StageProtocol, func(s network.Stream) {
		defer s.Close()
		readMessage(s, nil, 1<<10)
		reply, _ := appendMessage(nil, msgInfo, func(d []byte) ([]byte, error) { return append(d, 1, 2, 3), nil })
		s.Write(reply)
	})
	cli := newHost(t, HostConfig{})
	_, err := DialStage(context.Background(), cli, srv.AddrInfo(), RemoteConfig{Logger: quiet, DialTimeout: 5 * time.Second})
	var re *RemoteError
	if !errors.Is(err, ErrProtocol) || !errors.As(err, &re) || re.Peer != srv.ID() {
		t.Errorf("err %v, want ErrProtocol from %s", err, srv.ID())
	}
}
