// Package wire encodes the frames that cross the network between pipeline
// stages: a stage's output activations (rows × dim float32, one row per
// token of a micro-batch) on their way to the next stage, and the last
// stage's logits or top-k candidates on their way back to the gateway.
//
// A frame is self-describing and versioned: a fixed little-endian header
// (magic, version, kind, codec, session, step, shape), a table of the
// sequences whose rows it holds, the payload, and a CRC32C over all of it;
// frame.go has the byte layout. The payload is the values in a Codec: a
// DType (F32 lossless, F16, BF16 or Q8 blockwise int8), then optionally a
// byte shuffle and zstd or S2 compression (klauspost/compress). Lossless
// reproduces single-host logits bit for bit; Default is the measured best
// trade-off of bytes, time and accuracy.
//
// Encoding appends to a caller's buffer (AppendFrame, AppendTopK) and
// decoding fills a caller's slice (DecodeFrame, DecodeTopK), so that a
// stage that reuses its buffers allocates nothing per frame. ReadFrame
// reads one frame off a stream.
//
// Frames come from peers, which may be broken or hostile: the decoders
// check the checksum, every length and shape, and every value, refuse NaN
// and ±Inf, bound what they allocate by Limits before allocating it, never
// panic, and wrap one of ErrCorrupt, ErrNonFinite, ErrTooLarge and
// ErrVersion in every refusal so that the caller can report the peer.
//
// Every function is safe for concurrent use; the compressors are shared by
// the whole process.
//
// The package may import the standard library, kernels (for the half
// precision conversions) and github.com/klauspost/compress; it never
// touches the network itself: a caller hands it bytes and streams.
package wire
