// Package sched is the gateway's continuous-batching scheduler: it decides,
// step after step, which sequences advance, by how many tokens, and in which
// micro-batch, so that every stage of a pipeline is busy with a different
// micro-batch at once.
//
// It is a pure, deterministic state machine in the manner of etcd's raft:
// no goroutines, no clocks, no I/O. Inputs come in through method calls
// ([Scheduler.Submit], [Scheduler.Cancel], [Scheduler.Done],
// [Scheduler.Tick]); work goes out through [Scheduler.Next]; what the clients
// and the stages must be told goes out through [Scheduler.Ready]. The same
// calls in the same order always give the same micro-batches and events.
//
// # The contract
//
// One goroutine, the driver, owns a Scheduler; nothing in it is safe for
// concurrent use. The driver loops:
//
//  1. Submit requests as they arrive (ErrQueueFull is the backpressure) and
//     Cancel those whose client went away;
//  2. call Next until it returns false, and launch each [MicroBatch] into the
//     first stage: for every [Chunk], open a KV cache on each stage when
//     Chunk.Open is set, feed Chunk.Tokens at positions Pos, Pos+1, ..., and
//     sample a token from the last position's logits when Chunk.Logits is
//     set;
//  3. when a micro-batch comes back from the last stage, decide for each
//     sampled token whether it ends the sequence (end of generation or a stop
//     string: the tokenizer and the stopper live with the driver), and report
//     it with Done; a sequence that failed (a stage's KV cache budget is
//     exhausted, say) is reported with its error and fails alone;
//  4. take Ready and act on it, in this order: stream Ready.Tokens to their
//     clients, end the streams in Ready.Finished, then free the KV cache of
//     every sequence in Ready.Release on every stage;
//  5. call Tick at a steady pace when queue timeouts are configured.
//
// The scheduler never launches a sequence while one of its chunks is in
// flight, so positions advance contiguously; a cancelled sequence whose chunk
// is in flight is finished at once but released only when that micro-batch
// comes back, so a stage never sees a chunk for a session it has freed.
// Every admitted sequence is finished exactly once and released exactly once;
// a sequence that never left the queue is finished but never released.
//
// # The policy
//
// Admission is first in, first out, while fewer than Config.MaxSeqs
// sequences are admitted. The sum of the tokens of the micro-batches in
// flight never exceeds Config.MaxBatchTokens; with Config.MaxInFlight equal
// to Config.Stages that is the budget of one pipeline step. Decodes come
// first: the tokens of every ready decoding sequence are reserved before any
// prompt token is scheduled, so a long prompt never stalls the streams.
// Prompts are fed in chunks of at most Config.PrefillChunk tokens, oldest
// sequence first, then new admissions; only a prompt's last chunk asks for
// logits. The ready work is spread over the free in-flight slots (at most
// Stages ways) in groups of about equal token counts, and a group is
// launched as soon as its sequences are ready, not in lock-step with the
// rest of the step: with S stages and at least S decoding sequences, S
// micro-batches are in flight in the steady state. While others are in
// flight, a group takes no more than an even split of all the work, in
// flight and ready, so that groups formed as requests arrive one by one
// even out within a few steps instead of one of them holding most.
//
// The package imports the standard library only.
package sched
