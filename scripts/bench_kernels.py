"""Runs the Swift kernels benchmark and the same cases in numpy, and prints a
side-by-side table. Ratio = numpy time / losad time (above 1: losad is faster)."""
import json
import subprocess
import sys
import time

import numpy as np


def measure(body):
    body()
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            body()
        if time.perf_counter() - start > 0.05:
            break
        calls *= 2
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        for _ in range(calls):
            body()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


rng = np.random.default_rng(0)


def rand(*shape, scale=1.0):
    return (rng.uniform(-scale, scale, size=shape)).astype(np.float32)


def numpy_cases():
    """Yields (name, function) pairs whose names match the Swift benchmark's."""
    for inf, outf in [(576, 576), (576, 1536), (1536, 576), (576, 49152)]:
        w = rand(outf, inf, scale=0.05)
        for rows in [256, 512, 1024, 2048]:
            if outf == 49152 and rows > 1024:
                continue
            x = rand(rows, inf)
            y = np.empty((rows, outf), np.float32)
            yield f"sgemm {inf}x{outf} rows={rows}", (lambda x=x, w=w, y=y: np.matmul(x, w.T, out=y))
    yield from elementwise_cases()


def elementwise_cases():
    try:
        from bench_kernels_numpy_ops import cases
    except ImportError:
        return
    yield from cases(rand)


def main():
    binary = sys.argv[1]
    ours = {}
    info = {}
    process = subprocess.run([binary], check=True, capture_output=True, text=True)
    for line in process.stdout.splitlines():
        record = json.loads(line)
        if "info" in record:
            info = record["info"]
        else:
            ours[record["name"]] = record
    # What the kernel choice is worth: the key shape with OpenBLAS forced to its generic kernels.
    import os
    forced = subprocess.run([binary, "--key-shape-only"], check=True, capture_output=True, text=True,
                            env={**os.environ, "OPENBLAS_CORETYPE": "Prescott"})
    generic = [json.loads(line) for line in forced.stdout.splitlines() if "name" in line][0]
    import threadpoolctl  # noqa: F401  (reports numpy's BLAS below)
    pools = threadpoolctl.threadpool_info()
    numpy_blas = ", ".join(f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} x{p.get('num_threads')}" for p in pools)
    print(f"losad: OpenBLAS core {info.get('openblas_core')}, {info.get('openblas_threads')} BLAS threads, "
          f"{info.get('workers')} worker threads ({info.get('openblas_config')})")
    print(f"numpy {np.__version__}: {numpy_blas}")
    print(f"for comparison, OPENBLAS_CORETYPE=Prescott: sgemm 576x1536 rows=512 at "
          f"{generic['flops'] / generic['seconds'] / 1e9:.1f} GFLOP/s")
    print()
    header = f"{'case':<34} {'losad':>12} {'numpy':>12} {'ratio':>7}  unit"
    print(header)
    print("-" * len(header))
    for name, body in numpy_cases():
        if name not in ours:
            continue
        numpy_seconds = measure(body)
        record = ours[name]
        if "flops" in record:
            unit, scale = "GFLOP/s", record["flops"] / 1e9
        else:
            unit, scale = "GB/s", record.get("bytes", 0) / 1e9
        rate = lambda s: scale / s if scale else s * 1e6
        if not scale:
            unit = "µs"
        print(f"{name:<34} {rate(record['seconds']):>12.2f} {rate(numpy_seconds):>12.2f} "
              f"{numpy_seconds / record['seconds']:>7.2f}  {unit}")


if __name__ == "__main__":
    main()
