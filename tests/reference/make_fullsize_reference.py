#!/usr/bin/env python3
"""Reference outputs of diffusers/transformers on random weights of the real
SD 1.5 shapes: tests/fixtures/fullsize-ref.safetensors, for the `fullsize`
test suite.

The weights are not committed: the engine's own tool writes them from a
seed, and this script reads that same file:

    build/tests/make-random-model models/configs/sd15 build/sd15-random.safetensors
    ~/.cache/sdcl-venv/bin/python tests/reference/make_fullsize_reference.py \
        build/sd15-random.safetensors

It loads the file with diffusers' single-file loader (so the original-layout
names are diffusers' own reading of them) and runs, in float32 (float64 at
this size is slow and needs 8 GB more; the tests allow for it):
  - the text encoder on a fixed prompt's 77 ids (clip skip 1 and 2);
  - one UNet forward on a seeded 64x64 latent with a seeded 77-token context
    at t = 500;
  - one VAE decode of a seeded 64x64 latent to 512x512 (16,384 sampled
    pixels are stored, with the output's RMS).
Seeded inputs use the formula in tests/reference/README.md.
"""
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from clip_vocab import clip_tokenizer  # noqa: E402
from make_op_fixtures import seeded  # noqa: E402
from make_model_fixtures import save  # noqa: E402

CONFIGS = os.path.join(HERE, "..", "..", "models", "configs", "sd15")
OUT = os.path.join(HERE, "..", "fixtures", "fullsize-ref.safetensors")
PROMPT = "a photograph of an astronaut riding a horse on the moon, highly detailed"
SAMPLES = 16384


def folder(work, configs=CONFIGS):
    """A diffusers folder of configs only, for from_single_file(config=)."""
    for part, name in (("unet", "unet.json"), ("vae", "vae.json"),
                       ("text_encoder", "text_encoder.json")):
        os.makedirs(os.path.join(work, part))
        shutil.copy(os.path.join(configs, name), os.path.join(work, part, "config.json"))
    os.makedirs(os.path.join(work, "scheduler"))
    shutil.copy(os.path.join(configs, "scheduler.json"),
                os.path.join(work, "scheduler", "scheduler_config.json"))
    tok = clip_tokenizer(work)
    tok.save_pretrained(os.path.join(work, "tokenizer"))
    with open(os.path.join(work, "model_index.json"), "w") as f:
        json.dump({"_class_name": "StableDiffusionPipeline",
                   "scheduler": ["diffusers", "PNDMScheduler"],
                   "text_encoder": ["transformers", "CLIPTextModel"],
                   "tokenizer": ["transformers", "CLIPTokenizer"],
                   "unet": ["diffusers", "UNet2DConditionModel"],
                   "vae": ["diffusers", "AutoencoderKL"]}, f)
    return tok


def load_pipeline(path, configs=CONFIGS, dtype=torch.float32):
    """A StableDiffusionPipeline (no safety checker) from an original-layout
    single file without metadata: the architecture from the JSON configs in
    `configs`, the names converted by diffusers' single-file loader, the
    tokenizer from clip_vocab. Offline. Returns (pipe, tokenizer)."""
    from diffusers import StableDiffusionPipeline
    work = tempfile.mkdtemp()
    try:
        tok = folder(work, configs)
        pipe = StableDiffusionPipeline.from_single_file(
            path, config=work, local_files_only=True, safety_checker=None,
            requires_safety_checker=False, torch_dtype=dtype)
    finally:
        shutil.rmtree(work)
    # clip_vocab's tokenizer has no length limit; the pipeline pads and
    # truncates to it
    pipe.tokenizer.model_max_length = pipe.text_encoder.config.max_position_embeddings
    return pipe, tok


def main():
    torch.set_num_threads(2)
    path = sys.argv[1]
    t0 = time.time()
    pipe, tok = load_pipeline(path)
    print(f"loaded in {time.time() - t0:.1f} s")
    ref = {}
    with torch.no_grad():
        ids = tok([PROMPT], padding="max_length", max_length=77, return_tensors="pt").input_ids
        out = pipe.text_encoder(ids, output_hidden_states=True)
        te = pipe.text_encoder
        final_ln = te.text_model.final_layer_norm if hasattr(te, "text_model") else te.final_layer_norm
        ref["te.ids"] = ids.float()
        ref["te.hidden"] = out.last_hidden_state
        ref["te.hidden_skip2"] = final_ln(out.hidden_states[-2])

        x = torch.from_numpy(seeded(21, [1, 4, 64, 64], 1.0))
        ctx = torch.from_numpy(seeded(22, [1, 77, 768], 1.0))
        t0 = time.time()
        y = pipe.unet(x, torch.tensor([500.0]), encoder_hidden_states=ctx).sample
        print(f"UNet forward in {time.time() - t0:.1f} s")
        ref["unet.out"] = y

        z = torch.from_numpy(seeded(23, [1, 4, 64, 64], 1.0))
        t0 = time.time()
        img = pipe.vae.decode(z).sample
        print(f"VAE decode in {time.time() - t0:.1f} s")
        flat = img.flatten()
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(flat.numel(), SAMPLES, replace=False))
        ref["vae.idx"] = torch.from_numpy(idx.astype(np.float32))   # exact below 2^24
        ref["vae.val"] = flat[torch.from_numpy(idx)]
        ref["vae.norm"] = flat.pow(2).mean().sqrt().reshape(1)
    save({k: v.float() for k, v in ref.items()}, OUT, torch.float32,
         {"sdcl.weights": "make-random-model models/configs/sd15",
          "sdcl.inputs": "unet: seeded(21) latent, seeded(22) context, t=500; vae: seeded(23)"})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
