package kernels

// attnTask is one attention call, parallel over query heads (or, for nq
// causal queries, over query and head pairs). It is recycled so that the
// attention kernels allocate nothing.
type attnTask struct {
	out, q, att          []float32
	keys16, values16     []uint16
	keys32, values32     []float32
	n, nHeads, group, hd int
	kv                   KVLayout
	scale                float32
	f16                  bool
	batch                bool // llama.cpp's batched (sgemm) products
	// nq > 0: nq queries of one sequence, query i at position pos0+i
	// attending to positions [0, pos0+i] (AttentionF16Causal); their
	// scores go to each chunk's scratch instead of att.
	nq, pos0 int
	gqa4     bool // units of four query heads sharing a KV head (attnGQA4)
}

var attnTasks freeList[attnTask]

// laneBuf is per-chunk scratch for the 32 lanes of the weighted sum, for
// a causal batch's scores, and for attnGQA4's rounded queries and
// probabilities.
type laneBuf struct{ acc, att, q, p, qi []float32 }

var laneBufs freeList[laneBuf]

// attnStack is the largest head dimension whose rounded query lives on the
// stack.
const attnStack = 512

// KVLayout says where a KV cache keeps its entries: element d of KV head h
// at position p is at index h*Head + p*Pos + d of the keys, and of the
// values.
type KVLayout struct {
	Pos  int // elements from a position to the next
	Head int // elements from a KV head to the next
}

// PosMajor is the layout of a (positions, nKVHeads, headDim) cache: each
// position's heads side by side.
func PosMajor(nKVHeads, headDim int) KVLayout {
	return KVLayout{Pos: nKVHeads * headDim, Head: headDim}
}

// HeadMajor is the layout of a (nKVHeads, room, headDim) cache: each KV
// head's positions in one run of room positions, so that attention over a
// head streams one stretch of memory, where a position-major cache has
// the hardware prefetchers follow a stride of every head's width.
func HeadMajor(room, headDim int) KVLayout {
	return KVLayout{Pos: headDim, Head: room * headDim}
}

// span is how many elements of keys (or values) the first n positions of
// nKVHeads heads of headDim reach in layout l: the least length they have.
func (l KVLayout) span(n, nKVHeads, headDim int) int {
	if n <= 0 || nKVHeads <= 0 {
		return 0
	}
	return (nKVHeads-1)*l.Head + (n-1)*l.Pos + headDim
}

// AttentionF16 computes attention for one query position over n cached
// positions, all heads, with grouped-query sharing: query head h uses KV
// head h/(nHeads/nKVHeads). It reproduces llama.cpp without flash attention
// and with an F16 KV cache (whose view is padded to a multiple of 32
// positions with masked entries): q is rounded to F16; each score is
// ggml_vec_dot_f16 of the key and q, times scale; a head's scores go
// through ggml's softmax (vectorized exp in chunks of 8, float64 sum); the
// probabilities are rounded to F16; out is ggml_vec_dot_f16 of them with
// each value dimension over the positions (32 lanes in position order,
// reduced as ggml does).
//
// Shapes: q and out are (nHeads, headDim); keys and values are F16 bits
// of n positions of nKVHeads heads of headDim, laid out as kv says; att is
// scratch of at least nHeads*n floats, left holding each head's
// probabilities (before F16 rounding) at att[h*n:(h+1)*n]. out must not
// overlap q. Parallel over heads on p.
func AttentionF16(p *Pool, out, q []float32, keys, values []uint16, kv KVLayout, n, nHeads, nKVHeads, headDim int, scale float32, att []float32) {
	t := attnTasks.get()
	m := kv.span(n, nKVHeads, headDim)
	t.keys16, t.values16, t.f16 = keys[:m], values[:m], true
	t.attention(p, out, q, kv, n, nHeads, nKVHeads, headDim, scale, att)
}

// AttentionF16Batch is AttentionF16 for a query that llama.cpp computes as
// part of a batch of two or more tokens (prompt processing), where its AVX2
// build multiplies with llamafile's sgemm: a score is summed in 8 lanes over
// the head dimension (when headDim is a multiple of 8) and the weighted sum
// in 8 lanes over positions (when headDim is a multiple of 4), each reduced
// by hsum8. Use it for every query of such a batch to reproduce llama.cpp's
// prompt logits bit for bit.
func AttentionF16Batch(p *Pool, out, q []float32, keys, values []uint16, kv KVLayout, n, nHeads, nKVHeads, headDim int, scale float32, att []float32) {
	t := attnTasks.get()
	m := kv.span(n, nKVHeads, headDim)
	t.keys16, t.values16, t.f16, t.batch = keys[:m], values[:m], true, true
	t.attention(p, out, q, kv, n, nHeads, nKVHeads, headDim, scale, att)
}

