package hub

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// Scheme is the prefix of a hub reference.
const Scheme = "hf://"

// DefaultRevision is the revision of a reference that names none.
const DefaultRevision = "main"

// Ref names one file of a repository on the hub, at a revision:
// hf://OWNER/REPO/FILE or hf://OWNER/REPO@REVISION/FILE.
type Ref struct {
	Owner    string // user or organization
	Repo     string // repository name
	Revision string // branch, tag or commit; "main" when the reference names none
	File     string // slash-separated path inside the repository
}

// ErrRef is wrapped by ParseRef's errors.
var ErrRef = errors.New("invalid hub reference")

// IsRef reports whether s is meant as a hub reference (it starts with hf://),
// well formed or not.
func IsRef(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseRef parses hf://OWNER/REPO/FILE or hf://OWNER/REPO@REVISION/FILE.
//
// OWNER and REPO are made of letters, digits, '-', '_' and '.', and are
// neither "." nor "..". REVISION is a branch, tag or commit without '/'
// (branches with a slash in their name cannot be named). FILE may contain
// folders; none of its parts may be empty, "." or "..", and no part of the
// reference may hold a backslash or a control character, so a Ref always
// maps to a path inside the cache.
func ParseRef(s string) (Ref, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Ref{}, fmt.Errorf("%w %q: want %sOWNER/REPO/FILE", ErrRef, s, Scheme)
	}
	owner, rest, ok1 := strings.Cut(rest, "/")
	repo, file, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 {
		return Ref{}, fmt.Errorf("%w %q: want %sOWNER/REPO/FILE", ErrRef, s, Scheme)
	}
	r := Ref{Owner: owner, Repo: repo, Revision: DefaultRevision, File: file}
	if name, rev, ok := strings.Cut(repo, "@"); ok {
		r.Repo, r.Revision = name, rev
	}
	if err := r.Validate(); err != nil {
		return Ref{}, fmt.Errorf("%w %q: %w", ErrRef, s, err)
	}
	return r, nil
}

// Validate reports what is wrong with r, as ParseRef checks it.
func (r Ref) Validate() error {
	if err := checkName("owner", r.Owner); err != nil {
		return err
	}
	if err := checkName("repository", r.Repo); err != nil {
		return err
	}
	if err := checkPart("revision", r.Revision); err != nil {
		return err
	}
	if strings.ContainsAny(r.Revision, "/@") {
		return fmt.Errorf("revision %q holds '/' or '@'", r.Revision)
	}
	if r.File == "" {
		return errors.New("empty file")
	}
	for part := range strings.SplitSeq(r.File, "/") {
		if err := checkPart("file", part); err != nil {
			return fmt.Errorf("%w (in %q)", err, r.File)
		}
	}
	return nil
}

// checkName checks an owner or repository name.
func checkName(what, s string) error {
	if err := checkPart(what, s); err != nil {
		return err
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("%s %q holds %q (want letters, digits, '-', '_', '.')", what, s, c)
		}
	}
	return nil
}

// checkPart checks one path element: not empty, not "." or "..", no
// backslash, NUL or other control character.
func checkPart(what, s string) error {
	switch s {
	case "":
		return fmt.Errorf("empty %s", what)
	case ".", "..":
		return fmt.Errorf("%s %q", what, s)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("%s %q holds %q", what, s, c)
		}
	}
	return nil
}

// String returns the reference as ParseRef reads it; the revision is left
// out when it is "main".
func (r Ref) String() string {
	repo := r.Repo
	if r.Revision != DefaultRevision {
		repo += "@" + r.Revision
	}
	return Scheme + r.Owner + "/" + repo + "/" + r.File
}

// URL returns the file's resolve URL on the hub at endpoint (like
// https://huggingface.co): ENDPOINT/OWNER/REPO/resolve/REVISION/FILE.
func (r Ref) URL(endpoint string) string {
	parts := strings.Split(r.File, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.TrimRight(endpoint, "/") + "/" + url.PathEscape(r.Owner) + "/" + url.PathEscape(r.Repo) +
		"/resolve/" + url.PathEscape(r.Revision) + "/" + strings.Join(parts, "/")
}

// relPath is where r lives inside a cache folder: OWNER/REPO/REVISION/FILE,
// in the OS's separators. For a valid Ref it is local (filepath.IsLocal).
func (r Ref) relPath() string {
	return filepath.Join(r.Owner, r.Repo, r.Revision, filepath.FromSlash(r.File))
}

// withFile returns r naming another file in the same folder of the
// repository.
func (r Ref) withFile(name string) Ref {
	dir := path.Dir(r.File)
	if dir == "." {
		r.File = name
	} else {
		r.File = dir + "/" + name
	}
	return r
}
