"""End-to-end engine benchmark: losad against PyTorch on the demo model, one table.

    python bench_engine.py ENGINE_BENCHMARK_BINARY [--model PATH] [--steps N] [--warmup N]
    python bench_engine.py --torch-phase PHASE [--model PATH] ...   (one PyTorch phase; the driver runs it)

Both sides: SmolLM2-135M-Instruct from the same GGUF (dequantised to float32), 2 threads, batch
4 × 256 tokens from the same 64-bit LCG, the seven projections of every layer pruned to 50% per row
identically (the in/2 smallest |W|, ties by lower index), sparse LoRA rank 8 on all seven
projections as shared/docs/LOSA.md defines it:

    ΔW = (B·A) ⊙ M · s,   M = (W ≠ 0),   s = 2,   y = x·Wᵀ + dropout(x)·ΔWᵀ

Phases, each in its own process so that the peak RSS (ru_maxrss) is the phase's own:
  forward       inference forward to logits [B·T, V], no adapters (PyTorch: torch.no_grad, model(ids).logits)
  train         one step with dropout 0.1: adapted forward, mean next-token cross-entropy, backward to A and B
  train-nodrop  the same step with dropout 0

Ratio = losad tokens/s ÷ PyTorch tokens/s (≥ 1: losad is faster). The PyTorch LoRA is plain torch
(no peft: peft has no weight-space mask), written to compute exactly the masked product above.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

BATCH, TOKENS, RANK, SCALING = 4, 256, 8, 2.0
PHASES = ["forward", "train", "train-nodrop"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def token_stream(seed, vocabulary):
    """[B][T + 1] ids from the LCG EngineBenchmark uses: x ← x·6364136223846793005 + 1442695040888963407 mod 2⁶⁴."""
    x, mask, windows = seed, (1 << 64) - 1, []
    for _ in range(BATCH):
        window = []
        for _ in range(TOKENS + 1):
            x = (x * 6364136223846793005 + 1442695040888963407) & mask
            window.append((x >> 33) % vocabulary)
        windows.append(window)
    return windows


# MARK: - PyTorch side

def torch_phase(phase, model_path, warmup, steps):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    torch.manual_seed(0)

    class MaskedLoRALinear(nn.Module):
        """y = x·Wᵀ + dropout(x)·((B·A) ⊙ M · s)ᵀ, W frozen, M = (W ≠ 0).   A [r, in], B [out, r]"""

        def __init__(self, base, rank, scaling, dropout):
            super().__init__()
            self.base = base
            self.base.weight.requires_grad_(False)
            out_features, in_features = base.weight.shape
            self.register_buffer("mask", (base.weight != 0).to(base.weight.dtype))
            self.A = nn.Parameter(torch.empty(rank, in_features))
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
            # Nonzero B (as after a first update), as the Swift side does.
            self.B = nn.Parameter(torch.empty(out_features, rank).uniform_(-0.01, 0.01))
            self.scaling = scaling
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            delta = (self.B @ self.A) * self.mask * self.scaling
            return self.base(x) + F.linear(self.dropout(x), delta)

    load_start = time.perf_counter()
    directory, name = os.path.split(os.path.abspath(model_path))
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config = model.config
    projections = [("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"), ("self_attn", "o_proj"),
                   ("mlp", "gate_proj"), ("mlp", "up_proj"), ("mlp", "down_proj")]
    with torch.no_grad():
        for layer in model.model.layers:
            for block, proj in projections:
                w = getattr(getattr(layer, block), proj).weight
                order = torch.sort(w.abs(), dim=1, stable=True).indices  # ties: lower index first
                w.scatter_(1, order[:, : w.shape[1] // 2], 0.0)
    for p in model.parameters():
        p.requires_grad_(False)
    emit({"phase": phase, "event": "loaded", "seconds": time.perf_counter() - load_start,
          "peak_rss_bytes": peak_rss_bytes(), "torch": torch.__version__, "threads": torch.get_num_threads(),
          "attention": getattr(config, "_attn_implementation", "?")})

    stream = torch.tensor(token_stream(42, config.vocab_size), dtype=torch.long)
    inputs, targets = stream[:, :TOKENS].contiguous(), stream[:, 1:].contiguous()

    def timed(body):
        for _ in range(warmup):
            body()
        seconds = []
        for _ in range(steps):
            start = time.perf_counter()
            body()
            seconds.append(time.perf_counter() - start)
        return seconds

    extra = {}
    if phase == "forward":
        model.eval()

        def body():
            with torch.no_grad():
                model(input_ids=inputs, use_cache=False).logits
        seconds = timed(body)
        extra["what"] = "torch.no_grad, model(ids).logits [B, T, V], no adapters"
    else:
        dropout = 0.1 if phase == "train" else 0.0
        for layer in model.model.layers:
            for block, proj in projections:
                parent = getattr(layer, block)
                setattr(parent, proj, MaskedLoRALinear(getattr(parent, proj), RANK, SCALING, dropout))
        model.train()
        adapters = [p for p in model.parameters() if p.requires_grad]
        losses = []

        def body():
            for p in adapters:
                p.grad = None
            logits = model(input_ids=inputs, use_cache=False).logits
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
            loss.backward()
            losses.append(loss.item())
        seconds = timed(body)
        extra.update(loss=losses[-1], dropout=dropout, adapter_parameters=sum(p.numel() for p in adapters),
                     what="set grads None + forward + F.cross_entropy + loss.backward() to A, B")
    median = sorted(seconds)[len(seconds) // 2]
    emit({"phase": phase, "event": "result", "batch": BATCH, "tokens": TOKENS, "step_seconds": seconds,
          "median_seconds": median, "tokens_per_second": BATCH * TOKENS / median,
          "peak_rss_bytes": peak_rss_bytes(), **extra})


def emit(record):
    print(json.dumps(record, sort_keys=True), flush=True)


# MARK: - Driver

def run_phase(command, env):
    process = subprocess.run(command, capture_output=True, text=True, env=env)
    if process.returncode != 0:
        sys.stderr.write(process.stderr)
        raise SystemExit(f"bench_engine: {' '.join(command)} failed with status {process.returncode}")
    records = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    return {r["event"]: r for r in records}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?")
    parser.add_argument("--torch-phase", choices=PHASES)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5 forward, 3 training)")
    args = parser.parse_args()
    if args.torch_phase:
        torch_phase(args.torch_phase, args.model, args.warmup, args.steps or (5 if args.torch_phase == "forward" else 3))
        return
    if not args.binary:
        parser.error("the EngineBenchmark binary is required")

    env = {**os.environ, "LOSAD_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2",
           "MKL_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    rows, info = [], {}
    for phase in PHASES:
        steps = ["--steps", str(args.steps)] if args.steps else []
        common = ["--model", args.model, "--warmup", str(args.warmup)] + steps
        ours = run_phase([args.binary, phase] + common, env)
        theirs = run_phase([sys.executable, os.path.abspath(__file__), "--torch-phase", phase] + common, env)
        info["losad"], info["torch"] = ours["loaded"], theirs["loaded"]
        rows.append((phase, ours, theirs))
        print(f"  {phase}: losad {ours['result']['median_seconds']:.2f} s, "
              f"PyTorch {theirs['result']['median_seconds']:.2f} s per step", file=sys.stderr, flush=True)

    lo, th = info["losad"], info["torch"]
    print(f"losad: OpenBLAS {lo['openblas_core']} x{lo['openblas_threads']}, {lo['workers']} worker threads; "
          f"PyTorch {th['torch']} x{th['threads']} threads, attention {th['attention']}")
    print(f"SmolLM2-135M-Instruct Q4_1 GGUF dequantised to float32, batch {BATCH} x {TOKENS} tokens, "
          f"7 projections pruned 50% per row on both sides; LoRA rank {RANK}, s = {SCALING:g}, masked (B·A) ⊙ M on both sides")
    print("forward = inference forward to logits, no adapters; train = forward + next-token loss + backward to the adapters")
    print("median of the timed steps after warm-up; peak RSS = ru_maxrss of the phase's own process (includes model load)")
    print()
    header = (f"{'phase':<22} {'losad tok/s':>12} {'PyTorch tok/s':>14} {'ratio':>7} "
              f"{'losad peak RSS':>15} {'PyTorch peak RSS':>17}")
    print(header)
    print("-" * len(header))
    labels = {"forward": "forward (logits)", "train": "train step, drop 0.1", "train-nodrop": "train step, drop 0"}
    for phase, ours, theirs in rows:
        a, b = ours["result"], theirs["result"]
        print(f"{labels[phase]:<22} {a['tokens_per_second']:>12.1f} {b['tokens_per_second']:>14.1f} "
              f"{a['tokens_per_second'] / b['tokens_per_second']:>7.2f} "
              f"{a['peak_rss_bytes'] / 2**20:>12.0f} MiB {b['peak_rss_bytes'] / 2**20:>14.0f} MiB")
    print()
    print("losses (last step): " + ", ".join(
        f"{phase} losad {ours['result']['loss']:.4f} / PyTorch {theirs['result']['loss']:.4f}"
        for phase, ours, theirs in rows if "loss" in ours["result"]))


if __name__ == "__main__":
    main()
