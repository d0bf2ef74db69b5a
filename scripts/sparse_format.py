#!/usr/bin/env python3
"""An independent reader and writer of losad's sparse model file, written from
docs/sparse-format.md alone ("The encoding of one matrix", "The model file") with
numpy and the `gguf` package, so that the Swift tests hold losad's reader and writer
to code nobody wrote from losad's sources.

    sparse_format.py decode FILE OUT.f32
        Checks FILE as the doc says a reader must (steps 1-5), decodes every sparse
        matrix and dequantises every dense tensor (gguf.quants.dequantize), and writes
        them as little-endian float32, one after the other in file order (a sparse
        matrix where its .mask tensor is). Prints JSON on stdout:
        {"version", "architecture", "source_format", "family", "alignment", "keys": [...],
         "tensors": [{"name", "kind" (sparse) or "type" (dense), "shape" (row-major),
                      "offset", "count", "stored" (sparse: set mask bits)}]}
        A file that breaks the layout exits with status 2 and a sentence on stderr.

    sparse_format.py write HF_FOLDER OUT.gguf [--density D] [--kinds s8,s4,f16] [--seed N]
        Writes a sparse model file from a Hugging Face folder (config.json,
        tokenizer.json, one model.safetensors): each projection is pruned to density D
        (largest magnitudes per row kept, seeded ties) and stored sparse, the kinds
        cycling through --kinds; other tensors are stored as float32. Prints JSON
        {"path", "tensors": [{"name", "kind"}]}.
"""
import argparse
import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFWriter, GGUFValueType
from gguf.quants import dequantize

ARCHITECTURE = "losa-sparse"
VERSION = 2
GROUP = 64
PADDING = 64
KINDS = ("s8", "s4", "f16")
# s4: the level each nibble stands for (weight = scale * level).
S4_LEVELS = np.array([-64, -52, -42, -32, -24, -18, -11, -5, 0, 6, 12, 19, 26, 34, 44, 56], dtype=np.int8)
PROJECTIONS = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
               "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")


class LayoutError(Exception):
    pass


# MARK: - One matrix

def group_value_bytes(kind, n):
    """Bytes that n stored values of one group take."""
    if kind == "s8":
        return n
    if kind == "s4":
        return (n + 1) // 2
    return 2 * n


def mask_bits(masks, cols):
    """masks [rows, groups] uint64 -> bool [rows, groups * 64]; bit j of word g is column 64 g + j."""
    rows, groups = masks.shape
    as_bytes = masks.astype("<u8").view(np.uint8).reshape(rows, groups * 8)
    return np.unpackbits(as_bytes, axis=1, bitorder="little").astype(bool)


def check_matrix(name, kind, cols, masks, offsets, values, scales):
    """Step 5 of the doc: offsets against masks, bits past cols, padding, finite scales/values."""
    rows, groups = masks.shape
    bits = mask_bits(masks, cols)
    if bits[:, cols:].any():
        raise LayoutError(f"{name}.mask: bits set past column {cols}")
    counts = bits.reshape(rows, groups, GROUP).sum(axis=2)
    row_bytes = group_value_bytes(kind, counts).sum(axis=1)
    if offsets[0] != 0:
        raise LayoutError(f"{name}.offsets: the first offset is {offsets[0]}")
    spans = np.diff(offsets.astype(np.int64))
    bad = np.nonzero(spans != row_bytes)[0]
    if bad.size:
        o = int(bad[0])
        raise LayoutError(f"{name}.offsets: row {o} spans {spans[o]} bytes, its mask stores {row_bytes[o]}")
    value_bytes = values.size - PADDING
    if int(offsets[-1]) != value_bytes:
        raise LayoutError(f"{name}.offsets: the last offset is {offsets[-1]}, the stream holds {value_bytes}")
    if values[value_bytes:].any():
        raise LayoutError(f"{name}.values: nonzero padding")
    if scales is not None and not np.isfinite(scales).all():
        raise LayoutError(f"{name}.scales: a scale is not finite")
    if kind == "f16" and not np.isfinite(values[:value_bytes].view(np.uint8).view("<f2")).all():
        raise LayoutError(f"{name}.values: an f16 value is not finite")
    return bits[:, :cols], counts


