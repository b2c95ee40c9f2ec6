// Command demo is what `make demo` runs: a cluster of three members on
// 127.0.0.1 — `strata init` and two `strata join` processes, each offering
// a little over a third of the model's bytes, so that the Raft-replicated
// map splits the model into three stages over libp2p. It waits until every
// layer is served, prints `strata status`, asks the last member to join
// for a continuation through POST /v1/completions, prints it, and stops
// every process. -mode static runs three `strata node` processes and a
// `strata serve --route` gateway instead; -mode in-process one gateway
// that runs the stages itself.
package main
