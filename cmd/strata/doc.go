// Command strata is the one Strata binary: it runs a model on one host,
// serves it (in-process stages, a static pipeline of stage nodes, or a
// Raft-coordinated cluster: init, join, leave, status), inspects and
// synthesizes GGUF models, and measures throughput.
//
// It only parses flags and calls the packages below it.
package main
