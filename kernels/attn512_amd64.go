//go:build amd64 && !purego

package kernels

import "unsafe"

//go:noescape
func attnScoresGQA4F16AVX512(att *float32, n int, k *byte, stride int, q *float32, hd int, scale float32, tmp *float32, pf *byte)

//go:noescape
func attnScoresGQA4SgemmF16AVX512(att *float32, n int, k *byte, stride int, qi *float32, steps int, scale float32)

//go:noescape
func attnValuesGQA4F16AVX512(acc *float32, v *byte, stride int, p *float32, n int, hd int)

//go:noescape
func attnValuesGQA4x64F16AVX512(acc *float32, v *byte, stride int, p *float32, n int, hd int, lanes int, pf *byte)

// fastAttnGQA4 reports whether decode attention runs the four query heads
// that share a KV head at once (attnGQA4): in AVX-512, or in AVX2
// (attn2_amd64.s) on CPUs without it.
var fastAttnGQA4 = useAVX2

// attnGQA4 is AttentionF16's work for four query heads that share one KV
// head, whose elements start at off in each cached row of keys and values
// (rows stride elements apart): q and out hold the four heads' queries and
// outputs (4*hd each), att their scores (n each, left holding the
// probabilities, before rounding, as the per-head path leaves them). lb's
// buffers are grown as needed. Each value row is widened once for the
// four heads and each lane's weighted sum stays in registers over its
// positions; for a single query (batch false) each key row is widened
// once for the four heads too. With batch, the query is one of a prompt's,
// as AttentionF16Batch computes it: scores in llamafile's sgemm order and
// weighted sums in 8 lanes, each key and value row widened once for the
// four heads too (fastAttnGQA4Batch). Every
// result is bitwise the per-head SIMD path's. hd is a multiple of 32 and
// n > 0. next, when not nil, is the next call's keys (n*hd of them, in
// one run), prefetched while the values are weighed.
func attnGQA4(out, q []float32, keys, values []uint16, off, stride, n, hd int, scale float32, att []float32, lb *laneBuf, batch bool, next []uint16) {
	lanes := 32
	if batch {
		lanes = 8
	}
	lb.q = grow(lb.q, 4*hd)
	lb.p = grow(lb.p, 4*n)
	lb.acc = grow(lb.acc, 4*lanes*hd)
	q32, p, acc := lb.q[:4*hd], lb.p[:4*n], lb.acc[:4*lanes*hd]
	att, out = att[:4*n], out[:4*hd]
	attnRoundQ(q32, q[:4*hd]) // the values of the queries' halves
	keys, values = keys[off:off+(n-1)*stride+hd], values[off:off+(n-1)*stride+hd]
	var tmp [4 * 8 * 8]float32 // 8 positions' partial sums, per head
	kp, qp, ap := (*byte)(unsafe.Pointer(unsafe.SliceData(keys))), unsafe.SliceData(q32), unsafe.SliceData(att)
	// Direct calls only: through a func value, //go:noescape would not
	// apply and tmp would go to the heap on every call.
	switch {
	case batch:
		lb.qi = grow(lb.qi, 4*hd)
		qi := lb.qi[:4*hd]
		interleaveQ4(qi, q32, hd)
		if useAVX512 {
			attnScoresGQA4SgemmF16AVX512(ap, n, kp, 2*stride, unsafe.SliceData(qi), hd/8, scale)
		} else {
			attnScoresGQA4SgemmF16AVX2(ap, n, kp, 2*stride, unsafe.SliceData(qi), hd/8, scale)
		}
	case useAVX512:
		var pf *byte // the values, prefetched while the scores are computed, where they fit in L2 with room to spare
		if n*hd*2 <= attnPrefetchBytes {
			pf = (*byte)(unsafe.Pointer(unsafe.SliceData(values)))
		}
		attnScoresGQA4F16AVX512(ap, n, kp, 2*stride, qp, hd, scale, &tmp[0], pf)
	default:
		attnScoresGQA4F16AVX2(ap, n, kp, 2*stride, qp, hd, scale, &tmp[0])
	}
	for g := range 4 {
		softmaxGGML(att[g*n : (g+1)*n])
	}
	attnRoundQ(p, att) // the probabilities rounded to halves, as the values are weighted
	vp, pp, accp := (*byte)(unsafe.Pointer(unsafe.SliceData(values))), unsafe.SliceData(p), unsafe.SliceData(acc)
	switch {
	case useAVX512 && hd%64 == 0:
		var pf *byte
		if len(next) >= n*hd {
			pf = (*byte)(unsafe.Pointer(unsafe.SliceData(next)))
		}
		attnValuesGQA4x64F16AVX512(accp, vp, 2*stride, pp, n, hd, lanes, pf)
	case useAVX512 && !batch:
		attnValuesGQA4F16AVX512(accp, vp, 2*stride, pp, n, hd)
	default:
		attnValuesLanesGQA4F16AVX2(accp, vp, 2*stride, pp, n, hd, lanes, 4*lanes, 32*lanes)
	}
	for g := range 4 {
		if batch {
			attnReduce8(out[g*hd:(g+1)*hd], acc[g*8*hd:(g+1)*8*hd])
		} else {
			attnReduce32(out[g*hd:(g+1)*hd], acc[g*32*hd:(g+1)*32*hd])
		}
	}
}

// fastAttnGQA4Batch reports whether a prompt's queries take attnGQA4 (with
// batch): in AVX-512, or in AVX2 on CPUs without it.
var fastAttnGQA4Batch = useAVX2

// interleaveQ4 lays out four heads' queries (hd each, hd a multiple of 8)
// for attnScoresGQA4SgemmF16AVX512 and AVX2: for each step s of 8 elements, heads 0
// and 1's elements 8s..8s+7 side by side, then heads 2 and 3's.
func interleaveQ4(qi, q []float32, hd int) {
	qi, q = qi[:4*hd], q[:4*hd]
	for s := 0; s < hd/8; s++ {
		for g := range 4 {
			copy(qi[32*s+8*g:32*s+8*g+8], q[g*hd+8*s:g*hd+8*s+8])
		}
	}
}
