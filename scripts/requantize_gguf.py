"""Rewrites a GGUF model with its 2-D weight matrices in another ggml type (Q8_0 or Q4_0), every
other tensor and all metadata unchanged, through gguf-py's reference quantisers.

The sparse benchmark (scripts/bench-sparse.sh) needs the demo model, which ships as Q4_1, as a
dense Q8_0 file: the baseline that llama.cpp and losad both decode.

    python scripts/requantize_gguf.py IN.gguf OUT.gguf --type Q8_0
"""
import argparse
import pathlib
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=pathlib.Path)
    parser.add_argument("target", type=pathlib.Path)
    parser.add_argument("--type", choices=["Q8_0", "Q4_0"], default="Q8_0")
    args = parser.parse_args()
    target_type = T[args.type]
    if args.target.exists():
        print(f"requantize: {args.target} exists; not overwriting it", file=sys.stderr)
        return 1

    reader = gguf.GGUFReader(str(args.source))
    arch = reader.fields["general.architecture"]
    architecture = bytes(arch.parts[arch.data[0]]).decode()
    writer = gguf.GGUFWriter(str(args.target) + ".partial", architecture)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        value_type = field.types[0]
        if value_type == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                value = [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data]
            else:
                value = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_key_value(field.name, value, value_type, sub_type=sub)
        elif value_type == gguf.GGUFValueType.STRING:
            writer.add_key_value(field.name, bytes(field.parts[field.data[0]]).decode("utf-8", errors="surrogateescape"), value_type)
        else:
            writer.add_key_value(field.name, field.parts[field.data[0]].tolist()[0], value_type)

    for tensor in reader.tensors:
        shape = [int(d) for d in reversed(tensor.shape.tolist())]  # row-major
        if len(shape) == 2 and tensor.tensor_type != target_type and shape[-1] % 32 == 0:
            values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float32)
            data = gguf.quants.quantize(values, target_type)
            writer.add_tensor(tensor.name, data, raw_shape=data.shape, raw_dtype=target_type)
        else:
            writer.add_tensor(tensor.name, np.array(tensor.data), raw_shape=np.array(tensor.data).shape,
                              raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    pathlib.Path(str(args.target) + ".partial").rename(args.target)
    print(f"{args.target}: {args.target.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
