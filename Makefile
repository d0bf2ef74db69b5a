# losad — build, test, benchmark and demo entry points.
# `make demo` and `make test` work on a fresh Debian machine with Swift: each
# installs what is missing first.

SWIFT ?= swift
SWIFT_BUILD_FLAGS ?=
PYTHON ?= python3

# Installation layout (scripts/install.sh describes each folder). systemd finds units and
# snippets under both /usr/lib and /usr/local/lib, so PREFIX=/usr (packages) and the default
# /usr/local (a local install) need nothing else; the configuration is always in /etc/losad.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
INSTALL_LAYOUT = PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" BINDIR="$(BINDIR)" DATADIR="$(DATADIR)" \
	SYSCONFDIR="$(SYSCONFDIR)" UNITDIR="$(UNITDIR)" SYSUSERSDIR="$(SYSUSERSDIR)" TMPFILESDIR="$(TMPFILESDIR)"

.PHONY: all deps build release test run demo demo-model bench-kernels bench-engine bench-compress bench-schedule bench-scale bench-sparse check-families ckernels-check ckernels-check-emulated llama-cpp random-models bench-kit clean \
	install install-built uninstall check-systemd

all: build

## deps: install the Debian packages losad needs (only those missing)
deps:
	@bash scripts/install-deps.sh

## build: debug build of every target
build: deps
	$(SWIFT) build $(SWIFT_BUILD_FLAGS)

## release: optimised build
release: deps
	$(SWIFT) build -c release $(SWIFT_BUILD_FLAGS)

## test: the whole test suite (what CI runs), with the reference data it compares against. One test at a time:
## on 2 cores Swift Testing's parallel runs put seconds-long numeric tests and the timing-sensitive daemon and
## socket tests on the same 2 concurrency threads, and the latter then time out (measured: 13 failures in
## parallel, none serial; 210 s serial against 104 s parallel).
test: deps
	@references=$$(bash scripts/prepare-test-references.sh) && env $$references $(SWIFT) test --no-parallel $(SWIFT_BUILD_FLAGS)

## run: the daemon in the foreground with Config/local.toml (folders under ./var/); Ctrl-C stops it
run: release
	"$$($(SWIFT) build -c release $(SWIFT_BUILD_FLAGS) --show-bin-path)/losad" run --config Config/local.toml

## demo-model: fetch SmolLM2-135M-Instruct (GGUF Q4_1) into .cache/models
demo-model:
	@bash scripts/fetch-demo-model.sh >/dev/null

## demo: set everything up and run the main job on the demo model
demo: release demo-model
	@bash scripts/demo.sh

## bench-kernels: sgemm and element-wise throughput, side by side with numpy
bench-kernels: release
	@bash scripts/bench-kernels.sh

