package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/strata-llm/strata/internal/testdata"
	"github.com/strata-llm/strata/pipeline/sample"
)

// TestOpenAIClient drives a 3-stage node through the official openai-go
// client: a completion whose greedy text is llama.cpp's, and a chat
// completion streamed and not.
func TestOpenAIClient(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	base := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3, APIKeys: []string{"sk-test"}})
	client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	ctx := context.Background()
	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) != 1 {
		t.Fatalf("models: %v %v", models, err)
	}
	model := models.Data[0].ID
	for _, c := range ref.Cases[:3] {
		res, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model:       openai.CompletionNewParamsModel(model),
			Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String(c.Prompt)},
			MaxTokens:   openai.Int(32),
			Temperature: openai.Float(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Choices[0].Text; !c.TextMatches(got) {
			t.Errorf("%q: %q, llama.cpp %q", c.Prompt, got, c.GreedyText)
		}
	}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")}
	chat, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: model, Messages: msgs, MaxTokens: openai.Int(16), Temperature: openai.Float(0)})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].Message.Content == "" || chat.Usage.CompletionTokens == 0 {
		t.Errorf("chat completion: %+v", chat)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: model, Messages: msgs, MaxTokens: openai.Int(16), Temperature: openai.Float(0),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := acc.Choices[0].Message.Content, chat.Choices[0].Message.Content; got != want {
		t.Errorf("streamed chat %q, not streamed %q", got, want)
	}
	if acc.Usage.CompletionTokens != chat.Usage.CompletionTokens {
		t.Errorf("streamed usage %+v, not streamed %+v", acc.Usage, chat.Usage)
	}
	// A wrong key is refused.
	bad := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("sk-wrong"), option.WithMaxRetries(0))
	if _, err := bad.Models.List(ctx); err == nil {
		t.Error("a wrong API key was accepted")
	}
}

// streamCompletion streams a completion and returns its text; with
// disconnectAfter > 0 it hangs up after that many chunks.
func streamCompletion(ctx context.Context, base, prompt string, disconnectAfter int) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body := fmt.Sprintf(`{"model":"llama","prompt":%q,"max_tokens":32,"temperature":0,"stream":true}`, prompt)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	chunks := 0
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		i := strings.Index(data, `"text":"`)
		if i < 0 {
			continue
		}
		s, err := strconv.Unquote(`"` + data[i+8:strings.Index(data[i+8:], `","`)+i+8] + `"`)
		if err != nil {
			return "", fmt.Errorf("chunk %s: %v", data, err)
		}
		text.WriteString(s)
		if chunks++; disconnectAfter > 0 && chunks == disconnectAfter {
			return text.String(), nil // the deferred cancel hangs up
		}
	}
	return text.String(), sc.Err()
}

// metric reads one unlabelled sample from /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestConcurrentClients streams 64 greedy completions at once through a
// 3-stage node: every client that stays gets the reference text; 32 hang up
// mid-stream, and afterwards /metrics shows no sequence active and no KV
// cache in use.
func TestConcurrentClients(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	// Without a prefix cache, which keeps sessions (TestPrefixCacheNode).
	base := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3, MaxSeqs: 64, PrefixCache: -1})
	ctx := context.Background()
	const clients = 64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ref.Cases[i%4] // the four non-empty prompts
			if i%2 == 1 {
				_, err := streamCompletion(ctx, base, c.Prompt, 3)
				errs <- err
				return
			}
			got, err := streamCompletion(ctx, base, c.Prompt, 0)
			if err == nil && !c.TextMatches(got) {
				err = fmt.Errorf("client %d (%q): %q, llama.cpp %q", i, c.Prompt, got, c.GreedyText)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// The server notices the hang-ups asynchronously: give it a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		active, kv := metric(t, base, "strata_sequences_active"), metric(t, base, "strata_kv_cache_bytes")
		if active == 0 && kv == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after every client finished: %v sequences active, %v bytes of KV cache in use", active, kv)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := metric(t, base, "strata_queue_depth"); n != 0 {
		t.Errorf("queue depth %v", n)
	}
	if n := metric(t, base, `strata_stage_forward_seconds_count{stage="2"}`); n == 0 {
		t.Error("no forward latency recorded for the last stage")
	}
}

