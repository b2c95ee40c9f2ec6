// Streams a chat completion and a completion from a running Strata API with
// OpenAI's official Node.js client, and checks what comes back. Exits 0 when
// every check passes, 1 otherwise.
//
//   npm ci --prefix node/api/testdata
//   STRATA_API_BASE=http://127.0.0.1:8080/v1 STRATA_API_KEY=sk-... \
//     node node/api/testdata/openai-client.mjs
//
// Environment:
//   STRATA_API_BASE  the API's /v1 URL (default http://127.0.0.1:8080/v1)
//   STRATA_API_KEY   a key of the server's, or any text when it has none
//   STRATA_MODEL     the model to ask for (default: the first of /v1/models)
//   STRATA_EXPECT    when set, the text both replies must start with
//                    (a deterministic test server's reply)
//   STRATA_TOOLS_BASE  when set, the /v1 URL of a server (of a model whose
//                    context holds a tool's description) to ask for
//                    required tool calls, whole and streamed
//   STRATA_LIVE_TOOLS_BASE  when set, and STRATA_API_BASE is not, only this:
//                    the /v1 URL of a server whose every reply is two calls
//                    in <tool_call> tags (node/api's tests), asked with
//                    tool_choice auto, whole and streamed as the calls are
//                    written: the client's stream helper must put together
//                    the calls of the whole reply

import OpenAI from 'openai';

const baseURL = process.env.STRATA_API_BASE || 'http://127.0.0.1:8080/v1';
const apiKey = process.env.STRATA_API_KEY || 'no-key';
const expect = process.env.STRATA_EXPECT;

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });
const failures = [];

function check(ok, what) {
  if (!ok) failures.push(what);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
}

