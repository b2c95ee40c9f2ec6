// Package weights moves a model's weights between the nodes of a cluster,
// so that a node without the model file loads its layers from peers.
//
// A node that holds the GGUF file makes a manifest of it (BuildManifest):
// the file's digest, and the sha256 of every chunk of its header (metadata
// and tensor table) and of each tensor's bytes; the manifest travels in the
// cluster map (cluster.Model.Manifest). Nodes serve what they hold under
// Protocol (Serve; a Source is a full file or a slice, see OpenSource). A
// node assigned some layers fetches the header and exactly the tensors of
// those layers (Fetch), chunk by chunk from the peers that hold them,
// verifies every chunk against the manifest, never asks again a peer that
// served a bad chunk, and writes a GGUF slice: a file with the original
// metadata and only those tensors, which the stage then maps like any GGUF
// file. A fetch that stops part way resumes where it stopped; a complete
// slice is recognised (SliceHas) and reused.
//
// A slice at PATH keeps the original file's header in PATH.header (the
// sidecar), so that a node holding only a slice still serves the header to
// the next joiner; the slice's metadata records the model's digest
// (KeySliceDigest) and the sidecar's sha256 (KeySliceHeader).
//
// It imports cluster (for the manifest), pipeline/gguf and go-libp2p.
package weights
