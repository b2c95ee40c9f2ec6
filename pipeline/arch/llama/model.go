package llama

import (
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"unsafe"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/arch"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// Layer holds one transformer block's weights. Matrices are zero-copy views
// into the model file; norm vectors and biases are float32 copies.
type Layer struct {
	AttnNorm            []float32      // (dim)
	Q, K, V             kernels.Matrix // (heads*head_dim, dim), (kv_dim, dim), (kv_dim, dim)
	QBias, KBias, VBias []float32      // qwen2 only: (heads*head_dim), (kv_dim), (kv_dim)
	O                   kernels.Matrix // (dim, heads*head_dim)
	FFNNorm             []float32      // (dim)
	Gate, Up            kernels.Matrix // (ffn, dim)
	Down                kernels.Matrix // (dim, ffn)
}

// Model is layers [Lo, Hi) of a llama-family model. It implements
// arch.Model.
type Model struct {
	cfg    arch.Config
	lo, hi int
	pool   *kernels.Pool
	log    *slog.Logger

	Embedding  kernels.Matrix // (vocab, dim); only when Lo == 0
	Layers     []Layer        // Hi-Lo blocks
	OutputNorm []float32      // (dim); only when Hi == Layers
	Output     kernels.Matrix // (vocab, dim); token_embd when the head is tied

	// ahead holds each layer's products (q,k,v; o; gate,up; down) for
	// the pool to read ahead of them (kernels.Pool.Expect).
	ahead [][4]*kernels.Lookahead
	s     scratch
}

// scratch holds the buffers of one Forward call, grown to the largest batch
// seen so far and reused: no allocation per token in steady state.
type scratch struct {
	rows int
	xb   []float32 // (rows, dim) normed input
	q    []float32 // (rows, heads*head_dim)
	k, v []float32 // (rows, kv_dim)
	att  []float32 // (rows, heads*head_dim) attention output
	hb   []float32 // (rows, ffn) gate, then SwiGLU
	hb2  []float32 // (rows, ffn) up
	out  []float32 // (rows, dim) projection output
	sc   []float32 // (heads, positions) attention scores
	rope []float32 // (rows, RoPE.TableLen()) each row's rotation table
}

// Load builds layers [lo, hi) of the llama-family model in f. Weights stay
// in the file (zero copy), which must stay open while the Model is used.
func Load(f *gguf.File, lo, hi int, opts arch.Options) (*Model, error) {
	cfg, err := ReadConfig(f)
	if err != nil {
		return nil, err
	}
	if lo < 0 || hi > cfg.Layers || lo >= hi {
		return nil, fmt.Errorf("llama: layer range [%d, %d) is not inside [0, %d)", lo, hi, cfg.Layers)
	}
	m := &Model{cfg: cfg, lo: lo, hi: hi, pool: opts.Pool, log: opts.Logger}
	if m.log == nil {
		m.log = slog.Default()
	}
	ld := loader{f: f, cfg: cfg, dequantize: opts.DequantizeWeights}
	qDim := cfg.Heads * cfg.HeadDim
	kvDim := cfg.KVDim()
	if factors, ok := f.Tensor("rope_freqs.weight"); ok {
		v := ld.vector(factors.Name, cfg.RoPE.Dims/2)
		m.cfg.RoPE.Factors = v
	}
	if lo == 0 {
		// A token's row is read once in a while: its page faults
		// (25-300 µs a token here, the first time each row is read) are
		// taken at load too.
		m.Embedding = ld.matrix("token_embd.weight", cfg.Vocab, cfg.Dim)
		prefault(m.Embedding.Data)
	}
	for l := lo; l < hi; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		L := Layer{
			AttnNorm: ld.vector(p+"attn_norm.weight", cfg.Dim),
			Q:        ld.weight(p+"attn_q.weight", qDim, cfg.Dim),
			K:        ld.weight(p+"attn_k.weight", kvDim, cfg.Dim),
			V:        ld.weight(p+"attn_v.weight", kvDim, cfg.Dim),
			O:        ld.weight(p+"attn_output.weight", cfg.Dim, qDim),
			FFNNorm:  ld.vector(p+"ffn_norm.weight", cfg.Dim),
			Gate:     ld.weight(p+"ffn_gate.weight", cfg.FFN, cfg.Dim),
			Up:       ld.weight(p+"ffn_up.weight", cfg.FFN, cfg.Dim),
			Down:     ld.weight(p+"ffn_down.weight", cfg.Dim, cfg.FFN),
		}
		if _, ok := f.Tensor(p + "attn_q.bias"); ok || cfg.Arch == "qwen2" {
			L.QBias = ld.vector(p+"attn_q.bias", qDim)
			L.KBias = ld.vector(p+"attn_k.bias", kvDim)
			L.VBias = ld.vector(p+"attn_v.bias", kvDim)
		}
		m.Layers = append(m.Layers, L)
		m.ahead = append(m.ahead, [4]*kernels.Lookahead{
			kernels.NewLookahead(L.Q, L.K, L.V), kernels.NewLookahead(L.O),
			kernels.NewLookahead(L.Gate, L.Up), kernels.NewLookahead(L.Down),
		})
	}
	if hi == cfg.Layers {
		m.OutputNorm = ld.vector("output_norm.weight", cfg.Dim)
		if _, ok := f.Tensor("output.weight"); ok {
			m.Output = ld.weight("output.weight", cfg.Vocab, cfg.Dim)
		} else {
			m.Output = ld.matrix("token_embd.weight", cfg.Vocab, cfg.Dim)
		}
	}
	if ld.err != nil {
		return nil, ld.err
	}
	return m, nil
}

