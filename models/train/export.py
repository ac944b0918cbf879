#!/usr/bin/env python3
"""Exports the trained sdcl-shapes model from the checkpoints of train.py.

Writes
  models/sdcl-shapes.safetensors   one file in the original SD 1.x layout
                                   (model.diffusion_model.*, first_stage_model.*,
                                   cond_stage_model.transformer.text_model.*), f16,
                                   the diffusers/transformers configs in __metadata__
  models/sdcl-shapes/              the same weights as a diffusers folder (f16),
                                   with the CLIP tokenizer files
  models/train/loss.png            the loss curves of both stages
  models/train/samples-diffusers.png  a grid rendered by diffusers'
                                   StableDiffusionPipeline (DDIM, 25 steps, CFG 6)
  models/train/run.json            steps, wall time, final losses, latent scale

The name mapping diffusers -> original is the one of
tests/reference/make_model_fixtures.py (imported, not copied), and the
single file is checked tensor by tensor through diffusers' own single-file
loader.

    ~/.cache/sdcl-venv/bin/python models/train/export.py [--dir ~/.cache/sdcl/train]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import train  # noqa: E402
from make_model_fixtures import config_json, save, single_file  # noqa: E402

NAME = "sdcl-shapes"
LICENSE = "CC0-1.0"
NATIVE = 64


def load_models(ckdir, use_ema=True, inpaint=False):
    ae = torch.load(os.path.join(ckdir, "ae-final.pt"), map_location="cpu", weights_only=False)
    ldm = torch.load(os.path.join(ckdir, "inpaint.pt" if inpaint else "ldm.pt"), map_location="cpu",
                     weights_only=False)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    vae = AutoencoderKL(**dict(ae["config"], scaling_factor=round(float(ae["scaling_factor"]), 5)))
    vae.load_state_dict(ae["vae"])
    unet = UNet2DConditionModel(**ldm["unet_config"])
    te = CLIPTextModel(CLIPTextConfig(**ldm["text_config"]))
    unet.load_state_dict(ldm["unet"])
    te.load_state_dict(ldm["text_encoder"])
    if use_ema:
        # the inpainting stage trains (and averages) the UNet alone
        params = list(unet.parameters()) + ([] if inpaint else list(te.parameters()))
        with torch.no_grad():
            for p, s in zip(params, ldm["ema"]):
                p.copy_(s)
    # what the files hold: f16 values (kept in f32 modules for the checks)
    for m in (vae, unet, te):
        m.eval().requires_grad_(False)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(p.half().float())
    return vae, unet, te, ae, ldm


MODEL_INDEX = {"_class_name": "StableDiffusionPipeline",
               "feature_extractor": [None, None], "safety_checker": [None, None],
               "requires_safety_checker": False,
               "scheduler": ["diffusers", "PNDMScheduler"],
               "text_encoder": ["transformers", "CLIPTextModel"],
               "tokenizer": ["transformers", "CLIPTokenizer"],
               "unet": ["diffusers", "UNet2DConditionModel"],
               "vae": ["diffusers", "AutoencoderKL"]}


def write_tokenizer(d, tok):
    """vocab.json + merges.txt as openai/clip-vit-large-patch14 ships them
    (2 MB; transformers 5's save_pretrained would write a 3.6 MB tokenizer.json)."""
    from transformers import CLIPTokenizer
    os.makedirs(d)
    for fn in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(tok.sdcl_workdir, fn), os.path.join(d, fn))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
                   "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                   "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, f, indent=2)
    back = CLIPTokenizer.from_pretrained(d, local_files_only=True)
    probe = ["a small red circle on the left and a blue square on the right", "", "Grey DONUT!!"]
    if back(probe, padding="max_length", max_length=77).input_ids != \
            tok(probe, padding="max_length", max_length=77).input_ids:
        raise SystemExit("the saved tokenizer does not give the training ids")


