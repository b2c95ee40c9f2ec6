package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline"
	"github.com/strata-llm/strata/pipeline/arch/llama"
	"github.com/strata-llm/strata/pipeline/gguf"
)

func inspectCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "print every element of long arrays")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: strata model inspect [--all] PATH")
	}
	f, err := gguf.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "file\t%s\nversion\t%d\nalignment\t%d\ntensors\t%d\n\nmetadata:\n", pos[0], f.Version, f.Alignment, len(f.Tensors))
	for _, kv := range f.KV {
		fmt.Fprintf(w, "  %s\t%s\n", kv.Key, formatValue(kv.Value, *all))
	}
	fmt.Fprintf(w, "\ntensors:\n  name\ttype\tdims\tbytes\n")
	var total uint64
	for _, t := range f.Tensors {
		fmt.Fprintf(w, "  %s\t%v\t%v\t%d\n", t.Name, t.Type, t.Dims, t.Size)
		total += t.Size
	}
	per, other := pipeline.LayerBytes(f)
	fmt.Fprintf(w, "\nbytes per layer:\n")
	for i, b := range per {
		fmt.Fprintf(w, "  layer %d\t%s\n", i, human(b))
	}
	fmt.Fprintf(w, "  embeddings and head\t%s\n  total\t%s\n", human(other), human(total))
	return w.Flush()
}

// formatValue prints a metadata value, eliding long arrays.
func formatValue(v gguf.Value, all bool) string {
	if v.Type != gguf.TypeArray {
		if s, ok := v.V.(string); ok {
			return fmt.Sprintf("%q", s)
		}
		return fmt.Sprint(v.V)
	}
	s := fmt.Sprint(v.V)
	if !all && len(s) > 120 {
		n := "?"
		switch a := v.V.(type) {
		case []string:
			n = fmt.Sprint(len(a))
		case []float32:
			n = fmt.Sprint(len(a))
		case []int32:
			n = fmt.Sprint(len(a))
		}
		s = s[:100] + fmt.Sprintf("… (%s elements)", n)
	}
	return s
}

func human(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func synthCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model synth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s llama.SynthSpec
	fs.IntVar(&s.Dim, "dim", 2048, "embedding width")
	fs.IntVar(&s.Layers, "layers", 16, "transformer blocks")
	fs.IntVar(&s.Heads, "heads", 32, "attention heads")
	fs.IntVar(&s.KVHeads, "kv-heads", 8, "key/value heads")
	fs.IntVar(&s.FFN, "ffn", 5632, "feed-forward width")
	fs.IntVar(&s.Vocab, "vocab", 32000, "vocabulary size")
	fs.IntVar(&s.Context, "context", 2048, "context length")
	fs.Uint64Var(&s.Seed, "seed", 1, "random seed")
	typ := fs.String("type", "f16", "tensor type of the weights: "+typeNames())
	outType := fs.String("output-type", "", "tensor type of the output head (default: --type; llama.cpp's Q4_0 files use q6_k)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: strata model synth [flags] OUT.gguf")
	}
	if s.Type, err = kernels.ParseDType(*typ); err != nil {
		return err
	}
	if *outType != "" {
		if s.OutputType, err = kernels.ParseDType(*outType); err != nil {
			return err
		}
	}
	return writeSynth(pos[0], s)
}

// writeSynth writes a synthetic model to path atomically.
func writeSynth(path string, s llama.SynthSpec) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := llama.Synth(f, s); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func typeNames() string {
	var n []string
	for t := kernels.DType(0); t < 64; t++ {
		if t.Supported() {
			n = append(n, strings.ToLower(t.String()))
		}
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}
