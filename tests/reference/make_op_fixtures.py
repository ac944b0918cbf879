"""Reference fixtures for the sdcl op tests.

Writes two files:

  tests/fixtures/ops.safetensors
      Small cases with every tensor stored in full: the inputs under
      "<case>.<input>" and the reference result under "<case>.out".
      Also "seeded_check.out" / "seeded_check_f16.out": the first 64 values
      of seeded(42, [64], 1.0), as f32 and rounded to f16, so the C side can
      check its generator bit for bit.

  tests/fixtures/ops-large.safetensors
      Stable Diffusion 1.5-sized cases. Inputs are not stored: the C test
      regenerates them with sdcl_seeded_fill, which matches seeded() below
      (see tests/reference/README.md). Per case it stores
        <case>.idx    I64 [16384]  sorted flat indices into the output
        <case>.val    F32 [16384]  reference output at those indices
        <case>.shape  I64 [ndim]   output shape
        <case>.norm   F32 [1]      sqrt(mean(out^2)) over the whole output

Run from the repository root (takes a few seconds):

    ~/.cache/sdcl-venv/bin/python tests/reference/make_op_fixtures.py

Conventions: small random inputs are float32, drawn from a numpy generator
seeded with the case name, uniform in [-1, 1] unless noted. Weights the
engine keeps in f16 are stored as F16, and the reference uses exactly those
rounded values. References are computed in float64 and stored as float32;
as a sanity check every case is also run in float32 and compared.
"""

import math
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from safetensors.torch import save_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

LARGE_SAMPLES = 16384
LARGE_SAMPLE_SEED = 1234

# Largest allowed max|f64 - f32| / max|f64| in the float32 sanity check.
F32_TOLERANCE = 1e-5
# float32 loses ~6e-5 in the sin/cos arguments at t = 999, as diffusers does.
F32_TOLERANCE_TIMESTEP = 1e-4


# ---------------------------------------------------------------------------
# Seeded generator, shared with the C tests (sdcl_seeded_fill)
# ---------------------------------------------------------------------------

def lowbias32(x):
    """The lowbias32 integer hash, elementwise on a uint32 array."""
    x = np.array(x, dtype=np.uint32)  # copy; uint32 ops wrap mod 2**32
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def seeded(seed, shape, scale, offset=0.0):
    """float32 array: offset + scale * ((h(i + h(seed)) >> 8) * 2^-24 * 2 - 1).

    i is the flat C-order index. Everything is float32: the unit value u is
    exact, then scale * u and offset + (scale * u) are each rounded once
    (two roundings, no FMA). scale and offset are first rounded to float32.
    """
    n = math.prod(shape)
    base = lowbias32([seed])[0]
    i = np.arange(n, dtype=np.uint32) + base  # wraps mod 2**32
    m = (lowbias32(i) >> np.uint32(8)).astype(np.float32)  # < 2**24, exact
    u = m * np.float32(2.0**-24) * np.float32(2.0) - np.float32(1.0)
    v = np.float32(scale) * u
    v = np.float32(offset) + v
    return v.reshape(shape)


def _check_seeded():
    """Cross-check seeded() against a plain-Python scalar version."""
    def h(x):
        x &= 0xFFFFFFFF
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        x ^= x >> 16
        return x

    got = seeded(7, [100], 1.0)
    want = [(h(i + h(7)) >> 8) * 2.0**-24 * 2 - 1 for i in range(100)]
    assert np.array_equal(got, np.array(want, dtype=np.float32))
    # Indices wrap mod 2**32 when added to h(seed).
    assert np.array_equal(lowbias32(np.arange(3, dtype=np.uint32) + np.uint32(0xFFFFFFFF)),
                          lowbias32(np.array([0xFFFFFFFF, 0, 1], dtype=np.uint32)))


# ---------------------------------------------------------------------------
# Small random inputs
# ---------------------------------------------------------------------------

