package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/kernels"
)

// TestBenchMedian checks that a bench row reports its median round, by the
// share it is chosen for, and the range of the rounds' shares.
func TestBenchMedian(t *testing.T) {
	rounds := []benchRound{{RooflineShare: 0.7, PeakShare: 0.5}, {RooflineShare: 0.5, PeakShare: 0.9}, {RooflineShare: 0.6, PeakShare: 0.6}}
	share := func(r benchRound) float64 { return r.RooflineShare }
	if got := median(rounds, share); got != rounds[2] {
		t.Errorf("median by decode share = %+v, want %+v", got, rounds[2])
	}
	if got := median(rounds, func(r benchRound) float64 { return r.PeakShare }); got != rounds[2] {
		t.Errorf("median by peak share = %+v, want %+v", got, rounds[2])
	}
	if got := median(rounds[:2], share); got != rounds[1] {
		t.Errorf("median of two = %+v, want the lower %+v", got, rounds[1])
	}
	if rounds[0].RooflineShare != 0.7 {
		t.Error("median reordered its argument")
	}
	if got := shareRange(rounds, share); got != "[50-70%]" {
		t.Errorf("shareRange = %q", got)
	}
	if got := shareRange(nil, share); got != "-" {
		t.Errorf("shareRange of no rounds = %q", got)
	}
}

// llamaBenchOut is llama.cpp's llama-bench output (-o jsonl, build
// de3ff81) for a tiny synthetic model, -p 16 -n 8 -r 1.
const llamaBenchOut = `{"build_commit": "de3ff81", "build_number": 1, "cpu_info": "AMD EPYC", "gpu_info": "", "backends": "CPU", "model_filename": "tiny-q4_0.gguf", "model_type": "llama ?B Q4_0", "model_size": 1252352, "model_n_params": 2098432, "n_batch": 2048, "n_ubatch": 512, "n_threads": 2, "cpu_mask": "0x0", "cpu_strict": false, "poll": 50, "type_k": "f16", "type_v": "f16", "n_gpu_layers": -1, "n_cpu_moe": 0, "split_mode": "layer", "main_gpu": 0, "no_kv_offload": false, "flash_attn": -1, "devices": "auto", "tensor_split": "0.00", "tensor_buft_overrides": "none", "load_mode": "auto", "lazy_mode": "auto", "embeddings": false, "no_op_offload": 0, "no_host": false, "fit_target": 0, "fit_min_ctx": 0, "n_prompt": 16, "n_gen": 0, "n_depth": 0, "test_time": "2026-11-29T08:02:52Z", "avg_ns": 752290, "stddev_ns": 0, "avg_ts": 21268.393837, "stddev_ts": 0.000000, "samples_ns": [ 752290 ],"samples_ts": [ 21268.4 ]}
{"build_commit": "de3ff81", "build_number": 1, "cpu_info": "AMD EPYC", "gpu_info": "", "backends": "CPU", "model_filename": "tiny-q4_0.gguf", "model_type": "llama ?B Q4_0", "model_size": 1252352, "model_n_params": 2098432, "n_batch": 2048, "n_ubatch": 512, "n_threads": 2, "cpu_mask": "0x0", "cpu_strict": false, "poll": 50, "type_k": "f16", "type_v": "f16", "n_gpu_layers": -1, "n_cpu_moe": 0, "split_mode": "layer", "main_gpu": 0, "no_kv_offload": false, "flash_attn": -1, "devices": "auto", "tensor_split": "0.00", "tensor_buft_overrides": "none", "load_mode": "auto", "lazy_mode": "auto", "embeddings": false, "no_op_offload": 0, "no_host": false, "fit_target": 0, "fit_min_ctx": 0, "n_prompt": 0, "n_gen": 8, "n_depth": 0, "test_time": "2026-11-29T08:02:52Z", "avg_ns": 1758030, "stddev_ns": 0, "avg_ts": 4550.548057, "stddev_ts": 0.000000, "samples_ns": [ 1758030 ],"samples_ts": [ 4550.55 ]}
`

// TestParseLlamaBench checks that llama-bench's JSON lines give its
// prompt and generation rates, and that output without both, or with a
// bad line or rate, is an error.
func TestParseLlamaBench(t *testing.T) {
	pp, tg, err := parseLlamaBench([]byte(llamaBenchOut))
	if err != nil || pp != 21268.393837 || tg != 4550.548057 {
		t.Fatalf("parseLlamaBench = %v, %v, %v", pp, tg, err)
	}
	lines := strings.SplitAfter(llamaBenchOut, "\n")
	for name, out := range map[string]string{
		"empty":           "",
		"prompt only":     lines[0],
		"generation only": lines[1],
		"not JSON":        lines[0] + "llama-bench: error\n" + lines[1],
		"zero rate":       strings.Replace(llamaBenchOut, `"avg_ts": 4550.548057`, `"avg_ts": 0`, 1),
		"negative rate":   strings.Replace(llamaBenchOut, `"avg_ts": 21268.393837`, `"avg_ts": -1`, 1),
	} {
		if pp, tg, err := parseLlamaBench([]byte(out)); err == nil {
			t.Errorf("%s: parseLlamaBench = %v, %v, want an error", name, pp, tg)
		}
	}
}

// FuzzParseLlamaBench checks that parseLlamaBench never panics and gives
// positive finite rates whenever it succeeds.
func FuzzParseLlamaBench(f *testing.F) {
	f.Add([]byte(llamaBenchOut))
	f.Add([]byte(`{"n_prompt": 1, "avg_ts": 1e400}`))
	f.Add([]byte("{}\n\n{"))
	f.Fuzz(func(t *testing.T, out []byte) {
		pp, tg, err := parseLlamaBench(out)
		if err != nil {
			return
		}
		for _, r := range []float64{pp, tg} {
			if !(r > 0) || math.IsInf(r, 0) {
				t.Fatalf("rates %v, %v from %q", pp, tg, out)
			}
		}
	})
}

// TestBenchLlamaCpp runs strata bench with --llama-bench on a tiny model.
// llama.cpp is not installed where the tests run: a script stands in for
// llama-bench, checks the arguments bench passes and prints llama-bench's
// recorded output.
func TestBenchLlamaCpp(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(out, []byte(llamaBenchOut), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "llama-bench")
	body := "#!/bin/sh\n" +
		`[ "$1 $3 $4 $5 $6 $7 $8 $9 ${10} ${11} ${12}" = "-m -t 1 -p 3 -n 2 -r 1 -o jsonl" ] || { echo "bad arguments: $*" >&2; exit 2; }` + "\n" +
		`[ -f "$2" ] || { echo "no model at $2" >&2; exit 2; }` + "\n" +
		"cat " + out + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "--synth", "tiny", "--type", "q8_0", "--cache", dir, "--threads", "1", "--rounds", "2",
		"--tokens", "2", "--prefill", "3", "--bandwidth-mb", "8", "--llama-bench", script}
	if err := run(context.Background(), args, nil, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"llama.cpp decode tok/s", "4550.55", "21268.39", "tiny-q8_0", "paired", " " + kernels.SIMD() + " "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("bench output lacks %q:\n%s", want, stdout.String())
		}
	}
	os.WriteFile(script, []byte("#!/bin/sh\necho 'error: failed to load model' >&2\nexit 1\n"), 0o755)
	stdout.Reset()
	err := run(context.Background(), args, nil, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "failed to load model") {
		t.Errorf("bench with a failing llama-bench: %v, want its error", err)
	}
}
