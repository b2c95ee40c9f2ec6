package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-llm/strata/cluster"
)

// Who may be in the cluster: the join tokens it issues, and the nodes it
// revokes.

// ErrRevoked: this member was revoked from its cluster; Run returns it,
// wrapped with the revocation's time and reason.
var ErrRevoked = errors.New("this node was revoked from the cluster")

// ErrRemoved: this member was removed from its cluster while away (dead
// longer than the cluster's reap-after, say) and its token no longer
// admits it; Run returns it, wrapped with why the join was refused.
var ErrRemoved = errors.New("this node was removed from the cluster and could not join again")

// errRefused: a change to the cluster's access that would break it (the
// wrapped text says why); the admin API answers it with 409.
var errRefused = errors.New("refused")

// IssuedToken is a join token the cluster has put on record, as Token
// returns it: the token itself exists only here.
type IssuedToken struct {
	Token string `json:"token"`
	cluster.TokenInfo
	// Join is the address to join through: the issuing member's.
	Join string `json:"join"`
}

// Token issues a join token valid for ttl (0: 24 h, at least a second),
// signed with the cluster's secret and recorded in the map through the
// leader: it admits joiners until it expires or is revoked
// (RevokeToken). note says what it is for.
func (m *Member) Token(ctx context.Context, ttl time.Duration, note string) (IssuedToken, error) {
	return m.issueToken(ctx, ttl, note, false)
}

// VolunteerToken is Token for volunteers: the nodes it admits serve
// layers but never vote in Raft, and may change only their own entry in
// the map (not issue tokens, revoke nodes, or change other members).
func (m *Member) VolunteerToken(ctx context.Context, ttl time.Duration, note string) (IssuedToken, error) {
	return m.issueToken(ctx, ttl, note, true)
}

func (m *Member) issueToken(ctx context.Context, ttl time.Duration, note string, volunteer bool) (IssuedToken, error) {
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	if ttl < time.Second {
		return IssuedToken{}, fmt.Errorf("%w: a token valid for %v: at least a second", errRefused, ttl)
	}
	mp := m.cl.Map()
	if mp.Cluster == "" {
		return IssuedToken{}, errors.New("member: the cluster has no ID yet")
	}
	now := time.Now()
	tok := cluster.SignToken(mp.Cluster, mp.Secret, now, ttl)
	t, _, _, err := cluster.ParseToken(tok)
	if err != nil {
		return IssuedToken{}, err
	}
	info := cluster.TokenInfo{ID: cluster.TokenID(tok), Issued: now.UTC().Truncate(time.Second), Expires: t.Expires, Note: note, Volunteer: volunteer, By: m.id.String()}
	if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdAddToken, Token: &info}); err != nil {
		return IssuedToken{}, fmt.Errorf("record the token: %w", err)
	}
	return IssuedToken{Token: tok, TokenInfo: info, Join: m.Addr()}, nil
}

