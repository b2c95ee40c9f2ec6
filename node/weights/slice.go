package weights

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/strata-llm/strata/cluster"
	"github.com/strata-llm/strata/pipeline/gguf"
)

// Keys of the metadata Fetch adds to a slice.
const (
	// KeySliceDigest is the digest of the model file the slice was cut
	// from ("sha256:HEX"): its presence marks a file as a slice.
	KeySliceDigest = "strata.slice.digest"
	// KeySliceHeader is the hex sha256 of the original file's header,
	// kept in the sidecar (HeaderPath).
	KeySliceHeader = "strata.slice.header_sha256"
)

// ErrNotSlice: a file is not a complete slice of the model, or not of the
// tensors asked for.
var ErrNotSlice = errors.New("not a slice of the model")

// HeaderPath returns the path of the sidecar of the slice at path: the
// original file's header, which a node holding the slice serves.
func HeaderPath(slice string) string { return slice + ".header" }

// SliceHas reports whether the file at path is a complete slice of the
// model digest that holds every tensor of parts, with its sidecar. It
// reads the slice's header and the sidecar, not the tensors (VerifySlice
// hashes those).
func SliceHas(path, digest string, parts []string) bool {
	return CheckSlice(path, digest, parts, nil) == nil
}

// CheckSlice returns why the file at path is not a complete slice of the
// model digest holding every tensor of parts (an error wrapping
// ErrNotSlice, or an I/O error), or nil. The slice's tensors must agree in
// name, type and shape with the original header in the sidecar; with a
// manifest, the sidecar must also match its header's hashes.
func CheckSlice(path, digest string, parts []string, m *cluster.Manifest) error {
	f, err := gguf.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotSlice, err)
	}
	defer f.Close()
	if d, _ := f.String(KeySliceDigest); d != digest {
		return fmt.Errorf("%w: %s is a slice of %q, want %q", ErrNotSlice, path, d, digest)
	}
	header, err := readSidecar(path, f)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotSlice, err)
	}
	if m != nil {
		if i, err := verifyPart(header, &m.Header, m.ChunkSize); err != nil {
			return fmt.Errorf("%w: sidecar chunk %d: %w", ErrNotSlice, i, err)
		}
	}
	orig, err := gguf.ParseHeader(header)
	if err != nil {
		return fmt.Errorf("%w: sidecar: %w", ErrNotSlice, err)
	}
	for _, name := range parts {
		if _, ok := f.Tensor(name); !ok {
			return fmt.Errorf("%w: %s holds no tensor %q", ErrNotSlice, path, name)
		}
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		o, ok := orig.Tensor(t.Name)
		if !ok || o.Type != t.Type || !slices.Equal(o.Dims, t.Dims) {
			return fmt.Errorf("%w: tensor %q of %s differs from the original's", ErrNotSlice, t.Name, path)
		}
	}
	return nil
}

// VerifySlice checks the slice at path as CheckSlice does with m, then
// hashes every chunk of each of its tensors against m.
func VerifySlice(path, digest string, m *cluster.Manifest) error {
	if err := checkManifest(m); err != nil {
		return err
	}
	if err := CheckSlice(path, digest, nil, m); err != nil {
		return err
	}
	f, err := gguf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	byName := make(map[string]*cluster.TensorPart, len(m.Tensors))
	for i := range m.Tensors {
		byName[m.Tensors[i].Name] = &m.Tensors[i]
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		mt, ok := byName[t.Name]
		if !ok || mt.Size != int64(t.Size) {
			return fmt.Errorf("%w: tensor %q is not in the manifest as in the slice", ErrNotSlice, t.Name)
		}
		if k, err := verifyPart(f.TensorData(t), &mt.Part, m.ChunkSize); err != nil {
			return fmt.Errorf("%w: tensor %q chunk %d: %w", ErrNotSlice, t.Name, k, err)
		}
	}
	return nil
}

// verifyPart checks b, a part's bytes, against the part's hashes and
// returns the first chunk that differs.
func verifyPart(b []byte, p *cluster.Part, chunkSize int64) (int, error) {
	if int64(len(b)) != p.Size {
		return 0, fmt.Errorf("%d bytes, want %d", len(b), p.Size)
	}
	if len(p.Hashes) != Chunks(p.Size, chunkSize) {
		return 0, fmt.Errorf("%w: %d hashes for %d bytes", ErrManifest, len(p.Hashes), p.Size)
	}
	for i, want := range p.Hashes {
		lo := int64(i) * chunkSize
		if got := hashHex(b[lo:min(p.Size, lo+chunkSize)]); got != want {
			return i, fmt.Errorf("%w: sha256 %s, want %s", ErrBadChunk, got, want)
		}
	}
	return 0, nil
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// writeFileSync writes b to path through a temporary file, fsyncs it and
// renames it in place.
func writeFileSync(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// syncDir fsyncs a directory, so that renames in it last.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// readAtMost reads the file at path when it is at most n bytes.
func readAtMost(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > n {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, n)
	}
	return b, nil
}
