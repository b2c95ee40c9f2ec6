package weights

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// DefaultChunkSize is the chunk size of a manifest when BuildManifest is
// given none.
const DefaultChunkSize = 4 << 20

// MaxChunkSize bounds a manifest's chunk size: a fetch holds one chunk in
// memory per worker.
const MaxChunkSize = 64 << 20

// maxHeaderSize bounds the header a fetch holds in memory (real ones are
// a few MB: the vocabulary).
const maxHeaderSize = 256 << 20

// ErrManifest: a manifest is malformed or does not describe the file.
var ErrManifest = errors.New("bad weights manifest")

// BuildManifest reads the GGUF file at path once and returns its manifest,
// with chunks of chunkSize bytes (0: DefaultChunkSize), and its digest,
// "sha256:HEX" of the whole file. The header part is [0, DataOffset) (the
// whole file when a file without tensors ends before DataOffset); each
// tensor part is its data, without the padding after it; tensors are in
// the order of the file's tensor table, with the Layer of "blk.N." names.
func BuildManifest(path string, chunkSize int64) (m *cluster.Manifest, digest string, err error) {
	if chunkSize == 0 {
		chunkSize = DefaultChunkSize
	}
	if chunkSize < 0 || chunkSize > MaxChunkSize {
		return nil, "", fmt.Errorf("build manifest: chunk size %d, want 1 to %d", chunkSize, MaxChunkSize)
	}
	f, err := gguf.Open(path) // the header only is read; the data is hashed below
	if err != nil {
		return nil, "", fmt.Errorf("build manifest: %w", err)
	}
	dataOffset, tensors := f.DataOffset, f.Tensors // metadata stays valid after Close
	f.Close()
	fd, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("build manifest: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("build manifest: %w", err)
	}
	size := st.Size()
	m = &cluster.Manifest{ChunkSize: chunkSize, FileSize: size}
	m.Header = cluster.Part{Offset: 0, Size: int64(min(dataOffset, uint64(size)))}
	for _, t := range tensors {
		m.Tensors = append(m.Tensors, cluster.TensorPart{
			Name:  t.Name,
			Layer: LayerOf(t.Name),
			Part:  cluster.Part{Offset: int64(dataOffset + t.Offset), Size: int64(t.Size)},
		})
	}
	sum, err := hashParts(fd, size, m)
	if err != nil {
		return nil, "", fmt.Errorf("build manifest %s: %w", path, err)
	}
	return m, "sha256:" + hex.EncodeToString(sum), nil
}

