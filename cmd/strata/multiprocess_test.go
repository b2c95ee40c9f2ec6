package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-llm/strata/internal/testdata"
)

// buildBinary builds strata into a temporary folder.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProc starts bin with args, stopping it when the test ends, and
// returns it with the first line it prints on stdout.
func startProc(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%v stderr:\n%s", args[:3], stderr.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		if !ok {
			t.Fatalf("%v exited without printing: %s", args, stderr.String())
		}
		return cmd, l
	case <-time.After(60 * time.Second):
		t.Fatalf("%v printed nothing in 60s: %s", args, stderr.String())
	}
	return nil, ""
}

// freeAddr returns a loopback address whose port was free a moment ago,
// for a process the test starts to listen on. The port comes from below the
// kernel's ephemeral range where it can: a port the kernel handed out for
// port 0 and took back can be handed out again at once, and a process's own
// listener on port 0 (its libp2p host, say) once took the API port of the
// process started after it ("bind: address already in use").
func freeAddr(t *testing.T) string {
	low := 32768 // Linux's default start of the ephemeral range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	if low > 11000 {
		for range 100 {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(low-10000)))
			if err == nil {
				defer ln.Close()
				return ln.Addr().String()
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func complete(base, prompt string) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"model": "llama", "prompt": prompt, "max_tokens": 32, "temperature": 0})
	resp, err := http.Post(base+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, string(raw), nil
	}
	var out struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Choices) == 0 {
		return resp.StatusCode, string(raw), fmt.Errorf("bad completion %s", raw)
	}
	return resp.StatusCode, out.Choices[0].Text, nil
}

// TestMultiProcess runs a static pipeline of the built binary: three
// `strata node` processes on 127.0.0.1 serving layer ranges of stories260K
// and a `strata serve --route` gateway. Every reference prompt gives the
// recorded greedy text; then killing the middle process fails the next
// request within 2 s with an error naming that peer.
func TestMultiProcess(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	model := ref.ModelPath(t)
	bin := buildBinary(t)
	var procs []*exec.Cmd
	var addrs []string
	for _, layers := range []string{"0:2", "2:4", "4:5"} {
		dir := t.TempDir()
		p, addr := startProc(t, bin, "node", "--model", model, "--layers", layers, "--data", dir, "--listen", "/ip4/127.0.0.1/tcp/0")
		if !strings.Contains(addr, "/p2p/") {
			t.Fatalf("node printed %q, not a full address", addr)
		}
		procs = append(procs, p)
		addrs = append(addrs, addr)
	}
	api := freeAddr(t)
	startGateway := func() {
		cmd := exec.Command(bin, "serve", "--model", model, "--route", strings.Join(addrs, ","), "--api", api)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if t.Failed() {
				t.Logf("gateway stderr:\n%s", stderr.String())
			}
		})
	}
	startGateway()
	base := "http://" + api
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway did not become healthy")
		}
	}
	for _, c := range ref.Cases {
		code, text, err := complete(base, c.Prompt)
		if err != nil || code != http.StatusOK {
			t.Fatalf("%q: %d %s %v", c.Prompt, code, text, err)
		}
		if !c.TextMatches(text) {
			t.Errorf("%q: %q, llama.cpp %q", c.Prompt, text, c.GreedyText)
		}
	}

	// Kill the middle stage: the next request fails fast, naming it.
	middle := addrs[1][strings.LastIndex(addrs[1], "/")+1:]
	procs[1].Process.Kill()
	procs[1].Wait()
	start := time.Now()
	code, body, err := complete(base, ref.Cases[0].Prompt)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if code == http.StatusOK {
		t.Fatalf("a request through a dead stage succeeded: %s", body)
	}
	if took > 2*time.Second {
		t.Errorf("the failing request took %v", took)
	}
	if !strings.Contains(body, middle) {
		t.Errorf("status %d, error %s: does not name the dead peer %s", code, body, middle)
	}
	t.Logf("dead middle stage: status %d after %v: %s", code, took, body)
}

// TestMultiProcessKillInFlight: a static pipeline of three `strata node`
// processes and a gateway; `kill -9` of the middle process while a 64-token
// stream is in flight ends the stream within 2 s with an error event that
// names the dead peer; nothing hangs, and the gateway answers the next
// request with an error too (a static route has no replacement).
func TestMultiProcessKillInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 50 MB model and runs 4 processes")
	}
	bin := buildBinary(t)
	model := filepath.Join(t.TempDir(), "synth.gguf")
	if out, err := exec.Command(bin, "model", "synth", "--dim", "384", "--layers", "6", "--heads", "6", "--kv-heads", "2",
		"--ffn", "1024", "--vocab", "2000", "--type", "f32", model).CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	var procs []*exec.Cmd
	var addrs []string
	for _, layers := range []string{"0:2", "2:4", "4:6"} {
		p, addr := startProc(t, bin, "node", "--model", model, "--layers", layers, "--data", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0")
		procs = append(procs, p)
		addrs = append(addrs, addr)
	}
	api := freeAddr(t)
	gw := exec.Command(bin, "serve", "--model", model, "--route", strings.Join(addrs, ","), "--api", api, "--model-name", "synth")
	stderr := &syncBuffer{}
	gw.Stderr = stderr
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gw.Process.Signal(syscall.SIGTERM)
		gw.Wait()
		if t.Failed() {
			t.Logf("gateway stderr:\n%s", stderr.String())
		}
	})
	waitUntil(t, "a healthy gateway", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + api + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	middle := addrs[1][strings.LastIndex(addrs[1], "/")+1:]
	body, _ := json.Marshal(map[string]any{"model": "synth", "prompt": "hello world", "max_tokens": 64, "temperature": 0, "stream": true, "ignore_eos": true})
	resp, err := http.Post("http://"+api+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var killed time.Time
	tokens, errEvent := 0, ""
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		if strings.Contains(line, `"error"`) {
			errEvent = line
			break
		}
		if tokens++; tokens == 8 {
			procs[1].Process.Kill() // kill -9
			killed = time.Now()
		}
	}
	took := time.Since(killed)
	procs[1].Wait()
	if errEvent == "" {
		t.Fatalf("the stream ended without an error after %d tokens (the kill came too late?)", tokens)
	}
	if tokens >= 64 {
		t.Fatalf("all %d tokens arrived despite the kill", tokens)
	}
	if took > 2*time.Second {
		t.Errorf("the stream broke off %v after the kill", took)
	}
	if !strings.Contains(errEvent, middle) {
		t.Errorf("error event %s does not name the dead peer %s", errEvent, middle)
	}
	t.Logf("killed after 8 tokens; the stream broke off %v later with %s", took.Round(time.Millisecond), errEvent)
}
