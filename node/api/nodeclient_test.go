package api_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-llm/strata/node/api"
)

// TestOpenAINodeClient runs testdata/openai-client.mjs, OpenAI's official
// Node.js client streaming a chat completion and a completion, against a
// test server. It needs node and the client installed with
// "npm ci --prefix node/api/testdata"; without them it skips, unless
// STRATA_NODE_CLIENT=1 (as CI sets once it installs them), when it fails.
func TestOpenAINodeClient(t *testing.T) {
	require := os.Getenv("STRATA_NODE_CLIENT") == "1"
	missing := func(format string, args ...any) {
		t.Helper()
		if require {
			t.Fatalf(format+" (STRATA_NODE_CLIENT=1)", args...)
		}
		t.Skipf(format+"; run: npm ci --prefix node/api/testdata", args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	if _, err := os.Stat(filepath.Join("testdata", "node_modules", "openai", "package.json")); err != nil {
		missing("the openai npm package is not installed in testdata")
	}
	f := newFixture(t, api.Config{APIKeys: []string{testKey}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "openai-client.mjs")
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(),
		"STRATA_API_BASE="+f.srv.URL+"/v1",
		"STRATA_API_KEY="+testKey,
		"STRATA_EXPECT="+testReply,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node openai-client.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the Node.js client failed: %v", err)
	}
}

// TestDashboard runs testdata/dashboard-check.mjs against a test server:
// the dashboard's page and script are served without a key, and its
// render functions show what /info and /metrics answer. It needs node
// (no npm package); without it, it skips unless STRATA_NODE_CLIENT=1.
func TestDashboard(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("STRATA_NODE_CLIENT") == "1" {
			t.Fatal("node is not installed (STRATA_NODE_CLIENT=1)")
		}
		t.Skip("node is not installed")
	}
	f := newFixture(t, api.Config{APIKeys: []string{testKey}}, nil)
	f.do(t, "POST", "/generate", `{"inputs":"Hi"}`, "Authorization", "Bearer "+testKey)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "dashboard-check.mjs")
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(), "STRATA_API_BASE="+f.srv.URL, "STRATA_API_KEY="+testKey)
	out, err := cmd.CombinedOutput()
	t.Logf("node dashboard-check.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the dashboard check failed: %v", err)
	}
}
