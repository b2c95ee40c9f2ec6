package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/strata-llm/strata/kernels"
	"github.com/strata-llm/strata/pipeline/arch"
	"github.com/strata-llm/strata/pipeline/gguf"
	"github.com/strata-llm/strata/pipeline/tokenizer"
)

// SplitOptions configure OpenSplit. The zero value works.
type SplitOptions struct {
	Threads int          // kernel worker threads, shared by the stages; 0: GOMAXPROCS
	Logger  *slog.Logger // nil: slog.Default()
	// Bounds, when set, are the stages' layer boundaries: n+1 increasing
	// layer numbers from 0 to the layer count. Nil: SplitLayers over the
	// layers' bytes.
	Bounds []int
	// KVBudget and IdleTimeout are every stage's (see LocalConfig).
	KVBudget    int64
	IdleTimeout time.Duration
}

// Split is a model file opened as Local stages over consecutive layer
// ranges, in one process, with its tokenizer: what `strata serve --stages N`
// runs.
type Split struct {
	File      *gguf.File
	Config    arch.Config
	Tokenizer *tokenizer.Tokenizer
	Locals    []*Local // in layer order
	pool      *kernels.Pool
}

// OpenSplit loads the GGUF model at path as n Local stages (1 <= n <= its
// layer count), splitting the layers by SplitLayers unless opts.Bounds says
// otherwise. The stages share one worker pool and the mapped file; Close
// releases them.
func OpenSplit(path string, n int, opts SplitOptions) (*Split, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	s := &Split{File: f, pool: kernels.NewPool(opts.Threads)}
	fail := func(err error) (*Split, error) {
		s.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	layers, _ := f.Uint(f.Architecture() + ".block_count")
	if layers == 0 {
		return fail(fmt.Errorf("no %s.block_count in metadata", f.Architecture()))
	}
	bounds := opts.Bounds
	if bounds == nil {
		per, _ := LayerBytes(f)
		if len(per) != int(layers) {
			per = nil // tensors not named by block: split by count
			for range layers {
				per = append(per, 1)
			}
		}
		if bounds, err = SplitLayers(per, n); err != nil {
			return fail(err)
		}
	}
	if err := checkBounds(bounds, n, int(layers)); err != nil {
		return fail(err)
	}
	for i := range n {
		m, err := arch.Load(f, bounds[i], bounds[i+1], arch.Options{Pool: s.pool, Logger: log})
		if err != nil {
			return fail(err)
		}
		s.Config = m.Config()
		s.Locals = append(s.Locals, NewLocal(m, LocalConfig{
			KVBudget: opts.KVBudget, IdleTimeout: opts.IdleTimeout, Logger: log,
		}))
	}
	if s.Tokenizer, err = tokenizer.FromGGUF(f); err != nil {
		return fail(err)
	}
	if v := s.Tokenizer.VocabSize(); v != s.Config.Vocab {
		return fail(fmt.Errorf("tokenizer has %d tokens, the embedding %d", v, s.Config.Vocab))
	}
	log.Info("opened model in stages", "model", path, "stages", n, "layers", bounds)
	return s, nil
}

// Stages returns the Local stages as Stages, in order.
func (s *Split) Stages() []Stage {
	st := make([]Stage, len(s.Locals))
	for i, l := range s.Locals {
		st[i] = l
	}
	return st
}

// NewDriver returns a Driver over the split's stages, with the tokenizer's
// end-of-generation tokens and the model's context length filled into cfg
// where it leaves them unset.
func (s *Split) NewDriver(cfg DriverConfig) (*Driver, error) {
	if cfg.IsEOG == nil {
		cfg.IsEOG = s.Tokenizer.IsEOG
	}
	if cfg.ContextLength == 0 {
		cfg.ContextLength = s.Config.ContextLength
	}
	return NewDriver(s.Stages(), cfg)
}

// Close releases the worker pool and the model file. The stages must not
// be used after it.
func (s *Split) Close() error {
	s.pool.Close()
	return s.File.Close()
}

// SplitLayers cuts layers of the given weights (bytes, say) into n
// contiguous non-empty ranges so that the heaviest range is as light as it
// can be, and returns the n+1 boundaries, from 0 to len(weights). Among the
// best cuts it fills the earlier ranges first (5 equal layers in 3 ranges:
// 2, 2, 1), leaving the last stage, which also runs the output head, the
// lightest. It is pure and deterministic.
func SplitLayers(weights []uint64, n int) ([]int, error) {
	if n < 1 || n > len(weights) {
		return nil, fmt.Errorf("split %d layers into %d stages: %w", len(weights), n, errBadSplit)
	}
	var lo, hi uint64 // the bottleneck is in (lo, hi]
	for _, w := range weights {
		lo = max(lo, w)
		hi += w
	}
	if lo > 0 {
		lo-- // lo itself may be feasible
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if cut(weights, n, mid) != nil {
			hi = mid
		} else {
			lo = mid
		}
	}
	return cut(weights, n, hi), nil
}

var errBadSplit = errors.New("bad layer split")

// cut fills n ranges greedily up to limit each, leaving at least a layer
// for each later range; nil when the layers do not fit.
func cut(weights []uint64, n int, limit uint64) []int {
	bounds := []int{0}
	l := 0
	for i := range n {
		var sum uint64
		last := len(weights) - (n - 1 - i) // layers [l, last) may go to range i
		start := l
		for l < last && (l == start || sum+weights[l] <= limit) {
			if weights[l] > limit {
				return nil
			}
			sum += weights[l]
			l++
		}
		bounds = append(bounds, l)
	}
	if l != len(weights) {
		return nil
	}
	return bounds
}

// checkBounds checks n+1 boundaries over layers layers.
func checkBounds(b []int, n, layers int) error {
	if len(b) != n+1 || b[0] != 0 || b[n] != layers {
		return fmt.Errorf("layer bounds %v for %d stages over %d layers: %w", b, n, layers, errBadSplit)
	}
	for i := range n {
		if b[i] >= b[i+1] {
			return fmt.Errorf("layer bounds %v are not increasing: %w", b, errBadSplit)
		}
	}
	return nil
}
