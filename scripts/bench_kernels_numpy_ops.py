"""The numpy side of the element-wise benchmark cases: the natural numpy
expression of each op, with output buffers where numpy offers them.
Names match Benchmarks/KernelsBenchmark/main.swift."""
import numpy as np


def cases(rand):
    tokens, hidden, ffn, heads, head_dim, vocabulary = 2048, 576, 1536, 9, 64, 49152
    a, b, d = rand(tokens, ffn), rand(tokens, ffn), rand(tokens, ffn)
    c = np.empty_like(a)
    yield "add [2048x1536]", lambda: np.add(a, b, out=c)
    yield "multiply [2048x1536]", lambda: np.multiply(a, b, out=c)
    yield "silu [2048x1536]", lambda: np.divide(a, 1.0 + np.exp(-a), out=c)
    yield "swiglu [2048x1536]", lambda: np.multiply(a / (1.0 + np.exp(-a)), b, out=c)

    def swiglu_backward():
        s = 1.0 / (1.0 + np.exp(-a))
        d_gate = d * b * s * (1.0 + a * (1.0 - s))
        d_up = d * a * s
        return d_gate, d_up
    yield "swiglu backward [2048x1536]", swiglu_backward

    x, w, dy = rand(tokens, hidden), rand(hidden), rand(tokens, hidden)
    y = np.empty_like(x)

    def rmsnorm():
        r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5)
        np.multiply(x * r, w, out=y)
    yield "rmsnorm [2048x576]", rmsnorm

    def rmsnorm_backward():
        r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5)
        g = dy * w
        dx = r * g - (r ** 3) * x * np.mean(g * x, axis=-1, keepdims=True)
        dw = np.sum(dy * x * r, axis=0)
        return dx, dw
    yield "rmsnorm backward [2048x576]", rmsnorm_backward

    scores = rand(heads * 512, 512, scale=4.0)
    probabilities = np.empty_like(scores)
    d_probabilities = rand(heads * 512, 512)

    def softmax():
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        np.divide(e, e.sum(axis=-1, keepdims=True), out=probabilities)
    yield "softmax [4608x512]", softmax
    yield "softmax backward [4608x512]", lambda: probabilities * (d_probabilities - np.sum(d_probabilities * probabilities, axis=-1, keepdims=True))

    q = rand(tokens, heads, head_dim)
    inverse = 1.0 / (100000.0 ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    angles = np.outer(np.arange(tokens, dtype=np.float64), inverse)
    cos = np.cos(angles).astype(np.float32)[:, None, :]
    sin = np.sin(angles).astype(np.float32)[:, None, :]

    def rope():
        x1, x2 = q[..., : head_dim // 2], q[..., head_dim // 2:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    yield "rope half-split [2048x9x64]", rope

    logits = rand(512, vocabulary, scale=8.0)
    targets = (np.arange(512) * 7919) % vocabulary

    def cross_entropy():
        m = logits.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(logits - m).sum(axis=-1)) + m[:, 0]
        return float(np.mean(lse - logits[np.arange(512), targets]))
    yield "cross-entropy [512x49152]", cross_entropy
