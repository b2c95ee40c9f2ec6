package kernels

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden pins every kernel's output bits for fixed inputs. The plain-Go
// kernels reproduce llama.cpp's arithmetic bit for bit (checked end to end
// against its logits by the pipeline's reference tests), so these digests
// are the oracle a faster implementation must match exactly. After a
// deliberate change of numerics, rerun with -update and say why in the
// commit.
func TestGolden(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("golden digests are recorded on amd64 (math.Exp and friends may differ by an ulp elsewhere)")
	}
	got := goldenDigests()
	path := filepath.Join("testdata", "golden.txt")
	if *update {
		var b strings.Builder
		b.WriteString("# sha256 of the output bits of each kernel for the inputs in golden_test.go; regenerate with go test -run TestGolden -update\n")
		for _, kv := range got {
			fmt.Fprintf(&b, "%s %s\n", kv[0], kv[1])
		}
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			k, v, _ := strings.Cut(line, " ")
			want[k] = v
		}
	}
	for _, kv := range got {
		if w, ok := want[kv[0]]; !ok {
			t.Errorf("%s: no golden digest (run with -update)", kv[0])
		} else if w != kv[1] {
			t.Errorf("%s: output bits changed (digest %s, golden %s)", kv[0], kv[1][:12], w[:12])
		}
	}
}

// goldenInput returns n deterministic floats in [-scale, scale), from PCG
// bits only (no distribution code that might change between Go releases).
func goldenInput(seed uint64, n int, scale float32) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(int32(rng.Uint32())) * (scale / (1 << 31))
	}
	return x
}

func digest(x []float32) string {
	h := sha256.New()
	var b [4]byte
	for _, v := range x {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func goldenDigests() [][2]string {
	var out [][2]string
	add := func(name string, x []float32) { out = append(out, [2]string{name, digest(x)}) }
	p := NewPool(3)
	defer p.Close()
	const rows, n = 24, 3
	for _, typ := range supportedTypes {
		for _, cols := range []int{256, 520} {
			if cols%typ.BlockSize() != 0 {
				continue
			}
			w, _ := NewMatrix(typ, rows, cols, Quantize(nil, typ, goldenInput(uint64(typ)+1, rows*cols, 0.2)))
			x := goldenInput(99, n*cols, 2)
			dst := make([]float32, n*rows)
			MatMul(p, dst, w, x, n)
			add(fmt.Sprintf("MatMul/%v/%d", typ, cols), dst)
			MatMulBatch(p, dst, w, x, n)
			add(fmt.Sprintf("MatMulBatch/%v/%d", typ, cols), dst)
			deq := make([]float32, rows*cols)
			Dequantize(deq, typ, w.Data)
			add(fmt.Sprintf("Dequantize/%v/%d", typ, cols), deq)
		}
	}
	// Q4_0 with a row count that is not a multiple of 8 (not repacked).
	w, _ := NewMatrix(Q4_0, 7, 256, Quantize(nil, Q4_0, goldenInput(5, 7*256, 0.2)))
	dst := make([]float32, 7)
	MatVec(nil, dst, w, goldenInput(6, 256, 2))
	add("MatVec/Q4_0/7rows", dst)
	for _, xt := range []DType{F16, BF16, Q8_0, Q8_1, Q8_K} {
		x := goldenInput(7, 512, 3)
		nb, _ := xt.RowBytes(len(x))
		y := make([]byte, nb)
		quantizeAct(y, xt, x)
		h := sha256.Sum256(y)
		out = append(out, [2]string{"quantizeAct/" + xt.String(), hex.EncodeToString(h[:])})
	}
	for _, hd := range []int{8, 64, 128} {
		const nh, nkv, pos = 8, 2, 45
		q := goldenInput(8, nh*hd, 1)
		k32, v32 := goldenInput(9, pos*nkv*hd, 1), goldenInput(10, pos*nkv*hd, 1)
		k16, v16 := make([]uint16, len(k32)), make([]uint16, len(v32))
		for i := range k32 {
			k16[i], v16[i] = F32ToF16(k32[i]), F32ToF16(v32[i])
		}
		o, att := make([]float32, nh*hd), make([]float32, nh*pos)
		scale := float32(1 / math.Sqrt(float64(hd)))
		AttentionF16(p, o, q, k16, v16, PosMajor(nkv, hd), pos, nh, nkv, hd, scale, att)
		add(fmt.Sprintf("AttentionF16/%d", hd), slices.Concat(o, att))
		AttentionF16Batch(p, o, q, k16, v16, PosMajor(nkv, hd), pos, nh, nkv, hd, scale, att)
		add(fmt.Sprintf("AttentionF16Batch/%d", hd), slices.Concat(o, att))
		AttentionF32(p, o, q, k32, v32, PosMajor(nkv, hd), pos, nh, nkv, hd, scale, att)
		add(fmt.Sprintf("AttentionF32/%d", hd), slices.Concat(o, att))
	}
	for _, r := range []RoPE{{Dims: 64, Base: 10000}, {Dims: 64, Base: 1e6, NEOX: true}, {Dims: 32, Base: 500000, FreqScale: 0.5}} {
		x := goldenInput(11, 4*64, 3)
		r.Apply(x, 4, 64, 1234)
		add(fmt.Sprintf("RoPE/%d/%v/%v", r.Dims, r.Base, r.NEOX), x)
	}
	g, u := goldenInput(12, 172, 6), goldenInput(13, 172, 2)
	d := make([]float32, 172)
	SwiGLU(d, g, u)
	add("SwiGLU", d)
	SwiGLURow(d, g, u)
	add("SwiGLURow", d)
	x := goldenInput(14, 1000, 20)
	softmaxGGML(x)
	add("softmaxGGML", x)
	x = goldenInput(15, 1000, 20)
	Softmax(x)
	add("Softmax", x)
	x = goldenInput(16, 4096, 5)
	RMSNorm(x, x, goldenInput(17, 4096, 1), 1e-5)
	add("RMSNorm", x)
	return out
}
