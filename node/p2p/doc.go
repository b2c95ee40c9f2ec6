// Package p2p is the node's libp2p layer: the host (TCP and QUIC, Noise,
// yamux, a persistent ed25519 identity, an optional private network) and
// the protocols nodes speak to each other. This first slice holds the
// stage protocol (StageProtocol, messages described in message.go): a
// StageServer serves a pipeline.Stage on a host, and a RemoteStage is a
// pipeline.Stage whose layers run on a peer, so that a pipeline.Driver
// drives stages across processes as it drives them in one.
//
// The gateway drives a route hop by hop: it sends each micro-batch to stage
// i's peer, reads the activations back, and sends them on to stage i+1.
// Direct stage-to-stage forwarding slots in as follows (not built yet): a
// forward message gains a route (the peers and layer ranges after the
// receiver, and the gateway's peer and a request ID to reply to, behind a
// header flag that version 1 servers refuse); a server that gets one runs
// its stage, then sends the result on to the route's next peer over a
// RemoteStage of its own, and the last stage writes the logits to the
// gateway on a result protocol keyed by the request ID; an error names the
// stage that failed, not the first one. On the gateway one RemoteStage-like
// stage spans the whole route, so the Driver must then keep several
// Forwards in flight on that one stage to overlap micro-batches, which is a
// change to package pipeline.
//
// Raft runs over libp2p (raft.go): RaftProtocol streams carry a
// raft.NetworkTransport's connections (NewRaftTransport, over a
// RaftStreamLayer on go-libp2p's gostream). A Raft server's ID and address
// are both its peer ID's string form. The peers Raft dials and accepts are
// protected in the host's connection manager, and NewRaftLogger routes
// Raft's hclog output to slog.
//
// A Gater (gater.go) keeps a members-only cluster to its members. At the
// connection level it admits everyone but banned peers, because a joiner is
// unknown until the join protocol has checked its token. At the stream
// level Guard wraps a members-only protocol's handler (the stage server
// takes an Allow function to the same end); the join protocol stays open.
//
// Discovery (discovery.go) is what HostConfig asks for: Bootstrap peers,
// dialed at start in the background; mDNS on the LAN (service "strata",
// or "strata-TAG"), connecting to the peers it finds; and a Kademlia DHT
// private to Strata nodes (protocol prefix "/strata", peer routing only,
// no records), seeded from the bootstrap peers, through which
// Host.FindPeer, and Connect or NewStream to a peer known by ID alone,
// learn the addresses of peers beyond the LAN.
//
// Behind NAT (reach.go, HostConfig.NAT) the host maps ports (UPnP,
// NAT-PMP), answers AutoNAT for others, punches holes (DCUtR), dials and
// accepts circuit relay v2 links, and with bootstrap peers reserves relay
// slots through AutoRelay; a host with RelayService is a relay for
// others. Host.Reachability reports what AutoNAT found. A relayed link is
// limited to a trickle and never carries activations: RelayOnly tells a
// peer reachable only through a relay, DialStage refuses it with
// ErrRelayOnly, and stage streams are never opened on a limited
// connection. Without NAT the relay transport is off.
//
// It imports pipeline and pipeline/wire, go-libp2p, go-libp2p-kad-dht and
// hashicorp/raft; pipeline never imports it.
package p2p
