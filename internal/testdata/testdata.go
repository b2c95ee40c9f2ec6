package testdata

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the test data folder without checking that it exists:
// $STRATA_TESTDATA, or ../shared/testdata beside the module root (the nearest
// parent of the working directory holding go.mod). It returns "" when neither
// can be determined.
func Dir() string {
	if d := os.Getenv("STRATA_TESTDATA"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "testdata")
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Path returns the path of rel (slash-separated, e.g. "models/stories260K-f32.gguf")
// inside the test data folder. When the file is absent it skips tb, or fails
// it under CI=true.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(Dir(), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("test data %s is missing (CI=true): %v", rel, err)
		}
		tb.Skipf("test data %s not found (set STRATA_TESTDATA): %v", rel, err)
	}
	return p
}

// Glob returns the files matching pattern (slash-separated, relative to the
// test data folder), sorted. When none match it skips tb, or fails it under
// CI=true.
func Glob(tb testing.TB, pattern string) []string {
	tb.Helper()
	m, _ := filepath.Glob(filepath.Join(Dir(), filepath.FromSlash(pattern)))
	if len(m) == 0 {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("no test data matches %s (CI=true)", pattern)
		}
		tb.Skipf("no test data matches %s (set STRATA_TESTDATA)", pattern)
	}
	return m
}
