#!/usr/bin/env python3
"""Reference outputs of diffusers' Stable Diffusion pipelines on the tiny
model (tests/fixtures/models/), for comparing the engine's txt2img, img2img
and inpaint pipelines and its samplers with diffusers in CI, without PyTorch;
with --model, the same for another single-file model (the shipped one).

Writes tests/fixtures/pipeline/ (see the README there):

  pipeline.safetensors    one group of tensors per case (`<case>.*`) and the
                          case's description as JSON in __metadata__
                          (`case.<case>`)
  schedulers.safetensors  the samplers alone on seeded random "model
                          outputs" (`sched.<name>.*`), no network involved
  init.png, mask.png      the img2img / inpaint inputs, 8-bit, 64x96

Every random draw the pipelines make goes through diffusers'
`randn_tensor`; the script wraps it, records each draw with where it came
from (VAE latent sampling, the initial noise, a sampler step) and checks
that replaying the draws with torch.randn on a freshly seeded generator
ends in the same generator state as the pipeline's, so the recorded order
is complete. It also checks that the recorded final latent, decoded by the
VAE, gives the image the pipeline returned. Output is the same byte for
byte on every run.

    ~/.cache/sdcl-venv/bin/python tests/reference/make_pipeline_fixtures.py [OUT_DIR]

With --model FILE (one file in the original SD layout, its configs in
__metadata__ as models/train/export.py writes them) every pipeline is that
model's, configured by that metadata alone, and the run writes only
pipeline.safetensors and a README for the cases of --cases (default
`default-model`: two txt2img cases at 64x64) into --out (default
tests/fixtures/<cases>/); each case's JSON names the file (relative to the
repository where it lies inside it) and its SHA-256:

    ~/.cache/sdcl-venv/bin/python tests/reference/make_pipeline_fixtures.py \
        --model models/sdcl-shapes.safetensors [--cases default-model] [--out DIR]
"""
import argparse
import collections
import functools
import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import zlib

import numpy as np
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from clip_vocab import clip_tokenizer  # noqa: E402
from make_model_fixtures import config_folder, config_json, read_header, save  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
FOLDER = "tests/fixtures/models/tiny-sd"
INPAINT_FILE = "tests/fixtures/models/tiny-sd-inpaint.safetensors"
WIDTH, HEIGHT = 64, 96                     # latent 8 wide, 12 high
LATENT = (4, HEIGHT // 8, WIDTH // 8)
# cases at another size: a latent of 9 x 11 is not a multiple of the UNet's
# 4, so its downsamplers round up and its upsamplers resize to the skips
SIZES = {"t2i_odd_size": (72, 88)}


# ---- samplers ------------------------------------------------------------------------

def sampler_table():
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                           EulerDiscreteScheduler, LCMScheduler)
    dpm = dict(algorithm_type="dpmsolver++", solver_order=2)
    # name: (class, from_config overrides, eta for step())
    return {
        "euler": (EulerDiscreteScheduler, {}, None),
        "euler_a": (EulerAncestralDiscreteScheduler, {}, None),
        "ddim": (DDIMScheduler, {}, 0.0),
        "ddim_eta06": (DDIMScheduler, {}, 0.6),
        "dpmpp_2m": (DPMSolverMultistepScheduler, dict(dpm, use_karras_sigmas=False), None),
        "dpmpp_2m_karras": (DPMSolverMultistepScheduler, dict(dpm, use_karras_sigmas=True), None),
        "euler_karras": (EulerDiscreteScheduler, dict(use_karras_sigmas=True), None),
        "lcm": (LCMScheduler, {}, None),
        "euler_trailing": (EulerDiscreteScheduler, dict(timestep_spacing="trailing"), None),
        "euler_v": (EulerDiscreteScheduler, dict(prediction_type="v_prediction"), None),
        "ddim_v": (DDIMScheduler, dict(prediction_type="v_prediction"), 0.0),
    }


def base_scheduler_config():
    with open(os.path.join(ROOT, FOLDER, "scheduler", "scheduler_config.json")) as f:
        return json.load(f)


def make_scheduler(name, base=None):
    """Sampler `name` from the model's scheduler config (its raw JSON, not a
    loaded scheduler's: that would add the PNDM class's defaults); base None
    is the tiny model's."""
    cls, overrides, _ = sampler_table()[name]
    return cls.from_config(base or base_scheduler_config(), **overrides)


def scheduler_info(s, overrides):
    return {"class": type(s).__name__, "overrides": overrides,
            "config": json.loads(config_json(s.config))}


# ---- recording every random draw ---------------------------------------------------

class Draws:
    """Wraps diffusers' randn_tensor everywhere it was imported; between
    start() and stop() logs per call (label, indices of the generators it
    drew from, the tensor, the VAE sample made from it, the sampler step)."""

    def __init__(self):
        import diffusers.utils.torch_utils as tu
        self.orig = tu.randn_tensor
        self.log = None
        self.gens = []
        self.step = None          # set by the caller: the sampler step under way
        for m in list(sys.modules.values()):
            if m is not None and m.__name__.startswith("diffusers") and \
                    getattr(m, "randn_tensor", None) is self.orig:
                m.randn_tensor = self.randn

    def start(self, gens):
        self.log, self.gens = [], gens

    def stop(self):
        log, self.log = self.log, None
        return log

    def replay(self, log):
        """From now on hands out the tensors of `log` again, in order, in
        the dtype asked for, instead of drawing (None: draw again)."""
        self.queue = None if log is None else [t for _, _, t, _, _ in log]

    def label(self):
        names = [f.function for f in inspect.stack()[2:12]]
        if names[0] == "sample":                 # DiagonalGaussianDistribution.sample
            return "vae_sample(masked_image)" if "prepare_mask_latents" in names else "vae_sample(init)"
        if names[0] == "prepare_latents":
            return "noise"
        if names[0] == "step":
            return "step_noise"
        raise RuntimeError(f"unexpected randn_tensor caller: {names}")

    queue = None

    def randn(self, shape, generator=None, *args, **kw):
        if self.queue is not None:
            out = self.queue.pop(0)
            if tuple(out.shape) != tuple(shape):
                raise RuntimeError(f"replay: {tuple(shape)} asked, {tuple(out.shape)} recorded")
            return out.to(kw.get("dtype") or out.dtype)
        out = self.orig(shape, generator, *args, **kw)
        if self.log is not None:
            if generator is None:
                raise RuntimeError("a draw without a generator")
            if isinstance(generator, list):
                idx = [next(i for i, g in enumerate(self.gens) if g is x) for x in generator]
            else:
                idx = [next(i for i, g in enumerate(self.gens) if g is generator)]
            label = self.label()
            vae = None
            if label.startswith("vae_sample"):
                dist = sys._getframe(1).f_locals["self"]
                vae = dist.mean + dist.std * out      # exactly what sample() returns
            self.log.append((label, idx, out.detach().clone(), vae, self.step))
        return out


