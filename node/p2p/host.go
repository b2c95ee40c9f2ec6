package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// IdentityFile is the name of the host's private key in its data dir.
const IdentityFile = "identity.key"

// PSKSize is the size of a private network's pre-shared key.
const PSKSize = 32

var (
	// ErrQUICWithPSK: a QUIC listen address was given with a pre-shared
	// key. libp2p's private networks work over TCP only.
	ErrQUICWithPSK = errors.New("p2p: QUIC cannot be used in a private network (PSK)")
	// ErrIdentity: the identity file is unreadable, malformed, or open to
	// other users.
	ErrIdentity = errors.New("p2p: bad identity file")
)

// HostConfig configures a Host. The zero value works: an identity that
// lasts only as long as the process, no listening (dialing out only), a
// public network.
type HostConfig struct {
	// DataDir holds the host's ed25519 identity (IdentityFile, created on
	// first start with mode 0600 and reused after). "" gives a fresh
	// identity each start.
	DataDir string
	// Listen are the multiaddrs to listen on: TCP
	// ("/ip4/0.0.0.0/tcp/4001") and QUIC ("/ip4/0.0.0.0/udp/4001/quic-v1").
	// None: the host only dials.
	Listen []string
	// PSK, when set (PSKSize bytes), makes the host a member of a private
	// network: it talks only to peers with the same key. libp2p supports
	// private networks over TCP only, so with a PSK the QUIC transport is
	// disabled and a QUIC listen address is refused (ErrQUICWithPSK).
	PSK []byte
	// Gater, when set, decides which peers may connect (a cluster's
	// members and joiners).
	Gater  *Gater
	Logger *slog.Logger // nil: slog.Default()
}

// Host is a node's libp2p host: TCP and QUIC transports (TCP only in a
// private network), Noise, yamux, and a persistent ed25519 identity.
//
// Peer discovery (mDNS, the Kademlia DHT), AutoNAT, hole punching and
// circuit relay are not set up yet: peers are dialed at addresses the
// caller knows.
type Host struct {
	host.Host
}

// NewHost starts a host. Close it to stop listening and close its
// connections.
func NewHost(ctx context.Context, cfg HostConfig) (*Host, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	key, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}
	if cfg.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.Gater))
	}
	if len(cfg.PSK) > 0 {
		if len(cfg.PSK) != PSKSize {
			return nil, fmt.Errorf("p2p: a pre-shared key of %d bytes, want %d", len(cfg.PSK), PSKSize)
		}
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(cfg.PSK)))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	addrs := make([]ma.Multiaddr, 0, len(cfg.Listen))
	for _, s := range cfg.Listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: listen address %q: %w", s, err)
		}
		if len(cfg.PSK) > 0 && isQUIC(a) {
			return nil, fmt.Errorf("listen address %q: %w", s, ErrQUICWithPSK)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) > 0 {
		opts = append(opts, libp2p.ListenAddrs(addrs...))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: start host: %w", err)
	}
	log.Info("p2p host started", "peer", h.ID(), "addrs", h.Addrs(), "private", len(cfg.PSK) > 0)
	return &Host{Host: h}, nil
}

// AddrInfo returns the host's ID and listen addresses, for a peer to dial.
func (h *Host) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

func isQUIC(a ma.Multiaddr) bool {
	for _, c := range a {
		if p := c.Protocol().Code; p == ma.P_QUIC || p == ma.P_QUIC_V1 || p == ma.P_UDP {
			return true
		}
	}
	return false
}

// loadIdentity reads the ed25519 key in dir, creating it when absent; a
// fresh key when dir is "".
func loadIdentity(dir string) (crypto.PrivKey, error) {
	if dir == "" {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		return k, err
	}
	path := filepath.Join(dir, IdentityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createIdentity(dir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v; want 0600", ErrIdentity, path, st.Mode().Perm())
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrIdentity, path, err)
	}
	if k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s holds a %v key, want ed25519", ErrIdentity, path, k.Type())
	}
	return k, nil
}

// createIdentity writes a new key to path, atomically and only once: of
// two processes starting at once, the second reads the first's key.
func createIdentity(dir, path string) (crypto.PrivKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".identity-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path) // unlike rename, fails when path exists
	}
	if errors.Is(err, fs.ErrExist) {
		return loadIdentity(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	return k, nil
}
