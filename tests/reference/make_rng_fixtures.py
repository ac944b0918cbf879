#!/usr/bin/env python3
"""torch.randn from a seeded CPU generator, as diffusers draws it:
tests/fixtures/rng.safetensors, read by tests/test-rng.c.

    ~/.cache/sdcl-venv/bin/python tests/reference/make_rng_fixtures.py

Every case is g = torch.Generator("cpu").manual_seed(seed) followed by
torch.randn(shape, generator=g, dtype=torch.float32) for each shape in
turn; the tensor holds the calls' values one after the other (C order).
Raw cases hold the first mt19937 outputs of a seed. The cases are listed
in the metadata ("sdcl.rng_cases", JSON), seeds as decimal strings.

Two flavours of torch's float32 normal kernel: "avx2" runs with the CPU
capability torch picks itself (it must be AVX2 or better: AVX-512 CPUs use
the same kernel), "scalar" in a second process with
ATEN_CPU_CAPABILITY=default (libm logf/sinf/cosf)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

U64 = (1 << 64) - 1

SEEDS = [0, 1, 42, 1234567, 4294967295, 4294967296 + 7, 2**63 - 1, 2**64 - 1]
SMALL = [(1,), (5,), (15,), (16,), (17,), (31,), (100,), (4, 8, 12)]
LATENT = (4, 64, 64)


def avx2_cases():
    cases = []
    for seed in SEEDS:
        for shape in SMALL:
            cases.append((seed, [shape]))
    for seed in [0, 42, 4294967296 + 7]:
        cases.append((seed, [LATENT]))
    # one generator, several calls: the tail redraw, the double normal
    # cached between small calls and kept across large ones
    cases += [
        (1234, [(4, 8, 12), (4, 8, 12), (17,), (4, 8, 12)]),
        (7, [(5,), (4, 8, 12), (1,), (15,), (16,), (3,), (17,), (2,), (1,)]),
        (99, [(1,), (1,), (1,), (33,), (1,)]),
        # a txt2img latent, then an ancestral sampler's per-step noise
        (31337, [(1, 4, 16, 16), (1, 4, 16, 16), (1, 4, 16, 16), (1, 4, 16, 16)]),
        # -1 as a Python seed is 2^64 - 1 to the generator
        (U64, [(2, 3), (40,)]),
    ]
    return cases


def scalar_cases():
    cases = [(seed, [shape]) for seed in [0, 42] for shape in SMALL]
    cases += [
        (0, [LATENT]),
        (1234, [(4, 8, 12), (4, 8, 12), (17,), (4, 8, 12)]),
        (7, [(5,), (4, 8, 12), (1,), (15,), (16,), (3,), (17,), (2,), (1,)]),
    ]
    return cases


RAW_SEEDS = [0, 5489, 42, 2**32 + 5]
RAW_COUNT = 1000            # past the first twist (624 words)


def run_flavour(flavour, out_path):
    """Child process: torch's values for one flavour, to an .npz."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if flavour == "avx2" and not capability.startswith("AVX2") and not capability.startswith("AVX512"):
        sys.exit(f"make_rng_fixtures: CPU capability is {capability}; the avx2 cases need an "
                 "x86-64 CPU with AVX2")
    if flavour == "scalar" and capability != "DEFAULT":
        sys.exit(f"make_rng_fixtures: ATEN_CPU_CAPABILITY=default gave {capability}")
    arrays = {}
    meta = []
    cases = avx2_cases() if flavour == "avx2" else scalar_cases()
    for i, (seed, shapes) in enumerate(cases):
        g = torch.Generator("cpu").manual_seed(seed)
        values = [torch.randn(s, generator=g, dtype=torch.float32).numpy().ravel() for s in shapes]
        name = f"{flavour}.{i:02d}"
        arrays[name] = np.concatenate(values)
        meta.append({"name": name, "flavour": flavour, "seed": str(seed),
                     "calls": [list(s) for s in shapes]})
    if flavour == "avx2":
        for seed in RAW_SEEDS:
            g = torch.Generator("cpu").manual_seed(seed)
            # the full 64-bit range is random64(): first output high, second low
            pairs = torch.empty(RAW_COUNT // 2, dtype=torch.int64).random_(-2**63, None, generator=g)
            words = pairs.numpy().view(np.uint64)
            raw = np.stack([words >> np.uint64(32), words & np.uint64(0xffffffff)], axis=1)
            name = f"raw.{seed}"
            arrays[name] = raw.ravel().astype(np.uint32)
            meta.append({"name": name, "seed": str(seed), "count": RAW_COUNT})
    np.savez(out_path, **arrays)
    with open(out_path + ".json", "w") as f:
        json.dump({"cases": meta, "capability": capability, "torch": torch.__version__}, f)


def main():
    import torch
    from safetensors.numpy import load_file

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_model_fixtures import save

    here = os.path.dirname(os.path.abspath(__file__))
    work = tempfile.mkdtemp()
    arrays, cases, info = {}, [], {}
    for flavour in ["avx2", "scalar"]:
        env = dict(os.environ)
        env.pop("ATEN_CPU_CAPABILITY", None)
        if flavour == "scalar":
            env["ATEN_CPU_CAPABILITY"] = "default"
        path = os.path.join(work, flavour + ".npz")
        subprocess.run([sys.executable, os.path.abspath(__file__), "--flavour", flavour, path],
                       env=env, check=True)
        with np.load(path) as z:
            arrays.update({k: z[k] for k in z.files})
        with open(path + ".json") as f:
            got = json.load(f)
        cases += got["cases"]
        info[flavour] = got

    # the two kernels must really differ, or the environment variable did nothing
    a = {c["seed"] + repr(c["calls"]): c["name"] for c in cases if c.get("flavour") == "avx2"}
    s = {c["seed"] + repr(c["calls"]): c["name"] for c in cases if c.get("flavour") == "scalar"}
    shared = [k for k in s if k in a]
    assert shared
    assert any(not np.array_equal(arrays[a[k]], arrays[s[k]]) for k in shared), \
        "the avx2 and scalar kernels gave the same values: ATEN_CPU_CAPABILITY had no effect"

    metadata = {
        "sdcl.rng_cases": json.dumps(cases, separators=(",", ":")),
        "sdcl.torch_version": info["avx2"]["torch"],
        "sdcl.cpu_capability.avx2": info["avx2"]["capability"],
        "sdcl.cpu_capability.scalar": info["scalar"]["capability"],
        "sdcl.generator": "tests/reference/make_rng_fixtures.py",
    }
    out = os.path.normpath(os.path.join(here, "..", "fixtures", "rng.safetensors"))
    save({k: torch.from_numpy(v) for k, v in arrays.items()}, out, None, metadata)
    back = load_file(out)
    assert sorted(back) == sorted(arrays)
    assert all(back[k].dtype == v.dtype and np.array_equal(back[k], v) for k, v in arrays.items())
    n_values = sum(v.size for v in arrays.values())
    print(f"{out}: {len(cases)} cases, {n_values} values, {os.path.getsize(out)} bytes "
          f"(torch {info['avx2']['torch']}, {info['avx2']['capability']})")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--flavour":
        run_flavour(sys.argv[2], sys.argv[3])
    else:
        main()