def check_replay(log, seeds, gens):
    """The draws, replayed per generator with torch.randn, must reproduce
    every tensor and leave each generator in the pipeline's final state."""
    for gi, (seed, g) in enumerate(zip(seeds, gens)):
        r = torch.Generator("cpu").manual_seed(seed)
        for label, idx, t, _, _ in log:
            if gi in idx:
                k = idx.index(gi)
                part = t[k:k + 1] if len(idx) > 1 else t
                if not torch.equal(torch.randn(part.shape, generator=r), part):
                    raise SystemExit(f"replay of {label} from seed {seed} differs")
        if not torch.equal(r.get_state(), g.get_state()):
            raise SystemExit(f"generator {seed}: the pipeline drew more than the recorded draws")


def draw_order(log, gi=0):
    """The labels of generator gi's draws, runs of sampler-step draws
    written as one entry."""
    order = []
    for label, idx, _, _, step in log:
        if gi not in idx:
            continue
        if label == "step_noise":
            if order and order[-1].startswith("step_noise"):
                first = int(order[-1].split("steps ")[1].split("-")[0])
                order[-1] = f"step_noise x {step - first + 1} (steps {first}-{step})"
            else:
                order.append(f"step_noise x 1 (steps {step}-{step})")
        else:
            order.append(label)
    return order


# ---- inputs ----------------------------------------------------------------------------

def synthetic_image():
    """64x96 RGB: diagonal gradients, a disc, a rectangle, a ring, stripes."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    r = 40 + 150 * x / (WIDTH - 1) + 30 * np.sin(y / 9.0)
    g = 30 + 170 * y / (HEIGHT - 1)
    b = 200 - 120 * (x + y) / (WIDTH + HEIGHT - 2)
    img = np.stack([r, g, b], axis=-1)
    disc = (x - 22) ** 2 + (y - 30) ** 2 < 13 ** 2
    img[disc] = [230, 200, 40]
    rect = (x >= 36) & (x < 58) & (y >= 55) & (y < 83)
    img[rect] = [30, 60, 170]
    ring = np.abs(np.hypot(x - 18, y - 72) - 10) < 2.5
    img[ring] = [250, 250, 250]
    stripes = (y >= 6) & (y < 16) & ((x // 3) % 2 == 0)
    img[stripes] = [20, 20, 20]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def synthetic_mask():
    """64x96, 0/255: a rectangle and a disc, edges off the 8-pixel grid."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    m = ((x >= 13) & (x < 45) & (y >= 21) & (y < 53)) | ((x - 41) ** 2 + (y - 67) ** 2 < 11 ** 2)
    return np.where(m, 255, 0).astype(np.uint8)


