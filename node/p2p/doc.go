// Package p2p is the node's libp2p layer: the host (TCP and QUIC, Noise,
// yamux, a persistent ed25519 identity, an optional private network) and
// the protocols nodes speak to each other. This first slice holds the
// stage protocol (StageProtocol, messages described in message.go): a
// StageServer serves a pipeline.Stage on a host, and a RemoteStage is a
// pipeline.Stage whose layers run on a peer, so that a pipeline.Driver
// drives stages across processes as it drives them in one.
//
// A gateway drives a route in one of two ways. Hop by hop, with a
// RemoteStage a stage: it sends each micro-batch to stage i's peer, reads
// the activations back, and sends them on to stage i+1 (2 links a stage).
// Or by chain forwarding (route.go), with one RemoteRoute over the whole
// route: Forward sends the micro-batch to the first stage as a chain
// forward (StageProtocolV2) that carries the rest of the route (each hop's
// peer, addresses, layers and map epoch), the gateway's peer and a request
// ID; each StageServer checks that it is the hop the route names, runs its
// stage, and sends the result on to the next hop as a chain forward over a
// client of its own (cached per next peer, with its codec); the last one
// delivers the logits and the sequences dropped on the way straight to the
// gateway on ResultProtocol, keyed by the request ID (n+1 links for n
// stages, and no activations back at the gateway). Each hop answers its
// upstream once its downstream has answered: an ack, or a hop error that
// names the peer and layers that failed, so that a refusal or a dead peer
// anywhere (a stream reset or timed out, seen by the hop before it) comes
// back to the gateway as a *RemoteError naming that hop. A gateway whose
// ctx ends resets its stream, and each hop, seeing its upstream go away,
// resets its own downstream. A server runs one micro-batch at a time
// through its stage and bounds its streams (MaxStreams) and its forwards
// to each next peer (Next.MaxInFlight); the RemoteRoute keeps one
// micro-batch a stage in flight (it is a pipeline.ConcurrentStage, and the
// Driver runs that many workers on it). Version 1 peers keep working
// hop by hop: StageProtocol's messages are unchanged, and DialRoute
// refuses a peer that does not serve StageProtocolV2.
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
