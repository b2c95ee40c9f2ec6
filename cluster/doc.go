// Package cluster holds the cluster map — which nodes serve which layer
// ranges of which model — as a Raft-replicated state machine (FSM), the
// typed, versioned commands that change it (Command), the pure placement
// planner (Plan), join tokens (SignToken, VerifyToken; the map records
// those issued and refuses the others, Map.CheckToken), revoked nodes
// (Map.Revoked), the Raft log and stable store on bbolt (BoltStore), and
// a member of the Raft group (Cluster) whose leader admits joiners, marks
// members dead when their heartbeats fail and keeps the senior live
// members voting.
//
// Every member re-plans inside FSM.Apply whenever nodes or the model
// change: the planner is deterministic, so the same log gives the same
// assignments everywhere, and no plan can race another.
//
// It may import pipeline and kernels, hashicorp/raft and bbolt. It takes a
// raft.Transport from its caller and never imports libp2p.
package cluster