// AttentionF32 is AttentionF16 over a float32 KV cache, with no rounding to
// F16: scores and the weighted sum are ggml_vec_dot_f32 (fused multiply-adds
// in 32 lanes), the softmax as in AttentionF16.
func AttentionF32(p *Pool, out, q []float32, keys, values []float32, kv KVLayout, n, nHeads, nKVHeads, headDim int, scale float32, att []float32) {
	t := attnTasks.get()
	m := kv.span(n, nKVHeads, headDim)
	t.keys32, t.values32, t.f16 = keys[:m], values[:m], false
	t.attention(p, out, q, kv, n, nHeads, nKVHeads, headDim, scale, att)
}

// AttentionF16Causal is AttentionF16Batch for nq consecutive queries of one
// sequence at once, query i at position pos0+i attending to positions [0,
// pos0+i]: out[i*nHeads*headDim:] is bitwise what AttentionF16Batch gives
// for q[i*nHeads*headDim:] over the first pos0+i+1 positions. It is one
// dispatch on p over all the queries' heads, where a query at a time would
// make one per query (and leave the pool idle in each one's last chunks) —
// the bulk of a prompt's attention time. q and out are (nq, nHeads,
// headDim); keys and values hold at least pos0+nq positions, laid out as
// kv says.
func AttentionF16Causal(p *Pool, out, q []float32, keys, values []uint16, kv KVLayout, nq, pos0, nHeads, nKVHeads, headDim int, scale float32) {
	if nq <= 0 {
		return
	}
	n := pos0 + nq
	t := attnTasks.get()
	m := kv.span(n, nKVHeads, headDim)
	t.keys16, t.values16, t.f16, t.batch = keys[:m], values[:m], true, true
	t.nq, t.pos0 = nq, pos0
	qd := nHeads * headDim
	t.out, t.q = out[:nq*qd], q[:nq*qd]
	t.n, t.nHeads, t.group, t.hd = n, nHeads, nHeads/nKVHeads, headDim
	t.kv = kv
	t.scale = scale
	// A query's head costs about 4*positions*headDim flops; give a chunk
	// at least ~64K on average.
	units, per := nq*nHeads, 1
	if t.gqa4 = gqa4Applies(t, true); t.gqa4 {
		units, per = nq*nHeads/4, 4 // a query's four heads sharing a KV head at once
	}
	p.run(units, max(1, (16<<10)/max(1, (pos0+nq/2+1)*headDim*per)), t)
	*t = attnTask{}
	attnTasks.put(t)
}

func (t *attnTask) attention(p *Pool, out, q []float32, kv KVLayout, n, nHeads, nKVHeads, headDim int, scale float32, att []float32) {
	t.out, t.q, t.att = out[:nHeads*headDim], q[:nHeads*headDim], att[:nHeads*n]
	t.n, t.nHeads, t.group, t.hd = n, nHeads, nHeads/nKVHeads, headDim
	t.kv = kv
	t.scale = scale
	// A head costs about 4*n*headDim flops; give a chunk at least ~64K.
	units := nHeads
	if t.gqa4 = gqa4Applies(t, t.batch); t.gqa4 {
		units = nHeads / 4 // four heads sharing a KV head at once
	}
	p.run(units, max(1, (16<<10)/max(1, n*headDim*(nHeads/units))), t)
	*t = attnTask{}
	attnTasks.put(t)
}

// gqa4Applies reports whether t's units can be four query heads that
// share a KV head (attnGQA4): F16 cache, groups of a multiple of 4, head
// size a multiple of 32.
func gqa4Applies(t *attnTask, batch bool) bool {
	fast := fastAttnGQA4
	if batch {
		fast = fastAttnGQA4Batch
	}
	return fast && t.f16 && t.hd%32 == 0 && t.group%4 == 0 && t.n > 0
}

