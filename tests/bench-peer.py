#!/usr/bin/env python3
"""Side-by-side peer for `make bench`: the same txt2img work as the engine's
full-size benchmark, done by diffusers on PyTorch CPU.

    python tests/bench-peer.py MODEL.safetensors --configs models/configs/sd15 \\
        [--sizes 512,256] [--steps 20] [--threads 2] [--device cpu] [--json OUT.json]

MODEL is the engine's random SD 1.5-shaped file (original single-file
layout, no metadata; `build/tests/make-random-model models/configs/sd15
OUT`). It is loaded offline into a float32 StableDiffusionPipeline the way
tests/reference/make_fullsize_reference.py loads it (architecture from the
JSON configs, names converted by diffusers' single-file loader, tokenizer
from tests/reference/clip_vocab.py), with EulerDiscreteScheduler from the
scheduler config and no safety checker, on `--threads` CPU threads
(`--device cuda`: on the GPU, float32 with TF32 off, each step and the
decode timed after a device synchronize; peak_rss_GB is then host memory
and the JSON adds the device's peak allocation).

With --paced (tools/bench-pair), before each size and after each step the
process writes "PAUSE <what>" on a line of its own and waits for a line on
standard input, so a driver can alternate it with the engine's
bench-pipeline, each stretch of work next to the engine's same stretch; the
waits are left out of every time it reports.

For each size, one run: prompt "a photograph of an astronaut riding a
horse", negative "", Euler, CFG 7.5, seed 1, to latents; then the VAE
decode and the conversion to 8-bit pixels. Measured:
  load_s        model load (once; repeated on every line)
  text_s        encode_prompt: tokenize and encode the prompt and negative
  step_s        seconds per step, mean of the steps after the first (the
                first step and the mean of all steps are printed below the
                table and kept in the JSON); a step runs from the end of the
                one before (the first from the start of its UNet call) to
                the end of its scheduler update (callback_on_step_end)
  vae_decode_s  VAE decode of the final latents
  total_s       the pipeline call (text, steps) + VAE decode + to pixels
  peak_rss_GB   the process's peak resident set during that size's run,
                weights included (VmHWM of /proc/self/status, reset before
                each size through /proc/self/clear_refs; where it cannot be
                reset, the peak since start). GB = 10^9 bytes. The JSON also
                keeps getrusage's ru_maxrss (on Linux the same high-water
                mark, so the reset applies to it too), the peak during the
                load, and the process's peak overall.
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "reference"))
from make_fullsize_reference import load_pipeline  # noqa: E402

PROMPT = "a photograph of an astronaut riding a horse"
NEGATIVE = ""
GUIDANCE = 7.5
SEED = 1


def vm_hwm():
    """Peak resident set since start or the last reset, in bytes (0 if unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_hwm():
    """Reset VmHWM to the current RSS (Linux 4.0+); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def ru_maxrss():
    """getrusage's peak resident set of this process, in bytes (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sync(device):
    """Wait for the device's queued work, so a clock read counts it."""
    if device == "cuda":
        torch.cuda.synchronize()


def pause_for_driver(paced, what):
    """With --paced: say where the run stopped and wait for the driver's
    line; returns the seconds waited."""
    if not paced:
        return 0.0
    t0 = time.perf_counter()
    print(f"PAUSE {what}", flush=True)
    if not sys.stdin.readline():
        sys.exit("bench-peer: standard input closed while paced")
    return time.perf_counter() - t0


def run_size(pipe, size, steps, device, paced=False):
    """One txt2img run at size x size; returns its measurements."""
    marks = {"unet_start": None, "step_ends": [], "resumed": [], "waited": 0.0}

    def unet_pre_hook(module, args, kwargs):
        if marks["unet_start"] is None:
            marks["unet_start"] = time.perf_counter()

    def on_step_end(pipeline, i, t, callback_kwargs):
        sync(device)
        marks["step_ends"].append(time.perf_counter())
        marks["waited"] += pause_for_driver(paced, f"step {i + 1}")
        marks["resumed"].append(time.perf_counter())
        return callback_kwargs

    text = {"s": 0.0}
    encode_prompt = pipe.encode_prompt

    def timed_encode_prompt(*args, **kwargs):
        t0 = time.perf_counter()
        out = encode_prompt(*args, **kwargs)
        text["s"] += time.perf_counter() - t0
        return out

    hook = pipe.unet.register_forward_pre_hook(unet_pre_hook, with_kwargs=True)
    pipe.encode_prompt = timed_encode_prompt
    hwm_reset = reset_hwm()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        pause_for_driver(paced, f"size {size}")
        generator = torch.Generator("cpu").manual_seed(SEED)
        t_start = time.perf_counter()
        latents = pipe(PROMPT, negative_prompt=NEGATIVE, height=size, width=size,
                       num_inference_steps=steps, guidance_scale=GUIDANCE,
                       generator=generator, output_type="latent",
                       callback_on_step_end=on_step_end).images
        t_loop = time.perf_counter()
        with torch.no_grad():
            image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor,
                                    return_dict=False)[0]
        sync(device)
        t_vae = time.perf_counter()
        pixels = pipe.image_processor.postprocess(image, output_type="np")
        pixels = (pixels * 255).round().astype("uint8")
        t_end = time.perf_counter()
    finally:
        hook.remove()
        del pipe.encode_prompt

    ends = marks["step_ends"]
    starts = [marks["unet_start"]] + marks["resumed"][:-1]
    waited = marks["waited"]
    step_s = [e - s for s, e in zip(starts, ends)]
    after_first = step_s[1:] or step_s
    return {
        "size": size,
        "steps": steps,
        "text_s": text["s"],
        "step_s": step_s,
        "step_mean_s": sum(step_s) / len(step_s),
        "step_mean_after_first_s": sum(after_first) / len(after_first),
        "pipeline_s": t_loop - t_start - waited,
        "vae_decode_s": t_vae - t_loop,
        "to_pixels_s": t_end - t_vae,
        "total_s": t_end - t_start - waited,
        "peak_rss_bytes": vm_hwm(),
        "peak_rss_reset": hwm_reset,
        "ru_maxrss_bytes": ru_maxrss(),
        "latents_finite": bool(torch.isfinite(latents).all()),
        "latents_rms": float(latents.float().pow(2).mean().sqrt()),
        "image_mean_u8": float(pixels.mean()),
        "device_peak_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else 0,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="original-layout SD 1.5 .safetensors (no metadata)")
    ap.add_argument("--configs", required=True,
                    help="folder with unet.json, vae.json, text_encoder.json, scheduler.json")
    ap.add_argument("--sizes", default="512,256", help="comma-separated square sizes")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", help="write the measurements here")
    ap.add_argument("--paced", action="store_true",
                    help="wait for a line on standard input before each size and after each step")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    # after the imports: make_model_fixtures sets one thread when imported
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:
        pass   # already fixed once any parallel work ran

    import diffusers
    from diffusers import EulerDiscreteScheduler
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()

    reset_hwm()
    t0 = time.perf_counter()
    pipe, _ = load_pipeline(args.model, configs=args.configs, dtype=torch.float32)
    with open(os.path.join(args.configs, "scheduler.json")) as f:
        pipe.scheduler = EulerDiscreteScheduler.from_config(json.load(f))
    pipe.set_progress_bar_config(disable=True)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        pipe.to("cuda")
        sync(args.device)
    load_s = time.perf_counter() - t0
    load_rss = vm_hwm()

    where = (f"CUDA ({torch.cuda.get_device_name()}), TF32 off" if args.device == "cuda"
             else f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads")
    device = (f"PyTorch {torch.__version__} {where}, diffusers {diffusers.__version__}, float32")
    print(f"peer: {device}")
    print(f"txt2img, {args.steps} steps, Euler, CFG {GUIDANCE}, seed {SEED}; "
          f"model load {load_s:.1f} s, peak RSS {load_rss / 1e9:.2f} GB", flush=True)

    runs = []
    for size in sizes:
        runs.append(run_size(pipe, size, args.steps, args.device, args.paced))
        r = runs[-1]
        print(f"  {size}x{size} done in {r['total_s']:.1f} s", flush=True)

    print()
    print(f"{'size':>7}  {'load_s':>7}  {'text_s':>7}  {'step_s':>7}  {'vae_decode_s':>12}"
          f"  {'total_s':>8}  {'peak_rss_GB':>11}")
    for r in runs:
        step = r["step_mean_after_first_s"]
        rss = r["peak_rss_bytes"] / 1e9
        print(f"{r['size']:>7}  {load_s:7.2f}  {r['text_s']:7.3f}  {step:7.3f}"
              f"  {r['vae_decode_s']:12.3f}  {r['total_s']:8.2f}  {rss:11.2f}")
    for r in runs:
        note = "" if r["latents_finite"] else "  (latents not finite)"
        print(f"  {r['size']}: step_s after the first; first step {r['step_s'][0]:.3f} s,"
              f" all steps {r['step_mean_s']:.3f} s{note}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peer": device, "model": args.model, "configs": args.configs,
                       "prompt": PROMPT, "negative_prompt": NEGATIVE, "guidance": GUIDANCE,
                       "seed": SEED, "scheduler": "EulerDiscreteScheduler",
                       "threads": torch.get_num_threads(), "dtype": "float32",
                       "load_s": load_s, "load_peak_rss_bytes": load_rss,
                       "process_peak_rss_bytes": max([load_rss] + [r["peak_rss_bytes"]
                                                                   for r in runs]),
                       "runs": runs},
                      f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
