// Package hub pulls GGUF models from the Hugging Face Hub into a local cache,
// so that `strata pull hf://OWNER/REPO/FILE.gguf` and `--model hf://...` work
// wherever a model path is taken.
//
// Pull downloads a file through the hub's resolve URL (following its
// redirect to the CDN), resumes an interrupted download with an HTTP Range
// request, checks the sha256 the hub publishes for LFS files, and keeps the
// result under Options.CacheDir with a sidecar recording its sha256, so a
// node that restarts serves from its cache without touching the network. A
// model split by llama.cpp's gguf-split (NAME-00001-of-0000N.gguf) is pulled
// part by part and merged into one GGUF.
//
// Pull reads no environment variables and no flags: cmd passes the endpoint,
// token and cache folder in Options.
//
// It imports the standard library, golang.org/x/term and golang.org/x/sys
// (terminal detection), and pipeline/gguf (to merge split models); nothing
// else from Strata.
package hub
