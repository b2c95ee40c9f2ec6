package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/strata-llm/strata/internal/testdata"
)

// TestRealQ8_0FromF32 checks the reference quantizers against real files:
// the Q8_0 tiny models were written from the F32 ones with ggml's reference
// Q8_0 rounding and their ffn_down as F16, so quantizing the F32 tensors
// here must reproduce every byte.
func TestRealQ8_0FromF32(t *testing.T) {
	for _, model := range []string{"stories260K", "aidreams260K"} {
		t.Run(model, func(t *testing.T) {
			src := readGGUF(t, testdata.Path(t, "models/"+model+"-f32.gguf"))
			dst := readGGUF(t, testdata.Path(t, "models/"+model+"-q8_0.gguf"))
			byName := map[string]ggufTensor{}
			for _, s := range src {
				byName[s.Name] = s
			}
			counts := map[DType]int{}
			for _, d := range dst {
				s, ok := byName[d.Name]
				if !ok || s.Type != F32 || d.Type == F32 {
					continue
				}
				x := make([]float32, len(s.Data)/4)
				Dequantize(x, F32, s.Data)
				got := Quantize(nil, d.Type, x)
				if !slices.Equal(got, d.Data) {
					i := 0
					for got[i] == d.Data[i] {
						i++
					}
					t.Fatalf("%s as %v: byte %d is %#02x, file has %#02x", d.Name, d.Type, i, got[i], d.Data[i])
				}
				// And back: within half a quantization step.
				if d.Type == Q8_0 {
					y := make([]float32, len(x))
					Dequantize(y, d.Type, d.Data)
					for b := 0; b < len(x); b += QK {
						_, amax := absMax(x[b : b+QK])
						for i := b; i < b+QK; i++ {
							if e := absf(x[i] - y[i]); e > amax/127/2+amax/1024 {
								t.Fatalf("%s element %d: %g -> %g", d.Name, i, x[i], y[i])
							}
						}
					}
				}
				counts[d.Type]++
			}
			if counts[Q8_0] == 0 || counts[F16] == 0 {
				t.Fatalf("compared %v tensors; want Q8_0 and F16 ones", counts)
			}
			t.Logf("bit-identical: %v", counts)
		})
	}
}

// generatorSD returns the standard deviation the synthetic models' generator
// drew a tensor's weights with (models/README.md), or 0 when unknown.
func generatorSD(name string, cols int) float64 {
	fan := math.Sqrt(float64(cols))
	switch {
	case strings.HasPrefix(name, "token_embd"):
		return 0.3
	case name == "output.weight":
		return 3 / fan
	case strings.Contains(name, "attn_q.") || strings.Contains(name, "attn_k."):
		return 2 / fan
	case strings.Contains(name, "attn_v.") || strings.Contains(name, "ffn_gate") || strings.Contains(name, "ffn_up"):
		return 1 / fan
	case strings.Contains(name, "attn_output"):
		return 0.5 / fan
	case strings.Contains(name, "ffn_down"):
		return 2 / fan
	}
	return 0
}

// TestRealQuantizedTensors decodes every quantized tensor written by
// llama-quantize in the synthetic models. Their source weights are i.i.d.
// normal with a known deviation, so a wrong block layout shows up in the
// statistics: per position of a sub-block inside its block, the mean
// variance of the decoded sub-blocks must be the generator's, and their
// means must scatter as σ²/len. MatVec over each tensor is then checked
// against the float64 reference.
func TestRealQuantizedTensors(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	seen := map[DType]bool{}
	for _, model := range []string{"synth-mixed-quants", "synth-llama3"} {
		for _, tn := range readGGUF(t, testdata.Path(t, "models/"+model+".gguf")) {
			if tn.Type == F32 || len(tn.Dims) != 2 {
				continue
			}
			sd := generatorSD(tn.Name, tn.Cols())
			if sd == 0 {
				t.Fatalf("%s: no known deviation", tn.Name)
			}
			seen[tn.Type] = true
			w, err := NewMatrix(tn.Type, tn.Rows(), tn.Cols(), tn.Data)
			if err != nil {
				t.Fatalf("%s %s: %v", model, tn.Name, err)
			}
			x := make([]float32, tn.Rows()*tn.Cols())
			Dequantize(x, tn.Type, tn.Data)
			name := model + "/" + tn.Name
			checkStats(t, name, tn.Type, x, sd)

			// MatVec on some rows (all of them for small tensors).
			rows := min(w.Rows, 300)
			sub := Matrix{Type: w.Type, Rows: rows, Cols: w.Cols, Data: w.Data[:rows*w.RowBytes()]}
			act := randNormal(rng, w.Cols, 1)
			dst := make([]float32, rows)
			MatVec(nil, dst, sub, act)
			for r := range rows {
				ref, tol := refRow(sub, r, act)
				if d := math.Abs(float64(dst[r]) - ref); !(d <= tol) {
					t.Fatalf("%s row %d: MatVec %g, reference %g", name, r, dst[r], ref)
				}
			}
		}
	}
	for _, typ := range []DType{Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K} {
		if !seen[typ] {
			t.Errorf("no %v tensor in the synthetic models", typ)
		}
	}
}

func checkStats(t *testing.T, name string, typ DType, x []float32, sd float64) {
	t.Helper()
	sub := 32
	if typ == Q6_K {
		sub = 16
	}
	perBlock := max(typ.BlockSize()/sub, 1)
	varSum := make([]float64, perBlock) // Σ sample variance / σ², per position
	meanSq := make([]float64, perBlock) // Σ mean² / (σ²/sub), per position
	count := make([]float64, perBlock)
	var all, allSq float64
	for i := 0; i < len(x); i += sub {
		var m, m2 float64
		for _, v := range x[i : i+sub] {
			f := float64(v)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				t.Fatalf("%s: element %d is %g", name, i, f)
			}
			m += f
			m2 += f * f
		}
		all += m
		allSq += m2
		pos := i / sub % perBlock
		mean := m / float64(sub)
		varSum[pos] += (m2 - float64(sub)*mean*mean) / float64(sub-1) / (sd * sd)
		meanSq[pos] += mean * mean / (sd * sd / float64(sub))
		count[pos]++
	}
	n := float64(len(x))
	gotSD := math.Sqrt(allSq/n - (all/n)*(all/n))
	if r := gotSD / sd; r < 0.95 || r > 1.05 {
		t.Errorf("%s: deviation %.4g, generator's %.4g", name, gotSD, sd)
	}
	if m := all / n; math.Abs(m) > 5*sd/math.Sqrt(n) {
		t.Errorf("%s: mean %.3g, want about 0 (σ %.3g)", name, m, sd)
	}
	for p := range perBlock {
		v, ms := varSum[p]/count[p], meanSq[p]/count[p]
		// Both ratios are 1 up to sampling noise: five standard errors,
		// plus 5% for the quantization noise in the variance.
		vTol := 5*math.Sqrt(2/(float64(sub-1)*count[p])) + 0.05
		mTol := 5 * math.Sqrt(2/count[p])
		if math.Abs(v-1) > vTol || math.Abs(ms-1) > mTol {
			t.Errorf("%s: sub-block %d of %d: variance ratio %.3f (±%.3f), mean-scatter ratio %.3f (±%.3f), want both ≈ 1",
				name, p, perBlock, v, vTol, ms, mTol)
		}
	}
}