def image_tensor(pipe, path):
    """The PNG's pixels / 255 as a contiguous [1, 3, H, W] float32 tensor;
    the pipeline normalises it to 2x - 1. The same values as the pipeline
    makes from the PIL image, but in NCHW memory order: from PIL the
    pipeline's tensor is a transposed view of NHWC data (channels-last
    strides), the VAE and UNet convolutions keep that layout, and PyTorch's
    CPU GroupNorm for channels-last float32 loses up to 1e-3 relative (the
    time embedding adds a per-channel constant 100x the spread before the
    UNet's norm2), which no other implementation would reproduce."""
    from PIL import Image
    pil = Image.open(path).convert("RGB")
    t = torch.from_numpy(np.asarray(pil).astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()
    a, b = pipe.image_processor.preprocess(pil), pipe.image_processor.preprocess(t)
    if not torch.equal(a, b) or not b.is_contiguous() or a.is_contiguous():
        raise SystemExit("the tensor input does not give the PIL input's pixels in NCHW order")
    return t


def write_png(array, path, mode):
    from PIL import Image
    Image.fromarray(array, mode=mode).save(path, format="PNG", optimize=False, compress_level=9)


# ---- pipelines ------------------------------------------------------------------------------

# A pipeline with what the fixture says of its model: `info` goes into each
# case's JSON, `scheduler` is the config the samplers start from, `label`
# names the model in the README.
Loaded = collections.namedtuple("Loaded", "pipe info scheduler label")


def modes_of(pipe, info, scheduler, label):
    """The pipelines a model's components serve: txt2img, img2img and
    inpainting with a 4-channel UNet, inpainting alone with a 9-channel one."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline
    if pipe.unet.config.in_channels == 9:
        pipes = {"inpaint9": StableDiffusionInpaintPipeline(**pipe.components)}
    else:
        pipes = {"txt2img": pipe,
                 "img2img": StableDiffusionImg2ImgPipeline(**pipe.components),
                 "inpaint4": StableDiffusionInpaintPipeline(**pipe.components)}
    for p in pipes.values():
        p.set_progress_bar_config(disable=True)
        for m in (p.unet, p.vae, p.text_encoder):
            m.eval()
    return {mode: Loaded(p, info, scheduler, label) for mode, p in pipes.items()}


def single_file_pipeline(path, common):
    """diffusers' StableDiffusionPipeline.from_single_file configured only by
    the file's __metadata__ (as models/train/export.py checks the shipped
    model), and that metadata."""
    from diffusers import StableDiffusionPipeline
    meta = read_header(path)["__metadata__"]
    with tempfile.TemporaryDirectory() as d:
        config_folder(d, meta)
        return StableDiffusionPipeline.from_single_file(path, config=d, **common), meta


def load_pipelines(tok, model=None):
    """mode -> Loaded: the tiny models (tiny-sd for all but the 9-channel
    inpaint), or every mode of the single file `model`."""
    from diffusers import StableDiffusionPipeline
    common = dict(tokenizer=tok, safety_checker=None, requires_safety_checker=False,
                  dtype=torch.float32, local_files_only=True)
    if model is not None:
        pipe, meta = single_file_pipeline(model, common)
        return modes_of(pipe, model_info(model), json.loads(meta["sdcl.scheduler_config"]),
                        os.path.splitext(os.path.basename(model))[0])
    base = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, FOLDER), **common)
    p9, _ = single_file_pipeline(os.path.join(ROOT, INPAINT_FILE), common)
    pipes = modes_of(base, {"model": FOLDER}, base_scheduler_config(), "tiny-sd")
    pipes.update(modes_of(p9, {"model": INPAINT_FILE}, base_scheduler_config(), "tiny-sd-inpaint (9 ch)"))
    assert set(pipes) == {"txt2img", "img2img", "inpaint4", "inpaint9"}
    return pipes


def model_info(path):
    """The model file as the C test finds it: relative to the repository
    when it lies inside it, and its SHA-256, so a fixture made from other
    weights is told apart from an engine error."""
    path = os.path.abspath(path)
    inside = os.path.commonpath([path, ROOT]) == ROOT
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"model": os.path.relpath(path, ROOT) if inside else path, "model_sha256": digest.hexdigest()}


P1 = "a red house on a hill"
P2 = "a photograph of an astronaut riding a horse"
P3 = "a bowl of fruit on a wooden table, oil painting"
P4 = "snowy mountains at sunrise"
N1 = "blurry, low quality"
N2 = "text"

# name, mode, sampler, steps, cfg, seeds, prompt, negative prompt, strength
CASES = [
    ("t2i_euler", "txt2img", "euler", 8, 7.5, [1001], P1, "", None),
    ("t2i_euler_a", "txt2img", "euler_a", 8, 7.5, [1102], P2, N1, None),
    ("t2i_ddim", "txt2img", "ddim", 8, 7.5, [1203], P3, "", None),
    ("t2i_ddim_eta06", "txt2img", "ddim_eta06", 8, 7.5, [1304], P4, N2, None),
    ("t2i_dpmpp_2m", "txt2img", "dpmpp_2m", 8, 7.5, [1405], P1, N1, None),
    ("t2i_dpmpp_2m_karras", "txt2img", "dpmpp_2m_karras", 8, 7.5, [1506], P2, "", None),
    ("t2i_euler_karras", "txt2img", "euler_karras", 8, 7.5, [1607], P3, N2, None),
    ("t2i_lcm", "txt2img", "lcm", 4, 1.5, [1708], P4, "", None),
    ("t2i_euler_trailing", "txt2img", "euler_trailing", 8, 7.5, [1809], P1, "", None),
    ("t2i_euler_v", "txt2img", "euler_v", 8, 7.5, [1910], P2, N1, None),
    ("t2i_ddim_v", "txt2img", "ddim_v", 8, 7.5, [2011], P3, "", None),
    ("t2i_cfg1", "txt2img", "euler", 8, 1.0, [2112], P4, "", None),
    ("t2i_1step", "txt2img", "euler", 1, 7.5, [2213], P1, N2, None),
    ("t2i_1step_trailing", "txt2img", "euler_trailing", 1, 7.5, [2220], P3, "", None),
    ("t2i_batch2", "txt2img", "euler_a", 8, 7.5, [2314, 2315], P2, "", None),
    ("t2i_odd_size", "txt2img", "dpmpp_2m", 6, 7.5, [2416], P4, N1, None),
    ("i2i_euler_s05", "img2img", "euler", 8, 7.5, [3101], P3, "", 0.5),
    ("i2i_euler_s08", "img2img", "euler", 8, 7.5, [3202], P4, N1, 0.8),
    ("i2i_ddim_s05", "img2img", "ddim", 8, 7.5, [3303], P1, N2, 0.5),
    ("i2i_ddim_s08", "img2img", "ddim", 8, 7.5, [3404], P2, "", 0.8),
    ("inp9_euler", "inpaint9", "euler", 8, 7.5, [4101], P3, "", 1.0),
    ("inp9_ddim", "inpaint9", "ddim", 8, 7.5, [4202], P4, N1, 1.0),
    ("inp9_full_euler_a", "inpaint9", "euler_a", 8, 7.5, [4303], P1, "", 1.0),
    ("inp4_euler_s10", "inpaint4", "euler", 8, 7.5, [4404], P2, N2, 1.0),
    ("inp4_ddim_s075", "inpaint4", "ddim", 8, 7.5, [4505], P3, "", 0.75),
]

# The shipped model (--model models/sdcl-shapes.safetensors) at its native
# 64x64: the engine's defaults (sdcl_request_init: Euler a, 20 steps, CFG
# 7.5) and DDIM.
DEFAULT_MODEL_CASES = [
    ("t2i_euler_a", "txt2img", "euler_a", 20, 7.5, [42], "a red circle on the left", "", None),
    ("t2i_ddim", "txt2img", "ddim", 20, 7.5, [7], "a big blue square in the centre on a white background", "",
     None),
]

# --cases: the case list, the image size of its cases (SIZES-like overrides
# per case) and the README template of its folder
CASE_SETS = {
    "pipeline": dict(cases=CASES, size=(WIDTH, HEIGHT), sizes=SIZES, readme="README"),
    "default-model": dict(cases=DEFAULT_MODEL_CASES, size=(64, 64), sizes={}, readme="README_MODEL"),
}


def invoke(pipe, args, draws):
    """Runs the pipeline, recording per step the latents after the step
    (after the inpaint blend), the guided model output handed to the
    sampler and the timestep, and at step 0 the callback's tensors."""
    per_step = {"latents": [], "model_outputs": [], "timesteps": []}
    extra = {}
    step = pipe.scheduler.step

    @functools.wraps(step)           # keeps the signature: pipelines look for `generator`, `eta`
    def step_spy(model_output, timestep, sample, *a, **kw):
        draws.step = len(per_step["model_outputs"])
        per_step["model_outputs"].append(model_output.detach().clone())
        per_step["timesteps"].append(float(timestep))
        return step(model_output, timestep, sample, *a, **kw)

    def on_step_end(p, i, t, kw):
        per_step["latents"].append(kw["latents"].detach().clone())
        if i == 0:
            extra.update({k: v.detach().clone() for k, v in kw.items()})
        return kw

    pipe.scheduler.step = step_spy
    with torch.no_grad():
        result = pipe(**args, callback_on_step_end=on_step_end)
    del pipe.scheduler.step
    return result, per_step, extra


