package p2p

import (
	"context"
	"errors"
	"fmt"
	"time"

	kad "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
)

// DHTMode is how a host takes part in the DHT.
type DHTMode string

// The DHT modes of HostConfig.DHT.
const (
	// DHTOff: no DHT (the zero value).
	DHTOff DHTMode = ""
	// DHTClient queries the DHT but answers no queries: a host behind
	// NAT, or one that should not carry others' lookups.
	DHTClient DHTMode = "client"
	// DHTServer queries and answers: a host with a public address (a
	// bootstrap peer).
	DHTServer DHTMode = "server"
	// DHTAuto is a client until AutoNAT finds the host publicly
	// reachable, then a server.
	DHTAuto DHTMode = "auto"
)

// DHTPrefix is the protocol prefix of Strata's DHT (its protocol is
// DHTPrefix + "/kad/1.0.0"): a DHT of Strata nodes only, apart from the
// IPFS one.
const DHTPrefix = "/strata"

// MDNSService is the mDNS service name Strata hosts announce and browse,
// "strata-" + the tag when HostConfig.MDNSTag is set.
const MDNSService = "strata"

// Timeouts of discovery.
const (
	// BootstrapTimeout bounds connecting to a bootstrap peer.
	BootstrapTimeout = 30 * time.Second
	// FoundPeerTimeout bounds connecting to a peer mDNS found.
	FoundPeerTimeout = 10 * time.Second
)

var (
	// ErrBootstrap: a bootstrap address is malformed or lacks its /p2p/ID.
	ErrBootstrap = errors.New("p2p: bad bootstrap address")
	// ErrNoDHT: FindPeer was called on a host without a DHT.
	ErrNoDHT = errors.New("p2p: no DHT (HostConfig.DHT is off)")
)

// options returns the DHT's options, nil when m is DHTOff.
func (m DHTMode) options(boot []peer.AddrInfo, started func() bool) ([]kad.Option, error) {
	var mode kad.ModeOpt
	switch m {
	case DHTOff:
		return nil, nil
	case DHTClient:
		mode = kad.ModeClient
	case DHTServer:
		mode = kad.ModeServer
	case DHTAuto:
		mode = kad.ModeAuto
	default:
		return nil, fmt.Errorf("p2p: DHT mode %q, want client, server or auto", string(m))
	}
	return []kad.Option{
		kad.Mode(mode),
		kad.ProtocolPrefix(DHTPrefix),
		// The DHT is made inside libp2p.New, before the host serves
		// identify: were it to dial a bootstrap peer then, that peer's
		// identify of this host would find no handler and fail for good
		// (the peer would never learn this host's addresses). So it gets
		// its bootstrap peers only once the host has started.
		kad.BootstrapPeersFunc(func() []peer.AddrInfo {
			if !started() {
				return nil
			}
			return boot
		}),
		// Peer routing only: a Strata node stores no records for others.
		kad.DisableProviders(),
		kad.DisableValues(),
	}, nil
}

// FindPeer returns the addresses of peer id: at once for a connected
// peer, else from a DHT lookup (routing.ErrNotFound wrapped when the DHT
// does not know it). Without a DHT it fails with ErrNoDHT.
func (h *Host) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if h.kad == nil {
		return peer.AddrInfo{}, fmt.Errorf("find peer %s: %w", id, ErrNoDHT)
	}
	ai, err := h.kad.FindPeer(ctx, id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("find peer %s: %w", id, err)
	}
	return ai, nil
}

// parseBootstrap parses full multiaddrs (each with its /p2p/ID) into one
// AddrInfo a peer.
func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	mas := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrBootstrap, s, err)
		}
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrBootstrap, s, err)
		}
		mas = append(mas, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBootstrap, err)
	}
	return infos, nil
}

// connectBootstrap connects to each bootstrap peer in the background.
func (h *Host) connectBootstrap(boot []peer.AddrInfo) {
	for _, ai := range boot {
		if ai.ID == h.ID() {
			continue
		}
		h.goBackground(func() {
			ctx, cancel := context.WithTimeout(h.ctx, BootstrapTimeout)
			defer cancel()
			if err := h.Connect(ctx, ai); err != nil {
				if h.ctx.Err() == nil {
					h.log.Warn("could not connect to a bootstrap peer", "peer", ai.ID, "addrs", ai.Addrs, "err", err)
				}
				return
			}
			h.log.Info("connected to a bootstrap peer", "peer", ai.ID)
		})
	}
}

// checkMDNSTag refuses a tag that is no part of a DNS label.
func checkMDNSTag(tag string) error {
	if len(tag) > 32 {
		return fmt.Errorf("p2p: mDNS tag %q is longer than 32 bytes", tag)
	}
	for _, c := range tag {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("p2p: mDNS tag %q: only letters, digits and '-'", tag)
		}
	}
	return nil
}

// mdnsServiceName is the mDNS service of hosts tagged tag.
func mdnsServiceName(tag string) string {
	if tag == "" {
		return MDNSService
	}
	return MDNSService + "-" + tag
}

// startMDNS announces the host on the LAN and connects to the Strata
// hosts found there. A failure to start (no multicast interface) is
// logged, not fatal: the LAN is one way of finding peers among others.
func (h *Host) startMDNS(tag string) {
	svc := mdns.NewMdnsService(h.Host, mdnsServiceName(tag), notifee{h})
	if err := svc.Start(); err != nil {
		svc.Close()
		h.log.Warn("mDNS discovery could not start", "err", err)
		return
	}
	h.mdns = svc
}

// notifee hands the peers mDNS finds to the host.
type notifee struct{ h *Host }

// HandlePeerFound connects to ai in a goroutine the host owns (mDNS calls
// it from a goroutine of its own, which nothing waits for), unless the
// peer is the host itself or already connected.
func (n notifee) HandlePeerFound(ai peer.AddrInfo) {
	h := n.h
	if ai.ID == h.ID() || h.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	h.goBackground(func() {
		ctx, cancel := context.WithTimeout(h.ctx, FoundPeerTimeout)
		defer cancel()
		if err := h.Connect(ctx, ai); err != nil {
			if h.ctx.Err() == nil {
				h.log.Debug("could not connect to a peer found by mDNS", "peer", ai.ID, "err", err)
			}
			return
		}
		h.log.Info("connected to a peer found by mDNS", "peer", ai.ID)
	})
}
