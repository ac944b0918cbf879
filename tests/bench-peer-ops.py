#!/usr/bin/env python3
"""Side-by-side peer for `make bench`, op by op: PyTorch's own kernels on
the shapes `bench-ops` times (tests/bench-ops.c, same names), so that each
of the engine's op rows has PyTorch's figure for the same work beside it.

    python tests/bench-peer-ops.py [--threads 2] [--repeats 5]

float32 throughout (the engine's rows keep f16 weights and compute in
f32); best of --repeats runs after one warm-up, as bench-ops times;
GFLOP/s count the direct algorithm's FLOPs, as bench-ops does:

  matmul MxK · KxN          torch.nn.functional.linear (x [M, K], weight [N, K], bias)
  conv kxk sS Ci->Co at HxH xN
                            torch.nn.functional.conv2d, padding k // 2, with bias
                            (oneDNN's choice of algorithm)
  attention S x Skv tokens, H heads x D
                            scaled_dot_product_attention on [1, H, S, D] (PyTorch's
                            fused CPU kernel)
"""
import argparse
import time

import torch
import torch.nn.functional as F

# bench-ops.c main(), in its order
LINEAR = [(4096, 320, 1280), (4096, 320, 320), (8192, 320, 320), (8192, 320, 2560),
          (4096, 1280, 320), (77, 768, 3072), (512, 1280, 10240), (512, 5120, 1280),
          (128, 1280, 10240), (128, 1280, 1280)]
CONV = [(320, 320, 64, 2, 3, 1), (320, 320, 64, 2, 3, 2), (640, 640, 32, 2, 3, 1),
        (1280, 1280, 16, 2, 3, 1), (1280, 1280, 8, 2, 3, 1), (1280, 1280, 4, 2, 3, 1),
        (2560, 1280, 16, 2, 3, 1), (320, 640, 32, 2, 1, 1), (512, 512, 64, 1, 3, 1),
        (512, 512, 128, 1, 3, 1), (256, 256, 256, 1, 3, 1), (128, 128, 512, 1, 3, 1)]
ATTENTION = [(4096, 4096, 8, 40), (4096, 77, 8, 40), (256, 256, 8, 160), (256, 77, 8, 160),
             (1024, 1024, 8, 80)]


def best(fn, repeats):
    fn()
    t = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def row(name, flops, seconds):
    print(f"{name:<44} {seconds * 1e3:9.2f} ms {flops / seconds / 1e9:9.1f} GFLOP/s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    print(f"peer ops: PyTorch {torch.__version__} CPU, {torch.get_num_threads()} threads, "
          f"float32, best of {a.repeats} runs")
    print(f"{'op (SD 1.5 shape)':<44} {'time':>12} {'speed':>17}")
    with torch.no_grad():
        for M, K, N in LINEAR:
            x, w, b = rand(M, K), rand(N, K, scale=K ** -0.5), rand(N, scale=0.1)
            row(f"matmul {M}x{K} · {K}x{N}", 2.0 * M * N * K, best(lambda: F.linear(x, w, b), a.repeats))
        for ci, co, h, n, k, s in CONV:
            x, w, b = rand(n, ci, h, h), rand(co, ci, k, k, scale=(ci * k * k) ** -0.5), rand(co, scale=0.1)
            ho = h // s
            row(f"conv {k}x{k} s{s} {ci}->{co} at {h}x{h} x{n}", 2.0 * co * ci * k * k * ho * ho * n,
                best(lambda: F.conv2d(x, w, b, stride=s, padding=k // 2), a.repeats))
        for S, Skv, H, D in ATTENTION:
            q, k_, v = rand(1, H, S, D, scale=3.0), rand(1, H, Skv, D, scale=3.0), rand(1, H, Skv, D)
            row(f"attention {S} x {Skv} tokens, {H} heads x {D}", 4.0 * S * Skv * D * H,
                best(lambda: F.scaled_dot_product_attention(q, k_, v), a.repeats))


if __name__ == "__main__":
    main()
