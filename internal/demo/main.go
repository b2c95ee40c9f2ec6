// Command demo is what `make demo` runs: it starts `strata serve` with the
// model split into three pipeline stages on a free loopback port, waits for
// /health, asks POST /v1/completions for a continuation, prints the answer
// and the live pipeline from /info, and stops the server.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/strata", "the strata binary")
	model := flag.String("model", "", "GGUF model path")
	stages := flag.Int("stages", 3, "pipeline stages")
	prompt := flag.String("prompt", "Once upon a time", "the prompt")
	maxTokens := flag.Int("max-tokens", 64, "tokens to generate")
	flag.Parse()
	if err := run(*bin, *model, *stages, *prompt, *maxTokens); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(bin, model string, stages int, prompt string, maxTokens int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := exec.Command(bin, "serve", "--model", model, "--stages", fmt.Sprint(stages), "--api", addr)
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	base := "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server at %s did not become healthy", addr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	var info struct {
		Pipeline any `json:"pipeline"`
	}
	if err := getJSON(base+"/info", &info); err == nil {
		b, _ := json.Marshal(info.Pipeline)
		fmt.Printf("pipeline: %s\n", b)
	}
	body, _ := json.Marshal(map[string]any{"model": modelName(base), "prompt": prompt, "max_tokens": maxTokens, "temperature": 0})
	resp, err := http.Post(base+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /v1/completions: %s: %s", resp.Status, raw)
	}
	var out struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
		Usage map[string]int `json:"usage"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) == 0 {
		return fmt.Errorf("bad completion %s: %v", raw, err)
	}
	fmt.Printf("prompt: %s\ncompletion (%d stages, greedy): %s\nusage: %v\n", prompt, stages, out.Choices[0].Text, out.Usage)
	return nil
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// modelName is the first model /v1/models lists.
func modelName(base string) string {
	var m struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if getJSON(base+"/v1/models", &m) != nil || len(m.Data) == 0 {
		return ""
	}
	return m.Data[0].ID
}
