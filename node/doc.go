// Package node is one Strata process: it wires the libp2p host, Raft, the
// GPU inventory, the pipeline and the HTTP API together, and runs them until
// its context ends.
//
// It sits above cluster, pipeline and kernels and may import all of them;
// only cmd imports node. The network, Raft and NVML meet here and nowhere
// lower. (The libp2p, cluster and API issues fill it in.)
package node
