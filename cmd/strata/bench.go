package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/arch"
	"github.com/strata-llm/strata/pipeline/arch/llama"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// synthShapes are the named shapes `strata bench --synth` knows.
var synthShapes = map[string]llama.SynthSpec{
	// The 1B-like shape of the llama.cpp baseline in shared/testdata/perf.
	"1b": {Dim: 2048, Layers: 16, Heads: 32, KVHeads: 8, FFN: 5632, Vocab: 32000},
	// A small shape for smoke tests.
	"tiny": {Dim: 256, Layers: 2, Heads: 4, KVHeads: 2, FFN: 768, Vocab: 1024},
}

type benchRow struct {
	Model         string  `json:"model"`
	Type          string  `json:"type"`
	Threads       int     `json:"threads"`
	SIMD          string  `json:"simd"` // the kernels' instructions (kernels.SIMD)
	BytesPerToken uint64  `json:"weight_bytes_per_token"`
	BandwidthGBs  float64 `json:"bandwidth_gb_s"`
	// BufferGBs is the median round's BufferGBs (see benchRound).
	BufferGBs     float64 `json:"buffer_bandwidth_gb_s"`
	RooflineTokS  float64 `json:"roofline_tok_s"`
	DecodeTokS    float64 `json:"decode_tok_s"`
	RooflineShare float64 `json:"roofline_share"`
	// PairedShare is the median round's paired share (see benchRound).
	PairedShare   float64 `json:"paired_roofline_share"`
	PrefillTokS   float64 `json:"prefill_tok_s"`
	PrefillGFLOPs float64 `json:"prefill_gflop_s"`
	FMAPeakGFLOPs float64 `json:"fma_peak_gflop_s"` // 0: not measured here
	PrefillTokens int     `json:"prefill_tokens"`
	DecodeTokens  int     `json:"decode_tokens"`
	// Llama is llama.cpp's llama-bench on the same file in the median
	// round by its decode share (--llama-bench), nil when not run.
	Llama *llamaRates `json:"llama_cpp,omitempty"`
	// Rounds are every round's figures, each against the roofline and
	// peak measured around it; the fields above are the median round's
	// (by decode share for the decode fields, by prefill share for the
	// prefill ones).
	Rounds []benchRound `json:"rounds"`
}

// benchRound is one round of a model's measurement: decode and prefill
// rates and the roofline and FMA peak measured right before and after.
type benchRound struct {
	// BandwidthGBs is the bandwidth of the roofline: the best pass of a
	// read loop over the weights a decoded token streams (or a buffer of
	// --bandwidth-mb), right before and right after the round, the higher.
	BandwidthGBs float64 `json:"bandwidth_gb_s"`
	// BufferGBs is the same read over a buffer of as many bytes allocated
	// for it, as a STREAM-style figure is measured, pass for pass in turn
	// with the roofline's, for comparison: where
	// the guest's cores sit far apart on the host, memory in different
	// places streams at rates up to a tenth apart, and the weights' own
	// rate is the bound of their decode.
	BufferGBs     float64 `json:"buffer_bandwidth_gb_s"`
	DecodeTokS    float64 `json:"decode_tok_s"`
	RooflineShare float64 `json:"roofline_share"`
	// PairedShare is the median, over the round's decoded tokens, of each
	// token's rate against the bandwidth of a streaming pass over as many
	// bytes right before it and of one right after it (the higher, as for
	// the round): the machine's bandwidth can change twofold within a
	// second, and a roofline measured around the whole round then sets
	// some of its tokens against another bandwidth than the one they ran
	// at.
	PairedShare   float64 `json:"paired_roofline_share"`
	PrefillTokS   float64 `json:"prefill_tok_s"`
	PrefillGFLOPs float64 `json:"prefill_gflop_s"`
	FMAPeakGFLOPs float64 `json:"fma_peak_gflop_s"`
	PeakShare     float64 `json:"peak_share"` // 0: no peak measured
	// Llama is llama-bench's run right after ours in the round, against
	// the same roofline (--llama-bench); nil when not run.
	Llama *llamaRates `json:"llama_cpp,omitempty"`
}

