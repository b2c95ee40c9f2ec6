package weights

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/strata-llm/strata/pipeline/gguf"
)

// Source is what a Server serves: parts of model files. digest is the
// digest the source was added under (a Source that serves one file may
// ignore it), part is "" for the header or a tensor's name, off is within
// the part.
//
// A Server calls it from many goroutines at once.
type Source interface {
	// Size returns the size of the part, and whether the source holds it.
	Size(digest, part string) (int64, bool)
	// Read fills p with the part's bytes from off. It fails with
	// ErrNotHeld for a part the source does not hold and ErrRange when
	// [off, off+len(p)) is not within the part.
	Read(digest, part string, off int64, p []byte) error
}

// FileSource serves one GGUF file: its header and every tensor it holds.
// For a full model file that is every part; for a slice, its tensors and
// the original file's header (from the slice's sidecar).
type FileSource struct {
	f      *gguf.File
	header []byte
	digest string
}

// NewFileSource serves f: its tensors (through f's TensorData, so f must
// stay open while the source is served) and header, the header of the
// original file ([0, DataOffset) of it, or the whole file when shorter),
// which belongs to the source from then on.
func NewFileSource(f *gguf.File, header []byte) *FileSource {
	d, _ := f.String(KeySliceDigest)
	return &FileSource{f: f, header: header, digest: d}
}

// OpenSource opens the GGUF file at path for serving: a full model file,
// or a slice made by Fetch, whose sidecar header it reads and checks
// against the slice's record of it. Close releases it.
func OpenSource(path string) (*FileSource, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	var header []byte
	if _, isSlice := f.String(KeySliceDigest); isSlice {
		header, err = readSidecar(path, f)
	} else {
		header, err = readPrefix(path, int64(f.DataOffset))
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open source %s: %w", path, err)
	}
	return NewFileSource(f, header), nil
}

// readPrefix reads the first n bytes of the file at path (fewer when it
// is shorter).
func readPrefix(path string, n int64) ([]byte, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	return io.ReadAll(io.LimitReader(fd, n))
}

// readSidecar reads the original header of the slice f at path and checks
// it against the hash the slice records.
func readSidecar(path string, f *gguf.File) ([]byte, error) {
	want, _ := f.String(KeySliceHeader)
	b, err := os.ReadFile(HeaderPath(path))
	if err != nil {
		return nil, fmt.Errorf("slice header: %w", err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != want {
		return nil, fmt.Errorf("slice header %s does not match the slice's record of it", HeaderPath(path))
	}
	return b, nil
}

// Digest returns the digest a slice records (KeySliceDigest), or "" for a
// full file (whose digest is the hash of the whole file: BuildManifest
// computes it).
func (s *FileSource) Digest() string { return s.digest }

// File returns the served file.
func (s *FileSource) File() *gguf.File { return s.f }

// Close closes the file; a Server must no longer serve the source (Remove
// it first).
func (s *FileSource) Close() error { return s.f.Close() }

// Size implements Source.
func (s *FileSource) Size(_, part string) (int64, bool) {
	if part == "" {
		return int64(len(s.header)), true
	}
	t, ok := s.f.Tensor(part)
	if !ok {
		return 0, false
	}
	return int64(t.Size), true
}

// Read implements Source.
func (s *FileSource) Read(_, part string, off int64, p []byte) error {
	var b []byte
	if part == "" {
		b = s.header
	} else {
		t, ok := s.f.Tensor(part)
		if !ok {
			return ErrNotHeld
		}
		if b = s.f.TensorData(t); b == nil {
			return ErrNotHeld // closed
		}
	}
	if off < 0 || off > int64(len(b)) || int64(len(p)) > int64(len(b))-off {
		return ErrRange
	}
	copy(p, b[off:])
	return nil
}
