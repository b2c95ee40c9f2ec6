// Package cluster holds the cluster map — which nodes serve which layer
// ranges of which models — as a Raft-replicated state machine, the typed
// commands that change it, and the pure placement planner.
//
// It may import pipeline and kernels. It takes a raft.Transport from its
// caller and never imports libp2p. (The cluster issue fills it in.)
package cluster
