package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-llm/strata/internal/testdata"
)

// startServe runs Serve on a free loopback port and returns its base URL;
// the server stops when the test ends.
func startServe(t *testing.T, cfg ServeConfig) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	cfg.API = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Listening = func(a string) { addr <- a }
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not start listening")
	}
	return ""
}

func post(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestServeStages checks `strata serve --stages N` for N = 1..5 on
// stories260K: every reference prompt, greedy with 32 tokens through
// POST /v1/completions, gives llama.cpp's recorded text; and once streamed.
func TestServeStages(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	for n := 1; n <= 5; n++ {
		t.Run(fmt.Sprintf("stages=%d", n), func(t *testing.T) {
			base := startServe(t, ServeConfig{Model: model, Stages: n})
			for _, c := range ref.Cases {
				code, body := post(t, base+"/v1/completions", map[string]any{
					"model": "llama", "prompt": c.Prompt, "max_tokens": 32, "temperature": 0,
				})
				if code != http.StatusOK {
					t.Errorf("%q: status %d: %s", c.Prompt, code, body)
					continue
				}
				var resp struct {
					Choices []struct {
						Text         string `json:"text"`
						FinishReason string `json:"finish_reason"`
					} `json:"choices"`
				}
				if err := json.Unmarshal(body, &resp); err != nil || len(resp.Choices) != 1 {
					t.Fatalf("%q: %v: %s", c.Prompt, err, body)
				}
				if got := resp.Choices[0].Text; !c.TextMatches(got) {
					t.Errorf("%q: %q, llama.cpp %q", c.Prompt, got, c.GreedyText)
				}
			}
			// Streamed: the SSE chunks concatenate to the same text.
			c := ref.Cases[0]
			b, _ := json.Marshal(map[string]any{"model": "llama", "prompt": c.Prompt, "max_tokens": 32, "temperature": 0, "stream": true})
			resp, err := http.Post(base+"/v1/completions", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var text strings.Builder
			for _, line := range strings.Split(string(raw), "\n") {
				data, ok := strings.CutPrefix(line, "data: ")
				if !ok || data == "[DONE]" {
					continue
				}
				var ch struct {
					Choices []struct {
						Text string `json:"text"`
					} `json:"choices"`
				}
				if err := json.Unmarshal([]byte(data), &ch); err != nil {
					t.Fatalf("bad SSE data %q: %v", data, err)
				}
				for _, x := range ch.Choices {
					text.WriteString(x.Text)
				}
			}
			if !c.TextMatches(text.String()) {
				t.Errorf("streamed %q, llama.cpp %q", text.String(), c.GreedyText)
			}
		})
	}
}