class Inputs:
    """Random float32 inputs for one case, seeded by the case name."""

    def __init__(self, case):
        self.rng = np.random.default_rng(zlib.crc32(case.encode()))

    def uniform(self, *shape, lo=-1.0, hi=1.0):
        return torch.from_numpy(self.rng.uniform(lo, hi, shape).astype(np.float32))

    def f16(self, *shape):
        return self.uniform(*shape).half()


def f16_round(a):
    """float32 numpy array -> float16 torch tensor (round to nearest even)."""
    return torch.from_numpy(a).half()


# ---------------------------------------------------------------------------
# Reference ops; each takes tensors already converted to the compute dtype
# ---------------------------------------------------------------------------

def attention(q, k, v, heads, causal=False):
    """Multi-head attention on [B, S, H*D] tensors, one head at a time.

    Head h is the contiguous chunk [h*D, (h+1)*D) of the last dimension, as
    in diffusers; the result is merged back to [B, Sq, H*D].
    """
    d = q.shape[-1] // heads
    out = torch.empty_like(q)
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        out[..., cols] = F.scaled_dot_product_attention(
            q[..., cols], k[..., cols], v[..., cols],
            is_causal=causal, scale=1.0 / math.sqrt(d))
    return out


def geglu(x):
    hidden, gate = x.chunk(2, dim=-1)
    return hidden * F.gelu(gate)


