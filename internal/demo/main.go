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
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/strata", "the strata binary")
	model := flag.String("model", "", "GGUF model path")
	stages := flag.Int("stages", 3, "pipeline stages")
	prompt := flag.String("prompt", "Once upon a time", "the prompt")
	maxTokens := flag.Int("max-tokens", 64, "tokens to generate")
	mode := flag.String("mode", "cluster", "cluster (init and joins), static (stage nodes and a gateway) or in-process")
	flag.Parse()
	if err := run(*bin, *model, *stages, *prompt, *maxTokens, *mode); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func run(bin, model string, stages int, prompt string, maxTokens int, mode string) error {
	if strings.HasPrefix(model, "hf://") { // into the cache once, with progress
		pull := exec.Command(bin, "pull", model)
		pull.Stderr = os.Stderr
		out, err := pull.Output()
		if err != nil {
			return fmt.Errorf("strata pull %s: %w", model, err)
		}
		model = strings.TrimSpace(string(out))
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp("", "strata-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir) // after the processes below have stopped
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Signal(syscall.SIGTERM)
			p.Wait()
		}
	}()
	switch mode {
	case "cluster":
		if addr, err = startCluster(bin, model, stages, dataDir, &procs); err != nil {
			return err
		}
	case "static", "in-process":
		args := []string{"serve", "--model", model, "--api", addr}
		if mode == "in-process" {
			args = append(args, "--stages", fmt.Sprint(stages))
		} else {
			route, err := startNodes(bin, model, stages, dataDir, &procs)
			if err != nil {
				return err
			}
			args = append(args, "--route", strings.Join(route, ","))
		}
		srv := exec.Command(bin, args...)
		srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
		if err := srv.Start(); err != nil {
			return err
		}
		procs = append(procs, srv)
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
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
		Usage struct {
			PromptTokens        int `json:"prompt_tokens"`
			CompletionTokens    int `json:"completion_tokens"`
			PromptTokensDetails struct {
				CachedTokens int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) == 0 {
		return fmt.Errorf("bad completion %s: %v", raw, err)
	}
	u := out.Usage
	fmt.Printf("prompt: %s\ncompletion (%d stages, greedy): %s\nusage: %d prompt tokens (%d cached), %d completion tokens\n",
		prompt, stages, out.Choices[0].Text, u.PromptTokens, u.PromptTokensDetails.CachedTokens, u.CompletionTokens)
	return nil
}

// startCluster starts `strata init` and n-1 `strata join` processes, each
// offering 1/n of the model's bytes and a little more, waits until every
// layer is served, prints `strata status`, and returns the API address of
// the last member to join.
func startCluster(bin, model string, n int, base string, procs *[]*exec.Cmd) (string, error) {
	fi, err := os.Stat(model)
	if err != nil {
		return "", err
	}
	capacity := fmt.Sprint(fi.Size()/int64(n) + fi.Size()/10)
	var api string
	for i := range n {
		if api, err = freeAddr(); err != nil {
			return "", err
		}
		dir := filepath.Join(base, fmt.Sprintf("member%d", i))
		args := []string{"init"}
		if i > 0 {
			args = []string{"join", "--join-file", filepath.Join(base, "member0", "join")}
		}
		args = append(args, "--model", model, "--data", dir, "--api", api, "--listen", "/ip4/127.0.0.1/tcp/0", "--capacity", capacity)
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		if err := cmd.Start(); err != nil {
			return "", err
		}
		*procs = append(*procs, cmd)
		if i == 0 {
			if _, err := waitFile(filepath.Join(dir, "join"), 60*time.Second); err != nil {
				return "", err
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st struct {
			Nodes []struct {
				State string `json:"state"`
			} `json:"nodes"`
			Uncovered []int `json:"uncovered"`
		}
		if getJSON("http://"+api+"/cluster/status", &st) == nil && len(st.Nodes) == n && len(st.Uncovered) == 0 {
			serving := 0
			for _, nd := range st.Nodes {
				if nd.State == "serving" {
					serving++
				}
			}
			if serving == n {
				break
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the cluster did not serve every layer within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := exec.Command(bin, "status", "--api", api).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("strata status: %v: %s", err, out)
	}
	fmt.Printf("$ strata status\n%s\n", out)
	return api, nil
}

// startNodes starts n `strata node` processes over even layer ranges and
// returns their addresses, read from their data dirs' addr files.
func startNodes(bin, model string, n int, base string, procs *[]*exec.Cmd) ([]string, error) {
	out, err := exec.Command(bin, "model", "inspect", model).Output()
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %v", model, err)
	}
	layers := strings.Count(string(out), "  layer ")
	if layers < n {
		return nil, fmt.Errorf("%s has %d layers, fewer than %d stages", model, layers, n)
	}
	var route []string
	for i := range n {
		lo, hi := i*layers/n, (i+1)*layers/n
		dir := filepath.Join(base, fmt.Sprintf("node%d", i))
		cmd := exec.Command(bin, "node", "--model", model, "--layers", fmt.Sprintf("%d:%d", lo, hi), "--data", dir, "--listen", "/ip4/127.0.0.1/tcp/0")
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		*procs = append(*procs, cmd)
		addr, err := waitFile(filepath.Join(dir, "addr"), 60*time.Second)
		if err != nil {
			return nil, err
		}
		route = append(route, addr)
	}
	return route, nil
}

// waitFile returns the trimmed contents of path once it exists.
func waitFile(path string, timeout time.Duration) (string, error) {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not appear in %v", path, timeout)
		}
	}
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