// loader reads tensors and remembers the first error, so Load reads as a
// list of tensors.
type loader struct {
	f          *gguf.File
	cfg        arch.Config
	dequantize bool
	err        error
}

func (ld *loader) matrix(name string, rows, cols int) kernels.Matrix {
	if ld.err != nil {
		return kernels.Matrix{}
	}
	t, ok := ld.f.Tensor(name)
	if !ok {
		ld.err = fmt.Errorf("llama: tensor %q missing", name)
		return kernels.Matrix{}
	}
	if len(t.Dims) != 2 || t.Dims[0] != uint64(cols) || t.Dims[1] != uint64(rows) {
		ld.err = fmt.Errorf("llama: tensor %q has dims %v, want [%d %d]", name, t.Dims, cols, rows)
		return kernels.Matrix{}
	}
	m, err := kernels.NewMatrix(t.Type, rows, cols, ld.f.TensorData(t))
	if err != nil {
		ld.err = fmt.Errorf("llama: tensor %q: %w", name, err)
		return m
	}
	if ld.dequantize && m.Type != kernels.F32 {
		w := make([]float32, rows*cols)
		for r := 0; r < rows; r++ {
			m.DequantizeRow(w[r*cols:(r+1)*cols], r)
		}
		m, _ = kernels.NewMatrix(kernels.F32, rows, cols, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), len(w)*4))
	}
	return m
}

// weight is matrix for a weight only ever multiplied (not looked up by
// row): rearranged for this CPU's fastest product kernel where there is one
// (kernels.Matrix.Packed, bitwise the same products).
func (ld *loader) weight(name string, rows, cols int) kernels.Matrix {
	m := ld.matrix(name, rows, cols).Packed()
	prefault(m.Data)
	return m
}

// prefaultSink keeps prefault's reads (models load concurrently).
var prefaultSink atomic.Uint32

// prefault reads one byte of every page of b, so that the page faults of a
// memory-mapped weight are taken at load rather than inside the first
// product (as llama.cpp maps with MAP_POPULATE).
func prefault(b []byte) {
	var s byte
	for i := 0; i < len(b); i += 4096 {
		s += b[i]
	}
	prefaultSink.Add(uint32(s))
}