// TestNodeOpenAIClient runs the Node.js script of node/api/testdata (npm's
// openai package) against a running 3-stage node. It skips when the npm
// packages are not installed, unless STRATA_NODE_CLIENT=1 (as CI sets).
func TestNodeOpenAIClient(t *testing.T) {
	dir := filepath.Join("api", "testdata")
	nodeBin, err := exec.LookPath("node")
	_, statErr := os.Stat(filepath.Join(dir, "node_modules", "openai"))
	if err != nil || statErr != nil {
		if os.Getenv("STRATA_NODE_CLIENT") == "1" {
			t.Fatalf("node or the npm openai package missing (STRATA_NODE_CLIENT=1): %v %v", err, statErr)
		}
		t.Skip("node or node/api/testdata/node_modules missing: npm ci --prefix node/api/testdata")
	}
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	base := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3})
	// Tool calls need a context that holds a tool's description.
	tools := startServe(t, ServeConfig{Model: testdata.Path(t, "models/synth-qwen2.gguf"), Stages: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "openai-client.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "STRATA_API_BASE="+base+"/v1", "STRATA_API_KEY=none", "STRATA_TOOLS_BASE="+tools+"/v1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("openai-client.mjs: %v", err)
	}
}

// TestJSONMode asks a 3-stage node (stories260K, which never saw JSON) for
// chat replies with response_format json_object, greedy and sampled: each
// reply is the start of a JSON object, and a whole one when it ends with
// "stop" (pipeline's TestDriverConstraint sees a sequence end so).
func TestJSONMode(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	base := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3})
	whole := 0
	for i, temp := range []float64{0, 0.8, 1.2, 1.2} {
		content, finish := chatReply(t, base, "Tell me about Lily as JSON.", map[string]string{"type": "json_object"}, temp, i)
		t.Logf("temperature %v, %s: %s", temp, finish, content)
		if !sample.JSONObjectPrefix([]byte(content)) {
			t.Errorf("temperature %v: %q is not the start of a JSON object", temp, content)
		}
		if finish == "stop" {
			if !sample.ValidJSONObject([]byte(content)) {
				t.Errorf("temperature %v: stopped with %q, not a whole JSON object", temp, content)
			}
			whole++
		}
	}
	t.Logf("%d of 4 replies were whole objects within 90 tokens", whole) // a model this small rarely closes one
	status, b := post(t, base+"/v1/chat/completions", map[string]any{"model": "llama",
		"messages": []map[string]string{{"role": "user", "content": "x"}}, "response_format": map[string]string{"type": "json_schema"}})
	if status != 400 || !strings.Contains(string(b), "json_schema.schema") {
		t.Errorf("json_schema without a schema: status %d: %s", status, b)
	}
}

// TestLogitBiasGreedy: on a 3-stage node, banning llama.cpp's first greedy
// token with logit_bias -100 changes the completion's first token, and a
// bias of 0 changes nothing.
func TestLogitBiasGreedy(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	base := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3})
	c := ref.Cases[0]
	first := c.GreedyTokens[0]
	for _, bias := range []float64{0, -100} {
		status, b := post(t, base+"/v1/completions", map[string]any{"model": "llama", "prompt": c.PromptTokens,
			"max_tokens": 4, "temperature": 0, "logit_bias": map[string]float64{strconv.Itoa(first): bias}})
		if status != 200 {
			t.Fatalf("status %d: %s", status, b)
		}
		var out struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) != 1 {
			t.Fatalf("%s: %v", b, err)
		}
		same := strings.HasPrefix(c.GreedyText, out.Choices[0].Text)
		if same != (bias == 0) {
			t.Errorf("bias %v on token %d: %q against llama.cpp's %q", bias, first, out.Choices[0].Text, c.GreedyText)
		}
	}
}

