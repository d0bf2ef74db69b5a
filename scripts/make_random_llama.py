#!/usr/bin/env python3
"""Writes a LLaMA-architecture model with random weights at a named shape, for benchmarks that need
device-sized models whose weights do not fit in cache (issues 12 and 14). Not a model that says
anything: weights are normal with std 0.02, RMSNorm weights are 1.

    .venv-test/bin/python scripts/make_random_llama.py SHAPE [--type Q8_0|Q4_0|F16]
        [--embedding-type Q8_0|same] [--format gguf|hf] [--seed N] [--out PATH] [--vocab-from GGUF]

SHAPE        C     L   H   Hkv  F      rope theta  context  tied embeddings
demo-135m    576   30  9   3    1536   100000      8192     yes   (SmolLM2-135M's shape, for quick checks)
tinyllama-1b 2048  22  32  4    5632   10000       2048     no    (TinyLlama-1.1B's shape)
llama2-7b    4096  32  32  32   11008  10000       4096     no    (Llama-2-7B's shape)

The vocabulary (V = 49152) and the tokenizer are the demo model's (SmolLM2-135M-Instruct, GGUF
"gpt2" byte-level BPE), copied from its GGUF metadata, so that llama.cpp and losad both load the
files with a tokenizer they know. That is why V differs from TinyLlama's and Llama-2's 32000: the
embedding and output matrices are 1.54x theirs (the 1B shape has ~1.18B parameters, not 1.10B).

Formats:
  gguf  one GGUF file: projections in --type (Q8_0, Q4_0 or F16), token_embd and output in
        --embedding-type (Q8_0 by default, or "same" as the projections), norms in F32. Metadata as
        llama.cpp's converter writes it for LLaMA; q/k rows permuted as the converter does.
  hf    a Hugging Face folder: config.json, BF16 safetensors (one file, or shards of --shard-gib
        with model.safetensors.index.json), tokenizer.json built from the GGUF tokenizer metadata
        with the `tokenizers` package (BPE, the "smollm" pre-tokenizer: single digits, then
        byte-level with GPT-2's regex), tokenizer_config.json.
The same --seed gives the same float weights in both formats (before rounding to the stored type).

Streams tensor by tensor, in chunks of rows: memory stays far below 2 GB for every shape (the peak
RSS is printed). Each tensor's numbers come from its own generator, seeded by (seed, tensor name).
"""
import argparse
import json
import os
import pathlib
import resource
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
STD = 0.02
CHUNK_ELEMENTS = 1 << 22  # ~4M values (16 MB of float32) generated and encoded at a time


@dataclass(frozen=True)
class Shape:
    hidden: int          # C
    layers: int          # L
    heads: int           # H
    kv_heads: int        # Hkv
    ffn: int             # F
    rope_theta: float
    context: int
    tied: bool
    rms_eps: float = 1e-5

    @property
    def head_dim(self) -> int:  # D
        return self.hidden // self.heads


SHAPES = {
    "demo-135m": Shape(hidden=576, layers=30, heads=9, kv_heads=3, ffn=1536, rope_theta=100000.0, context=8192, tied=True),
    "tinyllama-1b": Shape(hidden=2048, layers=22, heads=32, kv_heads=4, ffn=5632, rope_theta=10000.0, context=2048, tied=False),
    "llama2-7b": Shape(hidden=4096, layers=32, heads=32, kv_heads=32, ffn=11008, rope_theta=10000.0, context=4096, tied=False),
}

PROJECTION_TYPES = {"Q8_0": QT.Q8_0, "Q4_0": QT.Q4_0, "F16": QT.F16}
# llama.cpp's LLAMA_FTYPE_MOSTLY_* for general.file_type.
FILE_TYPES = {QT.F16: 1, QT.Q4_0: 2, QT.Q8_0: 7}


# MARK: - The tensors