func (ld *loader) vector(name string, n int) []float32 {
	if ld.err != nil {
		return nil
	}
	t, ok := ld.f.Tensor(name)
	if !ok {
		ld.err = fmt.Errorf("llama: tensor %q missing", name)
		return nil
	}
	if len(t.Dims) != 1 || t.Dims[0] != uint64(n) {
		ld.err = fmt.Errorf("llama: tensor %q has dims %v, want [%d]", name, t.Dims, n)
		return nil
	}
	if !t.Type.Supported() || n%t.Type.BlockSize() != 0 {
		ld.err = fmt.Errorf("llama: tensor %q: type %v: %w", name, t.Type, arch.ErrUnsupported)
		return nil
	}
	v := make([]float32, n)
	kernels.Dequantize(v, t.Type, ld.f.TensorData(t))
	return v
}

// Config returns the model's hyperparameters.
func (m *Model) Config() arch.Config { return m.cfg }

// Range returns the layer range [lo, hi) this Model runs.
func (m *Model) Range() (lo, hi int) { return m.lo, m.hi }

// NewCache returns an empty F16 KV cache for this range, bounded by nothing
// but memory; the caller enforces its own budget.
func (m *Model) NewCache() *arch.KVCache {
	return arch.NewKVCache(m.hi-m.lo, m.cfg.KVHeads, m.cfg.HeadDim, 0)
}

// Embed writes the embedding rows of tokens into x, (len(tokens), dim).
func (m *Model) Embed(x []float32, tokens []int) error {
	if m.lo != 0 {
		return fmt.Errorf("llama: layers [%d, %d) have no embedding table", m.lo, m.hi)
	}
	d := m.cfg.Dim
	if len(x) < len(tokens)*d {
		return fmt.Errorf("llama: embed %d tokens into %d floats", len(tokens), len(x))
	}
	for i, t := range tokens {
		if t < 0 || t >= m.cfg.Vocab {
			return fmt.Errorf("llama: token %d outside the vocabulary [0, %d)", t, m.cfg.Vocab)
		}
		m.Embedding.DequantizeRow(x[i*d:(i+1)*d], t)
	}
	return nil
}

// Logits applies the final norm and the output head to rows of x, (·, dim),
// writing (len(rows), vocab) into logits.
func (m *Model) Logits(logits, x []float32, rows []int) error {
	if m.hi != m.cfg.Layers {
		return fmt.Errorf("llama: layers [%d, %d) have no output head", m.lo, m.hi)
	}
	d, v := m.cfg.Dim, m.cfg.Vocab
	if len(logits) < len(rows)*v {
		return fmt.Errorf("llama: %d rows of logits into %d floats", len(rows), len(logits))
	}
	s := m.grow(len(rows), 0)
	for i, r := range rows {
		if r < 0 || (r+1)*d > len(x) {
			return fmt.Errorf("llama: logits for row %d of %d", r, len(x)/d)
		}
		kernels.RMSNorm(s.xb[i*d:(i+1)*d], x[r*d:(r+1)*d], m.OutputNorm, m.cfg.NormEps)
	}
	kernels.MatMul(m.pool, logits[:len(rows)*v], m.Output, s.xb[:len(rows)*d], len(rows))
	return nil
}

// Forward runs layers [lo, hi) in place over x, (rows, dim), whose rows
// belong to seqs in order, appending their keys and values to each
// sequence's cache. When the range ends at the model's last layer, only the
// last row of each sequence goes through the final feed-forward block (as
// in llama.cpp): those are the rows to pass to Logits.
func (m *Model) Forward(x []float32, seqs []arch.Seq) error {
	c := &m.cfg
	rows, maxPos := 0, 0
	for i, sq := range seqs {
		if sq.Cache == nil {
			return fmt.Errorf("llama: sequence %d has no cache", i)
		}
		if sq.N <= 0 || sq.Pos != sq.Cache.Len() {
			return fmt.Errorf("llama: sequence %d: %d tokens at position %d over a cache of %d", i, sq.N, sq.Pos, sq.Cache.Len())
		}
		rows += sq.N
		maxPos = max(maxPos, sq.Pos+sq.N)
	}
	if len(x) != rows*c.Dim {
		return fmt.Errorf("llama: %d floats of activations for %d rows of %d", len(x), rows, c.Dim)
	}
	if c.ContextLength > 0 && maxPos > c.ContextLength {
		m.log.Debug("sequence beyond the trained context", "positions", maxPos, "context_length", c.ContextLength)
	}
	for _, sq := range seqs {
		if err := sq.Cache.Reserve(sq.N); err != nil {
			return err
		}
	}
	s := m.grow(rows, maxPos)
	tl, r := c.RoPE.TableLen(), 0
	for _, sq := range seqs { // a row's rotation serves every layer
		for i := range sq.N {
			c.RoPE.Table(s.rope[(r+i)*tl:(r+i+1)*tl], sq.Pos+i)
		}
		r += sq.N
	}
	for l := range m.Layers {
		m.layer(l, x, rows, seqs, s)
	}
	for _, sq := range seqs {
		sq.Cache.Commit(sq.N)
	}
	return nil
}