// attnPrefetchBytes bounds the values of one KV head that attnGQA4
// prefetches into L2 while it computes a query's scores, and the next
// head's keys it prefetches while it weighs the values: half the L2 of the
// CPUs this was measured on (1 MB a core), so that the prefetched lines
// are still there when they are read.
const attnPrefetchBytes = 512 << 10

// nextKeys returns the keys of the KV head of decode unit u+1 when this
// chunk runs it next, for attnGQA4 to prefetch while it weighs unit u's
// values: where they lie in one run (head-major), belong to another KV
// head and fit beside the values in L2 (attnPrefetchBytes); else nil.
func (t *attnTask) nextKeys(u, hi int) []uint16 {
	if t.nq > 0 || u+1 >= hi || t.kv.Pos != t.hd || t.n*t.hd*2 > attnPrefetchBytes {
		return nil
	}
	kh := 4 * (u + 1) / t.group
	if kh == 4*u/t.group {
		return nil
	}
	off := kh * t.kv.Head
	return t.keys16[off : off+t.n*t.hd]
}

func (t *attnTask) run(lo, hi int) {
	hd, n := t.hd, t.n
	if t.gqa4 {
		lb := laneBufs.get()
		for u := lo; u < hi; u++ {
			h, qo, att, nu := 4*u, 0, []float32(nil), n
			if t.nq > 0 { // unit u is heads h..h+3 of query i, over its prefix
				per := t.nHeads / 4
				i := u / per
				h, qo, nu = 4*(u%per), i*t.nHeads*hd, t.pos0+i+1
				lb.att = grow(lb.att, 4*nu)
				att = lb.att[:4*nu]
			} else {
				att = t.att[h*n : (h+4)*n]
			}
			attnGQA4(t.out[qo+h*hd:qo+(h+4)*hd], t.q[qo+h*hd:qo+(h+4)*hd], t.keys16, t.values16, (h/t.group)*t.kv.Head, t.kv.Pos,
				nu, hd, t.scale, att, lb, t.batch, t.nextKeys(u, hi))
		}
		laneBufs.put(lb)
		return
	}
	var qbuf [attnStack]uint16
	var qfbuf [attnStack]float32
	var q16 []uint16
	var qf []float32 // q rounded to halves, as float32 (fastAttnF16)
	if t.f16 {
		if hd <= attnStack {
			q16, qf = qbuf[:hd], qfbuf[:hd]
		} else {
			q16, qf = make([]uint16, hd), make([]float32, hd)
		}
	}
	lb := laneBufs.get()
	if cap(lb.acc) < 32*hd {
		lb.acc = make([]float32, 32*hd)
	}
	acc := lb.acc[:32*hd] // acc[l*hd+d]: lane l of output dimension d
	if t.nq > 0 && cap(lb.att) < n {
		lb.att = make([]float32, n)
	}
	for u := lo; u < hi; u++ {
		h := u
		var qh, att, out []float32
		if t.nq > 0 { // unit u is head u%nHeads of query u/nHeads
			i, qd := u/t.nHeads, t.nHeads*hd
			h = u % t.nHeads
			qh, att, out = t.q[i*qd+h*hd:][:hd], lb.att[:t.pos0+i+1], t.out[i*qd+h*hd:][:hd]
		} else {
			qh, att, out = t.q[h*hd:(h+1)*hd], t.att[h*n:(h+1)*n], t.out[h*hd:(h+1)*hd]
		}
		kv, stride := (h/t.group)*t.kv.Head, t.kv.Pos
		clear(acc)
		lanes := 32
		if t.f16 {
			if !fastAttnF16 {
				for i, v := range qh {
					q16[i] = F32ToF16(v)
				}
			}
			sgemmScores := t.batch && hd%8 == 0
			if t.batch && hd%4 == 0 {
				lanes = 8
			}
			if fastAttnF16 { // SIMD, bitwise equal (dot_amd64.go)
				q32 := qf[:hd]
				attnRoundQ(q32, qh) // the values of the halves of q
				if !attnScoresF16(att, t.keys16, kv, stride, q32, t.scale, sgemmScores) {
					for pos := range att {
						k := t.keys16[pos*stride+kv : pos*stride+kv+hd]
						att[pos] = attnScoreF16(k, q32, sgemmScores) * t.scale
					}
				}
				softmaxGGML(att)
				if !attnValuesF16(acc, t.values16, kv, stride, att, hd, lanes) {
					for pos, a := range att {
						v := t.values16[pos*stride+kv : pos*stride+kv+hd]
						attnAxpyF16(acc[(pos%lanes)*hd:(pos%lanes+1)*hd], v, F16ToF32(F32ToF16(a)))
					}
				}
			} else {
				for pos := range att {
					k := t.keys16[pos*stride+kv : pos*stride+kv+hd]
					if sgemmScores {
						att[pos] = sgemmHalves(k, q16) * t.scale
					} else {
						att[pos] = dotHalves(k, q16) * t.scale
					}
				}
				softmaxGGML(att)
				for pos, a := range att {
					p := F16ToF32(F32ToF16(a))
					v := t.values16[pos*stride+kv : pos*stride+kv+hd]
					lane := acc[(pos%lanes)*hd : (pos%lanes+1)*hd]
					lane = lane[:len(v)]
					for d, vv := range v {
						lane[d] += p * F16ToF32(vv) // exact product
					}
				}
			}
		} else {
			for pos := range att {
				k := t.keys32[pos*stride+kv : pos*stride+kv+hd]
				att[pos] = dotF32F32(k, qh) * t.scale
			}
			softmaxGGML(att)
			for pos, p := range att {
				v := t.values32[pos*stride+kv : pos*stride+kv+hd]
				lane := acc[(pos%32)*hd : (pos%32+1)*hd]
				lane = lane[:len(v)]
				for d, vv := range v {
					lane[d] = fma32(p, vv, lane[d])
				}
			}
		}
		if lanes == 8 && fastAttnF16 && t.f16 { // SIMD, bitwise equal (dot_amd64.go)
			attnReduce8(out, acc)
			continue
		}
		if lanes == 8 {
			var a [8]float32
			for d := range out {
				for l := range a {
					a[l] = acc[l*hd+d]
				}
				out[d] = hsum8(&a)
			}
			continue
		}
		if fastAttnF16 && t.f16 { // SIMD, bitwise equal (dot_amd64.go)
			attnReduce32(out, acc)
			continue
		}
		var a [32]float32
		for d := range out {
			for l := range a {
				a[l] = acc[l*hd+d]
			}
			out[d] = reduce32(&a)
		}
	}
	laneBufs.put(lb)
}