// llamaRates are llama.cpp's rates on a model, from its llama-bench.
type llamaRates struct {
	PrefillTokS   float64 `json:"prefill_tok_s"`
	DecodeTokS    float64 `json:"decode_tok_s"`
	RooflineShare float64 `json:"roofline_share"`
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "GGUF model `path` to measure")
	synth := fs.String("synth", "", "measure a synthetic model of a named shape instead: 1b (dim 2048, 16 layers, 32/8 heads, ffn 5632, vocab 32000) or tiny")
	types := fs.String("type", "f16,q8_0,q4_0", "tensor types of the synthetic models, comma-separated")
	cacheDir := fs.String("cache", "", "where synthetic models are kept (default: the user cache dir)")
	decode := fs.Int("tokens", 32, "tokens to decode")
	prefill := fs.Int("prefill", 128, "prompt tokens, processed in one batch before decoding")
	threads := fs.Int("threads", 0, "kernel threads (0: all cores)")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	bwMB := fs.Int("bandwidth-mb", 0, "measure the bandwidth over a buffer of this many MB instead of the weights a decoded token reads (0: the weights)")
	rounds := fs.Int("rounds", 3, "rounds per model, each with its own roofline; the median round is reported")
	llamaBin := fs.String("llama-bench", "", "also run llama.cpp's llama-bench `binary` on each model, once a round right after ours, same threads and token counts, and print its rates beside ours")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	pool := kernels.NewPool(*threads)
	defer pool.Close()
	log := newLogger(stderr, false)

	var paths []string
	switch {
	case *model != "":
		paths = []string{*model}
	case *synth != "":
		spec, ok := synthShapes[*synth]
		if !ok {
			return fmt.Errorf("bench: unknown synthetic shape %q (1b, tiny)", *synth)
		}
		dir := *cacheDir
		if dir == "" {
			d, err := os.UserCacheDir()
			if err != nil {
				return err
			}
			dir = filepath.Join(d, "strata", "synth")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, t := range strings.Split(*types, ",") {
			dt, err := kernels.ParseDType(strings.TrimSpace(t))
			if err != nil {
				return err
			}
			s := spec
			s.Type = dt
			if dt == kernels.Q4_0 {
				s.OutputType = kernels.Q6_K // as llama.cpp's Q4_0 files
			}
			p := filepath.Join(dir, fmt.Sprintf("%s-%s.gguf", *synth, strings.ToLower(dt.String())))
			if _, err := os.Stat(p); err != nil {
				log.Info("writing synthetic model", "path", p)
				if err := writeSynth(p, s); err != nil {
					return err
				}
			}
			paths = append(paths, p)
		}
	default:
		return errors.New("bench: pass --model PATH or --synth 1b")
	}

	// The machines are shared and their bandwidth and FMA rate drift: each
	// round's roofline is measured right before and right after it, and
	// the higher (stricter) figure is the one its rates are set against;
	// the median of the rounds is reported, so that one round caught in a
	// slow phase of the machine (or a fast burst of the roofline) does not
	// decide the figure.
	// The bandwidth is read over the very weights a decoded token streams,
	// in its order (or over a buffer of --bandwidth-mb): memory in
	// different places of a host can stream at different rates.
	size := func(bytes uint64) int {
		if *bwMB > 0 {
			return *bwMB << 20
		}
		return int(bytes)
	}
	roofline := func(m arch.Model, bytes uint64) *kernels.BandwidthProbe {
		if sm, ok := m.(interface{ Streamed() [][]byte }); ok && *bwMB == 0 {
			return kernels.NewBandwidthProbeOf(pool, sm.Streamed(), 2)
		}
		return kernels.NewBandwidthProbe(pool, size(bytes), 2)
	}
	buffer := func(bytes uint64) *kernels.BandwidthProbe { return kernels.NewBandwidthProbe(pool, size(bytes), 2) }
	log.Info("measuring memory bandwidth and FMA peak around each model", "threads", pool.Size(), "simd", kernels.SIMD())
	var rows []benchRow
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		var llama func(path string) (pp, tg float64, err error)
		if *llamaBin != "" {
			llama = func(path string) (float64, float64, error) {
				return llamaBench(ctx, *llamaBin, path, pool.Size(), *prefill, *decode)
			}
		}
		row, err := benchOne(p, pool, *prefill, *decode, max(*rounds, 1), roofline, buffer, llama, log)
		if err != nil {
			return fmt.Errorf("bench %s: %w", p, err)
		}
		rows = append(rows, row)
		if *asJSON {
			json.NewEncoder(stdout).Encode(row)
		}
	}
	if *asJSON {
		return nil
	}
	fmt.Fprintf(stdout, "median of %d rounds; each round's shares are against the roofline and FMA peak measured right before and after it (the higher), [lowest-highest round]; bandwidth: a read of the weights a token streams, buffer: of a buffer as large; paired: the median over a round's tokens of each token's rate against the bandwidth of a pass right before it and one right after (the higher)\n", max(*rounds, 1))
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "model\ttype\tthreads\tsimd\tMB/token\tbandwidth GB/s\tbuffer GB/s\troofline tok/s\tdecode tok/s\tof roofline\trounds\tpaired\trounds\tprefill tok/s\tprefill GFLOP/s\tFMA peak GFLOP/s\tof peak\trounds\t\n")
	for _, r := range rows {
		share, peakRange := "-", "-"
		if r.FMAPeakGFLOPs > 0 {
			share = fmt.Sprintf("%.1f%%", 100*r.PrefillGFLOPs/r.FMAPeakGFLOPs)
			peakRange = shareRange(r.Rounds, func(b benchRound) float64 { return b.PeakShare })
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f%%\t%s\t%.1f%%\t%s\t%.2f\t%.1f\t%.1f\t%s\t%s\t\n", r.Model, r.Type, r.Threads, r.SIMD,
			float64(r.BytesPerToken)/1e6, r.BandwidthGBs, r.BufferGBs, r.RooflineTokS, r.DecodeTokS, 100*r.RooflineShare,
			shareRange(r.Rounds, func(b benchRound) float64 { return b.RooflineShare }),
			100*r.PairedShare, shareRange(r.Rounds, func(b benchRound) float64 { return b.PairedShare }), r.PrefillTokS,
			r.PrefillGFLOPs, r.FMAPeakGFLOPs, share, peakRange)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if *llamaBin == "" {
		return nil
	}
	fmt.Fprintf(stdout, "\nllama.cpp's llama-bench on the same files, right after ours in each round, against the same roofline: its median round by decode share, and the median of the rounds' ratios of our rates to its\n")
	w = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "model\tllama.cpp decode tok/s\tof roofline\tprefill tok/s\tstrata/llama.cpp decode\tprefill\t\n")
	for _, r := range rows {
		if l := r.Llama; l != nil {
			fmt.Fprintf(w, "%s\t%.2f\t%.1f%%\t%.2f\t%.2fx\t%.2fx\t\n", r.Model, l.DecodeTokS, 100*l.RooflineShare, l.PrefillTokS,
				medianRatio(r.Rounds, func(b benchRound) float64 { return b.DecodeTokS / b.Llama.DecodeTokS }),
				medianRatio(r.Rounds, func(b benchRound) float64 { return b.PrefillTokS / b.Llama.PrefillTokS }))
		}
	}
	return w.Flush()
}