// TestChoicesNode: n choices through a 3-stage node run at once: greedy,
// each is llama.cpp's text; sampled, each with its own seed, they differ.
// The prompt is computed once: the other choices fork it.
func TestChoicesNode(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	base := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3})
	c := ref.Cases[2] // 12 tokens: the choices after the first fork all but 2
	for _, temp := range []float64{0, 1} {
		status, b := post(t, base+"/v1/completions", map[string]any{"model": "llama", "prompt": c.PromptTokens,
			"max_tokens": len(c.GreedyTokens), "temperature": temp, "seed": 3, "n": 4})
		if status != 200 {
			t.Fatalf("status %d: %s", status, b)
		}
		var out struct {
			Choices []struct {
				Index int    `json:"index"`
				Text  string `json:"text"`
			} `json:"choices"`
			Usage struct {
				PromptTokens        int `json:"prompt_tokens"`
				PromptTokensDetails struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) != 4 {
			t.Fatalf("%s: %v", b, err)
		}
		if u := out.Usage; u.PromptTokens != 12 || u.PromptTokensDetails.CachedTokens != 10 {
			t.Errorf("temperature %v: %d prompt tokens, %d cached; want 12 and 10 (the prompt computed once)", temp, u.PromptTokens, u.PromptTokensDetails.CachedTokens)
		}
		distinct := map[string]bool{}
		for i, ch := range out.Choices {
			if ch.Index != i {
				t.Errorf("choice %d has index %d", i, ch.Index)
			}
			if temp == 0 && !c.TextMatches(ch.Text) {
				t.Errorf("greedy choice %d: %q, llama.cpp %q", i, ch.Text, c.GreedyText)
			}
			distinct[ch.Text] = true
		}
		if temp > 0 && len(distinct) < 2 {
			t.Errorf("4 sampled choices, %d distinct: %v", len(distinct), out.Choices)
		}
	}
}

// TestJSONSchemaNode asks a 3-stage node for chat replies under a JSON
// schema (OpenAI's json_schema) and for TGI generations under the same
// schema as a grammar: each reply is the start of a text the schema
// accepts, and a whole one when it ends with "stop".
func TestJSONSchemaNode(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	base := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3})
	const doc = `{"type":"object","properties":{"mood":{"enum":["happy","sad"]},"ok":{"type":"boolean"},"n":{"type":"integer","minimum":3,"maximum":40},` +
		`"p":{"type":"number","minimum":0,"exclusiveMaximum":1},"code":{"type":"string","pattern":"^[a-z]{2}-\\d$"}},` +
		`"required":["mood","ok","n","code"],"additionalProperties":false}`
	schema, err := sample.CompileJSONSchema([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	whole := 0
	check := func(what, text, finish string) {
		t.Logf("%s, %s: %q", what, finish, text)
		if !schema.Prefix([]byte(text)) {
			t.Errorf("%s: %q is not the start of a text the schema accepts", what, text)
		}
		if finish == "stop" || finish == "eos_token" {
			if !schema.Valid([]byte(text)) {
				t.Errorf("%s: ended with %q, not a whole text of the schema", what, text)
			}
			whole++
		}
	}
	defer func() {
		if whole == 0 { // the schema leaves the model little to say: it ends
			t.Error("no reply ended as a whole text of the schema")
		}
	}()
	for i, temp := range []float64{0, 1} {
		content, finish := chatReply(t, base, "How is Lily?",
			map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "mood", "schema": json.RawMessage(doc)}}, temp, i)
		check(fmt.Sprintf("chat, temperature %v", temp), content, finish)
	}
	text, finish := tgiGenerate(t, base, map[string]any{"grammar": map[string]any{"type": "json", "value": json.RawMessage(doc)}, "max_new_tokens": 90})
	check("TGI grammar", text, finish)
}

// tgiGenerate asks base's TGI /generate route to go on from "Lily was"
// with params, and returns the generated text and the finish reason.
func tgiGenerate(t *testing.T, base string, params map[string]any) (text, finish string) {
	t.Helper()
	status, b := post(t, base+"/generate", map[string]any{"inputs": "Lily was", "parameters": params})
	if status != 200 {
		t.Fatalf("TGI: status %d: %s", status, b)
	}
	var gen struct {
		GeneratedText string `json:"generated_text"`
		Details       struct {
			FinishReason string `json:"finish_reason"`
		} `json:"details"`
	}
	if err := json.Unmarshal(b, &gen); err != nil {
		t.Fatal(err)
	}
	return gen.GeneratedText, gen.Details.FinishReason
}

