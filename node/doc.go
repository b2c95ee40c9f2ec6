// Package node is one Strata process: it wires the libp2p host, Raft, the
// GPU inventory, the pipeline and the HTTP API together, and runs them until
// its context ends.
//
// Three shapes of process live here:
//   - Serve (`strata serve`): the API over in-process stages, or over a
//     static route of stage processes driven as one chained route.
//   - RunStage (`strata node`): one layer range behind the stage protocol.
//   - Member (`strata init`, `strata join`): a cluster member. It holds a
//     Raft member of the cluster map (package cluster) over libp2p; joins
//     through the control protocol (control.go: a joiner's token is checked
//     by the leader, members' commands are passed to it); loads the layers
//     the map assigns it, from its copy of the model or from tensors
//     fetched from peers (node/weights), and serves them on the stage
//     protocol to members only; serves the weights it holds; and answers
//     the API as a gateway over the map's current route (route.go), which
//     fails over to another route and replays the live sequences' tokens
//     when a hop dies. Its status, leave, join tokens and revocations
//     are under /cluster/ on the API (admin.go, access.go): a revoked node
//     is banned by every member's gater, and stops when it learns of it.
//     The status carries every member's load, asked over the status
//     protocol (load.go).
//
// It sits above cluster, pipeline and kernels and may import all of them;
// only cmd imports node. The network, Raft and NVML meet here and nowhere
// lower.
package node
