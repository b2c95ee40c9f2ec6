package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-llm/strata/internal/testdata"
)

// TestRunReference runs `strata run --temperature 0 --max-tokens 32 PROMPT`
// in process for every reference model and prompt, and compares stdout with
// llama.cpp's greedy text.
func TestRunReference(t *testing.T) {
	for _, ref := range testdata.References(t) {
		if ref.Dequantized() {
			continue // recorded on an F32 copy of the weights, not this file
		}
		t.Run(ref.ModelFile, func(t *testing.T) {
			model := ref.ModelPath(t)
			for _, c := range ref.Cases {
				var out, errb bytes.Buffer
				args := []string{"run", "--model", model, "--temperature", "0", "--max-tokens", "32", c.Prompt}
				if err := run(context.Background(), args, strings.NewReader(""), &out, &errb); err != nil {
					t.Fatalf("%v: %v\n%s", args, err, errb.String())
				}
				got := strings.TrimSuffix(out.String(), "\n")
				if !c.TextMatches(got) && strings.TrimSpace(got) != strings.TrimSpace(c.GreedyText) {
					t.Errorf("%q:\n got %q\nwant %q", c.Prompt, got, c.GreedyText)
				}
			}
		})
	}
}

// TestBinary builds strata and runs it as a user would: the continuation,
// and nothing else, on stdout.
func TestBinary(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	bin := filepath.Join(t.TempDir(), "strata")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range ref.Cases[:2] {
		cmd := exec.Command(bin, "run", "--model", model, "--temperature", "0", "--max-tokens", "32", c.Prompt)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.String())
		}
		if got := stdout.String(); got != c.GreedyText+"\n" {
			t.Errorf("%q: stdout %q, want %q", c.Prompt, got, c.GreedyText+"\n")
		}
	}
	// Interactive: prompts on stdin, one per line.
	cmd := exec.Command(bin, "run", "--model", model, "--temperature", "0", "--max-tokens", "32")
	cmd.Stdin = strings.NewReader(ref.Cases[0].Prompt + "\n" + ref.Cases[1].Prompt + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := ref.Cases[0].GreedyText + "\n" + ref.Cases[1].GreedyText + "\n"; string(out) != want {
		t.Errorf("interactive stdout %q, want %q", out, want)
	}
}

// TestInspectAndSynth writes a small synthetic model, inspects it and runs it.
func TestInspectAndSynth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	var out, errb bytes.Buffer
	ctx := context.Background()
	args := []string{"model", "synth", "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--ffn", "128", "--vocab", "300", "--type", "q8_0", path}
	if err := run(ctx, args, nil, &out, &errb); err != nil {
		t.Fatalf("synth: %v\n%s", err, errb.String())
	}
	if err := run(ctx, []string{"model", "inspect", path}, nil, &out, &errb); err != nil {
		t.Fatalf("inspect: %v", err)
	}
	for _, want := range []string{"llama.block_count", "blk.1.ffn_down.weight", "Q8_0", "layer 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect output lacks %q", want)
		}
	}
	out.Reset()
	if err := run(ctx, []string{"run", "--model", path, "--max-tokens", "4", "--seed", "3", "hello"}, nil, &out, &errb); err != nil {
		t.Fatalf("run on synth: %v\n%s", err, errb.String())
	}
	if err := run(ctx, []string{"bench", "--model", path, "--tokens", "2", "--prefill", "2", "--bandwidth-mb", "8"}, nil, &out, &errb); err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "of roofline") {
		t.Errorf("bench output: %s", out.String())
	}
	// Without --bandwidth-mb the roofline reads the model's own weights,
	// and a buffer as large is read beside it.
	out.Reset()
	if err := run(ctx, []string{"bench", "--model", path, "--tokens", "2", "--prefill", "2", "--rounds", "1", "--json"}, nil, &out, &errb); err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	var row struct {
		Bandwidth float64 `json:"bandwidth_gb_s"`
		Buffer    float64 `json:"buffer_bandwidth_gb_s"`
		Paired    float64 `json:"paired_roofline_share"`
	}
	if err := json.Unmarshal(out.Bytes(), &row); err != nil || !(row.Bandwidth > 0) || !(row.Buffer > 0) || !(row.Paired > 0) {
		t.Errorf("bench --json: %+v (%v) from %s", row, err, out.String())
	}
	if err := run(ctx, []string{"run", "--model", filepath.Join(t.TempDir(), "missing.gguf"), "x"}, nil, &out, &errb); err == nil {
		t.Error("run on a missing model succeeded")
	}
	_ = os.Remove(path)
}

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		w    int64
		want int
	}{
		{0, 100},
		{gcHeadroom, 100},
		{2 * gcHeadroom, 50},
		{10 << 30, 5},
		{1 << 40, 5},
	} {
		if got := gcPercentFor(c.w); got != c.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", c.w, got, c.want)
		}
	}
}
