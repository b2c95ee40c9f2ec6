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
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
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
// public network, no discovery, no NAT traversal, no relaying.
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
	Gater *Gater
	// Bootstrap are full multiaddrs of known peers, each ending in
	// /p2p/ID. The host connects to them when it starts, in the
	// background (a failure is logged as a warning); they seed the DHT,
	// and with NAT they are the static relays of AutoRelay.
	Bootstrap []string
	// MDNS finds peers on the LAN by multicast DNS and connects to them.
	// MDNSTag, when set, keeps discovery to the hosts with the same tag
	// (a cluster's name: letters, digits and '-', at most 32).
	MDNS    bool
	MDNSTag string
	// DHT runs a Kademlia DHT private to Strata nodes (protocol prefix
	// DHTPrefix), seeded from Bootstrap, through which FindPeer and
	// dialing a peer by ID alone learn addresses beyond the LAN. Off
	// when "".
	DHT DHTMode
	// NAT turns on NAT traversal: UPnP / NAT-PMP port mapping, the
	// AutoNAT service for others, hole punching (DCUtR), the circuit
	// relay v2 client transport, and AutoRelay over the Bootstrap peers
	// when there are any. Without it the relay transport is off: a
	// /p2p-circuit address cannot be dialed.
	NAT bool
	// RelayService makes the host a circuit relay v2 for others, from
	// the start (not once AutoNAT finds it public): set it on a host
	// with a public address. Relayed links are limited (relay v2's
	// default resources: 2 minutes, 128 KiB each way) and carry no
	// activations; see RelayOnly.
	RelayService bool
	Logger       *slog.Logger // nil: slog.Default()
}

// Host is a node's libp2p host: TCP and QUIC transports (TCP only in a
// private network), Noise, yamux, and a persistent ed25519 identity; as
// its HostConfig asks, bootstrap peers, mDNS on the LAN and a Kademlia
// DHT beyond it (discovery.go), and AutoNAT, hole punching and circuit
// relay v2 for peers behind NAT (reach.go).
//
// With a DHT the embedded host is a routed host: Connect and NewStream to
// a peer whose addresses the peerstore lacks look them up in the DHT.
type Host struct {
	host.Host
	log    *slog.Logger
	kad    *kad.IpfsDHT   // nil without a DHT
	mdns   mdns.Service   // nil without mDNS
	relay  *relayv2.Relay // nil unless RelayService
	reach  reachability
	ctx    context.Context // ends at Close: the background work's
	cancel context.CancelFunc
	once   sync.Once

	mu     sync.Mutex // guards closed and wg.Add against Close's wg.Wait
	closed bool
	wg     sync.WaitGroup // the host's goroutines
}

// NewHost starts a host. Close it to stop listening, close its
// connections and stop its discovery.
func NewHost(ctx context.Context, cfg HostConfig) (*Host, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	key, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	boot, err := parseBootstrap(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	if err := checkMDNSTag(cfg.MDNSTag); err != nil {
		return nil, err
	}
	var started atomic.Bool // the libp2p host serves its protocols
	dhtOpts, err := cfg.DHT.options(boot, started.Load)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableMetrics(),
	}
	opts = append(opts, natOptions(cfg.NAT, boot)...)
	var dht *kad.IpfsDHT
	if dhtOpts != nil {
		opts = append(opts, libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
			d, err := kad.New(h, dhtOpts...)
			dht = d
			return d, err
		}))
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
	lh, err := libp2p.New(opts...)
	if err != nil {
		if dht != nil {
			dht.Close()
		}
		return nil, fmt.Errorf("p2p: start host: %w", err)
	}
	started.Store(true)
	h := &Host{Host: lh, log: log, kad: dht}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if err := h.start(cfg, boot); err != nil {
		h.Close()
		return nil, err
	}
	log.Info("p2p host started", "peer", h.ID(), "addrs", h.Addrs(), "private", len(cfg.PSK) > 0,
		"mdns", h.mdns != nil, "dht", string(cfg.DHT), "nat", cfg.NAT, "relay_service", cfg.RelayService)
	return h, nil
}

// start starts what runs beside the libp2p host: the relay service,
// reachability tracking, mDNS, the bootstrap connections.
func (h *Host) start(cfg HostConfig, boot []peer.AddrInfo) error {
	if cfg.RelayService {
		r, err := relayv2.New(h.Host)
		if err != nil {
			return fmt.Errorf("p2p: start relay service: %w", err)
		}
		h.relay = r
	}
	if cfg.NAT {
		sub, err := h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
		if err != nil {
			return fmt.Errorf("p2p: subscribe to reachability: %w", err)
		}
		h.reach.track(h, sub)
	}
	if cfg.MDNS {
		h.startMDNS(cfg.MDNSTag)
	}
	h.connectBootstrap(boot)
	return nil
}

// goBackground runs f in a goroutine the host owns, unless the host is
// closed: Close cancels h.ctx and waits for it.
func (h *Host) goBackground(f func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
	return true
}

// Close stops discovery, the DHT and the relay service, waits for the
// host's goroutines, and closes the libp2p host: its listeners and
// connections. It may be called more than once.
func (h *Host) Close() error {
	var err error
	h.once.Do(func() {
		h.cancel()
		if h.mdns != nil {
			h.mdns.Close()
		}
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.wg.Wait()
		if h.kad != nil {
			h.kad.Close()
		}
		if h.relay != nil {
			h.relay.Close()
		}
		err = h.Host.Close()
	})
	return err
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
