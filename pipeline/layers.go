package pipeline

import (
	"strconv"
	"strings"

	"github.com/strata-llm/strata/pipeline/gguf"
)

// LayerBytes sums the tensor bytes of a GGUF model by transformer block
// (tensors named "blk.N.…"); other holds everything else (embeddings, output
// norm and head). The cluster uses it to weigh placement, and `strata model
// inspect` prints it.
func LayerBytes(f *gguf.File) (perLayer []uint64, other uint64) {
	for _, t := range f.Tensors {
		rest, ok := strings.CutPrefix(t.Name, "blk.")
		if !ok {
			other += t.Size
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 || n > 1<<20 {
			other += t.Size
			continue
		}
		for len(perLayer) <= n {
			perLayer = append(perLayer, 0)
		}
		perLayer[n] += t.Size
	}
	return perLayer, other
}