// Tokens returns the records of the join tokens that admit joiners now,
// oldest first.
func (m *Member) Tokens() []cluster.TokenInfo {
	now := time.Now()
	var out []cluster.TokenInfo
	for _, t := range m.cl.Map().Tokens {
		if t.Expires.After(now) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b cluster.TokenInfo) int {
		if c := a.Issued.Compare(b.Issued); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// RevokeToken deletes the record of the token with that ID: it admits no
// one from then on. Members already admitted with it stay.
func (m *Member) RevokeToken(ctx context.Context, id string) error {
	if _, ok := m.cl.Map().Tokens[id]; !ok {
		return fmt.Errorf("%w: %s", cluster.ErrUnknownToken, id)
	}
	return m.apply(ctx, &cluster.Command{Type: cluster.CmdRevokeToken, TokenID: id})
}

// Revoke removes a node from the cluster for good: its layers are planned
// elsewhere, every member closes its connections and refuses new ones,
// and it cannot join again, whatever its token, until the revocation is
// lifted. node is a peer ID, or the end of a member's (as `strata status`
// shows it); a peer ID that is not a member is revoked before it ever
// joins. Revoking a revoked node changes nothing. A member that finds
// itself revoked stops (Run returns ErrRevoked).
func (m *Member) Revoke(ctx context.Context, node, reason string) (cluster.Revocation, error) {
	mp := m.cl.Map()
	id, err := resolveNode(mp, node, true)
	if err != nil {
		return cluster.Revocation{}, err
	}
	if r, ok := mp.Revoked[id]; ok {
		return r, nil
	}
	if n := mp.Nodes[id]; n != nil && !n.Volunteer && !trustedBesides(mp, id) {
		return cluster.Revocation{}, fmt.Errorf("%w: %s is the cluster's only live member that may vote", errRefused, shortID(id))
	}
	r := cluster.Revocation{Node: id, At: time.Now().UTC().Truncate(time.Second), Reason: reason, By: m.id.String()}
	if err := m.apply(ctx, &cluster.Command{Type: cluster.CmdRevokeNode, NodeID: id, Reason: reason, Time: r.At, By: r.By}); err != nil {
		// Revoking the leader cuts this member's stream to it as the
		// revocation applies here: the map says whether it took.
		if _, ok := m.cl.Map().Revoked[id]; !ok {
			return cluster.Revocation{}, err
		}
	}
	m.log.Warn("revoked a node", "node", id, "reason", reason)
	return r, nil
}

// LiftRevocation lifts a node's revocation (node as for Revoke): it may
// join again, with a token.
func (m *Member) LiftRevocation(ctx context.Context, node string) error {
	mp := m.cl.Map()
	id, err := resolveNode(&cluster.Map{Revoked: mp.Revoked}, node, false)
	if err != nil {
		return err
	}
	return m.apply(ctx, &cluster.Command{Type: cluster.CmdLiftRevocation, NodeID: id})
}

// trustedBesides reports whether mp has a live member other than id that
// is not a volunteer: one that can vote once id is gone.
func trustedBesides(mp *cluster.Map, id string) bool {
	for oid, n := range mp.Nodes {
		if oid != id && n.State.Live() && !n.Volunteer {
			return true
		}
	}
	return false
}

// resolveNode finds the node that s names in mp: a member's or revoked
// node's ID, or the unique one ending in s. With anyPeer, a peer ID that
// names neither is taken as it is.
func resolveNode(mp *cluster.Map, s string, anyPeer bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: no node named", cluster.ErrUnknownNode)
	}
	var match []string
	for _, ids := range [][]string{slices.Collect(maps.Keys(mp.Nodes)), slices.Collect(maps.Keys(mp.Revoked))} {
		for _, id := range ids {
			if id == s {
				return id, nil
			}
			if strings.HasSuffix(id, s) && !slices.Contains(match, id) {
				match = append(match, id)
			}
		}
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) > 1:
		slices.Sort(match)
		return "", fmt.Errorf("%w: %q could be any of %s", errRefused, s, strings.Join(match, ", "))
	}
	if anyPeer {
		if _, err := peer.Decode(s); err == nil {
			return s, nil
		}
	}
	return "", fmt.Errorf("%w %q", cluster.ErrUnknownNode, s)
}

// banRevoked bans the map's revoked nodes in the gater and closes their
// connections (the leader first tells each why); on finding this member
// revoked it stops it.
func (m *Member) banRevoked(mp *cluster.Map) {
	ids := make([]peer.ID, 0, len(mp.Revoked))
	for id, r := range mp.Revoked {
		if id == m.id.String() {
			m.markRevoked(r)
			continue
		}
		if pid, err := peer.Decode(id); err == nil {
			ids = append(ids, pid)
		}
	}
	leader := m.cl.IsLeader()
	for _, pid := range m.gater.SetRevoked(ids) {
		m.log.Warn("closing the connections of a revoked node", "peer", pid)
		if !leader {
			m.host.Network().ClosePeer(pid)
			continue
		}
		r := mp.Revoked[pid.String()]
		go func() {
			ctx, cancel := context.WithTimeout(m.ctx, noticeTimeout)
			if _, err := m.control(ctx, pid, &controlRequest{Op: "revoked", Revocation: &r}); err != nil {
				m.log.Debug("tell a revoked node", "peer", pid, "err", err)
			}
			cancel()
			m.host.Network().ClosePeer(pid)
		}()
	}
}

// answerRevoked lets the revoked nodes that are out of Raft's
// configuration connect in (the gater's SetAnswerable): no member has
// business with them any more, and one revoked while away can then ask
// whether it is still a member and hear why not. One still in the
// configuration stays refused, so that no member's Raft reaches it over a
// connection it opened.
func (m *Member) answerRevoked(mp *cluster.Map) {
	f := m.cl.Raft().GetConfiguration()
	if f.Error() != nil {
		return
	}
	in := make(map[string]bool)
	for _, s := range f.Configuration().Servers {
		in[string(s.ID)] = true
	}
	var ids []peer.ID
	for id := range mp.Revoked {
		if pid, err := peer.Decode(id); err == nil && !in[id] {
			ids = append(ids, pid)
		}
	}
	m.gater.SetAnswerable(ids)
}

// noticeTimeout bounds the leader's telling a node it was revoked.
const noticeTimeout = 3 * time.Second