@dataclass(frozen=True)
class TensorPlan:
    """One tensor: names in both formats, its shape as [rows, columns] (row-major, Hugging Face
    orientation [out, in]), and the heads to permute its rows by for GGUF (q/k) or None."""
    gguf_name: str
    hf_name: str
    shape: tuple
    kind: str            # "norm", "embedding" or "projection"
    permute_heads: int | None = None

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def tensor_plans(shape: Shape, vocab: int) -> list[TensorPlan]:
    """Every tensor of the model, in the order llama.cpp's converter writes them."""
    C, F, D = shape.hidden, shape.ffn, shape.head_dim
    plans = [TensorPlan("token_embd.weight", "model.embed_tokens.weight", (vocab, C), "embedding")]
    for i in range(shape.layers):
        b, h = f"blk.{i}.", f"model.layers.{i}."
        plans += [
            TensorPlan(b + "attn_norm.weight", h + "input_layernorm.weight", (C,), "norm"),
            TensorPlan(b + "attn_q.weight", h + "self_attn.q_proj.weight", (shape.heads * D, C), "projection", shape.heads),
            TensorPlan(b + "attn_k.weight", h + "self_attn.k_proj.weight", (shape.kv_heads * D, C), "projection", shape.kv_heads),
            TensorPlan(b + "attn_v.weight", h + "self_attn.v_proj.weight", (shape.kv_heads * D, C), "projection"),
            TensorPlan(b + "attn_output.weight", h + "self_attn.o_proj.weight", (C, shape.heads * D), "projection"),
            TensorPlan(b + "ffn_norm.weight", h + "post_attention_layernorm.weight", (C,), "norm"),
            TensorPlan(b + "ffn_gate.weight", h + "mlp.gate_proj.weight", (F, C), "projection"),
            TensorPlan(b + "ffn_up.weight", h + "mlp.up_proj.weight", (F, C), "projection"),
            TensorPlan(b + "ffn_down.weight", h + "mlp.down_proj.weight", (C, F), "projection"),
        ]
    plans.append(TensorPlan("output_norm.weight", "model.norm.weight", (C,), "norm"))
    if not shape.tied:
        plans.append(TensorPlan("output.weight", "lm_head.weight", (vocab, C), "embedding"))
    return plans


# Normal draws through a table of 65536 quantiles, indexed by random 16-bit integers: numpy's
# ziggurat (standard_normal, float32) measured 3x slower here, and writing 7B weights is dominated by
# drawing them. The draw is discretised to 2^16 levels (|z| ≤ 4.2), which random benchmark weights
# do not notice; its standard deviation is within 1e-4 of the target.
_QUANTILES = np.array([NormalDist().inv_cdf((k + 0.5) / 65536) for k in range(65536)], dtype=np.float32)


