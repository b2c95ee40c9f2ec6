package wire

import (
	"fmt"
	"strings"
)

// DType is the encoding of a frame's values in its (uncompressed) payload.
// The numbers are the frame's dtype byte.
type DType uint8

// The payload encodings.
const (
	// F32 is IEEE 754 binary32, 4 bytes a value: lossless, bit for bit
	// (-0 and subnormals included).
	F32 DType = 0
	// F16 is IEEE 754 binary16, 2 bytes a value, rounded to nearest even:
	// relative error at most 2^-11 for |x| in [2^-14, 65504], absolute error
	// at most 2^-25 below 2^-14. A finite value that rounds beyond ±65504
	// (|x| >= 65520) cannot be sent: AppendFrame refuses it with
	// ErrNonFinite.
	F16 DType = 1
	// BF16 is bfloat16 (the top half of a binary32), 2 bytes a value, rounded
	// to nearest even: relative error at most 2^-8 over the whole float32
	// range (subnormals excepted, where the error is at most 2^-134).
	BF16 DType = 2
	// Q8 is blockwise int8: each row is cut into blocks of Q8Block values
	// (the last block of a row may be shorter), each stored as one float32
	// scale d = amax/127, amax the block's largest magnitude, and one int8
	// q = round(x/d) per value; x is decoded as q·d. The error of a value is
	// at most amax/254 of its block (times 1+2^-15 for float32 rounding), so
	// a block that holds an outlier channel carries the outlier's error into
	// its other 31 values. 1 + 4/32 bytes a value.
	Q8 DType = 3
)

// Q8Block is the number of values that share one scale in a Q8 payload.
const Q8Block = 32

var dtypeNames = [...]string{F32: "f32", F16: "f16", BF16: "bf16", Q8: "q8"}

func (d DType) valid() bool { return int(d) < len(dtypeNames) }