def float64_error(pipe, sampler, base, args, log, f32_final, f32_image):
    """The same case again with the models in float64 and the recorded
    draws handed back: how far float32 rounding alone moves the final
    latent and the image (max |f32 - f64| / max |f64|)."""
    models = (pipe.unet, pipe.vae, pipe.text_encoder)
    for m in models:
        m.double()
    pipe.scheduler = make_scheduler(sampler, base)
    DRAWS.replay(log)
    try:
        result, per_step, _ = invoke(pipe, args, DRAWS)
    finally:
        DRAWS.replay(None)
        for m in models:
            m.float()
    final = per_step["latents"][-1] / pipe.vae.config.scaling_factor
    image = torch.from_numpy(np.ascontiguousarray(result.images)).double()

    def rel(a, ref):
        return (a.double() - ref.double()).abs().max().item() / ref.double().abs().max().item()
    return {"final_latent": float(f"{rel(f32_final, final):.2g}"), "image": float(f"{rel(f32_image, image):.2g}")}


def squeeze(t, batch):
    """Drops the batch dimension of a one-image case."""
    return t[0] if batch == 1 else t


def run_case(pipes, draws, tok, case, size, init_path, mask_path):
    """One case at size (width, height); img2img and inpaint take the PNGs'
    size, WIDTH x HEIGHT."""
    from PIL import Image
    name, mode, sampler, steps, cfg, seeds, prompt, negative, strength = case
    _, overrides, eta = sampler_table()[sampler]
    if mode not in pipes:
        raise SystemExit(f"{name}: the model has no {mode} pipeline (a 4-channel UNet has no inpaint9, "
                         "a 9-channel one only inpaint9)")
    loaded = pipes[mode]
    pipe = loaded.pipe
    pipe.scheduler = make_scheduler(sampler, loaded.scheduler)
    width, height = size
    if mode != "txt2img" and size != (WIDTH, HEIGHT):
        raise SystemExit(f"{name}: {mode} runs on init.png, {WIDTH}x{HEIGHT}, not {width}x{height}")
    batch = len(seeds)
    gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    gen = gens if batch > 1 else gens[0]

    inputs = ["latents"] + (["mask", "masked_image_latents"] if mode.startswith("inpaint") else [])
    args = dict(prompt=[prompt] * batch, negative_prompt=[negative] * batch if cfg > 1 else None,
                num_inference_steps=steps, guidance_scale=cfg, generator=gen, output_type="np",
                callback_on_step_end_tensor_inputs=inputs)
    if eta is not None:
        args["eta"] = eta
    png = {}
    if mode == "txt2img":
        args.update(height=height, width=width)
    else:
        png["image"] = "init.png"
        args.update(image=image_tensor(pipe, init_path), strength=strength)
    if mode.startswith("inpaint"):
        full = "_full" in name
        png["mask"] = "all 255 (no file)" if full else "mask.png"
        mask = Image.new("L", (width, height), 255) if full else Image.open(mask_path)
        args.update(mask_image=mask, height=height, width=width)

    draws.start(gens)
    result, per_step, extra = invoke(pipe, args, draws)
    log = draws.stop()
    check_replay(log, seeds, gens)
    image = torch.from_numpy(np.ascontiguousarray(result.images))
    s = pipe.scheduler
    n_run = len(per_step["latents"])

    # the recorded final latent, decoded, must give the returned image
    final = per_step["latents"][-1] / pipe.vae.config.scaling_factor
    with torch.no_grad():
        dec = pipe.vae.decode(final, return_dict=False)[0]
    again = torch.from_numpy(pipe.image_processor.postprocess(dec, output_type="np"))
    if not torch.equal(again, image):
        raise SystemExit(f"{name}: the final latent does not decode to the returned image")

    T = {}
    T["noise"] = squeeze(next(t for lab, _, t, _, _ in log if lab == "noise"), batch)
    T["latents"] = torch.stack([squeeze(x, batch) for x in per_step["latents"]])
    T["model_output_0"] = squeeze(per_step["model_outputs"][0], batch)
    T["final_latent"] = squeeze(final, batch)
    T["image"] = squeeze(image, batch)
    T["timesteps"] = torch.tensor(per_step["timesteps"], dtype=torch.float32)
    T["all_timesteps"] = s.timesteps.to(torch.float32)
    if getattr(s, "sigmas", None) is not None:
        T["sigmas"] = s.sigmas.to(torch.float32)
    steps_noise = [t for lab, _, t, _, _ in log if lab == "step_noise"]
    if steps_noise:
        T["step_noise"] = torch.stack([squeeze(x, batch) for x in steps_noise])
    for lab, key in (("vae_sample(init)", "init"), ("vae_sample(masked_image)", "masked_image")):
        found = [(t, v) for l2, _, t, v, _ in log if l2 == lab]
        if found:
            T[f"vae_noise.{key}"] = squeeze(torch.cat([t for t, _ in found]), batch)
            T[f"{key}_latents"] = squeeze(torch.cat([v for _, v in found]) * pipe.vae.config.scaling_factor,
                                          batch)
    if mode.startswith("inpaint"):
        T["mask_latent"] = extra["mask"][0, 0]
        if not torch.equal(extra["masked_image_latents"][:batch], T["masked_image_latents"].reshape(
                extra["masked_image_latents"][:batch].shape)):
            raise SystemExit(f"{name}: masked image latents differ from the pipeline's")

    err = float64_error(pipe, sampler, loaded.scheduler, args, log, final, image)
    order = draw_order(log)
    if any(draw_order(log, gi) != order for gi in range(batch)):
        raise SystemExit(f"{name}: the generators were drawn from in different orders")
    ids = tok(prompt, padding="max_length", max_length=77, truncation=True).input_ids
    neg_ids = tok(negative, padding="max_length", max_length=77, truncation=True).input_ids
    meta = {
        "mode": mode if not mode.startswith("inpaint") else "inpaint",
        "pipeline": type(pipe).__name__,
        "unet_in_channels": pipe.unet.config.in_channels,
        "sampler": sampler, "scheduler": scheduler_info(s, overrides),
        "steps": steps, "steps_run": n_run, "cfg": cfg, "eta": eta, "strength": strength,
        "seeds": seeds, "batch": batch, "prompt": prompt,
        "negative_prompt": negative if cfg > 1 else None,
        "prompt_ids": ids, "negative_prompt_ids": neg_ids if cfg > 1 else None,
        "width": width, "height": height,
        "png": png,
        "init_noise_sigma": float(s.init_noise_sigma),
        "begin_index": getattr(s, "begin_index", None),
        "draws": order,
        "draws_note": ("per generator: generator i makes these draws for image i" if batch > 1 else
                       "in this order from the one generator"),
        "output_type": "np",
        "image_input": (None if mode == "txt2img" else
                        "init.png as a contiguous float32 tensor [1, 3, H, W] = pixels / 255 (the pipeline "
                        "normalises to 2x - 1): the values the PIL path gives, in NCHW memory order"),
        "image_note": ("[H, W, 3] floats in [0, 1] as the pipeline returned them (VAE output / 2 + 0.5, "
                       "clamped), before any uint8 conversion" +
                       ("; inpaint: no paste-back of the original pixels outside the mask (diffusers "
                        "only does that with padding_mask_crop, not used here)" if mode.startswith("inpaint")
                        else "")),
        "f32_vs_f64": err,
        "t_start": steps - n_run,
        "vae_scaling_factor": pipe.vae.config.scaling_factor,
        "tensors": sorted(T),
        **loaded.info,
    }
    if mode.startswith("inpaint"):
        f = pipe.vae_scale_factor
        meta["mask_note"] = (
            "mask PNG -> grayscale / 255, binarised (< 0.5 -> 0, else 1); masked image = image in [-1, 1] "
            f"* (mask < 0.5); latent mask = nearest interpolation to {height // f}x{width // f}, i.e. the "
            f"pixel at ({f}i, {f}j), the top-left of each {f}x{f} block (mask_latent)")
    if mode == "inpaint9":
        meta["unet_input"] = "cat([scale_model_input(latents), mask_latent, masked_image_latents], dim=1)"
    if mode == "inpaint4":
        meta["blend"] = (
            "after every step: latents = (1 - mask_latent) * init + mask_latent * latents, where init = "
            "add_noise(init_latents, noise, timesteps[i + 1]) with the initial noise tensor, and the "
            "clean init_latents after the last step; latents[i] is after the blend")
    lat = T["final_latent"].double()
    print(f"  {name:20s} {sampler:16s} steps {n_run:2d}  final latent rms {lat.square().mean().sqrt():.4f}"
          f"  image mean {image.double().mean():.4f}  f64 err {err['final_latent']:.1e} {err['image']:.1e}"
          f"  draws: {', '.join(order)}")
    return {f"{name}.{k}": v.detach().to(torch.float32).contiguous() for k, v in T.items()}, meta