// hashParts reads r (size bytes) once, filling in the chunk hashes of m's
// parts, and returns the sha256 of the whole. The whole-file hash and the
// chunk hashes of each block run side by side.
func hashParts(r io.Reader, size int64, m *cluster.Manifest) ([]byte, error) {
	type span struct {
		part  *cluster.Part
		start int64 // absolute
	}
	spans := []span{{&m.Header, 0}}
	for i := range m.Tensors {
		spans = append(spans, span{&m.Tensors[i].Part, m.Tensors[i].Offset})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for _, s := range spans {
		s.part.Hashes = make([]string, 0, Chunks(s.part.Size, m.ChunkSize))
	}

	whole := sha256.New()
	var (
		cur   hash.Hash // the chunk being hashed
		k     int       // spans[k] is the part being hashed or next
		chunk = sha256.New()
	)
	// feed hashes p, which lies at absolute offset pos, into the chunks.
	feed := func(pos int64, p []byte) {
		for len(p) > 0 && k < len(spans) {
			s := spans[k]
			end := s.start + s.part.Size
			if pos >= end { // past this part (or an empty one)
				k++
				continue
			}
			if pos < s.start { // padding before it
				skip := min(s.start-pos, int64(len(p)))
				pos, p = pos+skip, p[skip:]
				continue
			}
			rel := pos - s.start
			chunkEnd := min(s.part.Size, (rel/m.ChunkSize+1)*m.ChunkSize)
			n := min(chunkEnd-rel, int64(len(p)))
			if cur == nil {
				cur = chunk
				cur.Reset()
			}
			cur.Write(p[:n])
			pos, p = pos+n, p[n:]
			if rel+n == chunkEnd {
				s.part.Hashes = append(s.part.Hashes, hex.EncodeToString(cur.Sum(nil)))
				cur = nil
			}
		}
	}

	const block = 4 << 20
	bufs := [2][]byte{make([]byte, block), make([]byte, block)}
	var pos int64
	for i := 0; pos < size; i++ {
		b := bufs[i%2]
		n, err := io.ReadFull(r, b[:min(int64(block), size-pos)])
		if err != nil {
			return nil, fmt.Errorf("read at %d: %w", pos, err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { whole.Write(b[:n]) })
		feed(pos, b[:n])
		wg.Wait()
		pos += int64(n)
	}
	for _, s := range spans {
		if want := Chunks(s.part.Size, m.ChunkSize); len(s.part.Hashes) != want {
			return nil, fmt.Errorf("%w: a part at %d hashed in %d chunks, want %d (file changed while read?)", ErrManifest, s.start, len(s.part.Hashes), want)
		}
	}
	return whole.Sum(nil), nil
}

// Chunks returns the number of chunks of chunkSize in a part of size bytes.
func Chunks(size, chunkSize int64) int {
	return int((size + chunkSize - 1) / chunkSize)
}

// LayerOf returns N for a tensor named "blk.N.*", and -1 for the others.
func LayerOf(name string) int {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok || num == "" || len(num) > 9 || (len(num) > 1 && num[0] == '0') {
		return -1
	}
	n := 0
	for _, c := range []byte(num) {
		if c < '0' || c > '9' {
			return -1
		}
		n = 10*n + int(c-'0')
	}
	return n
}

// checkManifest checks what a fetch relies on: a chunk size within bounds,
// parts within the file with one hash per chunk.
func checkManifest(m *cluster.Manifest) error {
	if m == nil {
		return fmt.Errorf("%w: none", ErrManifest)
	}
	if m.ChunkSize <= 0 || m.ChunkSize > MaxChunkSize {
		return fmt.Errorf("%w: chunk size %d, want 1 to %d", ErrManifest, m.ChunkSize, MaxChunkSize)
	}
	check := func(name string, p *cluster.Part) error {
		if p.Offset < 0 || p.Size < 0 || p.Size > m.FileSize || p.Offset > m.FileSize-p.Size {
			return fmt.Errorf("%w: part %s [%d, +%d) outside the file of %d bytes", ErrManifest, partName(name), p.Offset, p.Size, m.FileSize)
		}
		if want := Chunks(p.Size, m.ChunkSize); len(p.Hashes) != want {
			return fmt.Errorf("%w: part %s has %d hashes, want %d", ErrManifest, partName(name), len(p.Hashes), want)
		}
		for i, h := range p.Hashes {
			if len(h) != 2*sha256.Size {
				return fmt.Errorf("%w: part %s chunk %d: hash %q is not hex sha256", ErrManifest, partName(name), i, h)
			}
		}
		return nil
	}
	if m.Header.Offset != 0 {
		return fmt.Errorf("%w: header at %d, want 0", ErrManifest, m.Header.Offset)
	}
	if m.Header.Size > maxHeaderSize {
		return fmt.Errorf("%w: header of %d bytes, more than the %d allowed", ErrManifest, m.Header.Size, maxHeaderSize)
	}
	if err := check("", &m.Header); err != nil {
		return err
	}
	for i := range m.Tensors {
		if m.Tensors[i].Name == "" {
			return fmt.Errorf("%w: tensor %d has no name", ErrManifest, i)
		}
		if err := check(m.Tensors[i].Name, &m.Tensors[i].Part); err != nil {
			return err
		}
	}
	return nil
}

// partName names a part in messages: "header", or the tensor's name
// quoted.
func partName(part string) string {
	if part == "" {
		return "header"
	}
	return strconv.Quote(part)
}
