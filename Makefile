# Strata: `make demo` runs the main job, `make test` passes the tests.
GO       ?= go
BIN      := bin/strata
FUZZTIME ?= 30s
TESTDATA ?= $(or $(STRATA_TESTDATA),$(abspath ../shared/testdata))
# The demo's model: MODEL=..., else $STRATA_MODEL, else the shared test data's
# stories260K, else the same small model pulled from the Hugging Face hub.
HUB_MODEL ?= hf://ggml-org/models-moved/tinyllamas/stories260K.gguf
MODEL    ?= $(or $(STRATA_MODEL),$(wildcard $(TESTDATA)/models/stories260K-f32.gguf),$(HUB_MODEL))
PROMPT   ?= Once upon a time

.PHONY: all build test bench fuzz lint layers demo clean

all: build

## build: the strata binary in bin/, and every package without cgo
build:
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) build -o $(BIN) ./cmd/strata

## test: lint, the layering check, every test at full size, then again under the race detector
## (which shrinks the slowest numeric sweeps), then the kernels and the engine with AVX-512 off
## (GODEBUG), so that a CPU which has it still tests the AVX2 kernels
test: lint layers
	$(GO) test -timeout 20m ./...
	$(GO) test -race -timeout 20m ./...
	GODEBUG=cpu.avx512f=off $(GO) test -timeout 20m ./kernels/ ./pipeline/...

## bench: kernel benchmarks, then decode tok/s of synthetic 1B-shaped models beside the bandwidth roofline
## (LLAMA_BENCH=path/to/llama-bench: llama.cpp's rates on the same files too)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./kernels/ ./pipeline/...
	$(BIN) bench --synth 1b --type f16,q8_0,q4_0 $(if $(LLAMA_BENCH),--llama-bench $(LLAMA_BENCH))

## fuzz: every fuzz target for FUZZTIME each
fuzz:
	.ci/fuzz $(FUZZTIME)

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## layers: fail when an import points up kernels <- pipeline <- cluster <- node <- cmd
layers:
	.ci/layers

## demo: a 3-member cluster (strata init + 2 joins) splits a small real model into 3 stages over libp2p and answers a prompt through the HTTP API
demo: build
	$(GO) run ./internal/demo --bin $(BIN) --model $(MODEL) --stages 3 --prompt "$(PROMPT)"

clean:
	rm -rf bin
