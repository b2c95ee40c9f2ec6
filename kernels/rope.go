package kernels

import "math"

// RoPE is a rotary position embedding as ggml's rope (no YaRN extension).
type RoPE struct {
	Dims      int       // rotated dimensions per head (<= head dim, even); the rest pass through
	Base      float32   // frequency base (theta), e.g. 10000, 500000, 1e6
	FreqScale float32   // 1/linear scaling factor; 0 means 1
	NEOX      bool      // false: rotate adjacent pairs (x[2i], x[2i+1]); true: pairs (x[i], x[i+Dims/2])
	Factors   []float32 // optional per-frequency divisors (llama-3.1 rope_freqs), len Dims/2
}

// ropeStack is the largest Dims whose table lives on the stack in Apply.
const ropeStack = 512

// TableLen is the length of the table Table fills: 2*Dims floats.
func (r RoPE) TableLen() int { return 2 * r.Dims }

// Table fills t (TableLen floats) with what ApplyTable needs to rotate
// heads at token position pos: each pair's cos and sin, computed as Apply
// documents, in two layouts. A position's table serves every layer and
// both q and k, so a forward pass can compute it once per token.
func (r RoPE) Table(t []float32, pos int) {
	half := r.Dims / 2
	t = t[:4*half]
	cs := t[:2*half]
	r.table(cs, pos)
	aux := t[2*half:]
	for i := range half {
		c, s := cs[2*i], cs[2*i+1]
		if r.NEOX { // cos of every pair, then sin of every pair
			aux[i], aux[half+i] = c, s
		} else { // -sin, cos of each pair
			aux[2*i], aux[2*i+1] = -s, c
		}
	}
}

// Apply rotates each of the nHeads heads of x (nHeads*headDim elements) in
// place for token position pos. As ggml: theta_scale =
// powf(Base, -2/Dims); pair i's angle is pos*theta_scale^i, formed as a
// running float32 product, divided by Factors[i] when set, times FreqScale;
// its cos and sin are rounded to float32. Each pair (x0, x1) becomes
// (fma(x0, cos, -(x1*sin)), fma(x0, sin, x1*cos)): GCC contracts ggml's
// x0*cos - x1*sin that way, and matching it keeps llama.cpp's bits.
func (r RoPE) Apply(x []float32, nHeads, headDim, pos int) {
	var buf [2 * ropeStack]float32
	var t []float32
	if r.Dims <= ropeStack {
		t = buf[:r.TableLen()]
	} else {
		t = make([]float32, r.TableLen())
	}
	r.Table(t, pos)
	r.ApplyTable(x, nHeads, headDim, t)
}

// ApplyTable is Apply with the position's table (Table) already made.
func (r RoPE) ApplyTable(x []float32, nHeads, headDim int, t []float32) {
	half := r.Dims / 2
	t = t[:4*half]
	cs, aux := t[:2*half], t[2*half:]
	x = x[:nHeads*headDim]
	if ropeVec(x, nHeads, headDim, r.Dims, r.NEOX, cs, aux) { // SIMD, bitwise equal (dot_amd64.go)
		return
	}
	for h := range nHeads {
		head := x[h*headDim : (h+1)*headDim]
		if r.NEOX {
			lo, hi := head[:half], head[half:2*half]
			for i := range lo {
				c, s := cs[2*i], cs[2*i+1]
				x0, x1 := lo[i], hi[i]
				lo[i] = fma32(x0, c, -float32(x1*s))
				hi[i] = fma32(x0, s, float32(x1*c))
			}
			continue
		}
		for i := range half {
			c, s := cs[2*i], cs[2*i+1]
			x0, x1 := head[2*i], head[2*i+1]
			head[2*i] = fma32(x0, c, -float32(x1*s))
			head[2*i+1] = fma32(x0, s, float32(x1*c))
		}
	}
}

// table fills cs with cos, sin of each pair's angle at position pos.
func (r RoPE) table(cs []float32, pos int) {
	fs := r.FreqScale
	if fs == 0 {
		fs = 1
	}
	thetaScale := float32(math.Pow(float64(r.Base), float64(float32(-2)/float32(r.Dims))))
	theta := float32(pos)
	for i := range len(cs) / 2 {
		t := theta
		if r.Factors != nil {
			t /= r.Factors[i]
		}
		t *= fs
		cs[2*i] = float32(math.Cos(float64(t)))
		cs[2*i+1] = float32(math.Sin(float64(t)))
		theta *= thetaScale
	}
}