# ---- samplers alone -----------------------------------------------------------------------

def jsonable(x):
    """Configs hold -inf (DPM-Solver's lambda_min_clipped), which JSON cannot:
    non-finite floats become the strings "inf", "-inf", "nan"."""
    if isinstance(x, float) and not np.isfinite(x):
        return "nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def dumps(x):
    return json.dumps(jsonable(x), sort_keys=True, allow_nan=False)


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def run_scheduler(name, sampler, n, strength=None):
    """set_timesteps(n), then step() through every timestep (or, with a
    strength, the img2img start: timesteps from t_start, set_begin_index,
    add_noise of a random x0) on seeded random model outputs."""
    _, overrides, eta = sampler_table()[sampler]
    s = make_scheduler(sampler)
    s.set_timesteps(n)
    g = torch.Generator("cpu").manual_seed(seed_of(name))
    shape = (1,) + LATENT
    T, meta = {}, {}
    timesteps = s.timesteps
    if strength is None:
        init = torch.randn(shape, generator=g) * s.init_noise_sigma
        t_start = 0
    else:
        t_start = max(n - min(int(n * strength), n), 0)
        timesteps = s.timesteps[t_start * s.order:]
        if hasattr(s, "set_begin_index"):
            s.set_begin_index(t_start * s.order)
        x0 = torch.randn(shape, generator=g)
        noise = torch.randn(shape, generator=g)
        init = s.add_noise(x0, noise, timesteps[:1])
        T["x0"], T["noise"] = x0[0], noise[0]
    outputs = torch.randn((len(timesteps),) + shape, generator=g)
    T["model_outputs"] = outputs[:, 0]
    step_gen = torch.Generator("cpu").manual_seed(seed_of(name) + 1)
    draws = DRAWS
    draws.start([step_gen])
    sample, samples, scales = init, [], []
    for i, t in enumerate(timesteps):
        draws.step = i
        scales.append(s.scale_model_input(torch.ones(shape), t)[0, 0, 0, 0].item())
        kw = {"generator": step_gen}
        if eta is not None:
            kw["eta"] = eta
        sample = s.step(outputs[i], t, sample, return_dict=False, **kw)[0]
        samples.append(sample[0])
    log = draws.stop()
    check_replay(log, [seed_of(name) + 1], [step_gen])
    T["init"] = init[0]
    T["samples"] = torch.stack(samples)
    T["timesteps"] = s.timesteps.to(torch.float32)
    if getattr(s, "sigmas", None) is not None:
        T["sigmas"] = s.sigmas.to(torch.float32)
    T["scale"] = torch.tensor(scales, dtype=torch.float32)
    if log:
        T["step_noise"] = torch.stack([t[0] for _, _, t, _, _ in log])
    meta = {"sampler": sampler, "scheduler": scheduler_info(s, overrides), "steps": n, "eta": eta,
            "inputs_seed": seed_of(name),
            "step_generator_seed": seed_of(name) + 1,
            "init_noise_sigma": float(s.init_noise_sigma), "strength": strength, "t_start": t_start,
            "begin_index": getattr(s, "begin_index", None), "steps_run": len(samples),
            "step_noise_draws": len(log), "tensors": sorted(T)}
    print(f"  sched.{name:26s} steps {len(samples):2d}  t {T['timesteps'][t_start].item():7.2f}"
          f" .. {T['timesteps'][-1].item():6.2f}  final rms {samples[-1].double().square().mean().sqrt():.4f}")
    return {f"sched.{name}.{k}": v.detach().to(torch.float32).contiguous() for k, v in T.items()}, meta


