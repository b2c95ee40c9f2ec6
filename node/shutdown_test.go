package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-llm/strata/internal/testdata"
)

// streamAfter streams a greedy completion of n tokens from base (its API
// URL), calls stop after the first token, and returns the tokens it got
// and the finish reason.
func streamAfter(t *testing.T, base string, n int, stop func()) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "stories", "prompt": "Once upon a time", "max_tokens": n, "temperature": 0, "stream": true, "ignore_eos": true})
	resp, err := http.Post(base+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %s: %s", resp.Status, b)
	}
	tokens, finish := 0, ""
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var ev struct {
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Error *struct{ Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		if ev.Error != nil {
			t.Fatalf("the stream failed after %d tokens: %s", tokens, ev.Error.Message)
		}
		for _, c := range ev.Choices {
			if c.Text != "" {
				if tokens++; tokens == 1 {
					stop()
				}
			}
			if c.FinishReason != nil {
				finish = *c.FinishReason
			}
		}
	}
	return tokens, finish
}

// TestGracefulShutdown: when a server's context ends (SIGTERM) while a
// generation streams, the generation runs to its end before the server
// stops, for `strata serve` and for a cluster member alike.
func TestGracefulShutdown(t *testing.T) {
	model := testdata.Path(t, "models/stories260K-f32.gguf")
	const n = 120 // of the model's 128 positions
	t.Run("serve", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		addr := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- Serve(ctx, ServeConfig{Model: model, Stages: 2, ModelName: "stories", API: "127.0.0.1:0",
				Logger: slog.New(slog.DiscardHandler), Listening: func(a string) { addr <- a }})
		}()
		var base string
		select {
		case a := <-addr:
			base = "http://" + a
		case err := <-done:
			t.Fatal(err)
		}
		got, finish := streamAfter(t, base, n, cancel)
		if got != n || finish != "length" {
			t.Errorf("stream across the shutdown: %d tokens, finish %q; want %d, length", got, finish, n)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Serve still running")
		}
	})
	t.Run("member", func(t *testing.T) {
		tm := startMember(t, MemberConfig{Model: model, Init: true})
		waitFor(t, "layers served", 30*time.Second, func() bool { return tm.m.Cluster().Map().Covered() })
		got, finish := streamAfter(t, "http://"+tm.api, n, tm.cancel)
		if got != n || finish != "length" {
			t.Errorf("stream across the shutdown: %d tokens, finish %q; want %d, length", got, finish, n)
		}
		if err := runErr(t, tm, 30*time.Second); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
