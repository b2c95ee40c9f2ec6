package api_test

// The wire shapes the tests decode responses into, written from the API
// documents independently of the server's own structs.

type chatResponse struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Choices []struct {
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []struct {
				Token       string  `json:"token"`
				Logprob     float64 `json:"logprob"`
				Bytes       []int   `json:"bytes"`
				TopLogprobs []struct {
					Token   string  `json:"token"`
					Logprob float64 `json:"logprob"`
				} `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
}

type completionResponse struct {
	Choices []struct {
		Text     string `json:"text"`
		Logprobs *struct {
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []float64            `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

type tgiToken struct {
	ID      int      `json:"id"`
	Text    string   `json:"text"`
	Logprob *float64 `json:"logprob"`
	Special bool     `json:"special"`
}

type tgiStreamResponse struct {
	Index         int      `json:"index"`
	Token         tgiToken `json:"token"`
	GeneratedText *string  `json:"generated_text"`
	Details       *struct {
		FinishReason    string `json:"finish_reason"`
		GeneratedTokens int    `json:"generated_tokens"`
		InputLength     int    `json:"input_length"`
	} `json:"details"`
}

type tgiGenerateResponse struct {
	GeneratedText string `json:"generated_text"`
	Details       *struct {
		FinishReason string       `json:"finish_reason"`
		Prefill      []tgiToken   `json:"prefill"`
		Tokens       []tgiToken   `json:"tokens"`
		TopTokens    [][]tgiToken `json:"top_tokens"`
	} `json:"details"`
}

type simpleToken struct {
	ID    int    `json:"id"`
	Text  string `json:"text"`
	Start int    `json:"start"`
	Stop  int    `json:"stop"`
}

type tgiError struct {
	Error     string `json:"error"`
	ErrorType string `json:"error_type"`
}

type openAIError struct {
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

type tgiInfo struct {
	ModelID               string `json:"model_id"`
	MaxConcurrentRequests int    `json:"max_concurrent_requests"`
	MaxStopSequences      int    `json:"max_stop_sequences"`
	MaxInputTokens        int    `json:"max_input_tokens"`
	MaxTotalTokens        int    `json:"max_total_tokens"`
	VocabSize             int    `json:"vocab_size"`
	Pipeline              struct {
		Stages []struct {
			Index  int    `json:"index"`
			Peer   string `json:"peer"`
			Layers [2]int `json:"layers"`
		} `json:"stages"`
	} `json:"pipeline"`
}