def float_chunks(plan: TensorPlan, seed: int, permute: bool):
    """The tensor's float32 values as [rows, columns] chunks of whole rows, in row order.

    Norms are ones. Chunks hold whole heads when the rows are permuted, so that q/k rows can be
    permuted per chunk: per head of D rows, row j·(D/2) + i becomes row 2i + j (the converter's
    `permute`, from Hugging Face's half-split rotary layout to ggml's adjacent pairs)."""
    if plan.kind == "norm":
        yield np.ones(plan.shape, dtype=np.float32)
        return
    rows, columns = plan.shape
    generator = np.random.default_rng([seed, zlib.crc32(plan.gguf_name.encode())])
    table = _QUANTILES * np.float32(STD)
    step = max(1, CHUNK_ELEMENTS // columns)
    if plan.permute_heads:
        head_rows = rows // plan.permute_heads
        step = max(head_rows, step // head_rows * head_rows)
    for start in range(0, rows, step):
        n = min(step, rows - start)
        indices = np.frombuffer(generator.bytes(2 * n * columns), dtype=np.uint16)
        chunk = table[indices].reshape(n, columns)
        if permute and plan.permute_heads:
            head_rows = rows // plan.permute_heads
            chunk = chunk.reshape(n // head_rows, 2, head_rows // 2, columns).swapaxes(1, 2).reshape(n, columns)
        yield chunk


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns (uint16), rounded to nearest even (no NaNs occur here)."""
    bits = values.view(np.uint32)
    return ((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)


# MARK: - The demo model's vocabulary

# GGUF metadata value types (GGUF spec) → struct format; 8 is a string, 9 an array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_ARRAY_DTYPES = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}


def read_vocabulary(path: pathlib.Path) -> list[tuple[str, object, gguf.GGUFValueType, gguf.GGUFValueType | None]]:
    """The tokenizer.* metadata of a GGUF file as (key, value, type, element type), in file order.

    Reads only the metadata section, sequentially: gguf-py's GGUFReader builds a numpy view per
    string and took 35 s for the demo model's 98k vocabulary strings; this takes well under one."""
    if not path.is_file():
        sys.exit(f"make_random_llama: the vocabulary source {path} does not exist; run scripts/fetch-demo-model.sh")
    data = path.read_bytes() if path.stat().st_size < (1 << 28) else None
    if data is None:  # a large model: the metadata sits at the front
        with open(path, "rb") as f:
            data = f.read(1 << 28)
    position = 0

    def fail(what):
        sys.exit(f"make_random_llama: {path}: {what} (at byte {position})")

    def take(fmt):
        nonlocal position
        size = struct.calcsize(fmt)
        if position + size > len(data):
            fail(f"metadata runs past the end reading {fmt}")
        (value,) = struct.unpack_from(fmt, data, position)
        position += size
        return value

    def string():
        nonlocal position
        length = take("<Q")
        if position + length > len(data):
            fail(f"a string of {length} bytes runs past the end")
        text = data[position:position + length].decode("utf-8", errors="surrogateescape")
        position += length
        return text

    def value(vtype):
        nonlocal position
        if vtype in _SCALARS:
            return take(_SCALARS[vtype])
        if vtype == 8:
            return string()
        if vtype == 9:
            element, count = take("<I"), take("<Q")
            if element == 8:
                return [string() for _ in range(count)]
            if element not in _ARRAY_DTYPES:
                fail(f"array element type {element} is not one this script copies")
            dtype = np.dtype(_ARRAY_DTYPES[element])
            if position + count * dtype.itemsize > len(data):
                fail(f"an array of {count} elements runs past the end")
            values = np.frombuffer(data, dtype=dtype, count=count, offset=position).tolist()
            position += count * dtype.itemsize
            return values
        fail(f"unknown value type {vtype}")

    if data[:4] != b"GGUF":
        fail("not a GGUF file (no GGUF magic)")
    position = 4
    version, _, kv_count = take("<I"), take("<Q"), take("<Q")
    if version not in (2, 3):
        fail(f"GGUF version {version} (this script reads 2 and 3)")
    entries = []
    for _ in range(kv_count):
        key, vtype = string(), take("<I")
        element = None
        if vtype == 9:
            element = struct.unpack_from("<I", data, position)[0]
        content = value(vtype)
        if key.startswith("tokenizer."):
            entries.append((key, content, gguf.GGUFValueType(vtype),
                            gguf.GGUFValueType(element) if element is not None else None))
    keys = {key for key, *_ in entries}
    for required in ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
        if required not in keys:
            sys.exit(f"make_random_llama: {path} has no {required}; the vocabulary must be a byte-level BPE one")
    return entries


def vocabulary_size(entries) -> int:
    return len(next(value for key, value, *_ in entries if key == "tokenizer.ggml.tokens"))


# MARK: - GGUF

def write_gguf(out: pathlib.Path, name: str, shape: Shape, vocab_entries, projection: QT, embedding: QT, seed: int):
    vocab = vocabulary_size(vocab_entries)
    plans = tensor_plans(shape, vocab)
    tmp = out.with_name(out.name + ".part")
    writer = gguf.GGUFWriter(str(tmp), arch="llama")
    writer.add_name(f"random {name} (seed {seed})")
    writer.add_description("random weights (normal, std 0.02; norms 1) at a LLaMA shape, for benchmarks; "
                           "tokenizer copied from SmolLM2-135M-Instruct")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_vocab_size(vocab)
    writer.add_file_type(FILE_TYPES[projection])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for key, value, vtype, element in vocab_entries:
        writer.add_key_value(key, value, vtype, sub_type=element)

    types = {"norm": QT.F32, "embedding": embedding, "projection": projection}
    for plan in plans:
        qtype = types[plan.kind]
        rows = plan.shape[0] if len(plan.shape) == 2 else 1
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = rows * (plan.shape[-1] // block) * type_size
        # The element shape with raw_dtype: the writer stores it reversed (ggml's ne0 = columns).
        writer.add_tensor_info(plan.gguf_name, plan.shape, np.dtype(np.float32), nbytes,
                               raw_dtype=None if qtype == QT.F32 else qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    # Tensor data, streamed: the writer's write_tensor_data takes whole tensors, so the same layout
    # (each tensor at the next multiple of the alignment, in the order of the infos) is written here.
    fout = writer.fout[0]
    for plan in plans:
        fout.write(bytes(gguf.GGUFWriter.ggml_pad(fout.tell(), writer.data_alignment) - fout.tell()))
        for chunk in float_chunks(plan, seed, permute=True):
            qtype = types[plan.kind]
            encoded = chunk if qtype == QT.F32 else gguf.quants.quantize(chunk, qtype)
            encoded.tofile(fout)
    fout.write(bytes(gguf.GGUFWriter.ggml_pad(fout.tell(), writer.data_alignment) - fout.tell()))
    writer.close()
    os.replace(tmp, out)
    return plans


# MARK: - Hugging Face folder

def write_safetensors(path: pathlib.Path, plans: list[TensorPlan], seed: int):
    """One safetensors file of the plans' tensors in BF16, streamed: the header is known from the shapes."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for plan in plans:
        header[plan.hf_name] = {"dtype": "BF16", "shape": list(plan.shape), "data_offsets": [offset, offset + 2 * plan.count]}
        offset += 2 * plan.count
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little"))
        f.write(encoded)
        for plan in plans:
            for chunk in float_chunks(plan, seed, permute=False):
                bf16_bits(chunk).tofile(f)
    os.replace(tmp, path)


def tokenizer_json(vocab_entries) -> str:
    """A Hugging Face tokenizer.json for a GGUF "gpt2" vocabulary with the "smollm" pre-tokenizer.

    Built with the `tokenizers` package from tokens, merges and token types; control and
    user-defined tokens become special added tokens, as llama.cpp matches them in text."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    meta = {key: value for key, value, *_ in vocab_entries}
    if meta.get("tokenizer.ggml.model") != "gpt2" or meta.get("tokenizer.ggml.pre") != "smollm":
        sys.exit("make_random_llama: --format hf builds tokenizer.json only for a 'gpt2' vocabulary with the 'smollm' "
                 f"pre-tokenizer; the source has {meta.get('tokenizer.ggml.model')!r}/{meta.get('tokenizer.ggml.pre')!r}")
    tokens = meta["tokenizer.ggml.tokens"]
    merges = []
    for index, merge in enumerate(meta["tokenizer.ggml.merges"]):
        parts = merge.split(" ")
        if len(parts) != 2:
            sys.exit(f"make_random_llama: tokenizer.ggml.merges[{index}] = {merge!r} is not two tokens")
        merges.append((parts[0], parts[1]))
    unknown = meta.get("tokenizer.ggml.unknown_token_id")
    model = models.BPE(vocab={text: i for i, text in enumerate(tokens)}, merges=merges,
                       unk_token=tokens[unknown] if unknown is not None else None)
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()
    kinds = meta.get("tokenizer.ggml.token_type", [1] * len(tokens))
    special = [AddedToken(tokens[i], special=True, normalized=False) for i, kind in enumerate(kinds) if kind in (3, 4)]
    tokenizer.add_special_tokens(special)
    for token in special:
        if tokenizer.token_to_id(token.content) != tokens.index(token.content):
            sys.exit(f"make_random_llama: special token {token.content!r} got a new id in tokenizer.json")
    return tokenizer.to_str(pretty=True)


def write_hf(out: pathlib.Path, name: str, shape: Shape, vocab_entries, seed: int, shard_bytes: int):
    vocab = vocabulary_size(vocab_entries)
    plans = tensor_plans(shape, vocab)
    meta = {key: value for key, value, *_ in vocab_entries}
    tokens = meta["tokenizer.ggml.tokens"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(tokenizer_json(vocab_entries))

    def token(key):
        return tokens[meta[key]] if key in meta else None
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": shape.context,
        "bos_token": token("tokenizer.ggml.bos_token_id"), "eos_token": token("tokenizer.ggml.eos_token_id"),
        "unk_token": token("tokenizer.ggml.unknown_token_id"), "pad_token": token("tokenizer.ggml.padding_token_id"),
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "chat_template": meta.get("tokenizer.chat_template"),
    }, indent=2) + "\n")
    (out / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16",
        "hidden_size": shape.hidden, "intermediate_size": shape.ffn, "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads, "head_dim": shape.head_dim,
        "max_position_embeddings": shape.context, "rope_theta": shape.rope_theta, "rms_norm_eps": shape.rms_eps,
        "vocab_size": vocab, "tie_word_embeddings": shape.tied, "hidden_act": "silu", "attention_bias": False,
        "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"), "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
        "_comment": f"random weights (normal, std 0.02; norms 1), shape {name}, seed {seed}",
    }, indent=2) + "\n")

    # Shards in tensor order, each up to shard_bytes (one tensor may exceed it alone).
    shards, current, size = [], [], 0
    for plan in plans:
        if current and size + 2 * plan.count > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(plan)
        size += 2 * plan.count
    shards.append(current)
    for stale in list(out.glob("model*.safetensors")) + list(out.glob("model.safetensors.index.json")):
        stale.unlink()
    if len(shards) == 1:
        write_safetensors(out / "model.safetensors", shards[0], seed)
    else:
        weight_map = {}
        for index, shard in enumerate(shards):
            file = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(out / file, shard, seed)
            weight_map.update({plan.hf_name: file for plan in shard})
        (out / "model.safetensors.index.json").write_text(json.dumps({
            "metadata": {"total_size": sum(2 * p.count for p in plans)}, "weight_map": weight_map}, indent=2) + "\n")
    return plans