// TestRegexNode asks a 3-stage node for TGI generations under a regex
// grammar: each text matches it whole, by Go's regexp, and ends there.
func TestRegexNode(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	base := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3})
	const expr = `( [a-z]+){2,4}\. (yes|no)`
	match := regexp.MustCompile(`^(?:` + expr + `)$`)
	for i, sampled := range []bool{false, true} {
		params := map[string]any{"grammar": map[string]any{"type": "regex", "value": expr}, "max_new_tokens": 40, "do_sample": sampled, "seed": i}
		if sampled {
			params["temperature"] = 1.0
		}
		text, finish := tgiGenerate(t, base, params)
		t.Logf("sampled %v, %s: %q", sampled, finish, text)
		if finish != "eos_token" || !match.MatchString(text) {
			t.Errorf("sampled %v: %s after %q, which should match %s whole", sampled, finish, text, expr)
		}
	}
	// vLLM's guided_choice on OpenAI's completions route.
	for i := range 3 {
		status, b := post(t, base+"/v1/completions", map[string]any{"model": "llama", "prompt": "Lily was", "max_tokens": 30,
			"temperature": 1, "seed": i, "guided_choice": []string{" happy", " sad", " very sleepy"}})
		var out struct {
			Choices []struct {
				Text         string `json:"text"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(b, &out); status != 200 || err != nil || len(out.Choices) != 1 {
			t.Fatalf("guided_choice: status %d: %s", status, b)
		}
		c := out.Choices[0]
		t.Logf("guided_choice, %s: %q", c.FinishReason, c.Text)
		if c.FinishReason != "stop" || !slices.Contains([]string{" happy", " sad", " very sleepy"}, c.Text) {
			t.Errorf("guided_choice: %s after %q", c.FinishReason, c.Text)
		}
	}
}

// chatReply asks base (the stories260K node, "llama") for one chat reply
// of at most 90 tokens under responseFormat, and returns its content and
// finish reason.
func chatReply(t *testing.T, base, prompt string, responseFormat any, temp float64, seed int) (content, finish string) {
	t.Helper()
	status, b := post(t, base+"/v1/chat/completions", map[string]any{
		"model": "llama", "messages": []map[string]string{{"role": "user", "content": prompt}},
		"response_format": responseFormat, "max_tokens": 90, "temperature": temp, "seed": seed,
	})
	if status != 200 {
		t.Fatalf("status %d: %s", status, b)
	}
	var out struct {
		Choices []struct {
			Message      struct{ Content string } `json:"message"`
			FinishReason string                   `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) != 1 {
		t.Fatalf("%s: %v", b, err)
	}
	return out.Choices[0].Message.Content, out.Choices[0].FinishReason
}

// TestPrefixCacheNode holds a chat of three turns with a 3-stage node,
// with its prefix cache and without: the greedy replies are the same, and
// with the cache each turn after the first reports the prompt tokens it
// took from the last one's session (usage.prompt_tokens_details), as do
// the metrics. 16 clients at once, half of them hanging up, then leave no
// sequence running and no more sessions kept than distinct texts.
func TestPrefixCacheNode(t *testing.T) {
	ref := testdata.LoadReference(t, testdata.Path(t, "reference/stories260K-f32.json"))
	cached := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3})
	plain := startServe(t, ServeConfig{Model: ref.ModelPath(t), Stages: 3, PrefixCache: -1})
	chat := func(base string, msgs []map[string]string) (string, int, int) {
		status, b := post(t, base+"/v1/chat/completions", map[string]any{"model": "llama", "messages": msgs, "max_tokens": 12, "temperature": 0})
		if status != 200 {
			t.Fatalf("status %d: %s", status, b)
		}
		var out struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				PromptTokens        int `json:"prompt_tokens"`
				PromptTokensDetails *struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) != 1 || out.Usage.PromptTokensDetails == nil {
			t.Fatalf("%s: %v", b, err)
		}
		return out.Choices[0].Message.Content, out.Usage.PromptTokens, out.Usage.PromptTokensDetails.CachedTokens
	}
	msgs := []map[string]string{{"role": "user", "content": "Once upon a time, there was a little girl"}}
	total := 0
	for turn := range 3 {
		got, prompt, hit := chat(cached, msgs)
		want, _, miss := chat(plain, msgs)
		if got != want || miss != 0 {
			t.Errorf("turn %d: %q with the cache, %q (%d cached) without", turn, got, want, miss)
		}
		if (hit > 0) != (turn > 0) || hit >= prompt {
			t.Errorf("turn %d: %d of %d prompt tokens cached", turn, hit, prompt)
		}
		t.Logf("turn %d: %d of %d prompt tokens cached: %q", turn, hit, prompt, got)
		total += hit
		msgs = append(msgs, map[string]string{"role": "assistant", "content": got}, map[string]string{"role": "user", "content": "And then?"})
	}
	if n := metric(t, cached, "strata_prefix_cached_tokens_total"); int(n) != total {
		t.Errorf("strata_prefix_cached_tokens_total %v, want %d", n, total)
	}
	if n := metric(t, cached, "strata_prefix_cache_hits_total"); n != 2 {
		t.Errorf("strata_prefix_cache_hits_total %v, want 2", n)
	}

	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			c := ref.Cases[i%4]
			disconnect := 0
			if i%2 == 1 {
				disconnect = 3
			}
			if _, err := streamCompletion(context.Background(), cached, c.Prompt, disconnect); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, cached, "strata_sequences_active") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("sequences still active after every client finished")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Each prompt's full reply holds its hung-up ones as a prefix; the
	// chat's last turn holds the others.
	if n := metric(t, cached, "strata_prefix_cache_sessions"); n < 1 || n > 5 {
		t.Errorf("%v sessions kept", n)
	}
}