## ckernels-check: a static C program (no Swift needed) that checks every C kernel on every path the CPU has
## against the scalar reference and prints a decode throughput table: .build/ckernels-check [--threads N]
## (-ffp-contract=off: what the sources' clang pragmas ask for, which gcc ignores)
ckernels-check:
	@mkdir -p .build
	$(CC) -O2 -static -std=gnu11 -ffp-contract=off -Wall -Wno-unknown-pragmas -ISources/CKernels/include -o .build/ckernels-check \
		scripts/ckernels_check.c Sources/CKernels/*.c -lm -lpthread

## ckernels-check-emulated: the same checks with the AVX-512 files compiled against plain-C stand-ins of their
## intrinsics (scripts/ckernels_emulated), for machines without AVX-512: checks the code's logic, not the CPU
ckernels-check-emulated:
	@mkdir -p .build/ckernels-emulated
	$(CC) -O1 -std=gnu11 -ffp-contract=off -Wall -DCK_EMULATED_AVX512 -Iscripts/ckernels_emulated -ISources/CKernels/include \
		-c Sources/CKernels/sparse_avx512.c -o .build/ckernels-emulated/sparse_avx512.o
	$(CC) -O1 -std=gnu11 -ffp-contract=off -Wall -DCK_EMULATED_AVX512 -Iscripts/ckernels_emulated -ISources/CKernels/include \
		-c Sources/CKernels/quant_avx512.c -o .build/ckernels-emulated/quant_avx512.o
	$(CC) -O1 -std=gnu11 -ffp-contract=off -Wall -DCK_EMULATED_AVX512 -Iscripts/ckernels_emulated -ISources/CKernels/include \
		-c Sources/CKernels/quant_avx512_k.c -o .build/ckernels-emulated/quant_avx512_k.o
	$(CC) -O2 -std=gnu11 -ffp-contract=off -Wall -Wno-unknown-pragmas -DCK_EMULATED_AVX512 -ISources/CKernels/include \
		-o .build/ckernels-check-emulated scripts/ckernels_check.c \
		$$(ls Sources/CKernels/*.c | grep -v _avx512) .build/ckernels-emulated/*.o -lm -lpthread
	.build/ckernels-check-emulated --no-bench

## check-families: real models of the other families (Gemma 3 270M from PyPI): losad's perplexity against transformers', within 0.5%
check-families:
	@bash scripts/check-families.sh

## bench-engine: forward and LoRA training-step tokens/s and peak RSS on the demo model, side by side with PyTorch
bench-engine: release demo-model
	@bash scripts/bench-engine.sh

## bench-compress: the compression figures on the demo model (quick profile; LoSA vs pruned-only vs dense LoRA at 50%/70%, each with cross-entropy and with distillation; 2:4)
bench-compress: release demo-model
	@bash scripts/bench-compress.sh

## bench-schedule: the LoSA schedule sweep at 50% with the quick budget (iterations, pruning score, learning rate, warm-up,
##   the last iteration's share), one table with the plain baseline
bench-schedule: release demo-model
	@LOSAD_BENCH_RUNS=schedule bash scripts/bench-compress.sh

## bench-scale: losad compress on the demo model, Gemma 3 270M and random LLaMA shapes of ~1B and ~7B parameters with one
##   reduced budget: parameters, peak RSS against the job's memory estimate, seconds per calibration and training token
bench-scale: release demo-model
	@bash scripts/bench-scale.sh

## bench-sparse: decode/prefill tokens/s of losad's sparse files (8- and 4-bit, 50% and 70%) against dense Q8_0/Q4_0,
##   losad's own and llama.cpp's, on the demo model and a 1B-shaped random model, 2 threads, one table
bench-sparse: release demo-model llama-cpp random-models
	@bash scripts/bench-sparse.sh

## llama-cpp: the decode-speed peer: llama.cpp's llama-bench, llama-completion and llama-perplexity (CPU, native,
##   Release) built from the llama-cpp-python source distribution on PyPI into .cache/llama.cpp/bin (once)
llama-cpp:
	@bash scripts/build-llama-cpp.sh

## random-models: LLaMA models of TinyLlama-1.1B's shape with random weights, GGUF Q8_0 and Q4_0, in .cache/models/random
random-models: demo-model
	@python=$$(bash scripts/python-env.sh) && for type in Q8_0 Q4_0; do \
		[ -s .cache/models/random/tinyllama-1b-$$type.gguf ] || "$$python" scripts/make_random_llama.py tinyllama-1b --type $$type || exit 1; \
	done

## bench-kit: packs bench-sparse for a machine without Swift or network (an AVX-512 server lent for minutes) into
##   .cache/bench-kit (stripped static-runtime losad with its libraries, ckernels-check, llama.cpp's sources);
##   there, `bash scripts/bench-kit-run.sh` checks the kernels and prints the table for a 1B-shaped random model
bench-kit: deps demo-model
	@bash scripts/bench-kit.sh

## install: binaries (release build), systemd units, sysusers/tmpfiles snippets, configuration,
##   completions and the varlink interface under PREFIX (default /usr/local); DESTDIR stages.
##   Rebuilds first when swift is on PATH (often not under sudo: then `make release` beforehand)
install:
	@if command -v $(SWIFT) >/dev/null 2>&1; then $(MAKE) --no-print-directory release; fi
	@$(INSTALL_LAYOUT) BUILT="$(or $(BUILT),$(CURDIR)/.build/release)" bash scripts/install.sh install

## install-built: the same without building, from BUILT=FOLDER (default .build/release)
install-built:
	@$(INSTALL_LAYOUT) BUILT="$(or $(BUILT),$(CURDIR)/.build/release)" bash scripts/install.sh install

## uninstall: remove what install put there (configuration, ledger and the user losad stay)
uninstall:
	@$(INSTALL_LAYOUT) bash scripts/install.sh uninstall

## check-systemd: units verified on a DESTDIR install, their security exposure, the daemon confined
check-systemd: deps
	$(SWIFT) build --build-tests $(SWIFT_BUILD_FLAGS)
	@bash scripts/check-systemd.sh "$$($(SWIFT) build $(SWIFT_BUILD_FLAGS) --show-bin-path)"
	$(SWIFT) test --skip-build $(SWIFT_BUILD_FLAGS) --filter 'SystemdUnitTests|ConfinementTests'

clean:
	rm -rf .build