def decode_matrix(kind, cols, bits, counts, values, scales):
    """W [rows, cols] float32: stored values in row-major order of their set bits."""
    rows = bits.shape[0]
    n = counts.reshape(-1)
    total = int(n.sum())
    stream = values.view(np.uint8)
    if kind == "s8":
        stored = stream[:total].view(np.int8).astype(np.float32)
    elif kind == "f16":
        stored = stream[:2 * total].view("<f2").astype(np.float32)
    else:
        # Value k of a group is nibble k % 2 (low first) of byte k // 2 of that group's bytes.
        group_start = np.concatenate([[0], np.cumsum((n + 1) // 2)[:-1]]).astype(np.int64)
        value_start = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
        k = np.arange(total, dtype=np.int64) - np.repeat(value_start, n)
        byte = stream[np.repeat(group_start, n) + k // 2]
        nibble = np.where(k % 2 == 0, byte & 0x0F, byte >> 4)
        stored = S4_LEVELS[nibble].astype(np.float32)
    if scales is not None:
        stored = np.repeat(scales.astype(np.float32).reshape(-1), n) * stored
    weights = np.zeros((rows, cols), dtype=np.float32)
    weights[bits] = stored
    return weights


def round_half_away(x):
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


# s4 encoding (the doc's "Quantisation"): float32 arithmetic, the scale rounded to binary16.
S4_MIDPOINTS = [(np.float32(S4_LEVELS[i]) + np.float32(S4_LEVELS[i + 1])) / np.float32(2) for i in range(15)]
S4_STEPS = [np.float32(0.6) + np.float32(0.05) * np.float32(i) for i in range(17)]
LARGEST_HALF = np.float32(65504)


def s4_nibbles(r):
    """The nearest level to each r (in scales): nibble i for the first midpoint r does not exceed
    (15 if none; ties to the lower level); NaN gives nibble 8 (level 0)."""
    r = np.asarray(r, dtype=np.float32)
    i = np.searchsorted(np.array(S4_MIDPOINTS, dtype=np.float32), r, side="left")
    return np.where(np.isnan(r), 8, i).astype(np.uint8)


def s4_fit(v, scale):
    """(squared error at scale, least-squares scale for the same nibbles): float32 sums in column order."""
    inverse = np.float32(0) if scale == 0 else np.float32(1) / scale
    level = S4_LEVELS[s4_nibbles(v * inverse)].astype(np.float32)
    d = v - scale * level
    error = np.cumsum(d * d, dtype=np.float32)[-1]
    dot = np.cumsum(v * level, dtype=np.float32)[-1]
    norm = np.cumsum(level * level, dtype=np.float32)[-1]
    return error, (dot / norm if norm > 0 else np.float32(0))


def s4_scale(v):
    """binary16 scale of one group: of each candidate +-max|w| * step / 64 and its refinement, the first
    with the smallest squared error. This is losad's unweighted search only; losad also chooses scales for an
    error weighted by calibration statistics (ck_sparse_s4_encode_group_weighted), which this script does not
    re-implement: readers need only the scale that is stored, however it was chosen."""
    finite = v[~np.isnan(v)]
    largest = np.float32(np.abs(finite).max()) if finite.size else np.float32(0)
    if not largest > 0:
        return np.float16(0)
    rounded = lambda s: np.float16(max(-LARGEST_HALF, min(LARGEST_HALF, s)))
    best, best_error = np.float16(0), np.float32(np.inf)
    for sign in (np.float32(1), np.float32(-1)):
        for step in S4_STEPS:
            start = rounded(sign * largest * step / np.float32(64))
            if start == 0:
                continue
            error, refined = s4_fit(v, np.float32(start))
            if error < best_error:
                best, best_error = start, error
            refined = rounded(refined)
            if refined == 0:
                continue
            error, _ = s4_fit(v, np.float32(refined))
            if error < best_error:
                best, best_error = refined, error
    return rounded(largest / np.float32(64)) if best == 0 else best


def encode_matrix(w, kind):
    """(masks, offsets, values with padding, scales or None) of W [rows, cols], stored where w != 0."""
    rows, cols = w.shape
    groups = -(-cols // GROUP)
    padded = np.zeros((rows, groups * GROUP), dtype=np.float32)
    padded[:, :cols] = w
    stored = padded != 0
    masks = np.packbits(stored.reshape(rows, groups * GROUP), axis=1, bitorder="little").view("<u8")
    masks = masks.reshape(rows, groups)
    chunks, scales, row_bytes = [], np.zeros((rows, groups), dtype=np.float16), np.zeros(rows, dtype=np.int64)
    for o in range(rows):
        for g in range(groups):
            v = padded[o, g * GROUP:(g + 1) * GROUP][stored[o, g * GROUP:(g + 1) * GROUP]]
            if kind == "f16":
                chunk = v.astype("<f2").view(np.uint8)
            elif kind == "s8":
                scale = np.float16(np.abs(v).max() / np.float32(127)) if v.size else np.float16(0)
                step = np.float32(scale)
                q = np.zeros(v.size) if step == 0 else np.clip(round_half_away(v / step), -127, 127)
                chunk = q.astype(np.int8).view(np.uint8)
                scales[o, g] = scale
            else:
                scale = s4_scale(v)
                inverse = np.float32(0) if scale == 0 else np.float32(1) / np.float32(scale)
                q = s4_nibbles(v * inverse)
                if q.size % 2:
                    q = np.append(q, np.uint8(0))
                chunk = (q[0::2] | (q[1::2] << 4)).astype(np.uint8)
                scales[o, g] = scale
            chunks.append(chunk)
            row_bytes[o] += chunk.size
    stream = np.concatenate(chunks + [np.zeros(PADDING, dtype=np.uint8)])
    offsets = np.concatenate([[0], np.cumsum(row_bytes)]).astype("<u4")
    return masks, offsets, stream, (None if kind == "f16" else scales)


# MARK: - The file

def field(reader, key, required=True):
    f = reader.fields.get(key)
    if f is None:
        if required:
            raise LayoutError(f"metadata key '{key}' is missing")
        return None
    return f


def read_file(path):
    """Steps 1-5 of the doc; yields (name, kind or None, type name, shape, float32 values, stored)."""
    reader = GGUFReader(path)
    arch = field(reader, "general.architecture").contents()
    if arch != ARCHITECTURE:
        raise LayoutError(f"general.architecture is '{arch}'")
    version = field(reader, "losa.sparse.version")
    if version.types[0] != GGUFValueType.UINT32 or int(version.contents()) != VERSION:
        raise LayoutError(f"losa.sparse.version is {version.contents()}; this reader reads {VERSION}")
    source = field(reader, "losa.sparse.source_format").contents()
    if source not in ("gguf", "huggingface"):
        raise LayoutError(f"losa.sparse.source_format is '{source}'")
    if int(field(reader, "losa.sparse.group_size").contents()) != GROUP:
        raise LayoutError("losa.sparse.group_size is not 64")
    if source == "huggingface":
        field(reader, "losa.sparse.huggingface.config_json")
        field(reader, "losa.sparse.huggingface.tokenizer_json")
    names = field(reader, "losa.sparse.tensors").contents()
    kinds = field(reader, "losa.sparse.kinds").contents()
    columns_field = field(reader, "losa.sparse.columns")
    if columns_field.types[-1] != GGUFValueType.UINT32:
        raise LayoutError("losa.sparse.columns is not an array of uint32")
    columns = [int(c) for c in columns_field.contents()]
    if not names or len(kinds) != len(names) or len(columns) != len(names) or len(set(names)) != len(names):
        raise LayoutError("the sparse tensor table's arrays disagree")
    tensors = {t.name: t for t in reader.tensors}
    table = {}
    for name, kind, cols in zip(names, kinds, columns):
        if kind not in KINDS or not 1 <= cols < 2 ** 31 or name in tensors:
            raise LayoutError(f"sparse matrix '{name}': kind '{kind}', {cols} columns")
        parts = {}
        for part, ggml in (("mask", "I64"), ("offsets", "I32"), ("values", "I8"), ("scales", "F16")):
            t = tensors.get(f"{name}.{part}")
            if (t is None) != (part == "scales" and kind == "f16"):
                raise LayoutError(f"{name}.{part}: {'missing' if t is None else 'present for an f16 matrix'}")
            if t is None:
                continue
            if t.tensor_type.name != ggml:
                raise LayoutError(f"{name}.{part}: type {t.tensor_type.name}, not {ggml}")
            parts[part] = t
        groups = -(-cols // GROUP)
        ne = lambda part: [int(d) for d in parts[part].shape.tolist()]
        if len(ne("mask")) != 2 or ne("mask")[0] != groups or not 1 <= ne("mask")[1] < 2 ** 31:
            raise LayoutError(f"{name}.mask: dimensions {ne('mask')}")
        rows = ne("mask")[1]
        if ne("offsets") != [rows + 1]:
            raise LayoutError(f"{name}.offsets: dimensions {ne('offsets')}")
        if len(ne("values")) != 1 or ne("values")[0] < PADDING:
            raise LayoutError(f"{name}.values: dimensions {ne('values')}")
        if "scales" in parts and ne("scales") != [groups, rows]:
            raise LayoutError(f"{name}.scales: dimensions {ne('scales')}")
        table[name] = (kind, cols, parts)

    owners = {t.name for (_, _, parts) in table.values() for t in parts.values()}
    result = []
    for t in reader.tensors:
        owner = t.name.rsplit(".", 1)[0]
        if t.name in owners:
            if not t.name.endswith(".mask"):
                continue
            kind, cols, parts = table[owner]
            masks = parts["mask"].data.view("<u8").reshape(-1, -(-cols // GROUP))
            offsets = parts["offsets"].data.view("<u4")
            values = parts["values"].data.view(np.uint8)
            scales = parts["scales"].data.view("<f2").reshape(masks.shape) if "scales" in parts else None
            bits, counts = check_matrix(owner, kind, cols, masks, offsets, values, scales)
            weights = decode_matrix(kind, cols, bits, counts, values, scales)
            result.append((owner, kind, None, [masks.shape[0], cols], weights, int(counts.sum())))
        else:
            values = dequantize(t.data, t.tensor_type).astype("<f4", copy=False)
            shape = [int(d) for d in reversed(t.shape.tolist())]
            result.append((t.name, None, t.tensor_type.name, shape, values, None))
    header = {"version": int(field(reader, "losa.sparse.version").contents()), "architecture": arch,
              "source_format": source, "family": field(reader, "losa.sparse.architecture").contents(),
              "alignment": int(reader.alignment),
              "keys": [f.name for f in reader.fields.values() if not f.name.startswith("GGUF.")]}
    return header, result


def command_decode(path, out):
    try:
        header, tensors = read_file(path)
    except LayoutError as error:
        sys.stderr.write(f"{path}: {error}\n")
        sys.exit(2)
    entries, offset = [], 0
    with open(out, "wb") as sink:
        for name, kind, type_name, shape, values, stored in tensors:
            flat = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
            sink.write(flat.tobytes())
            entry = {"name": name, "shape": shape, "offset": offset, "count": int(flat.size)}
            entry.update({"kind": kind, "stored": stored} if kind else {"type": type_name})
            entries.append(entry)
            offset += int(flat.size)
    json.dump(dict(header, tensors=entries), sys.stdout)
    sys.stdout.write("\n")


def command_write(folder, out, density, kinds, seed):
    from safetensors.numpy import load_file
    with open(f"{folder}/config.json", encoding="utf-8") as f:
        config_text = f.read()
    with open(f"{folder}/tokenizer.json", encoding="utf-8") as f:
        tokenizer_text = f.read()
    config = json.loads(config_text)
    weights = load_file(f"{folder}/model.safetensors")
    random = np.random.default_rng(seed)

    writer = GGUFWriter(out, ARCHITECTURE)  # writes general.architecture first
    writer.add_uint32("losa.sparse.version", VERSION)
    writer.add_string("losa.sparse.architecture", config["model_type"])
    writer.add_string("losa.sparse.source_format", "huggingface")
    writer.add_uint32("losa.sparse.group_size", GROUP)
    writer.add_custom_alignment(64)
    writer.add_string("losa.sparse.huggingface.config_json", config_text)
    writer.add_string("losa.sparse.huggingface.tokenizer_json", tokenizer_text)
    names, written_kinds, columns, written = [], [], [], []
    for name in weights:
        w = weights[name].astype(np.float32)
        if any(name.endswith(p) for p in PROJECTIONS):
            kind = kinds[len(names) % len(kinds)]
            rows, cols = w.shape
            keep = max(1, int(round(density * cols)))
            # Largest magnitudes per row, ties broken by a seeded jitter.
            order = np.argsort(-(np.abs(w) + random.uniform(0, 1e-12, w.shape)), axis=1)[:, :keep]
            pruned = np.zeros_like(w)
            np.put_along_axis(pruned, order, np.take_along_axis(w, order, axis=1), axis=1)
            masks, offsets, stream, scales = encode_matrix(pruned, kind)
            writer.add_tensor(f"{name}.mask", masks.view(np.int64))
            writer.add_tensor(f"{name}.offsets", offsets.view(np.int32))
            writer.add_tensor(f"{name}.values", stream.view(np.int8))
            if scales is not None:
                writer.add_tensor(f"{name}.scales", scales)
            names.append(name)
            written_kinds.append(kind)
            columns.append(cols)
            written.append({"name": name, "kind": kind})
        elif not name.endswith(".rotary_emb.inv_freq"):
            writer.add_tensor(name, w)
    writer.add_key_value("losa.sparse.tensors", names, GGUFValueType.ARRAY, sub_type=GGUFValueType.STRING)
    writer.add_key_value("losa.sparse.kinds", written_kinds, GGUFValueType.ARRAY, sub_type=GGUFValueType.STRING)
    writer.add_key_value("losa.sparse.columns", columns, GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    json.dump({"path": out, "tensors": written}, sys.stdout)
    sys.stdout.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode")
    decode.add_argument("file")
    decode.add_argument("out")
    write = commands.add_parser("write")
    write.add_argument("folder")
    write.add_argument("out")
    write.add_argument("--density", type=float, default=0.5)
    write.add_argument("--kinds", default="s8,s4,f16")
    write.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.command == "decode":
        command_decode(args.file, args.out)
    else:
        kinds = args.kinds.split(",")
        if any(k not in KINDS for k in kinds):
            parser.error(f"--kinds: each of {', '.join(KINDS)}")
        command_write(args.folder, args.out, args.density, kinds, args.seed)


if __name__ == "__main__":
    main()
