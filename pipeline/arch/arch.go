package arch

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// Config holds the hyperparameters of a transformer that the pipeline needs
// to size buffers, caches and wire frames.
type Config struct {
	Arch          string // general.architecture, e.g. "llama", "qwen2"
	Name          string // general.name
	Dim           int    // embedding length (the residual stream width)
	Layers        int    // transformer blocks in the whole model
	Heads         int    // query heads
	KVHeads       int    // key/value heads (== Heads without grouped-query attention)
	HeadDim       int    // dimensions per head
	FFN           int    // feed-forward hidden width
	Vocab         int    // vocabulary size (rows of the embedding table)
	ContextLength int    // trained context; longer sequences run with a warning
	NormEps       float32
	RoPE          kernels.RoPE
}

// KVDim is the width of one position's keys (or values) in one layer.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Seq is one sequence's share of a batch passed to Model.Forward: N
// consecutive rows of the activations, at positions Pos..Pos+N-1 of the
// sequence, attending over Cache (which must hold exactly Pos positions).
type Seq struct {
	Cache *KVCache
	Pos   int
	N     int
}

// Model runs the layers [Lo, Hi) of a model. Embed is available when the
// range starts at layer 0 and Logits when it ends at the last layer.
//
// A Model owns scratch buffers: its methods must not be called concurrently.
// Its weights are views into the file it was loaded from, which must stay
// open while the Model is used.
type Model interface {
	Config() Config
	Range() (lo, hi int)
	// NewCache returns an empty KV cache for one sequence over this range.
	NewCache() *KVCache
	// Embed writes the embeddings of tokens into x, (len(tokens), Dim).
	Embed(x []float32, tokens []int) error
	// Forward runs the range's layers in place over x, (rows, Dim), whose
	// rows belong to seqs in order, and appends their keys and values to
	// each sequence's cache.
	Forward(x []float32, seqs []Seq) error
	// Logits applies the final norm and the output head to the given rows
	// of x, writing (len(rows), Vocab) into logits.
	Logits(logits, x []float32, rows []int) error
}

// Options are what every architecture's loader takes besides the file.
type Options struct {
	Pool   *kernels.Pool // worker pool for the kernels; nil runs on the caller's goroutine
	Logger *slog.Logger  // nil: slog.Default()
	// DequantizeWeights converts every weight matrix to F32 at load, so that
	// products run on float activations (as llama.cpp does on an F32 copy of
	// a quantized model). It costs memory; it exists for reference checks.
	DequantizeWeights bool
}

// LoadFunc builds a Model for layers [lo, hi) of the model in f.
type LoadFunc func(f *gguf.File, lo, hi int, opts Options) (Model, error)

var (
	mu       sync.RWMutex
	registry = map[string]LoadFunc{}
)

// Register makes an architecture loadable under its general.architecture
// name. It panics on a duplicate name (a programming error at init time).
func Register(name string, load LoadFunc) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("arch: duplicate registration of " + name)
	}
	registry[name] = load
}

// Names lists the registered architectures, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	var n []string
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ErrUnsupported is wrapped when a file's architecture or one of its
// features is not implemented.
var ErrUnsupported = errors.New("unsupported model")

// Load builds a Model for layers [lo, hi) of the model in f with the
// architecture registered under f's general.architecture.
func Load(f *gguf.File, lo, hi int, opts Options) (Model, error) {
	name := f.Architecture()
	mu.RLock()
	load := registry[name]
	mu.RUnlock()
	if load == nil {
		return nil, fmt.Errorf("architecture %q (known: %v): %w", name, Names(), ErrUnsupported)
	}
	return load(f, lo, hi, opts)
}