// Streamed returns the weight bytes a decoded token streams through m's
// matrix products, in the order it reads them: each layer's q, k, v, o,
// gate, up and down, then the output head where m has it (the embedding
// table, of which a token reads one row, is left out).
func (m *Model) Streamed() [][]byte {
	var bufs [][]byte
	for i := range m.Layers {
		L := &m.Layers[i]
		for _, w := range []kernels.Matrix{L.Q, L.K, L.V, L.O, L.Gate, L.Up, L.Down} {
			bufs = append(bufs, w.Streamed())
		}
	}
	if m.Output.Rows > 0 {
		bufs = append(bufs, m.Output.Streamed())
	}
	return bufs
}

// layer runs one transformer block over the batch.
//
// Each product uses the kernel llama.cpp uses for the same shape, so that
// logits agree with it bit for bit: the batch kernels for the rows of a
// sequence fed two or more tokens at once, the vector kernels for a single
// token. A row's result never depends on the other sequences in the batch.
func (m *Model) layer(l int, x []float32, rows int, seqs []arch.Seq, s *scratch) {
	c := &m.cfg
	L := &m.Layers[l]
	d, qDim, kvDim := c.Dim, c.Heads*c.HeadDim, c.KVDim()
	// A few rows stream each product's weights once, after work on the
	// caller alone: the pool's idle workers read ahead of each product.
	expect := func(k int) {
		if rows < parallelRows {
			m.pool.Expect(m.ahead[l][k])
		}
	}

	// Attention.
	expect(0)
	if rows >= parallelRows {
		m.pool.For(rows, func(lo, hi int) { m.normRows(s.xb, x, L.AttnNorm, lo, hi) })
	} else {
		m.normRows(s.xb, x, L.AttnNorm, 0, rows)
	}
	xb := s.xb[:rows*d]
	q, k, v := s.q[:rows*qDim], s.k[:rows*kvDim], s.v[:rows*kvDim]
	m.matmulShared(xb, seqs, kernels.Product{Dst: q, W: L.Q}, kernels.Product{Dst: k, W: L.K}, kernels.Product{Dst: v, W: L.V})
	expect(1)
	if L.QBias != nil {
		for r := 0; r < rows; r++ {
			kernels.Add(q[r*qDim:(r+1)*qDim], L.QBias)
			kernels.Add(k[r*kvDim:(r+1)*kvDim], L.KBias)
			kernels.Add(v[r*kvDim:(r+1)*kvDim], L.VBias)
		}
	}
	scale := float32(1 / math.Sqrt(float64(c.HeadDim)))
	r, tl := 0, c.RoPE.TableLen()
	for _, sq := range seqs {
		if sq.N >= parallelRows {
			q, k, v, tabs := q[r*qDim:], k[r*kvDim:], v[r*kvDim:], s.rope[r*tl:]
			m.pool.For(sq.N, func(lo, hi int) { m.ropeRows(q, k, v, sq.Cache, l, tabs, sq.Pos, lo, hi) })
		} else {
			m.ropeRows(q[r*qDim:], k[r*kvDim:], v[r*kvDim:], sq.Cache, l, s.rope[r*tl:], sq.Pos, 0, sq.N)
		}
		r += sq.N
	}
	r = 0
	for _, sq := range seqs {
		kc, vc, kv := sq.Cache.Layer(l)
		if sq.N >= 2 { // a prompt's queries, causal, in one dispatch
			kernels.AttentionF16Causal(m.pool, s.att[r*qDim:(r+sq.N)*qDim], q[r*qDim:(r+sq.N)*qDim],
				kc, vc, kv, sq.N, sq.Pos, c.Heads, c.KVHeads, c.HeadDim, scale)
			r += sq.N
			continue
		}
		n := sq.Pos + 1 // causal: attend to positions [0, pos]
		kernels.AttentionF16(m.pool, s.att[r*qDim:(r+1)*qDim], q[r*qDim:(r+1)*qDim],
			kc, vc, kv, n, c.Heads, c.KVHeads, c.HeadDim, scale, s.sc)
		r++
	}
	out := s.out[:rows*d]
	m.matmul(out, L.O, s.att[:rows*qDim], seqs)
	expect(2)
	kernels.Add(x, out)

	if m.lo+l == c.Layers-1 {
		m.lastFFN(L, x, seqs, s)
		return
	}
	// Feed-forward.
	if rows >= parallelRows {
		m.pool.For(rows, func(lo, hi int) { m.normRows(s.xb, x, L.FFNNorm, lo, hi) })
	} else {
		m.normRows(s.xb, x, L.FFNNorm, 0, rows)
	}
	hb, hb2 := s.hb[:rows*c.FFN], s.hb2[:rows*c.FFN]
	m.matmulShared(xb, seqs, kernels.Product{Dst: hb, W: L.Gate}, kernels.Product{Dst: hb2, W: L.Up})
	expect(3)
	if rows >= parallelRows {
		m.pool.For(rows, func(lo, hi int) { swigluRows(hb, hb2, c.FFN, lo, hi) })
	} else {
		swigluRows(hb, hb2, c.FFN, 0, rows)
	}
	m.matmul(out, L.Down, hb, seqs)
	kernels.Add(x, out)
}

