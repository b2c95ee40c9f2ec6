// Package pipeline runs a model's layers: a whole model in one process
// (Engine), or a pipeline of stages, each over a contiguous range of layers,
// generating for many sequences at once (Driver).
//
// # Stages
//
// A [Stage] runs its layers over a [Batch]: a micro-batch of many sequences,
// each with its own positions, prefill chunks and single decode tokens mixed.
// The first stage embeds the batch's token ids, every stage transforms the
// activations in place, and the last writes the logits of the sequences that
// want them. Each sequence has a KV cache on every stage, its session, opened
// by its first chunk and freed by End. A sequence that fails in a stage (its
// session unknown, the stage's KV budget exhausted) is dropped from the batch
// and reported in Batch.Failed, the others going on; an error from Forward
// fails the whole batch.
//
// [Local] is a stage in this process over an arch.Model, with its sessions'
// caches under a byte budget. [Chain] runs stages one after the other with
// the activations encoded and decoded by a wire.Codec between them, as the
// network would carry them: with wire.Lossless a chain gives, bit for bit,
// the logits of one stage over all the layers. [OpenSplit] opens a model
// file as N Local stages (what `strata serve --stages N` runs).
//
// # The Driver
//
// A [Driver] is the gateway's loop. It owns a continuous-batching scheduler
// (pipeline/sched), samples each sequence's next token (pipeline/sample),
// and runs one goroutine per stage (as many as a ConcurrentStage asks for,
// such as a remote route of several hops), linked by channels of
// MaxInFlight micro-batches:
//
//	Generate ──inbox──▶ loop ──▶ stage 0 ──hop──▶ stage 1 ──hop──▶ … ──▶ stage N-1 ─┐
//	   ▲                 ▲                                                           │
//	   └──── tokens ─────┴──────────────── micro-batches back ◀───────────────────────┘
//
// The scheduler cuts the ready work into as many micro-batches as there are
// stages, and launches each as soon as its sequences are ready, so that
// while stage i works on micro-batch j, stage i+1 works on micro-batch j-1.
// A hop encodes and decodes the activations with the Driver's codec on the
// sending stage's goroutine. When a micro-batch comes back, the loop
// samples, reports to the scheduler, streams the tokens to their Generate
// calls, and ends the sessions of finished sequences on every stage before
// their Generate calls return.
//
// # The prefix cache
//
// With DriverConfig.PrefixCache, a finished sequence's sessions stay on the
// stages, up to a number of positions in all. A request whose prompt
// begins with the tokens one holds (or a running sequence holds) opens its
// session as a fork of it (Seq.From): every stage copies the positions it
// needs, and the request computes only the rest of its prompt, always its
// last two tokens, which keeps its logits those of the whole prompt when
// the positions copied were computed as a prompt (positions a sequence
// generated went through the single-token kernels, which round
// differently). A
// request for a prompt that a running sequence has yet to compute waits
// for it, so that n choices compute their prompt once. Stages say whether
// they take forks ([Forking]); a stage that replays its sessions elsewhere
// learns which are only kept ([Keeper]).
//
// It knows nothing of networks. It may import kernels and its own
// subpackages (gguf, arch, tokenizer, sample, sched, wire), nothing above.
package pipeline