DRAWS = None
OUTPUTS = ("pipeline.safetensors", "schedulers.safetensors", "init.png", "mask.png", "README.md")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?", metavar="OUT_DIR", help="the same as --out")
    ap.add_argument("--out", metavar="DIR", help="the folder to write, emptied first (default "
                    "tests/fixtures/<cases>/)")
    ap.add_argument("--model", metavar="FILE", help="one .safetensors file in the original SD layout with "
                    "its configs in __metadata__ (sdcl.unet_config, ...): every pipeline is this model's "
                    "(default: the tiny models of tests/fixtures/models/, and the samplers alone)")
    ap.add_argument("--cases", choices=sorted(CASE_SETS),
                    help="the case list (default: pipeline; with --model, default-model)")
    a = ap.parse_args()
    if a.out_dir and a.out:
        ap.error("OUT_DIR and --out both given")
    a.cases = a.cases or ("default-model" if a.model else "pipeline")
    a.out = a.out or a.out_dir or os.path.join(ROOT, "tests", "fixtures", a.cases)
    return a


def empty_folder(out):
    """Removes the folder before writing it again; refuses one that holds
    anything this script does not write (a mistyped --out)."""
    if os.path.isdir(out):
        strangers = sorted(set(os.listdir(out)) - set(OUTPUTS))
        if strangers:
            raise SystemExit(f"{out} holds {', '.join(strangers[:5])}, which this script does not write; "
                             "refusing to empty it")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)


