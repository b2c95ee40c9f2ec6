package p2p

import (
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Reachability values of Host.Reachability.
const (
	ReachPublic  = "public"
	ReachPrivate = "private"
	ReachUnknown = "unknown"
)

// natOptions are the libp2p options of HostConfig.NAT: with nat off the
// relay transport is disabled, as it always was.
func natOptions(nat bool, boot []peer.AddrInfo) []libp2p.Option {
	if !nat {
		return []libp2p.Option{libp2p.DisableRelay()}
	}
	opts := []libp2p.Option{
		libp2p.NATPortMap(),
		libp2p.EnableNATService(),
		libp2p.EnableHolePunching(),
		libp2p.EnableRelay(),
	}
	if len(boot) > 0 {
		// AutoRelay reserves slots on these once AutoNAT finds the host
		// private, and advertises the relayed addresses.
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(boot))
	}
	return opts
}

// reachability is the host's latest reachability as AutoNAT reports it.
type reachability struct {
	v atomic.Int32 // a network.Reachability
}

// track follows sub's EvtLocalReachabilityChanged events in a goroutine
// the host owns, until the host closes.
func (r *reachability) track(h *Host, sub event.Subscription) {
	ok := h.goBackground(func() {
		defer sub.Close()
		for {
			select {
			case <-h.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				v := e.(event.EvtLocalReachabilityChanged).Reachability
				if old := network.Reachability(r.v.Swap(int32(v))); old != v {
					h.log.Info("reachability changed", "reachability", reachString(v))
				}
			}
		}
	})
	if !ok {
		sub.Close()
	}
}

func reachString(v network.Reachability) string {
	switch v {
	case network.ReachabilityPublic:
		return ReachPublic
	case network.ReachabilityPrivate:
		return ReachPrivate
	}
	return ReachUnknown
}

// Reachability says whether peers outside the host's network can dial
// it, as AutoNAT last found: "public", "private" (behind NAT: reachable
// through a relay or after hole punching only) or "unknown" (not found
// yet, or HostConfig.NAT is off).
func (h *Host) Reachability() string {
	return reachString(network.Reachability(h.reach.v.Load()))
}

// RelayOnly reports whether h reaches p only through relays: it has
// connections to p and every one is limited (relay v2 caps them in time
// and bytes) or runs over /p2p-circuit. Such a peer carries no
// activations: DialStage refuses it with ErrRelayOnly.
func RelayOnly(h host.Host, p peer.ID) bool {
	conns := h.Network().ConnsToPeer(p)
	if len(conns) == 0 {
		return false
	}
	for _, c := range conns {
		if !c.Stat().Limited && !isRelayAddr(c.RemoteMultiaddr()) {
			return false
		}
	}
	return true
}

// isRelayAddr reports whether a runs through a circuit relay.
func isRelayAddr(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Protocol().Code == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}