# MARK: - Command line

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("--format", choices=["gguf", "hf"], default="gguf")
    parser.add_argument("--type", choices=sorted(PROJECTION_TYPES), default="Q8_0", help="GGUF projection type")
    parser.add_argument("--embedding-type", choices=["Q8_0", "same"], default="Q8_0",
                        help="GGUF token_embd/output type: Q8_0, or the same as --type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-gib", type=float, default=2.0, help="hf: largest safetensors shard (GiB)")
    parser.add_argument("--vocab-from", type=pathlib.Path, default=DEMO_MODEL,
                        help="GGUF whose tokenizer metadata is copied (default: the demo model)")
    parser.add_argument("--out", type=pathlib.Path,
                        help="output file (gguf) or folder (hf); default .cache/models/random/SHAPE-TYPE.gguf or SHAPE-hf")
    args = parser.parse_args()

    shape = SHAPES[args.shape]
    projection = PROJECTION_TYPES[args.type]
    embedding = projection if args.embedding_type == "same" else QT.Q8_0
    if args.out is None:
        random_dir = ROOT / ".cache" / "models" / "random"
        if args.format == "gguf":
            suffix = args.type if args.embedding_type == "Q8_0" or projection == QT.Q8_0 else f"{args.type}-all"
            args.out = random_dir / f"{args.shape}-{suffix}.gguf"
        else:
            args.out = random_dir / f"{args.shape}-hf"
    args.out.parent.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    vocab_entries = read_vocabulary(args.vocab_from)
    if args.format == "gguf":
        plans = write_gguf(args.out, args.shape, shape, vocab_entries, projection, embedding, args.seed)
        size = args.out.stat().st_size
        what = f"GGUF, projections {projection.name}, embedding/output {embedding.name}"
    else:
        plans = write_hf(args.out, args.shape, shape, vocab_entries, args.seed, int(args.shard_gib * 2**30))
        size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
        what = "Hugging Face folder, BF16 safetensors"
    seconds = time.monotonic() - started
    parameters = sum(p.count for p in plans)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    print(f"{args.out}: {args.shape} ({what}), {parameters:,} parameters, {size / 1e6:.1f} MB, "
          f"{seconds:.1f} s, peak RSS {peak_rss:.2f} GiB")


if __name__ == "__main__":
    main()