def write_folder(folder, vae, unet, te, tok):
    shutil.rmtree(folder, ignore_errors=True)
    for part, m in (("unet", unet), ("vae", vae), ("text_encoder", te)):
        m.half().save_pretrained(os.path.join(folder, part), safe_serialization=True)
        m.float()
        for fn in os.listdir(os.path.join(folder, part)):
            if fn.endswith((".md", ".txt")) or fn == "generation_config.json":
                os.remove(os.path.join(folder, part, fn))
    write_tokenizer(os.path.join(folder, "tokenizer"), tok)
    os.makedirs(os.path.join(folder, "scheduler"))
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(train.SCHEDULER, f, indent=2)
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(MODEL_INDEX, f, indent=2)


def metadata(vae, unet, te, name=NAME):
    return {"sdcl.unet_config": config_json(unet.config),
            "sdcl.vae_config": config_json(vae.config),
            "sdcl.text_encoder_config": config_json(te.config.to_dict()),
            "sdcl.scheduler_config": json.dumps(train.SCHEDULER),
            "sdcl.kind": "sd1", "sdcl.name": name, "sdcl.native_size": str(NATIVE),
            "sdcl.license": LICENSE}


def verify(path, folder, vae, unet, te):
    """The single file through diffusers' own single-file loader, configured
    only by the file's __metadata__, and the folder through from_pretrained:
    every tensor must equal the exported (f16-rounded) weights."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel
    with open(path, "rb") as f:
        meta = json.loads(f.read(int.from_bytes(f.read(8), "little")))["__metadata__"]

    def same(loaded, want, what):
        got = {k: v for k, v in loaded.state_dict().items() if not k.endswith("position_ids")}
        ref = {k: v for k, v in want.state_dict().items() if not k.endswith("position_ids")}
        if set(got) != set(ref):
            raise SystemExit(f"{what}: names differ: {sorted(set(got) ^ set(ref))[:5]}")
        for k, v in ref.items():
            if got[k].shape != v.shape or not torch.equal(got[k].float(), v.float()):
                raise SystemExit(f"{what}: {k} differs")
        return len(ref)

    with tempfile.TemporaryDirectory() as d:
        for sub, key in (("unet", "sdcl.unet_config"), ("vae", "sdcl.vae_config"),
                         ("text_encoder", "sdcl.text_encoder_config")):
            os.makedirs(os.path.join(d, sub))
            with open(os.path.join(d, sub, "config.json"), "w") as f:
                f.write(meta[key])
        os.makedirs(os.path.join(d, "scheduler"))
        with open(os.path.join(d, "scheduler", "scheduler_config.json"), "w") as f:
            f.write(meta["sdcl.scheduler_config"])
        with open(os.path.join(d, "model_index.json"), "w") as f:
            json.dump(MODEL_INDEX, f)
        pipe = StableDiffusionPipeline.from_single_file(
            path, config=d, local_files_only=True, safety_checker=None, tokenizer=None,
            requires_safety_checker=False, torch_dtype=torch.float32)
    n = sum(same(getattr(pipe, part), want, f"{os.path.basename(path)} {part}")
            for part, want in (("unet", unet), ("vae", vae), ("text_encoder", te)))
    print(f"  {os.path.basename(path)}: {n} tensors, StableDiffusionPipeline.from_single_file gives them back")
    if abs(pipe.vae.config.scaling_factor - vae.config.scaling_factor) > 1e-9:
        raise SystemExit("scaling_factor lost")
    n = 0
    for sub, cls, want in (("unet", UNet2DConditionModel, unet), ("vae", AutoencoderKL, vae),
                           ("text_encoder", CLIPTextModel, te)):
        n += same(cls.from_pretrained(folder, subfolder=sub, local_files_only=True), want, f"folder {sub}")
    print(f"  {os.path.basename(folder)}/: {n} tensors, from_pretrained gives them back")


# ---- pictures ------------------------------------------------------------------------

def _font(size):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def loss_plot(ae, ldm, path):
    """Two panels (autoencoder, diffusion): raw loss in grey, running mean in
    colour, log scale."""
    from PIL import Image, ImageDraw
    W, H, M = 560, 300, 48
    img = Image.new("RGB", (2 * W, H), "white")
    d = ImageDraw.Draw(img)
    f = _font(12)
    panels = [("autoencoder: L1+L2+edge+KL", [(s, l) for s, l, _ in ae["losses"]]),
              ("UNet+text: min-SNR weighted MSE", [(s, l) for s, l, _ in ldm["losses"]])]
    for k, (title, pts) in enumerate(panels):
        x0 = k * W
        if not pts:
            # an autoencoder that came with the weights (train.py --init-from)
            d.text((x0 + M, H // 2), f"{title}: trained in the run this one continued "
                   "(run.json, \"ae\")", fill="black", font=f)
            continue
        s = np.array([p[0] for p in pts], np.float64)
        v = np.log10(np.maximum(np.array([p[1] for p in pts], np.float64), 1e-6))
        win = max(1, len(v) // 60)
        sm = np.convolve(v, np.ones(win) / win, mode="valid")
        lo, hi = np.percentile(v, 0.5), np.percentile(v, 99.5)
        lo, hi = np.floor(lo * 4) / 4, np.ceil(hi * 4) / 4
        if hi <= lo:
            hi = lo + 0.25
        smax = s.max()

        def xy(sx, vy):
            return (x0 + M + (W - M - 12) * sx / smax, H - M + (M + 24 - H) * (vy - lo) / (hi - lo))
        d.rectangle([x0 + M, 24, x0 + W - 12, H - M], outline="black")
        for e in np.arange(lo, hi + 1e-9, 0.25):
            y = xy(0, e)[1]
            d.line([x0 + M - 4, y, x0 + M, y], fill="black")
            d.text((x0 + 2, y - 6), f"{10 ** e:.3g}", fill="black", font=f)
        for frac in (0, 0.25, 0.5, 0.75, 1.0):
            x = xy(frac * smax, lo)[0]
            d.text((x - 12, H - M + 4), f"{int(frac * smax)}", fill="black", font=f)
        d.text((x0 + M, 6), title, fill="black", font=f)
        d.text((x0 + W // 2 - 10, H - 20), "step", fill="black", font=f)
        step_pts = max(1, len(v) // 2000)
        d.line([xy(a, np.clip(b, lo, hi)) for a, b in zip(s[::step_pts], v[::step_pts])], fill=(200, 200, 200))
        d.line([xy(a, b) for a, b in zip(s[win - 1:], sm)], fill=(200, 40, 40) if k == 0 else (40, 70, 200),
               width=2)
    img.save(path)


GRID_ROWS = [
    ("colours", [f"a big {c} circle in the centre on a white background"
                 for c in ("red", "green", "blue", "yellow", "orange", "purple", "pink", "black")]),
    ("shapes", [f"a big red {s} in the centre on a white background"
                for s in ("circle", "square", "triangle", "star", "ring", "diamond", "heart", "cross")]),
    ("positions", [f"a small blue circle {p} on a white background"
                   for p in ("on the left", "on the right", "at the top", "at the bottom",
                             "in the top left corner", "in the top right corner",
                             "in the bottom left corner", "in the bottom right corner")]),
    ("backgrounds", [f"a big white star in the centre on {b}"
                     for b in ("a black background", "a blue background", "a green background",
                               "a pink background", "a gradient from blue to black",
                               "a gradient from yellow to red", "a gradient from cyan to purple",
                               "a horizontal gradient from orange to brown")]),
    ("two objects", ["a red circle on the left and a blue square on the right",
                     "a yellow star at the top and a green triangle at the bottom",
                     "a small pink heart in the top left corner and a big cyan ring in the bottom right corner",
                     "a white cross on the left and a black diamond on the right, on a gray background",
                     "a big orange hexagon on the right and a small purple circle on the left",
                     "a blue heart at the bottom and a red star at the top, on a white background",
                     "a green square in the top right corner and a yellow circle in the bottom left corner",
                     "a black ring on the left and a white ring on the right, on a gradient from pink to purple"]),
    ("unconditional", [""] * 8),
]


def sample_grid(vae, unet, te, tok, path, steps=25, cfg=6.0, seed=0):
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from PIL import Image, ImageDraw
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet,
                                   scheduler=DDIMScheduler.from_config(train.SCHEDULER),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    cell, label_w, scale = NATIVE * 2, 110, 2
    cols = max(len(p) for _, p in GRID_ROWS)
    sheet = Image.new("RGB", (label_w + cols * cell, len(GRID_ROWS) * cell), "white")
    d = ImageDraw.Draw(sheet)
    f = _font(13)
    for r, (label, prompts) in enumerate(GRID_ROWS):
        g = torch.Generator().manual_seed(seed + r)
        out = pipe(prompts, height=NATIVE, width=NATIVE, num_inference_steps=steps, guidance_scale=cfg,
                   generator=g, output_type="pil").images
        for c, im in enumerate(out):
            sheet.paste(im.resize((NATIVE * scale, NATIVE * scale), Image.NEAREST), (label_w + c * cell, r * cell))
        d.text((4, r * cell + cell // 2 - 7), label, fill="black", font=f)
    sheet.save(path)
    return [p for _, ps in GRID_ROWS for p in ps]


def fill_card(card, run):
    """Rewrites the run section of MODEL_CARD.md from run.json."""
    if not os.path.exists(card):
        return
    text = open(card).read()
    a, b = text.find("<!-- run:begin"), text.find("<!-- run:end -->")
    if a < 0 or b < 0:
        return
    head = text[a:text.index("-->", a) + 3]
    ae, ldm = run["ae"], run["ldm"]
    runs = ldm_chain(ldm)
    hours = ae["hours"] + sum(r["hours"] for r in runs)
    stages = "; then ".join(
        f"{r['steps']} steps × {r['plan']['batch']} at lr {r['plan']['lr']:g}"
        + (f" ({int(100 * r['plan']['hi_t_frac'])} % of timesteps from t ≥ {r['plan']['hi_t_from']}, "
           f"text encoder at {r['plan']['te_lr_mult']:g}× the rate)" if r["plan"].get("hi_t_frac") else "")
        + (f" on the `{r['plan']['data_mix']}` data mix (seed {r['plan']['data_seed']})"
           if r["plan"].get("data_mix", "default") != "default" else "")
        + f" in {r['hours']} h" for r in runs)
    body = (f"Training run: autoencoder {ae['steps']} steps × {ae['plan']['batch']} in {ae['hours']} h "
            f"(final L1 {ae['final_l1']:.4f} on [-1, 1], latent std {ae['latent_std']:.3f}, "
            f"`scaling_factor` {ae['scaling_factor']}); UNet + text encoder {stages} (final ε-MSE "
            f"{ldm['final_mse']:.4f}, min-SNR-weighted {ldm['final_weighted_loss']:.4f}); {hours:.1f} h of "
            f"training in all on 2 shared CPU cores. Exported from the "
            f"{'EMA' if run['ema'] else 'raw'} weights. Loss curves: `models/train/loss.png`; "
            f"samples rendered by diffusers: `models/train/samples-diffusers.png`.\n")
    with open(card, "w") as f:
        f.write(text[:a] + head + "\n" + body + text[b:])


def ldm_chain(ldm):
    """The LDM runs that made the weights, oldest first: a run continued
    with train.py --init-from carries the run it started from."""
    out = []
    while ldm:
        out.insert(0, ldm)
        ldm = ldm.get("continued_from")
    return out


def folder_size(path):
    return sum(os.path.getsize(os.path.join(d, fn)) for d, _, fs in os.walk(path) for fn in fs)


def export_inpainting(a):
    """The inpainting variant: the base model's text encoder and VAE with
    the 9-channel UNet, as one file in the original layout (checked through
    diffusers' single-file loader like the base one)."""
    name = NAME + "-inpainting"
    vae, unet, te, ae, ldm = load_models(a.dir, use_ema=not a.no_ema, inpaint=True)
    work = tempfile.mkdtemp()
    tok = train.make_tokenizer(os.path.join(work, "tok"))
    folder = os.path.join(work, name)
    path = os.path.join(a.out, name + ".safetensors")
    write_folder(folder, vae, unet, te, tok)
    save(single_file(te, unet, vae), path, torch.float16, metadata(vae, unet, te, name))
    verify(path, folder, vae, unet, te)
    n_last = 200
    run = {"name": name, "ema": not a.no_ema, "single_file_bytes": os.path.getsize(path),
           "inpaint": {"steps": ldm["step"], "plan": ldm["plan"],
                       "hours": round(ldm["seconds"] / 3600, 2),
                       "final_weighted_loss": float(np.mean([l for _, l, _ in ldm["losses"][-n_last:]])),
                       "final_mse": float(np.mean([l for _, _, l in ldm["losses"][-n_last:]]))}}
    with open(os.path.join(a.pictures, "run-inpainting.json"), "w") as f:
        json.dump(run, f, indent=1)
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB, {ldm['step']} steps in "
          f"{run['inpaint']['hours']} h")
    shutil.rmtree(work)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=train.DEFAULT_DIR, help="checkpoint folder of train.py")
    ap.add_argument("--out", default=os.path.join(ROOT, "models"), help="where sdcl-shapes* go")
    ap.add_argument("--pictures", default=HERE, help="where loss.png, samples-diffusers.png, run.json go")
    ap.add_argument("--no-ema", action="store_true", help="the raw weights instead of the EMA")
    ap.add_argument("--no-samples", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="1 unless the machine is idle: 2 OpenMP threads on a busy 2-core box crawl")
    ap.add_argument("--inpaint", action="store_true",
                    help="the 9-channel inpainting UNet of train.py --stage inpaint (inpaint.pt): "
                    "OUT/sdcl-shapes-inpainting.safetensors alone (its diffusers folder only for "
                    "the check) and PICTURES/run-inpainting.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    if a.inpaint:
        export_inpainting(a)
        print(f"export done in {time.time() - t0:.0f} s")
        return
    vae, unet, te, ae, ldm = load_models(a.dir, use_ema=not a.no_ema)
    work = tempfile.mkdtemp()
    tok = train.make_tokenizer(work)

    folder = os.path.join(a.out, NAME)
    path = os.path.join(a.out, NAME + ".safetensors")
    write_folder(folder, vae, unet, te, tok)
    sd = single_file(te, unet, vae)
    save(sd, path, torch.float16, metadata(vae, unet, te))
    verify(path, folder, vae, unet, te)
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in
              (("unet", unet), ("vae", vae), ("text_encoder", te))}
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB, {folder}: {folder_size(folder) / 1e6:.1f} MB, "
          f"parameters {counts}")

    loss_plot(ae, ldm, os.path.join(a.pictures, "loss.png"))
    n_last = 200
    run = {"name": NAME, "ema": not a.no_ema, "parameters": counts,
           "single_file_bytes": os.path.getsize(path), "folder_bytes": folder_size(folder),
           "ae": {"steps": ae["step"], "plan": ae["plan"], "hours": round(ae["seconds"] / 3600, 2),
                  "final_loss": float(np.mean([l for _, l, _ in ae["losses"][-n_last:]]))
                  if ae["losses"] else None,
                  "final_l1": float(np.mean([l for _, _, l in ae["losses"][-n_last:]]))
                  if ae["losses"] else None,
                  "scaling_factor": round(float(ae["scaling_factor"]), 5),
                  "latent_std": ae["latent_std"]},
           "ldm": {"steps": ldm["step"], "plan": ldm["plan"], "hours": round(ldm["seconds"] / 3600, 2),
                   "final_weighted_loss": float(np.mean([l for _, l, _ in ldm["losses"][-n_last:]])),
                   "final_mse": float(np.mean([l for _, _, l in ldm["losses"][-n_last:]]))}}
    # a run continued from the shipped model (train.py --init-from) records
    # the run.json it continued, so the model's whole history stays known
    previous = os.path.join(a.pictures, "run.json")
    if os.path.exists(os.path.join(a.dir, "ldm-init.pt")) and os.path.exists(previous):
        with open(previous) as f:
            before = json.load(f)
        run["ldm"]["continued_from"] = before["ldm"]
        if not ae["losses"]:
            # the autoencoder came with the weights (--init-from): its run is
            # the one the shipped run.json describes
            run["ae"] = before["ae"]
    if not a.no_samples:
        from PIL import Image
        run["sample_prompts"] = sample_grid(vae, unet, te, tok, os.path.join(a.pictures, "samples-diffusers.png"))
        Image.open(os.path.join(a.pictures, "samples-diffusers.png"))
    with open(os.path.join(a.pictures, "run.json"), "w") as f:
        json.dump(run, f, indent=1)
    fill_card(os.path.join(a.out, "MODEL_CARD.md"), run)
    shutil.rmtree(work)
    print(f"export done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