def main():
    global DRAWS
    a = parse_args()
    cs = CASE_SETS[a.cases]
    out = a.out
    import diffusers
    import transformers
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    import diffusers.models.autoencoders.vae  # noqa: F401  (imported before wrapping randn_tensor)
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion  # noqa: F401
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img  # noqa: F401
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint  # noqa: F401
    sampler_table()
    for mod in ("scheduling_euler_discrete", "scheduling_euler_ancestral_discrete", "scheduling_ddim",
                "scheduling_dpmsolver_multistep", "scheduling_lcm"):
        __import__("diffusers.schedulers." + mod)
    DRAWS = Draws()

    empty_folder(out)
    work = tempfile.mkdtemp()
    tok = clip_tokenizer(work)
    tok.model_max_length = 77              # what the pipelines pad and truncate to
    init_path, mask_path = os.path.join(out, "init.png"), os.path.join(out, "mask.png")
    if any(case[1] != "txt2img" for case in cs["cases"]):
        write_png(synthetic_image(), init_path, "RGB")
        write_png(synthetic_mask(), mask_path, "L")

    print("pipelines:")
    pipes = load_pipelines(tok, a.model)
    any_pipe = next(iter(pipes.values())).pipe
    factor = any_pipe.vae_scale_factor        # 2 ** (VAE levels - 1): 8 for SD, 4 for sdcl-shapes

    def latent(width, height):
        return [any_pipe.vae.config.latent_channels, height // factor, width // factor]
    width, height = cs["size"]
    shapes = "; ".join([str([1] + latent(width, height))] +
                       [f"{name} {[1] + latent(*size)}" for name, size in cs["sizes"].items()])
    about = {"generator": "torch.Generator('cpu').manual_seed(seed), one per image; every draw is "
                          f"torch.randn (float32, CPU) of the latent shape ({shapes})",
             "diffusers": diffusers.__version__, "torch": torch.__version__.split("+")[0],
             "width": width, "height": height, "latent": latent(width, height)}
    if a.model:
        about.update(pipes["txt2img" if "txt2img" in pipes else "inpaint9"].info, vae_scale_factor=factor)

    tensors, meta = {}, {"sdcl.about": dumps(about)}
    names, case_draws = [], {}
    for case in cs["cases"]:
        T, m = run_case(pipes, DRAWS, tok, case, cs["sizes"].get(case[0], cs["size"]), init_path, mask_path)
        case_draws[case[0]] = m["draws"]
        tensors.update(T)
        meta["case." + case[0]] = dumps(m)
        names.append(case[0])
    meta["sdcl.cases"] = json.dumps(names)
    save(tensors, os.path.join(out, "pipeline.safetensors"), torch.float32, meta)

    if a.model is None:
        write_schedulers(os.path.join(out, "schedulers.safetensors"), about)

    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(readme(a, cs, pipes, case_draws, about, factor))
    shutil.rmtree(work)
    total = 0
    for fn in sorted(os.listdir(out)):
        size = os.path.getsize(os.path.join(out, fn))
        total += size
        print(f"  {fn:28s} {size:10,d}")
    print(f"wrote {out}: {total:,} bytes")


def write_schedulers(path, about):
    """The samplers alone (schedulers.safetensors), on the tiny model's
    scheduler config."""
    print("samplers alone:")
    tensors, meta = {}, {}
    names = []
    runs = []
    for sampler in sampler_table():
        for n in (20, 1):
            runs.append((f"{sampler}.{n}", sampler, n, None))
    runs += [("euler.img2img", "euler", 10, 0.6), ("ddim.img2img", "ddim", 10, 0.6)]
    for name, sampler, n, strength in runs:
        T, m = run_scheduler(name, sampler, n, strength)
        tensors.update(T)
        meta["sched." + name] = dumps(m)
        names.append(name)
    s = make_scheduler("ddim")
    tensors["sched.alphas_cumprod"] = s.alphas_cumprod.to(torch.float32).contiguous()
    meta["sdcl.schedulers"] = json.dumps(names)
    meta["sdcl.about"] = dumps(dict(about, base_config=base_scheduler_config()))
    save(tensors, path, torch.float32, meta)


def readme(a, cs, pipes, case_draws, about, factor):
    rows = []
    for name, mode, sampler, steps, cfg, seeds, prompt, negative, strength in cs["cases"]:
        extra = []
        if strength is not None:
            extra.append(f"strength {strength}")
        if "_full" in name:
            extra.append("mask all 255")
        if len(seeds) > 1:
            extra.append(f"batch {len(seeds)}")
        neg = "(none: cfg 1 skips the unconditional pass)" if cfg <= 1 else (f'"{negative}"' if negative else '""')
        rows.append(f"| `{name}` | {mode.rstrip('49')} | {pipes[mode].label} | {sampler} | {steps} | {cfg} | "
                    f"{', '.join(map(str, seeds))} | \"{prompt}\" / {neg} | {'; '.join(extra)} | "
                    f"{', '.join(case_draws[name])} |")
    info = next(iter(pipes.values())).info
    fields = {"CASES": "\n".join(rows), "CASE_SET": a.cases, "MODEL": info["model"],
              "SHA256": info.get("model_sha256", "not recorded"), "WIDTH": str(about["width"]),
              "HEIGHT": str(about["height"]), "LATENT": " x ".join(map(str, about["latent"])),
              "LATENT_SHAPE": str(about["latent"])[1:-1], "FACTOR": str(factor)}
    text = globals()[cs["readme"]]
    for key, value in fields.items():
        text = text.replace(f"@{key}@", value)
    return text


README = """# Pipeline fixtures

Made by `tests/reference/make_pipeline_fixtures.py`: diffusers' own
Stable Diffusion pipelines (float32, CPU) on the tiny random-weight model
of `../models/`, 64 wide x 96 high (latent 4 x 12 x 8), every random draw
recorded, so the engine's txt2img, img2img and inpaint pipelines and its
samplers can be compared with diffusers without PyTorch. See
`tests/reference/README.md` for how and why.

| file | what |
| --- | --- |
| `pipeline.safetensors` | one group of tensors per case, `<case>.*`, and its description as JSON in `__metadata__` under `case.<case>`; `sdcl.cases` lists the cases in order, `sdcl.about` the versions and shapes |
| `schedulers.safetensors` | the samplers alone on seeded random model outputs, `sched.<name>.*`, JSON under `sched.<name>`; `sdcl.schedulers` lists them |
| `init.png` | the img2img / inpaint image, 64x96 RGB, 8-bit |
| `mask.png` | the inpaint mask, 64x96 grayscale, 0/255, a rectangle (x 13..44, y 21..52) and a disc (centre 41,67, radius 11), off the 8-pixel grid |

All tensors are F32; a case with one image has no batch dimension.

## Pipeline cases

| case | mode | model | sampler | steps | cfg | seed(s) | prompt / negative | other | generator draws, in order |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
@CASES@

Samplers (`XScheduler.from_config(tiny-sd/scheduler/scheduler_config.json,
**overrides)`; the full config as used is in each case's JSON):
euler = EulerDiscreteScheduler; euler_a = EulerAncestralDiscreteScheduler;
ddim = DDIMScheduler (eta 0); ddim_eta06 = DDIM with the pipeline's
eta=0.6; dpmpp_2m = DPMSolverMultistepScheduler(algorithm_type
"dpmsolver++", solver_order 2, use_karras_sigmas False); dpmpp_2m_karras
= the same with Karras sigmas; euler_karras = Euler with Karras sigmas;
lcm = LCMScheduler in the ordinary StableDiffusionPipeline (guidance is
ordinary CFG, two UNet passes; the tiny UNet has no guidance embedding);
euler_trailing = Euler, timestep_spacing "trailing"; euler_v / ddim_v =
prediction_type "v_prediction" (on an epsilon model: only the math is
tested).

Tensors per case:

| tensor | shape | what |
| --- | --- | --- |
| `noise` | [4, 12, 8] | the initial noise the pipeline drew (`randn_tensor` of the latent shape) |
| `latents` | [steps, 4, 12, 8] | the latents after each step (inpaint with the 4-channel UNet: after the blend) |
| `model_output_0` | [4, 12, 8] | the guided model output handed to `scheduler.step` at the first step (the UNet, CFG and input scaling glue, apart from the sampler) |
| `final_latent` | [4, 12, 8] | the last latents / 0.18215, what the VAE decodes |
| `image` | [96, 64, 3] | the pipeline's output_type="np" image, floats in [0, 1], before any uint8 conversion; inpaint: no paste-back of the original pixels |
| `timesteps` | [steps] | the timesteps the loop ran (after the strength cut) |
| `all_timesteps` | [n] | `scheduler.timesteps` after set_timesteps (the loop starts at `t_start` in the JSON) |
| `sigmas` | [n + 1] | `scheduler.sigmas` (Euler, Euler a, DPM++; not DDIM, LCM) |
| `step_noise` | [k, 4, 12, 8] | the noise the sampler drew in its steps (euler_a, ddim eta > 0, lcm) |
| `vae_noise.init`, `init_latents` | [4, 12, 8] | img2img / inpaint: the draw of `latent_dist.sample` for the init image, and the latent it gave (mean + std * draw, times 0.18215) |
| `vae_noise.masked_image`, `masked_image_latents` | [4, 12, 8] | inpaint: the same for the masked image |
| `mask_latent` | [12, 8] | inpaint: the mask at latent resolution, 0/1 |

`t2i_batch2` keeps a leading batch dimension of 2 on `noise`,
`model_output_0`, `final_latent` and `image`, and a second one on `latents` and
`step_noise` ([steps, 2, 4, 12, 8]). `t2i_odd_size` is 72 x 88 pixels (latent
[4, 11, 9]): not a multiple of the UNet's 4, so its downsamplers round up and
its upsamplers resize to the skip connections' sizes.

## Samplers alone (`schedulers.safetensors`)

For each sampler above and 20 and 1 steps (`sched.<sampler>.<n>`):
set_timesteps(n), `init` = randn * init_noise_sigma, then for each
timestep `scale` = scale_model_input's factor and sample =
step(`model_outputs`[i], t, sample, generator, eta) (`samples`
[n, 4, 12, 8]); `init` and `model_outputs` come from a generator seeded
with `inputs_seed`; the samplers that draw get a generator seeded with
`step_generator_seed` and their draws are in `step_noise`.
`sched.euler.img2img` and `sched.ddim.img2img` are the img2img start: 10
steps at strength 0.6, so t_start = 4, timesteps[4:], set_begin_index(4)
(Euler), init = add_noise(`x0`, `noise`, timesteps[4]), then 6 steps on
their own `model_outputs`. Also `timesteps`, `sigmas`, and
`sched.alphas_cumprod` [1000] (float32, as diffusers computes it).
"""


README_MODEL = """# Pipeline fixtures: the shipped model

Made by `tests/reference/make_pipeline_fixtures.py --model @MODEL@
--cases @CASE_SET@`: diffusers' own StableDiffusionPipeline (float32, CPU)
on `@MODEL@` (SHA-256 `@SHA256@`),
loaded with `StableDiffusionPipeline.from_single_file` and configured by
the file's `__metadata__` alone, @WIDTH@ wide x @HEIGHT@ high (latent
@LATENT@: the VAE downsamples by @FACTOR@), every random draw recorded.

`tests/test-pipeline-reference.c` replays each case through the engine
(meson test `default-model-diffusers`, suite `pipeline`) with the
tolerances stated at its top. Each case's JSON names the model file and its
SHA-256, and the test refuses a model file with another hash: after the
model changes, run the command above again.

| file | what |
| --- | --- |
| `pipeline.safetensors` | one group of tensors per case, `<case>.*`, and its description as JSON in `__metadata__` under `case.<case>`; `sdcl.cases` lists the cases in order, `sdcl.about` the versions, shapes and the model file |
| `judge.png`, `judge.txt` | not from this script: pictures with a known answer for the quality suite's reading (`/default-model/judge`), made by `tests/reference/make_judge_fixture.py` from the training data; see `tests/reference/README.md` |

All tensors are F32; a case with one image has no batch dimension.

## Cases

| case | mode | model | sampler | steps | cfg | seed(s) | prompt / negative | other | generator draws, in order |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
@CASES@

Samplers are `XScheduler.from_config(the file's sdcl.scheduler_config,
**overrides)` as in `tests/fixtures/pipeline/README.md`, and the tensors
of a case are the ones listed there, at this size: `noise`,
`model_output_0`, `final_latent` [@LATENT_SHAPE@], `latents` [steps,
@LATENT_SHAPE@], `image` [@HEIGHT@, @WIDTH@, 3], `timesteps`,
`all_timesteps`, `sigmas` (Euler, Euler a, DPM++), `step_noise` (the
samplers that draw).
"""


if __name__ == "__main__":
    main()