// String returns the dtype's name in ParseCodec's syntax ("f16"), or
// "dtype(N)" for an unknown one.
func (d DType) String() string {
	if d.valid() {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Compression is the lossless compression of a frame's payload. The numbers
// are the frame's compression byte.
type Compression uint8

// The payload compressions.
const (
	// None sends the encoded payload as it is.
	None Compression = 0
	// Zstd compresses the payload with zstd (klauspost/compress, fastest
	// level, entropy coding of literals on), as one zstd frame, or one a
	// byte plane with Shuffle, without zstd's own checksum: the frame has
	// one.
	Zstd Compression = 1
	// S2 compresses the payload as one S2 block (klauspost/compress/s2).
	// It is fast, and finds repeats (zeros, padding), but activations have
	// none: it leaves them as they are.
	S2 Compression = 2
)

var compressionNames = [...]string{None: "none", Zstd: "zstd", S2: "s2"}

func (c Compression) valid() bool { return int(c) < len(compressionNames) }

// String returns the compression's name in ParseCodec's syntax ("zstd"),
// or "compression(N)" for an unknown one.
func (c Compression) String() string {
	if c.valid() {
		return compressionNames[c]
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// Codec is how a frame's values travel: a DType, then optionally a byte
// shuffle and a Compression over the encoded bytes.
//
// Shuffle transposes the payload's bytes so that byte k of every element
// sits together (all sign-and-exponent bytes in one plane, all low mantissa
// bytes in another), and has zstd compress each plane as a frame of its
// own, so that the entropy coder sees the exponents' skewed distribution
// apart from the mantissas' noise. It applies to the multi-byte elements of
// the payload: the values of F32, F16 and BF16, the scales of Q8 (whose
// int8 values are single bytes), the ids and values of a top-k frame. It
// takes 8-13% off zstd's output on activations and nothing off S2's (the
// figures are in bench_test.go), so Validate accepts it with Zstd only.
//
// The zero Codec is F32 uncompressed: Lossless.
type Codec struct {
	DType       DType
	Compression Compression
	Shuffle     bool
}

// Lossless sends float32 values bit for bit: a chain of stages with it gives
// exactly the logits of one stage over all layers.
var Lossless = Codec{DType: F32}

// Default is the codec stages use unless configured otherwise: Lossless.
// Strata's promise is never a wrong token, and a lossy codec can flip a
// greedy choice at a near-tie: with quantized weights the next stage rounds
// its input to 8-bit blocks, which amplifies an F16 rounding about 36-fold;
// over the reference prompts F16 changed 5 of 20 greedy continuations of the
// quantized models (top-2 gaps 0.04-0.18 at the changed step) and none of
// the float-weight ones. Compact halves the bytes for links where bandwidth
// matters more.
var Default = Lossless

// Compact is F16, uncompressed: the smallest error of the lossy codecs at
// half Lossless's bytes. Measured (bench_test.go, dim 4096, one token, residual-
// stream-like values) against the others:
//
//	codec              B/token  relative RMS error
//	f32 (Lossless)      16460   0
//	f16 (Compact)        8268   1.6e-4
//	f16+shuffle+zstd     7077   1.6e-4
//	bf16                 8268   2.0e-3
//	bf16+shuffle+zstd    5649   2.0e-3
//	q8                   4684   1.1e-2
//
// F16 halves Lossless's bytes for about 5 µs more conversion a token (dim
// 4096, encode and decode), with the smallest error of the lossy dtypes.
// Split at every layer boundary over 100 greedy steps, the F32-weight test
// models (stories260K, aidreams260K) moved no logit by more than 0.04 with
// it and changed a greedy token only at a near-tie (top-2 gap 0.005, 1
// prompt of 8); BF16 moved logits 2.4-5.7 times as far, Q8 9-17 times as
// far and changed 5 continuations of 8, its outlier channels costing their
// blocks' other values their precision. (With quantized weights the engine
// rounds activations to 8 bits itself, and every lossy codec moves logits
// about as much as that does.) Compression is left off: shuffled zstd takes 14% more off
// F16 (1191 of 8268 bytes a token at dim 4096) for 14 µs more encode and
// decode time a token (8 µs in micro-batches of 16; 13.5 µs for F16
// alone), which pays only on links slower than about 1 Gbit/s: a swarm on
// home connections, not a rack. Select "f16+shuffle+zstd" there (or
// "bf16+shuffle+zstd", 32% smaller than F16, for twelve times its error).
// A model whose activations exceed F16's range (±65504) makes AppendFrame
// fail with ErrNonFinite: use BF16 for it.
var Compact = Codec{DType: F16}

// Validate reports whether c is a codec this package can encode and decode.
func (c Codec) Validate() error {
	switch {
	case !c.DType.valid():
		return fmt.Errorf("unknown %v: %w", c.DType, ErrInvalid)
	case !c.Compression.valid():
		return fmt.Errorf("unknown %v: %w", c.Compression, ErrInvalid)
	case c.Shuffle && c.Compression != Zstd:
		return fmt.Errorf("codec %v: shuffle needs zstd: %w", c, ErrInvalid)
	}
	return nil
}

// String returns the codec in ParseCodec's syntax: the dtype, then
// "+shuffle" when set, then "+zstd" or "+s2" when compressed ("f16",
// "f16+shuffle+zstd").
func (c Codec) String() string {
	s := c.DType.String()
	if c.Shuffle {
		s += "+shuffle"
	}
	if c.Compression != None {
		s += "+" + c.Compression.String()
	}
	return s
}

// ParseCodec parses a codec written as a dtype (f32, f16, bf16, q8)
// followed by options joined with "+": a compression (zstd, s2, none) and
// "shuffle", in any order, each at most once; case does not matter. For
// example "f16", "bf16+zstd", "f32+shuffle+zstd". The codec must pass
// Validate (shuffle needs zstd).
func ParseCodec(s string) (Codec, error) {
	var c Codec
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "+")
	found := false
	for i, name := range dtypeNames {
		if parts[0] == name {
			c.DType, found = DType(i), true
		}
	}
	if !found {
		return Codec{}, fmt.Errorf("parse codec %q: unknown dtype %q (want f32, f16, bf16 or q8): %w", s, parts[0], ErrInvalid)
	}
	compressed := false
	for _, p := range parts[1:] {
		switch p {
		case "shuffle":
			if c.Shuffle {
				return Codec{}, fmt.Errorf("parse codec %q: shuffle given twice: %w", s, ErrInvalid)
			}
			c.Shuffle = true
			continue
		}
		found = false
		for i, name := range compressionNames {
			if p == name {
				if compressed {
					return Codec{}, fmt.Errorf("parse codec %q: more than one compression: %w", s, ErrInvalid)
				}
				c.Compression, found, compressed = Compression(i), true, true
			}
		}
		if !found {
			return Codec{}, fmt.Errorf("parse codec %q: unknown option %q (want zstd, s2, none or shuffle): %w", s, p, ErrInvalid)
		}
	}
	if err := c.Validate(); err != nil {
		return Codec{}, fmt.Errorf("parse codec %q: %w", s, err)
	}
	return c, nil
}

// MarshalText returns c.String(), so that a Codec works with flag.TextVar
// and in JSON or YAML configuration.
func (c Codec) MarshalText() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return []byte(c.String()), nil
}

// UnmarshalText sets c from ParseCodec's syntax.
func (c *Codec) UnmarshalText(text []byte) error {
	v, err := ParseCodec(string(text))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