// llamaBench runs llama.cpp's llama-bench at bin on the model at path:
// threads threads, a prompt of prefill tokens and decode generated
// tokens, one repetition each; it returns the prompt and generation rates
// in tokens per second.
func llamaBench(ctx context.Context, bin, path string, threads, prefill, decode int) (pp, tg float64, err error) {
	cmd := exec.CommandContext(ctx, bin, "-m", path, "-t", strconv.Itoa(threads), "-p", strconv.Itoa(prefill),
		"-n", strconv.Itoa(decode), "-r", "1", "-o", "jsonl")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tail := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(tail, '\n'); i >= 0 {
			tail = tail[i+1:]
		}
		return 0, 0, fmt.Errorf("llama-bench %s: %w: %s", filepath.Base(path), err, tail)
	}
	return parseLlamaBench(out)
}

// parseLlamaBench reads llama-bench's JSON lines (-o jsonl): the rate of
// its prompt test (n_prompt > 0, n_gen == 0) and of its generation test
// (n_gen > 0), each in tokens per second; both must be there.
func parseLlamaBench(out []byte) (pp, tg float64, err error) {
	for line := range bytes.Lines(out) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r struct {
			NPrompt int     `json:"n_prompt"`
			NGen    int     `json:"n_gen"`
			AvgTS   float64 `json:"avg_ts"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return 0, 0, fmt.Errorf("llama-bench output: %w", err)
		}
		if !(r.AvgTS > 0) || math.IsInf(r.AvgTS, 0) {
			return 0, 0, fmt.Errorf("llama-bench output: rate %v tokens/s", r.AvgTS)
		}
		switch {
		case r.NGen > 0:
			tg = r.AvgTS
		case r.NPrompt > 0:
			pp = r.AvgTS
		}
	}
	if pp == 0 || tg == 0 {
		return 0, 0, errors.New("llama-bench output: no prompt or no generation test")
	}
	return pp, tg, nil
}

// shareRange formats the lowest and highest of share over rounds as
// percentages.
func shareRange(rounds []benchRound, share func(benchRound) float64) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rounds {
		lo, hi = min(lo, share(r)), max(hi, share(r))
	}
	if len(rounds) == 0 {
		return "-"
	}
	return fmt.Sprintf("[%.0f-%.0f%%]", 100*lo, 100*hi)
}

// medianRatio returns the median of ratio over rounds (the lower middle
// one for an even count).
func medianRatio(rounds []benchRound, ratio func(benchRound) float64) float64 {
	return ratio(median(rounds, ratio))
}

// median returns the round whose key is the median of rounds' (the lower
// middle one for an even count).
func median(rounds []benchRound, key func(benchRound) float64) benchRound {
	s := slices.Clone(rounds)
	slices.SortFunc(s, func(a, b benchRound) int { return cmp.Compare(key(a), key(b)) })
	return s[(len(s)-1)/2]
}

// benchOne measures the model at path in rounds rounds, each round's
// roofline measured right before and right after it by the probe roofline
// returns for the model (given the bytes a decoded token reads), and
// beside it, pass for pass, the bandwidth of a buffer of its own (the
// probe buffer returns) for comparison.
func benchOne(path string, pool *kernels.Pool, prefill, decode, rounds int, roofline func(arch.Model, uint64) *kernels.BandwidthProbe,
	buffer func(uint64) *kernels.BandwidthProbe, llama func(path string) (pp, tg float64, err error),
	log interface{ Info(string, ...any) }) (benchRow, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return benchRow{}, err
	}
	defer f.Close()
	layers, _ := f.Uint(f.Architecture() + ".block_count")
	m, err := arch.Load(f, 0, int(layers), arch.Options{Pool: pool})
	if err != nil {
		return benchRow{}, err
	}
	// Bytes streamed per decoded token: every weight but the embedding table,
	// of which one row is read.
	// FLOP of a prompt: a multiply-add per weight of every layer's matrices
	// for each token, and of the output matrix (or the tied embedding table)
	// once, for the last token's logits (attention over a short prompt is
	// left out).
	var perToken, flop, headFlop uint64
	for _, t := range f.Tensors {
		switch {
		case len(t.Dims) != 2:
		case t.Name == "output.weight":
			headFlop = 2 * t.Dims[0] * t.Dims[1]
		case t.Name == "token_embd.weight":
			if _, ok := f.Tensor("output.weight"); !ok {
				headFlop = 2 * t.Dims[0] * t.Dims[1]
			}
		default:
			flop += 2 * t.Dims[0] * t.Dims[1]
		}
		if t.Name == "token_embd.weight" && len(t.Dims) == 2 {
			perToken += t.Size / t.Dims[1]
			continue
		}
		perToken += t.Size
	}
	perPrompt := float64(flop) + float64(headFlop)/float64(max(prefill, 1)) // per prompt token
	typ := "?"
	if t, ok := f.Tensor("blk.0.attn_q.weight"); ok {
		typ = t.Type.String()
	}
	log.Info("benchmarking", "model", filepath.Base(path), "type", typ, "rounds", rounds)
	row := benchRow{
		Model: strings.TrimSuffix(filepath.Base(path), ".gguf"), Type: typ, Threads: pool.Size(), SIMD: kernels.SIMD(),
		BytesPerToken: perToken, PrefillTokens: prefill, DecodeTokens: decode,
	}
	// One untimed run first, as llama-bench does: a model's first prompt
	// grows its buffers and faults their pages in.
	if _, err := pipeline.Bench(m, prefill, min(decode, 2), 0); err != nil {
		return benchRow{}, err
	}
	pr, bp := roofline(m, perToken), buffer(perToken)
	// measure returns the roofline's bandwidth and the buffer's (the best
	// of a few passes of each, in turn) and the FMA peak.
	measure := func() (bw, peak, buf float64) {
		for range 5 {
			bw, buf = max(bw, pr.Measure(pool)), max(buf, bp.Measure(pool))
		}
		return bw, kernels.MeasureFMAPeak(pool, 200*time.Millisecond), buf
	}
	bws := make([]float64, 0, decode+1)
	for i := range rounds {
		bw, peak, buf := measure()
		bws = bws[:0]
		res, err := pipeline.BenchEach(m, prefill, decode, uint64(1+i), func() { bws = append(bws, pr.Measure(pool)) })
		if err != nil {
			return benchRow{}, err
		}
		bws = append(bws, pr.Measure(pool)) // after the last token
		bwAfter, peakAfter, bufAfter := measure()
		bw, peak, buf = max(bw, bwAfter), max(peak, peakAfter), max(buf, bufAfter)
		r := benchRound{
			BandwidthGBs: bw / 1e9, BufferGBs: buf / 1e9, DecodeTokS: res.DecodeRate(), RooflineShare: res.DecodeRate() * float64(perToken) / bw,
			PrefillTokS: res.PrefillRate(), PrefillGFLOPs: res.PrefillRate() * perPrompt / 1e9, FMAPeakGFLOPs: peak / 1e9,
		}
		if peak > 0 {
			r.PeakShare = r.PrefillGFLOPs * 1e9 / peak
		}
		paired := make([]float64, len(res.Steps))
		for j, d := range res.Steps {
			paired[j] = float64(perToken) / d.Seconds() / max(bws[j], bws[j+1])
		}
		if len(paired) > 0 {
			slices.Sort(paired)
			r.PairedShare = paired[(len(paired)-1)/2]
		}
		if llama != nil {
			pp, tg, err := llama(path)
			if err != nil {
				return benchRow{}, err
			}
			r.Llama = &llamaRates{PrefillTokS: pp, DecodeTokS: tg, RooflineShare: tg * float64(perToken) / bw}
		}
		row.Rounds = append(row.Rounds, r)
	}
	d := median(row.Rounds, func(r benchRound) float64 { return r.RooflineShare })
	row.BandwidthGBs, row.BufferGBs, row.DecodeTokS, row.RooflineShare = d.BandwidthGBs, d.BufferGBs, d.DecodeTokS, d.RooflineShare
	row.PairedShare = median(row.Rounds, func(r benchRound) float64 { return r.PairedShare }).PairedShare
	row.RooflineTokS = d.BandwidthGBs * 1e9 / float64(perToken)
	if llama != nil {
		row.Llama = median(row.Rounds, func(r benchRound) float64 { return r.Llama.RooflineShare }).Llama
	}
	p := median(row.Rounds, func(r benchRound) float64 { return r.PeakShare })
	row.PrefillTokS, row.PrefillGFLOPs, row.FMAPeakGFLOPs = p.PrefillTokS, p.PrefillGFLOPs, p.FMAPeakGFLOPs
	if p.FMAPeakGFLOPs == 0 { // no peak here: the median by rate
		p = median(row.Rounds, func(r benchRound) float64 { return r.PrefillTokS })
		row.PrefillTokS, row.PrefillGFLOPs = p.PrefillTokS, p.PrefillGFLOPs
	}
	return row, nil
}
