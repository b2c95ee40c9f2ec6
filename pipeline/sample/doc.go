// Package sample turns a model's logits into the next token and decides when
// generated text has hit a stop string.
//
// A [Sampler] is built once per request from [Params] and called once per
// generated token. It applies llama.cpp's default chain, in this order:
//
//  1. penalties over the last RepeatLastN ids of the history: the repeat
//     penalty (logit/penalty when the logit is positive, logit*penalty
//     otherwise), then the frequency and presence penalties (logit -=
//     count*frequency + presence), then the logit biases (LogitBias; -100
//     bans a token);
//  2. if Temperature <= 0, the argmax, with ties going to the lowest id;
//     otherwise
//  3. top-k;
//  4. top-p: the smallest set of the most likely tokens whose probability sums
//     to at least TopP, with probabilities from the softmax of the top-k
//     survivors at temperature 1;
//  5. min-p: the tokens whose probability is at least MinP times that of the
//     most likely one;
//  6. temperature: the survivors' logits are divided by Temperature;
//  7. a draw from the softmax of what is left, with the Sampler's seeded
//     random number generator.
//
// Top-p and min-p therefore see the untempered distribution, and temperature
// only reshapes the survivors, as in llama.cpp. NaN logits count as -Inf;
// tokens at -Inf are never drawn; +Inf logits share all the probability; when
// every logit is -Inf or NaN the Sampler falls back to [Greedy].
//
// Sampling costs one or two passes over the vocabulary. Top-k keeps a heap of
// k entries rather than sorting; top-p without top-k drops the tokens too
// unlikely to matter and finds the nucleus with a quickselect on the running
// sum, so nothing sorts the vocabulary.
//
// Structured output: [Sampler.SampleAllowed] draws from the same chain with
// the tokens a [Constraint] refuses masked out. [JSON] is the constraint of
// a JSON object (OpenAI's response_format json_object): a byte-level
// pushdown recognizer run over each candidate token's text, which lets the
// sequence end only once the object is whole; a [JSONSchema] (compiled
// from the subset of JSON Schema that structured-output APIs use) makes
// the constraint of its texts.
//
// A [Stopper] watches the decoded text for stop strings and holds back text
// that might be the start of one, so that a client never sees part of a stop
// string.
//
// End of generation is not decided here: the generation loop stops when the
// tokenizer reports that the sampled id is an end-of-generation token (its
// IsEOG), before the id is decoded and fed to a Stopper.
//
// [TopLogprobs] ranks the most likely tokens with their log-probabilities,
// for the API layer's logprobs output.
//
// The package imports the standard library only. Nothing in it is safe for
// concurrent use; a Sampler, a Constraint and a Stopper belong to one
// request.
package sample