// dotHalves is ggml_vec_dot_f16 of two F16 vectors (see dotF16).
func dotHalves(a, b []uint16) float32 {
	var acc [32]float32
	t := f16Table
	n := len(b)
	np := n &^ 31
	a = a[:n]
	for i := 0; i < np; i += 32 {
		ab := (*[32]uint16)(a[i:])
		bb := (*[32]uint16)(b[i:])
		for l := range acc {
			acc[l] += t[ab[l]] * t[bb[l]]
		}
	}
	sum := float64(reduce32(&acc))
	for i := np; i < n; i++ {
		sum += float64(t[a[i]] * t[b[i]])
	}
	return float32(sum)
}

// sgemmHalves is one element of llamafile's sgemm over two F16 vectors
// whose length is a multiple of 8: 8 lanes (products exact), hsum8.
func sgemmHalves(a, b []uint16) float32 {
	var acc [8]float32
	t := f16Table
	a = a[:len(b)]
	for i := 0; i+8 <= len(b); i += 8 {
		ab := (*[8]uint16)(a[i:])
		bb := (*[8]uint16)(b[i:])
		for l := range acc {
			acc[l] += t[ab[l]] * t[bb[l]]
		}
	}
	return hsum8(&acc)
}

// dotF32F32 is ggml_vec_dot_f32 of two float32 vectors (see dotF32).
func dotF32F32(a, b []float32) float32 {
	var acc [32]float32
	n := len(b)
	np := n &^ 31
	a = a[:n]
	for i := 0; i < np; i += 32 {
		ab := (*[32]float32)(a[i:])
		bb := (*[32]float32)(b[i:])
		for l := range acc {
			acc[l] = fma32(ab[l], bb[l], acc[l])
		}
	}
	sum := reduce32(&acc)
	for i := np; i < n; i++ {
		sum += float32(a[i] * b[i])
	}
	return sum
}

// grow returns s with at least n elements of capacity, reallocated (its
// contents dropped) when it has fewer.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s
}
