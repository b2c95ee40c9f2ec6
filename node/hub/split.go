package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/strata-llm/strata/pipeline/gguf"
)

// The metadata keys of llama.cpp's gguf-split.
const (
	keySplitNo      = "split.no"
	keySplitCount   = "split.count"
	keySplitTensors = "split.tensors.count"
	splitPrefix     = "split."
)

// splitName matches the file names of gguf-split: NAME-00001-of-00003.gguf.
var splitName = regexp.MustCompile(`^(.+)-([0-9]{5})-of-([0-9]{5})\.gguf$`)

// split is a split model's name.
type split struct {
	name  string // NAME, of NAME-0000i-of-0000n.gguf
	count int
}

// part returns the file name of part i (1-based).
func (s split) part(i int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.gguf", s.name, i, s.count)
}

// parseSplit recognizes the base name of a part of a split model.
func parseSplit(base string) (split, bool) {
	m := splitName.FindStringSubmatch(base)
	if m == nil {
		return split{}, false
	}
	no, _ := strconv.Atoi(m[2])
	count, _ := strconv.Atoi(m[3])
	if count < 1 || no < 1 || no > count {
		return split{}, false
	}
	return split{name: m[1], count: count}, true
}

// pullSplit pulls every part of a split model and merges them into
// NAME.gguf beside them.
func (p *puller) pullSplit(ctx context.Context, ref Ref, s split) (string, error) {
	merged := ref.withFile(s.name + ".gguf")
	dest := filepath.Join(p.cache, merged.relPath())
	if sum, ok := p.cached(dest); ok {
		p.log.Info("hub cache hit", "ref", merged.String(), "path", dest, "sha256", sum)
		return dest, nil
	}
	parts := make([]string, s.count)
	for i := range parts {
		pp, err := p.pullFile(ctx, ref.withFile(s.part(i+1)))
		if err != nil {
			return "", err
		}
		parts[i] = pp
	}
	sum, err := mergeSplit(dest, parts)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := writeSidecar(dest, sum); err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	p.log.Info("hub merged split model", "ref", merged.String(), "path", dest, "parts", s.count, "sha256", sum)
	for _, pp := range parts {
		for _, f := range []string{pp, pp + sidecarExt} {
			if err := os.Remove(f); err != nil {
				p.log.Warn("hub remove part", "path", f, "err", err)
			}
		}
	}
	return dest, nil
}

// mergeSplit writes the GGUF that the parts of a split model make together
// to dst (through dst.part): the first part's metadata less the split.*
// keys, and every part's tensors in order. It returns the sha256 of what it
// wrote.
func mergeSplit(dst string, parts []string) (string, error) {
	if len(parts) == 0 {
		return "", errors.New("merge: no parts")
	}
	files := make([]*gguf.File, 0, len(parts))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var tensors []gguf.WriteTensor
	for i, pp := range parts {
		f, err := gguf.Open(pp)
		if err != nil {
			return "", fmt.Errorf("merge: %w", err)
		}
		files = append(files, f)
		if err := checkSplitPart(f, i, len(parts)); err != nil {
			return "", fmt.Errorf("merge: %s: %w", filepath.Base(pp), err)
		}
		for j := range f.Tensors {
			t := &f.Tensors[j]
			data := f.TensorData(t)
			if data == nil {
				return "", fmt.Errorf("merge: %s: tensor %q lies outside the file", filepath.Base(pp), t.Name)
			}
			tensors = append(tensors, gguf.WriteTensor{Name: t.Name, Type: t.Type, Dims: t.Dims, Data: data})
		}
	}
	if n, ok := files[0].Uint(keySplitTensors); ok && n != uint64(len(tensors)) {
		return "", fmt.Errorf("merge: the parts hold %d tensors, %s says %d", len(tensors), keySplitTensors, n)
	}
	var kvs []gguf.KV
	for _, kv := range files[0].KV {
		if !strings.HasPrefix(kv.Key, splitPrefix) {
			kvs = append(kvs, kv)
		}
	}

	tmp := dst + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return "", fmt.Errorf("merge: %w", err)
	}
	h := sha256.New()
	err = gguf.Write(io.MultiWriter(out, h), kvs, tensors)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("merge into %s: %w", dst, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkSplitPart checks part i (0-based) of n against its split.* keys; a
// part without them is taken as it comes.
func checkSplitPart(f *gguf.File, i, n int) error {
	if no, ok := f.Uint(keySplitNo); ok && no != uint64(i) {
		return fmt.Errorf("%s is %d, want %d", keySplitNo, no, i)
	}
	if c, ok := f.Uint(keySplitCount); ok && c != uint64(n) {
		return fmt.Errorf("%s is %d, want %d", keySplitCount, c, n)
	}
	return nil
}