// parallelRows is the fewest rows (of a batch, or of a sequence for RoPE
// and the KV cache's rounding) whose per-row work runs on the pool: a
// prompt's. Fewer, as in decode, run inline, and no closure is made for
// them.
const parallelRows = 8

// normRows sets rows [lo, hi) of dst to those of x, RMS-normalized with
// weights w.
func (m *Model) normRows(dst, x, w []float32, lo, hi int) {
	d := m.cfg.Dim
	for r := lo; r < hi; r++ {
		kernels.RMSNorm(dst[r*d:(r+1)*d], x[r*d:(r+1)*d], w, m.cfg.NormEps)
	}
}

// swigluRows sets rows [lo, hi) of gate (rows of f) to SwiGLU of them and
// the same rows of up.
func swigluRows(gate, up []float32, f, lo, hi int) {
	for r := lo; r < hi; r++ {
		kernels.SwiGLURow(gate[r*f:(r+1)*f], gate[r*f:(r+1)*f], up[r*f:(r+1)*f])
	}
}

// ropeRows rotates rows [lo, hi) of q and k (a sequence's, the first at
// position pos0, row i by the rotation table tabs[i*TableLen:]) and
// stores their keys and values into layer l of cache.
func (m *Model) ropeRows(q, k, v []float32, cache *arch.KVCache, l int, tabs []float32, pos0, lo, hi int) {
	c := &m.cfg
	qDim, kvDim, tl := c.Heads*c.HeadDim, c.KVDim(), c.RoPE.TableLen()
	for i := lo; i < hi; i++ {
		pos := pos0 + i
		qr, kr, vr := q[i*qDim:(i+1)*qDim], k[i*kvDim:(i+1)*kvDim], v[i*kvDim:(i+1)*kvDim]
		tab := tabs[i*tl : (i+1)*tl]
		c.RoPE.ApplyTable(qr, c.Heads, c.HeadDim, tab)
		c.RoPE.ApplyTable(kr, c.KVHeads, c.HeadDim, tab)
		cache.Put(l, pos, kr, vr)
	}
}

