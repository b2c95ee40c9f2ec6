package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/strata-llm/strata/internal/testdata"
)

// TestDemo runs what `make demo` runs: a 3-member cluster of strata
// processes answering a prompt through the API, and the demo reading the
// answer.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds strata and runs 3 processes")
	}
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/strata").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c := ref.Cases[0]
	if err := run(bin, ref.ModelPath(t), 3, c.Prompt, len(c.GreedyTokens), "cluster"); err != nil {
		t.Fatal(err)
	}
}
