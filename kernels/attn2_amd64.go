//go:build amd64 && !purego

package kernels

// The AVX2 versions of attnGQA4's kernels (attn2_amd64.s), for CPUs
// without AVX-512: the same contracts, arguments and results, bit for bit,
// as attnScoresGQA4F16AVX512 and attnValuesGQA4F16AVX512.

// attnScoresGQA4F16AVX2 sets att[g*n+pos] to head g's score of position pos
// for the four heads g < 4 whose queries (rounded to halves, as float32)
// are q + g*hd floats and the n key rows k + pos*stride bytes: each bitwise
// what attnScoresF16AVX2 gives that head, since every 8-lane accumulator
// gets the same fused multiply-adds in the same order and the four heads'
// reductions add the same pairs as REDUCE32. Each key row is widened once
// for the four heads. tmp is unused (attnScoresGQA4F16AVX512's scratch);
// hd is a multiple of 32.
//
//go:noescape
func attnScoresGQA4F16AVX2(att *float32, n int, k *byte, stride int, q *float32, hd int, scale float32, tmp *float32)

// attnScoresGQA4SgemmF16AVX2 is attnScoresGQA4SgemmF16AVX512 in AVX2, two
// positions at a time: the scores of four query heads that share a KV
// head for a query of a prompt, in llamafile's sgemm order, bitwise
// attnScoresSgemmF16AVX2's one head at a time. qi is interleaveQ4's.
//
//go:noescape
func attnScoresGQA4SgemmF16AVX2(att *float32, n int, k *byte, stride int, qi *float32, steps int, scale float32)

// attnValuesLanesGQA4F16AVX2 sets acc[(g*lanes+l)*hd+d], for the four
// heads g < 4, the lanes l and d < hd, to the sum in position order over
// pos < n, pos%lanes == l, of p[g*n+pos] (already rounded to half
// precision) times the half v[pos*stride/2+d], each a fused multiply-add
// from zero (zeros for a lane without positions): bitwise the lanes
// attnValuesF16AVX2 leaves in a cleared buffer, since the products are the
// same exact ones added in the same order, but each value row widened once
// for the four heads and each lane's sums kept in registers over 8 of its
// positions at a time (stored and reloaded exactly between them). lanes is
// 32 or 8, step 4*lanes and blk 32*lanes; hd is a multiple of 16.
//
//go:noescape
func attnValuesLanesGQA4F16AVX2(acc *float32, v *byte, stride int, p *float32, n int, hd int, lanes int, step int, blk int)

// attnValuesGQA4F16AVX2 is attnValuesLanesGQA4F16AVX2 over 32 lanes, a
// single query's.
func attnValuesGQA4F16AVX2(acc *float32, v *byte, stride int, p *float32, n int, hd int) {
	attnValuesLanesGQA4F16AVX2(acc, v, stride, p, n, hd, 32, 4*32, 32*32)
}