// markRevoked stops this member for its revocation r.
func (m *Member) markRevoked(r cluster.Revocation) { m.haltWith(revokedError(r)) }

// revokedError is ErrRevoked with r's time and reason.
func revokedError(r cluster.Revocation) error {
	err := fmt.Errorf("%w at %s", ErrRevoked, r.At.Format(time.RFC3339))
	if r.Reason != "" {
		err = fmt.Errorf("%w: %s", err, r.Reason)
	}
	return err
}

// haltWith makes Run stop and return err; the first call counts.
func (m *Member) haltWith(err error) {
	m.haltOnce.Do(func() {
		m.log.Error("this node stops", "err", err)
		m.haltErr = err
		close(m.halt)
	})
}

// stopHalted is Run's end for a halted member: it stops serving, hands
// on Raft leadership if it holds it (leaving Raft where it left the map),
// and returns why it stopped.
func (m *Member) stopHalted() error {
	m.unload()
	if m.cl.IsLeader() {
		if m.cl.Map().Nodes[m.id.String()] == nil {
			if err := m.cl.LeaveRaft(); err != nil {
				m.log.Warn("leave raft", "err", err)
			}
		} else if err := m.cl.Raft().LeadershipTransfer().Error(); err != nil {
			m.log.Warn("leadership transfer", "err", err)
		}
	}
	return m.haltErr
}

// watchLeader watches, until ctx ends, for a time without a known leader
// longer than LeaderLostAfter, and then (and as often again while it
// lasts) asks the members whether this member is still one
// (checkMembership). On each tick it also updates which revoked nodes may
// connect in (answerRevoked).
func (m *Member) watchLeader(ctx context.Context) error {
	after := m.cfg.LeaderLostAfter
	if after <= 0 {
		after = time.Minute
	}
	tick := time.NewTicker(min(after/4, time.Second))
	defer tick.Stop()
	var lost, checked time.Time // since when no leader is known; the last check
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		m.answerRevoked(m.cl.Map())
		switch {
		case m.cl.Leader() != "":
			lost = time.Time{}
		case lost.IsZero():
			lost = time.Now()
		case time.Since(lost) >= after && time.Since(checked) >= after:
			m.log.Warn("no contact with the cluster's leader: asking the members whether this node is still one", "for", time.Since(lost).Round(time.Second))
			m.checkMembership(ctx, m.cl.Map())
			checked = time.Now()
		}
	}
}

// checkMembership asks the members of mp, one after another, whether
// this member is still one of them, for a member that has had no leader
// for a while. If one says it was revoked, it stops with ErrRevoked. If
// one says it is not a member (it was reaped while away, or left), it
// joins again with its configured token, or, if that is refused, it
// stops with ErrRemoved. If none answers, it goes on waiting.
func (m *Member) checkMembership(ctx context.Context, mp *cluster.Map) {
	for _, id := range mp.NodeIDs() {
		pid, err := peer.Decode(id)
		if err != nil || pid == m.id {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		idx, err := m.control(cctx, pid, &controlRequest{Op: "check"})
		cancel()
		switch {
		case err == nil:
			m.log.Warn("still a member, as another member sees it: this node cannot reach the leader", "asked", shortID(id))
			return
		case errors.Is(err, ErrRevoked): // while away, so it missed the leader's notice
			m.haltWith(err)
			return
		case errors.Is(err, ErrNotMember) && idx >= mp.Index: // not a member as of a map no older than this one's
			m.rejoin(ctx, pid)
			return
		}
		m.log.Debug("ask whether still a member", "peer", shortID(id), "err", err)
	}
	m.log.Warn("no member answered: this node may be cut off from the cluster")
}

// checkTimeout bounds the wait for one member's answer to "am I still a
// member?".
const checkTimeout = 5 * time.Second

// rejoin joins the cluster again through pid, with the configured token,
// after finding this member removed; it stops the member if the cluster
// refuses it.
func (m *Member) rejoin(ctx context.Context, pid peer.ID) {
	if m.cfg.Token == "" {
		m.haltWith(fmt.Errorf("%w: it has no token to join with: join with a new one", ErrRemoved))
		return
	}
	self := m.self
	self.State = cluster.StateJoining
	_, err := m.control(ctx, pid, &controlRequest{Op: "join", Token: m.cfg.Token, Node: &self})
	switch {
	case err == nil:
		m.log.Warn("this node was removed from the cluster while away: it joined again with its token")
	case errors.Is(err, ErrJoinRefused):
		m.haltWith(fmt.Errorf("%w (%w): join again with a new token", ErrRemoved, err))
	default:
		m.log.Warn("this node was removed from the cluster while away; joining again failed", "err", err)
	}
}