def timestep_embedding(t, dim, max_period=10000):
    """diffusers' get_timestep_embedding(t, dim, flip_sin_to_cos=True,
    downscale_freq_shift=0), in the dtype of t."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=t.dtype) / half)
    args = t[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

def small_cases():
    """Yield (case, inputs, fn): inputs is an ordered dict of stored tensors,
    fn(*inputs) computes the output in the inputs' (common) dtype."""

    def case(name):
        return name, Inputs(name)

    name, r = case("matmul_f32")
    yield name, dict(a=r.uniform(37, 53), b=r.uniform(53, 29)), torch.matmul

    name, r = case("matmul_batched")
    yield name, dict(a=r.uniform(3, 17, 23), b=r.uniform(3, 23, 19)), torch.matmul

    name, r = case("linear_f16")
    yield name, dict(x=r.uniform(2, 37, 53), w=r.f16(29, 53)), F.linear

    name, r = case("linear_f16_bias")
    yield name, dict(x=r.uniform(3, 45, 70), w=r.f16(33, 70), bias=r.uniform(33)), F.linear

    name, r = case("linear_f32_bias")
    yield name, dict(x=r.uniform(5, 131), w=r.uniform(67, 131), bias=r.uniform(67)), F.linear

    name, r = case("conv3x3_s1")
    yield (name, dict(x=r.uniform(2, 5, 13, 11), w=r.f16(7, 5, 3, 3), bias=r.uniform(7)),
           lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1))

    name, r = case("conv3x3_s2")
    yield (name, dict(x=r.uniform(1, 6, 15, 17), w=r.f16(9, 6, 3, 3), bias=r.uniform(9)),
           lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1))

    name, r = case("conv1x1")
    yield (name, dict(x=r.uniform(2, 12, 9, 10), w=r.f16(5, 12, 1, 1), bias=r.uniform(5)),
           lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=0))

    name, r = case("conv3x3_f32_nobias")
    yield (name, dict(x=r.uniform(1, 3, 8, 8), w=r.uniform(4, 3, 3, 3)),
           lambda x, w: F.conv2d(x, w, None, stride=1, padding=1))

    name, r = case("groupnorm")
    yield (name, dict(x=r.uniform(2, 64, 7, 9) * 2 + 0.3,
                      gamma=1 + 0.2 * r.uniform(64), beta=0.2 * r.uniform(64)),
           lambda x, g, b: F.group_norm(x, 32, g, b, eps=1e-5))

    name, r = case("groupnorm_silu")
    yield (name, dict(x=r.uniform(1, 96, 5, 6),
                      gamma=1 + 0.2 * r.uniform(96), beta=0.2 * r.uniform(96)),
           lambda x, g, b: F.silu(F.group_norm(x, 32, g, b, eps=1e-6)))

    name, r = case("layernorm")
    yield (name, dict(x=r.uniform(3, 19, 70) * 2 + 0.3,
                      gamma=1 + 0.2 * r.uniform(70), beta=0.2 * r.uniform(70)),
           lambda x, g, b: F.layer_norm(x, (70,), g, b, eps=1e-5))

    name, r = case("softmax")
    x = r.uniform(5, 37) * 4
    x[1, 30:] = -math.inf
    x[3, 5:] = -math.inf
    yield name, dict(x=x), lambda x: torch.softmax(x, dim=-1)

    for name, q_shape, kv_shape, heads, causal in [
        ("attn_self_40", (2, 53, 120), (2, 53, 120), 3, False),
        ("attn_cross_64", (1, 33, 128), (1, 77, 128), 2, False),
        ("attn_self_80", (1, 19, 160), (1, 19, 160), 2, False),
        ("attn_self_160", (1, 21, 160), (1, 21, 160), 1, False),
        ("attn_causal_64", (1, 77, 256), (1, 77, 256), 4, True),
    ]:
        r = Inputs(name)
        inputs = dict(q=r.uniform(*q_shape, lo=-3, hi=3),
                      k=r.uniform(*kv_shape, lo=-3, hi=3),
                      v=r.uniform(*kv_shape))
        yield (name, inputs,
               lambda q, k, v, heads=heads, causal=causal: attention(q, k, v, heads, causal))

    name, r = case("gelu")
    yield name, dict(x=r.uniform(1000, lo=-6, hi=6)), F.gelu

    name, r = case("quick_gelu")
    yield name, dict(x=r.uniform(1000, lo=-6, hi=6)), lambda x: x * torch.sigmoid(1.702 * x)

    name, r = case("silu")
    yield name, dict(x=r.uniform(1000, lo=-6, hi=6)), F.silu

    name, r = case("geglu")
    yield name, dict(x=r.uniform(2, 37, 100)), geglu

    name, r = case("add_bcast")
    yield name, dict(a=r.uniform(2, 7, 5, 3), b=r.uniform(1, 7, 1, 1)), torch.add

    name, r = case("mul_bcast")
    yield name, dict(a=r.uniform(2, 7, 5, 3), b=r.uniform(2, 7, 1, 1)), torch.mul

    name, r = case("add_rows")
    yield name, dict(a=r.uniform(2, 7, 15), b=r.uniform(15)), torch.add

    name, r = case("upsample2x")
    yield (name, dict(x=r.uniform(2, 3, 5, 7)),
           lambda x: F.interpolate(x, scale_factor=2, mode="nearest"))

    name, r = case("concat")
    yield (name, dict(a=r.uniform(2, 3, 5, 7), b=r.uniform(2, 4, 5, 7)),
           lambda a, b: torch.cat([a, b], dim=1))

    t = torch.tensor([999, 500, 261.5, 1, 0], dtype=torch.float32)
    yield "timestep_emb", dict(t=t), lambda t: timestep_embedding(t, 320)