// TestToolsNode asks a 3-stage node for a required tool call: the model
// (the synthetic qwen2, random weights, whose context holds this server's
// system message about the tools) writes one under the constraint, and
// the reply is a call to an offered function with arguments its
// parameters accept. Offered tools without a required call, it writes
// text as content; pushed to begin its reply with a brace (logit_bias),
// the grammar of auto mode holds what follows to a call of an offered
// function.
func TestToolsNode(t *testing.T) {
	base := startServe(t, ServeConfig{Model: testdata.Path(t, "models/synth-qwen2.gguf"), Stages: 3})
	tools := []map[string]any{{"type": "function", "function": map[string]any{"name": "get_weather",
		"parameters": map[string]any{"type": "object", "properties": map[string]any{
			"city": map[string]any{"type": "string", "maxLength": 12}, "unit": map[string]any{"enum": []string{"C", "F"}}},
			"required": []string{"city", "unit"}}}}}
	// The token "{", to push a reply in auto mode to begin a call.
	status, b := post(t, base+"/tokenize", map[string]any{"inputs": "{"})
	var toks []struct {
		ID   int    `json:"id"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &toks); status != 200 || err != nil || len(toks) == 0 || toks[len(toks)-1].Text != "{" {
		t.Fatalf("/tokenize: %d %s: %v", status, b, err)
	}
	brace := map[string]float64{strconv.Itoa(toks[len(toks)-1].ID): 100}
	for _, tc := range []struct {
		choice any
		temp   float64
		bias   map[string]float64
	}{{"required", 0, nil}, {"required", 1, nil}, {map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}}, 0.8, nil}, {"auto", 0, nil}, {"auto", 0.8, brace}} {
		status, b := post(t, base+"/v1/chat/completions", map[string]any{"model": "synth-qwen2", "max_tokens": 60, "temperature": tc.temp, "seed": 5,
			"messages": []map[string]string{{"role": "user", "content": "What is the weather in Paris?"}}, "tools": tools, "tool_choice": tc.choice, "logit_bias": tc.bias})
		if status != 200 {
			t.Fatalf("status %d: %s", status, b)
		}
		var out struct {
			Choices []struct {
				Message struct {
					Content   *string `json:"content"`
					ToolCalls []struct {
						Function struct{ Name, Arguments string } `json:"function"`
					} `json:"tool_calls"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) != 1 {
			t.Fatalf("%s: %v", b, err)
		}
		c := out.Choices[0]
		if tc.choice == "auto" && tc.bias == nil {
			if c.FinishReason == "tool_calls" || c.Message.Content == nil || *c.Message.Content == "" {
				t.Errorf("auto: %s", b)
			}
			continue
		}
		if c.FinishReason != "tool_calls" || len(c.Message.ToolCalls) != 1 || c.Message.ToolCalls[0].Function.Name != "get_weather" {
			t.Fatalf("%v: %s", tc.choice, b)
		}
		var args struct {
			City *string `json:"city"`
			Unit string  `json:"unit"`
		}
		if err := json.Unmarshal([]byte(c.Message.ToolCalls[0].Function.Arguments), &args); err != nil || args.City == nil || len([]rune(*args.City)) > 12 || args.Unit != "C" && args.Unit != "F" {
			t.Errorf("%v: arguments %s: %v", tc.choice, c.Message.ToolCalls[0].Function.Arguments, err)
		}
		t.Logf("%v at temperature %v: get_weather(%s)", tc.choice, tc.temp, c.Message.ToolCalls[0].Function.Arguments)
	}
}