// lastFFN runs the model's final feed-forward block for the last row of each
// sequence only — the rows whose logits can be asked for — as llama.cpp
// does, with the vector kernels of a single row. The other rows of x are
// left without it and must not be passed to Logits.
func (m *Model) lastFFN(L *Layer, x []float32, seqs []arch.Seq, s *scratch) {
	c := &m.cfg
	d, f := c.Dim, c.FFN
	n, r := 0, 0
	for _, sq := range seqs {
		r += sq.N
		kernels.RMSNorm(s.xb[n*d:(n+1)*d], x[(r-1)*d:r*d], L.FFNNorm, c.NormEps)
		n++
	}
	hb, hb2, out := s.hb[:n*f], s.hb2[:n*f], s.out[:n*d]
	kernels.MatMulShared(m.pool, s.xb[:n*d], n, kernels.Product{Dst: hb, W: L.Gate}, kernels.Product{Dst: hb2, W: L.Up})
	for i := 0; i < n; i++ {
		kernels.SwiGLURow(hb[i*f:(i+1)*f], hb[i*f:(i+1)*f], hb2[i*f:(i+1)*f])
	}
	kernels.MatMul(m.pool, out, L.Down, hb, n)
	n, r = 0, 0
	for _, sq := range seqs {
		r += sq.N
		kernels.Add(x[(r-1)*d:r*d], out[n*d:(n+1)*d])
		n++
	}
}

// matmul sets dst = x·wᵀ row by row, (rows, w.Rows), as matmulShared.
func (m *Model) matmul(dst []float32, w kernels.Matrix, x []float32, seqs []arch.Seq) {
	m.matmulShared(x, seqs, kernels.Product{Dst: dst, W: w})
}

// matmulShared sets each ps[j].Dst = x·ps[j].Wᵀ row by row, with the batch
// kernels for the rows of sequences of two or more tokens and the vector
// kernels for single tokens, grouping neighbouring sequences of the same
// kind: each group's products (up to three) in one dispatch.
func (m *Model) matmulShared(x []float32, seqs []arch.Seq, ps ...kernels.Product) {
	in := ps[0].W.Cols
	var sub [3]kernels.Product
	r := 0
	for i := 0; i < len(seqs); {
		batch := seqs[i].N >= 2
		n := 0
		for ; i < len(seqs) && (seqs[i].N >= 2) == batch; i++ {
			n += seqs[i].N
		}
		for j, p := range ps {
			sub[j] = kernels.Product{Dst: p.Dst[r*p.W.Rows : (r+n)*p.W.Rows], W: p.W}
		}
		if batch {
			kernels.MatMulSharedBatch(m.pool, x[r*in:(r+n)*in], n, sub[:len(ps)]...)
		} else {
			kernels.MatMulShared(m.pool, x[r*in:(r+n)*in], n, sub[:len(ps)]...)
		}
		r += n
	}
}

// grow sizes the scratch for rows rows attending over up to positions
// positions.
func (m *Model) grow(rows, positions int) *scratch {
	c := &m.cfg
	s := &m.s
	if rows > s.rows {
		qDim := c.Heads * c.HeadDim
		s.rows = rows
		s.xb = make([]float32, rows*c.Dim)
		s.q = make([]float32, rows*qDim)
		s.k = make([]float32, rows*c.KVDim())
		s.v = make([]float32, rows*c.KVDim())
		s.att = make([]float32, rows*qDim)
		s.hb = make([]float32, rows*c.FFN)
		s.hb2 = make([]float32, rows*c.FFN)
		s.out = make([]float32, rows*c.Dim)
		s.rope = make([]float32, rows*c.RoPE.TableLen())
	}
	if need := c.Heads * positions; need > len(s.sc) {
		s.sc = make([]float32, max(need, 2*len(s.sc)))
	}
	return s
}