def large_cases():
    """Yield (case, fn): fn(dtype) computes the full output in that dtype
    from seeded inputs (f16 weights rounded first)."""
    s2880 = 1 / math.sqrt(2880)
    s320 = 1 / math.sqrt(320)

    def conv_case(w_seed, b_seed, stride):
        x = seeded(1, (1, 320, 64, 64), 1.0)
        w = f16_round(seeded(w_seed, (320, 320, 3, 3), s2880))
        b = seeded(b_seed, (320,), 0.1)
        return lambda dt: F.conv2d(torch.from_numpy(x).to(dt), w.to(dt),
                                   torch.from_numpy(b).to(dt), stride=stride, padding=1)

    yield "big_conv3x3", conv_case(2, 3, stride=1)
    yield "big_conv3x3_s2", conv_case(4, 5, stride=2)

    x = seeded(6, (4096, 320), 1.0)
    w = f16_round(seeded(7, (1280, 320), s320))
    b = seeded(8, (1280,), 0.1)
    yield "big_gemm", lambda dt: F.linear(torch.from_numpy(x).to(dt), w.to(dt),
                                          torch.from_numpy(b).to(dt))

    def attn_case(q_seed, k_seed, v_seed, kv_len):
        q = seeded(q_seed, (1, 4096, 320), 3.0)
        k = seeded(k_seed, (1, kv_len, 320), 3.0)
        v = seeded(v_seed, (1, kv_len, 320), 1.0)
        return lambda dt: attention(*(torch.from_numpy(a).to(dt) for a in (q, k, v)), heads=8)

    yield "big_attn_self", attn_case(9, 10, 11, 4096)
    yield "big_attn_cross", attn_case(12, 13, 14, 77)

    x = seeded(15, (2, 1280, 8, 8), 2.0, offset=0.5)
    g = seeded(16, (1280,), 0.1, offset=1.0)
    b = seeded(17, (1280,), 0.1)
    yield "big_groupnorm", lambda dt: F.group_norm(
        torch.from_numpy(x).to(dt), 32, torch.from_numpy(g).to(dt),
        torch.from_numpy(b).to(dt), eps=1e-5)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def rel_err(ref, got):
    """max |ref - got| / max |ref| over finite entries."""
    ref, got = ref.double(), got.double()
    finite = torch.isfinite(ref)
    assert torch.equal(finite, torch.isfinite(got))
    return ((ref - got)[finite].abs().max() / ref[finite].abs().max()).item()


def report(name, shape, err, limit=F32_TOLERANCE):
    print(f"  {name:22s} {str(tuple(shape)):22s} f32 vs f64 rel err {err:.2e}")
    if not err < limit:
        raise SystemExit(f"{name}: float32 check {err:.2e} above {limit:g}")


def write_small(path):
    tensors = {}
    print(f"{path.name}:")
    for name, inputs, fn in small_cases():
        ref = fn(*(a.double() for a in inputs.values()))
        check = fn(*(a.float() for a in inputs.values()))
        limit = F32_TOLERANCE_TIMESTEP if name == "timestep_emb" else F32_TOLERANCE
        report(name, ref.shape, rel_err(ref, check), limit)
        for key, a in inputs.items():
            tensors[f"{name}.{key}"] = a
        tensors[f"{name}.out"] = ref.float()

    # The float64 timestep embedding against diffusers itself (float32).
    t = tensors["timestep_emb.t"]
    theirs = get_timestep_embedding(t, 320, flip_sin_to_cos=True, downscale_freq_shift=0)
    diff = (theirs.double() - timestep_embedding(t.double(), 320)).abs().max().item()
    print(f"  timestep_emb vs diffusers float32: max abs diff {diff:.2e}")
    assert diff < 1e-4

    check = torch.from_numpy(seeded(42, (64,), 1.0))
    tensors["seeded_check.out"] = check
    tensors["seeded_check_f16.out"] = check.half()

    save_file({k: v.contiguous() for k, v in tensors.items()}, path)


def write_large(path):
    tensors = {}
    print(f"{path.name}:")
    for name, fn in large_cases():
        ref = fn(torch.float64)
        report(name, ref.shape, rel_err(ref, fn(torch.float32)))
        flat = ref.reshape(-1)
        rng = np.random.default_rng(LARGE_SAMPLE_SEED)
        idx = np.sort(rng.choice(flat.numel(), LARGE_SAMPLES, replace=False))
        idx = torch.from_numpy(idx.astype(np.int64))
        tensors[f"{name}.idx"] = idx
        tensors[f"{name}.val"] = flat[idx].float()
        tensors[f"{name}.shape"] = torch.tensor(ref.shape, dtype=torch.int64)
        tensors[f"{name}.norm"] = flat.square().mean().sqrt().reshape(1).float()
        del ref, flat

    save_file({k: v.contiguous() for k, v in tensors.items()}, path)


def main():
    _check_seeded()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    write_small(FIXTURES / "ops.safetensors")
    write_large(FIXTURES / "ops-large.safetensors")
    for name in ("ops.safetensors", "ops-large.safetensors"):
        print(f"{name}: {(FIXTURES / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