async function main() {
  const models = await client.models.list();
  const model = process.env.STRATA_MODEL || models.data[0]?.id;
  check(typeof model === 'string' && model.length > 0, `a model to use (${model})`);

  // A streamed chat completion, with usage in a last chunk.
  const chat = await client.chat.completions.create({
    model,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say hello.' },
    ],
    max_tokens: 32,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let content = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  let badChunks = 0;
  for await (const chunk of chat) {
    chunks++;
    if (chunk.object !== 'chat.completion.chunk' || typeof chunk.id !== 'string') badChunks++;
    for (const choice of chunk.choices) {
      content += choice.delta?.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  check(chunks > 0 && badChunks === 0, `${chunks} chat.completion.chunk events (${badChunks} malformed)`);
  check(content.length > 0, `chat streamed text: ${JSON.stringify(content)}`);
  check(finish === 'stop' || finish === 'length', `chat finish_reason ${finish}`);
  check(usage !== null && usage.completion_tokens > 0 && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens,
    `chat usage ${JSON.stringify(usage)}`);
  if (expect) check(content.startsWith(expect) || expect.startsWith(content), `chat text matches ${JSON.stringify(expect)}`);

  // A streamed completion.
  const comp = await client.completions.create({
    model,
    prompt: 'Once upon a time',
    max_tokens: 32,
    temperature: 0,
    stream: true,
  });
  let text = '';
  finish = null;
  for await (const chunk of comp) {
    for (const choice of chunk.choices) {
      text += choice.text ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  check(text.length > 0, `completion streamed text: ${JSON.stringify(text)}`);
  check(finish === 'stop' || finish === 'length', `completion finish_reason ${finish}`);
  if (expect) check(text.startsWith(expect) || expect.startsWith(text), `completion text matches ${JSON.stringify(expect)}`);

  // Structured output, as the client writes it: two choices under a JSON
  // schema. Against a real model (no STRATA_EXPECT), a reply that
  // finished with "stop" parses and follows the schema.
  const mood = await client.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'How is Lily?' }],
    max_tokens: 60,
    temperature: 0,
    n: 2,
    response_format: {
      type: 'json_schema',
      json_schema: {
        name: 'mood',
        strict: true,
        schema: {
          type: 'object',
          properties: { mood: { type: 'string', enum: ['happy', 'sad'] }, ok: { type: 'boolean' } },
          required: ['mood', 'ok'],
          additionalProperties: false,
        },
      },
    },
  });
  check(mood.choices.length === 2 && mood.choices.every((c, i) => c.index === i), `json_schema: ${mood.choices.length} choices`);
  if (!expect) {
    for (const c of mood.choices) {
      if (c.finish_reason !== 'stop') continue;
      let v = null;
      try { v = JSON.parse(c.message.content); } catch {}
      check(v !== null && ['happy', 'sad'].includes(v.mood) && typeof v.ok === 'boolean',
        `json_schema reply follows the schema: ${c.message.content}`);
    }
  }

  if (process.env.STRATA_TOOLS_BASE) await tools(process.env.STRATA_TOOLS_BASE);

  // An invalid request is refused in OpenAI's error shape.
  try {
    await client.chat.completions.create({ model, messages: [], max_tokens: 1 });
    check(false, 'empty messages refused');
  } catch (err) {
    check(err instanceof OpenAI.APIError && err.status === 400 && typeof err.message === 'string',
      `empty messages refused with 400 (${err.status}: ${err.message})`);
  }
}

// tools asks for a required call of a function, whole and streamed (the
// client's stream helper puts the deltas together), and checks that the
// client reads a call of it whose arguments parse and follow its
// parameters.
async function tools(url) {
  const tc = new OpenAI({ baseURL: url, apiKey, maxRetries: 0, timeout: 120_000 });
  const model = (await tc.models.list()).data[0]?.id;
  const params = {
    model,
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    max_tokens: 140, // a random model spends many on whitespace; the context is 256
    temperature: 0,
    tools: [{
      type: 'function',
      function: {
        name: 'get_weather',
        parameters: {
          type: 'object',
          properties: { city: { type: 'string', maxLength: 12 }, unit: { type: 'string', enum: ['C', 'F'] } },
          required: ['city', 'unit'],
        },
      },
    }],
    tool_choice: 'required',
  };
  const follows = (call) => {
    let a = null;
    try { a = JSON.parse(call?.function?.arguments); } catch {}
    return call?.type === 'function' && call.function.name === 'get_weather' && typeof call.id === 'string' &&
      a !== null && typeof a.city === 'string' && ['C', 'F'].includes(a.unit);
  };
  const whole = await tc.chat.completions.create(params);
  const w = whole.choices[0];
  check(w.finish_reason === 'tool_calls' && w.message.tool_calls?.length === 1 && follows(w.message.tool_calls[0]),
    `a required tool call: ${JSON.stringify(w.message.tool_calls ?? w)}`);
  const stream = tc.chat.completions.stream(params);
  const final = await stream.finalChatCompletion();
  const s = final.choices[0];
  check(s.finish_reason === 'tool_calls' && s.message.tool_calls?.length === 1 && follows(s.message.tool_calls[0]),
    `a streamed required tool call: ${JSON.stringify(s.message.tool_calls ?? s)}`);
}

// liveTools asks for calls in auto mode, whole and streamed, from a
// server whose reply is two calls to the weather and time functions: the
// stream's deltas, put together by the client's helper, must be the
// whole reply's calls.
async function liveTools(url) {
  const tc = new OpenAI({ baseURL: url, apiKey, maxRetries: 0, timeout: 120_000 });
  const fn = (name, properties) => ({ type: 'function', function: { name, parameters: { type: 'object', properties } } });
  const params = {
    model: (await tc.models.list()).data[0]?.id,
    messages: [{ role: 'user', content: 'The weather and the time?' }],
    max_tokens: 400,
    tools: [fn('get_weather', { city: { type: 'string' } }), fn('get_time', { zone: { type: 'string' } })],
  };
  const calls = (c) => (c.message.tool_calls ?? []).map((t) => [t.id.startsWith('call_'), t.type, t.function.name, JSON.parse(t.function.arguments)]);
  const w = (await tc.chat.completions.create(params)).choices[0];
  const s = (await tc.chat.completions.stream(params).finalChatCompletion()).choices[0];
  const want = JSON.stringify(calls(w));
  check(w.finish_reason === 'tool_calls' && calls(w).length === 2, `two calls in auto mode: ${want}`);
  check(s.finish_reason === 'tool_calls' && JSON.stringify(calls(s)) === want && !s.message.content,
    `the same two calls streamed as they are written: ${JSON.stringify(calls(s))}`);
}

try {
  if (process.env.STRATA_LIVE_TOOLS_BASE && !process.env.STRATA_API_BASE) {
    await liveTools(process.env.STRATA_LIVE_TOOLS_BASE);
  } else {
    await main();
  }
} catch (err) {
  failures.push(String(err));
  console.error(`FAIL ${err?.stack ?? err}`);
}
const target = process.env.STRATA_LIVE_TOOLS_BASE && !process.env.STRATA_API_BASE ? process.env.STRATA_LIVE_TOOLS_BASE : baseURL;
if (failures.length > 0) {
  console.error(`${failures.length} check(s) failed against ${target}`);
  process.exit(1);
}
console.log(`all checks passed against ${target}`);
