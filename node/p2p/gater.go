package p2p

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// Gater keeps a members-only cluster to its members, in two layers.
//
// At the connection level (connmgr.ConnectionGater, given to libp2p with
// libp2p.ConnectionGater) it admits everyone except banned peers: a
// joiner is an unknown peer until the join protocol has checked its
// token, so it must be able to connect. Ban is for a removed or dead
// node; a revoked node (SetRevoked) may still connect in to find out,
// once the members have no business with it (SetAnswerable).
//
// At the stream level, Guard wraps the handler of each members-only
// protocol (Raft, stages, weights, status) so that, once EnforceMembers
// is on, a stream from a peer outside the member set is reset; the join
// protocol is left unguarded, open to all. Enforcement is off until the
// node knows its cluster.
//
// All methods may be called concurrently, from any goroutine.
type Gater struct {
	enforce atomic.Bool

	mu      sync.RWMutex
	members map[peer.ID]struct{}
	banned  map[peer.ID]struct{} // by Ban
	revoked map[peer.ID]struct{} // by SetRevoked
	answer  map[peer.ID]struct{} // by SetAnswerable
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a gater with no members, no bans and enforcement off:
// it admits everyone until EnforceMembers(true).
func NewGater() *Gater {
	return &Gater{members: make(map[peer.ID]struct{}), banned: make(map[peer.ID]struct{}),
		revoked: make(map[peer.ID]struct{}), answer: make(map[peer.ID]struct{})}
}

// SetMembers replaces the member set with ids. The gater keeps no
// reference to ids.
func (g *Gater) SetMembers(ids []peer.ID) {
	m := make(map[peer.ID]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	g.mu.Lock()
	g.members = m
	g.mu.Unlock()
}

// Allow adds id to the member set.
func (g *Gater) Allow(id peer.ID) {
	g.mu.Lock()
	g.members[id] = struct{}{}
	g.mu.Unlock()
}

// IsMember reports whether id is in the member set.
func (g *Gater) IsMember(id peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.members[id]
	return ok
}

// Ban refuses id's connections from now on, both ways, and drops it from
// the member set. Connections already open stay open: close them with
// the host's Network().ClosePeer(id).
func (g *Gater) Ban(id peer.ID) {
	g.mu.Lock()
	g.banned[id] = struct{}{}
	delete(g.members, id)
	g.mu.Unlock()
}

// SetRevoked replaces the set of revoked peers, which are banned as by
// Ban (and dropped from the member set) apart from it, with ids, and
// returns those it newly bans, whose open connections the caller should
// close. The gater keeps no reference to ids.
func (g *Gater) SetRevoked(ids []peer.ID) (added []peer.ID) {
	r := make(map[peer.ID]struct{}, len(ids))
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		if _, was := g.revoked[id]; !was {
			added = append(added, id)
		}
		r[id] = struct{}{}
		delete(g.members, id)
	}
	g.revoked = r
	return added
}

// SetAnswerable replaces, with ids, the set of revoked peers that may
// connect in: those the members no longer have any business with (out of
// Raft's configuration), so that one revoked while away can ask whether it
// is still a member and hear why not. The gater keeps no reference to ids.
func (g *Gater) SetAnswerable(ids []peer.ID) {
	a := make(map[peer.ID]struct{}, len(ids))
	for _, id := range ids {
		a[id] = struct{}{}
	}
	g.mu.Lock()
	g.answer = a
	g.mu.Unlock()
}

// Unban lifts a ban on id; it does not make id a member.
func (g *Gater) Unban(id peer.ID) {
	g.mu.Lock()
	delete(g.banned, id)
	g.mu.Unlock()
}

// IsBanned reports whether id is banned, by Ban or as revoked.
func (g *Gater) IsBanned(id peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.banned[id]
	_, rev := g.revoked[id]
	return ok || rev
}

// EnforceMembers turns the stream-level rule of Guard on or off. Off (the
// default) admits every peer's streams: for a node that does not know its
// cluster yet.
func (g *Gater) EnforceMembers(on bool) { g.enforce.Store(on) }

// Guard wraps h, the handler of the members-only protocol proto: while
// membership is enforced, a stream from a non-member is reset with a
// warning naming the peer and the protocol, and h never sees it. log nil:
// slog.Default().
func (g *Gater) Guard(h network.StreamHandler, proto protocol.ID, log *slog.Logger) network.StreamHandler {
	if log == nil {
		log = slog.Default()
	}
	return func(s network.Stream) {
		if id := s.Conn().RemotePeer(); g.enforce.Load() && !g.IsMember(id) {
			level := slog.LevelWarn
			if g.IsRevoked(id) { // expected until it finds out
				level = slog.LevelDebug
			}
			log.Log(context.Background(), level, "p2p: stream from a non-member refused", "peer", id, "protocol", proto)
			s.Reset()
			return
		}
		h(s)
	}
}

// InterceptPeerDial refuses to dial a banned peer.
func (g *Gater) InterceptPeerDial(p peer.ID) bool { return !g.IsBanned(p) }

// InterceptAddrDial refuses to dial a banned peer at any address.
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.IsBanned(p) }

// InterceptAccept admits every inbound connection: the peer is not known
// until the security handshake (InterceptSecured).
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses a banned peer, inbound or outbound, once the
// handshake has authenticated it, except the inbound connections of a
// revoked peer that SetAnswerable lists: a node revoked while away (that
// missed the notice) may ask over the unguarded control protocol whether
// it is still a member, and hear why not. Guard still refuses its
// streams, and no one dials it.
func (g *Gater) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, banned := g.banned[p]
	_, revoked := g.revoked[p]
	_, answer := g.answer[p]
	return !banned && (!revoked || dir == network.DirInbound && answer)
}

// IsRevoked reports whether id is revoked (SetRevoked).
func (g *Gater) IsRevoked(id peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.revoked[id]
	return ok
}

// InterceptUpgraded admits every connection that got this far.
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
