#!/usr/bin/env python3
"""Trains sdcl-shapes, a small SD 1.x-architecture latent diffusion model, from
scratch on the procedural data of data.py, on a CPU.

Stages:
  ae    the autoencoder (AutoencoderKL): L1 + L2 + edge loss, small KL weight;
        afterwards the latent scale (1/std of the latents) is measured
  ldm   the UNet and the CLIP text encoder together on the frozen
        autoencoder's latents: epsilon prediction, SD 1.x scaled-linear
        schedule, min-SNR weighting, caption dropout for guidance, EMA
  all   ae then ldm, each resumed where it stopped

    nice -n 19 ~/.cache/sdcl-venv/bin/python models/train/train.py --stage all

Everything it writes goes to --dir (default ~/.cache/sdcl/train/): the
checkpoints ae.pt, ae-final.pt, ldm.pt (written atomically every
--ckpt-minutes and at the end of a stage; the previous one is kept as
*.prev.pt), train.log, and preview images. Rerunning the same command
resumes from the latest checkpoint; the data of each step and its noise are
functions of (stage, step), so a resumed run sees what an uninterrupted one
would have seen.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import data  # noqa: E402

# ---- architecture ---------------------------------------------------------------

TEXT = dict(vocab_size=49408, max_position_embeddings=77, hidden_size=128, intermediate_size=512,
            num_hidden_layers=4, num_attention_heads=4, hidden_act="quick_gelu",
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
UNET = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(64, 128, 128),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=128, attention_head_dim=4, norm_num_groups=32,
            use_linear_projection=False)
VAE = dict(sample_size=64, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64),
           layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 3,
           up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=4, norm_num_groups=32)
SCHEDULER = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
             "set_alpha_to_one": False, "clip_sample": False, "skip_prk_steps": True,
             "prediction_type": "epsilon", "timestep_spacing": "leading"}

# ---- training plan -----------------------------------------------------------------

AE_PLAN = dict(steps=2500, batch=16, lr=5e-4, warmup=200, crop=32, crop_until=0.8, kl=1e-6,
               edge=0.5, data_seed=1)
LDM_PLAN = dict(steps=3000, batch=32, lr=4e-4, warmup=200, min_lr_frac=0.1, drop=0.1,
                ema=0.998, snr_gamma=5.0, noise_offset=0.05, data_seed=2, grad_clip=1.0,
                hi_t_frac=0.0, hi_t_from=400, te_lr_mult=1.0)
# What --init-from continues with (the shipped model was trained with LDM_PLAN
# as above, uniform timesteps): where a picture's layout and colours are
# decided, at high noise, an epsilon loss weighs the error of the picture by
# its SNR (below 0.1 from t = 600 on), so composition is learnt last. The
# continuation draws hi_t_frac of each batch from t >= hi_t_from, and the
# text encoder, trained from scratch, learns at te_lr_mult times the rate.
CONTINUE_PLAN = dict(steps=4000, lr=3e-4, warmup=100, hi_t_frac=0.6, te_lr_mult=2.0)

# --stage inpaint: the 9-channel inpainting UNet (SD 1.x inpainting layout:
# noisy latent, mask, latent of the masked picture), started from the
# shipped UNet with the 5 new input channels at zero, trained alone on
# data.inpaint_batch (text encoder and VAE frozen, the shipped ones).
INPAINT_PLAN = dict(steps=1500, batch=32, lr=2e-4, warmup=100, min_lr_frac=0.1, drop=0.1,
                    ema=0.998, snr_gamma=5.0, noise_offset=0.05, data_seed=11, grad_clip=1.0,
                    hi_t_frac=0.5, hi_t_from=400, te_lr_mult=0.0, data_mix="balanced")

DEFAULT_DIR = os.path.expanduser("~/.cache/sdcl/train")
LOG = None


def log(msg):
    line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
    print(line, flush=True)
    if LOG:
        with open(LOG, "a") as f:
            f.write(line + "\n")


# ---- building blocks -----------------------------------------------------------------

def make_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(**VAE)


def make_unet(in_channels=4):
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(**dict(UNET, in_channels=in_channels))


def make_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel
    return CLIPTextModel(CLIPTextConfig(**TEXT))


def make_tokenizer(workdir):
    from clip_vocab import clip_tokenizer
    os.makedirs(workdir, exist_ok=True)
    tok = clip_tokenizer(workdir)        # writes vocab.json and merges.txt there
    tok.model_max_length = 77
    tok.sdcl_workdir = workdir
    return tok


def tokenize(tok, captions):
    return tok(captions, padding="max_length", max_length=77, truncation=True,
               return_tensors="pt").input_ids


def lr_at(step, plan):
    if step < plan["warmup"]:
        return plan["lr"] * (step + 1) / plan["warmup"]
    frac = min(1.0, (step - plan["warmup"]) / max(1, plan["steps"] - plan["warmup"]))
    lo = plan.get("min_lr_frac", 0.1)
    return plan["lr"] * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * frac)))


def step_generator(stage_id, step):
    """The random numbers of one step depend only on (stage, step)."""
    return torch.Generator().manual_seed(1_000_003 * stage_id + step)


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    if os.path.exists(path):
        os.replace(path, path[:-3] + ".prev.pt")
    os.replace(tmp, path)


def load_latest(path):
    for p in (path, path[:-3] + ".prev.pt"):
        if os.path.exists(p):
            try:
                return torch.load(p, map_location="cpu", weights_only=False)
            except Exception as e:      # a torn file: fall back to the previous one
                log(f"cannot read {p}: {e}")
    return None


class Threads:
    """Chooses 1 or 2 (up to --threads) compute threads from what the rest of
    the machine does. On a shared 2-core box a niced process with 2 OpenMP
    threads, one of them starved by another program, runs several times
    slower than with 1 thread; with the box idle, 2 threads are ~1.7x faster.
    Every `every` steps: others' CPU use = all busy time - our own."""

    def __init__(self, most, every=10):
        self.most, self.every, self.n = most, every, 1
        self.last = self._sample()
        torch.set_num_threads(self.n)

    @staticmethod
    def _sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = sum(v) - v[3] - v[4]           # minus idle and iowait
        t = os.times()
        return time.time(), busy / os.sysconf("SC_CLK_TCK"), t.user + t.system

    def update(self, step):
        if self.most <= 1 or step % self.every:
            return
        now = self._sample()
        dt = now[0] - self.last[0]
        if dt < 2.0:
            return
        others = ((now[1] - self.last[1]) - (now[2] - self.last[2])) / max(dt, 1e-3)
        self.last = now
        want = self.most if others < 0.35 else 1
        if want != self.n:
            self.n = want
            torch.set_num_threads(want)

    def __str__(self):
        return f"{self.n} thr"


def rng_state():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def set_rng_state(s):
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])


# ---- stage 1: autoencoder ---------------------------------------------------------------

def ae_batch(step, plan):
    B = plan["batch"]
    x, _ = data.batch(range(step * B, (step + 1) * B), seed=plan["data_seed"])
    x = torch.from_numpy(x)
    if step < plan["crop_until"] * plan["steps"]:
        g = step_generator(11, step)
        c = plan["crop"]
        oy, ox = torch.randint(0, x.shape[2] - c + 1, (2,), generator=g).tolist()
        x = x[:, :, oy:oy + c, ox:ox + c]
    return x


def ae_loss(vae, x, step, plan):
    g = step_generator(12, step)
    post = vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
    y = vae.decode(z).sample
    d = y - x
    l1, l2 = d.abs().mean(), d.pow(2).mean()
    edge = ((d[:, :, 1:, :] - d[:, :, :-1, :]).abs().mean() + (d[:, :, :, 1:] - d[:, :, :, :-1]).abs().mean())
    kl = post.kl().sum() / x.numel()           # SD's weighting: KL sum against per-pixel losses
    loss = l1 + l2 + plan["edge"] * edge + plan["kl"] * kl
    return loss, dict(l1=l1.item(), l2=l2.item(), edge=edge.item(), kl=kl.item())


@torch.no_grad()
def measure_latent_std(vae, n=512, seed=99):
    zs = []
    for k in range(0, n, 32):
        x, _ = data.batch(range(k, k + 32), seed=seed)
        zs.append(vae.encode(torch.from_numpy(x)).latent_dist.sample())
    z = torch.cat(zs)
    return z.std().item(), z.mean().item(), z.std(dim=(0, 2, 3)).tolist()


@torch.no_grad()
def ae_preview(vae, path, n=16):
    x, _ = data.batch(range(n), seed=99)
    y = vae.decode(vae.encode(torch.from_numpy(x)).latent_dist.mean).sample.clamp(-1, 1)
    err = (y - torch.from_numpy(x)).abs().mean().item()
    top = ((torch.from_numpy(x) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    bot = ((y + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    grid = np.concatenate([np.concatenate(list(top), 1), np.concatenate(list(bot), 1)], 0)
    from PIL import Image
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)
    return err


def init_from_folder(args):
    """--init-from: a shipped diffusers folder (models/sdcl-shapes) as the
    starting point where the work folder has no checkpoints: its VAE and
    latent scale as the finished autoencoder, its UNet and text encoder as
    the LDM's weights and EMA (fresh optimizer). The machines this runs on
    start empty every session, so this is how training continues from the
    last shipped model."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    src = args.init_from
    final = os.path.join(args.dir, "ae-final.pt")
    if not os.path.exists(final):
        vae = AutoencoderKL.from_pretrained(os.path.join(src, "vae")).float()
        scale = float(vae.config.scaling_factor)
        save_atomic(dict(vae=vae.state_dict(), step=AE_PLAN["steps"], losses=[], seconds=0.0,
                         plan=AE_PLAN, config=VAE, scaling_factor=scale, latent_std=1.0 / scale,
                         latent_mean=0.0, init_from=src), final)
        log(f"ae: taken from {src} (scaling_factor {scale:.5f})")
    seed = os.path.join(args.dir, "ldm-init.pt")
    if not os.path.exists(os.path.join(args.dir, "ldm.pt")) and not os.path.exists(seed):
        unet = UNet2DConditionModel.from_pretrained(os.path.join(src, "unet")).float()
        te = CLIPTextModel.from_pretrained(os.path.join(src, "text_encoder")).float()
        torch.save(dict(unet=unet.state_dict(), text_encoder=te.state_dict(), init_from=src), seed)
        log(f"ldm: starting from the UNet and text encoder of {src}")


def train_ae(args):
    plan = AE_PLAN
    path = os.path.join(args.dir, "ae.pt")
    final = os.path.join(args.dir, "ae-final.pt")
    if os.path.exists(final):
        log("ae: done already (ae-final.pt)")
        return
    vae = make_vae().train()
    opt = torch.optim.AdamW(vae.parameters(), lr=plan["lr"], weight_decay=0.01, betas=(0.9, 0.99))
    ck = load_latest(path)
    step, losses, seconds = 0, [], 0.0
    if ck:
        vae.load_state_dict(ck["vae"])
        opt.load_state_dict(ck["opt"])
        set_rng_state(ck["rng"])
        step, losses, seconds = ck["step"], ck["losses"], ck["seconds"]
        log(f"ae: resumed at step {step}/{plan['steps']} ({seconds / 3600:.2f} h trained)")
    else:
        n = sum(p.numel() for p in vae.parameters())
        log(f"ae: fresh start, {n / 1e6:.2f} M parameters, plan {json.dumps(plan)}")
    last_ck, t_window, acc = time.time(), time.time(), []
    thr = Threads(args.threads)
    while step < plan["steps"]:
        thr.update(step)
        t0 = time.time()
        for gp in opt.param_groups:
            gp["lr"] = lr_at(step, plan)
        x = ae_batch(step, plan)
        loss, parts = ae_loss(vae, x, step, plan)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        seconds += time.time() - t0
        losses.append((step, loss.item(), parts["l1"]))
        acc.append(loss.item())
        if step % args.log_every == 0 or step == plan["steps"]:
            dt = (time.time() - t_window) / len(acc)
            log(f"ae step {step}/{plan['steps']} loss {np.mean(acc):.4f} l1 {parts['l1']:.4f} "
                f"kl {parts['kl']:.1f} lr {lr_at(step, plan):.2e} {dt:.2f} s/step "
                f"res {x.shape[-1]} {thr} trained {seconds / 3600:.2f} h")
            acc, t_window = [], time.time()
        if time.time() - last_ck > args.ckpt_minutes * 60 or step == plan["steps"]:
            save_atomic(dict(vae=vae.state_dict(), opt=opt.state_dict(), rng=rng_state(), step=step,
                             losses=losses, seconds=seconds, plan=plan, config=VAE), path)
            err = ae_preview(vae.eval(), os.path.join(args.dir, "preview-ae.png"))
            vae.train()
            log(f"ae: checkpoint at step {step}, preview L1 {err:.4f}")
            last_ck = time.time()
    vae.eval()
    std, mean, per_ch = measure_latent_std(vae)
    scale = 1.0 / std
    log(f"ae: latents mean {mean:.3f} std {std:.3f} (per channel {[round(s, 3) for s in per_ch]}); "
        f"scaling_factor {scale:.5f}")
    save_atomic(dict(vae=vae.state_dict(), step=step, losses=losses, seconds=seconds, plan=plan,
                     config=VAE, scaling_factor=scale, latent_std=std, latent_mean=mean), final)
    log(f"ae: finished, {seconds / 3600:.2f} h")


# ---- stage 2: UNet + text encoder ---------------------------------------------------------

class EMA:
    def __init__(self, modules, decay):
        self.decay = decay
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step):
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - d)

    def state_dict(self):
        return self.shadow

    def load_state_dict(self, s):
        for a, b in zip(self.shadow, s):
            a.copy_(b)

    @torch.no_grad()
    def swap(self):
        for p, s in zip(self.params, self.shadow):
            t = p.detach().clone()
            p.copy_(s)
            s.copy_(t)


def ldm_models(args, inpaint=False):
    from diffusers import DDPMScheduler
    ae = torch.load(os.path.join(args.dir, "ae-final.pt"), map_location="cpu", weights_only=False)
    vae = make_vae()
    vae.load_state_dict(ae["vae"])
    vae.eval().requires_grad_(False)
    unet, te = make_unet(9 if inpaint else 4).train(), make_text_encoder().train()
    if inpaint:
        te.eval().requires_grad_(False)
    sched = DDPMScheduler.from_config(SCHEDULER)
    return vae, ae["scaling_factor"], unet, te, sched


@torch.no_grad()
def ldm_preview(vae, scale, unet, te, tok, path, steps=20, cfg=6.0):
    from diffusers import DDIMScheduler
    from PIL import Image
    prompts = [f"a big {c} circle in the centre on a white background" for c in
               ("red", "green", "blue", "yellow")] + \
              ["a small blue square on the left and a red triangle on the right, on a yellow background",
               "a big pink star on a gradient from blue to black", "a white heart at the top",
               "a green ring in the bottom right corner on a black background"]
    sch = DDIMScheduler.from_config(SCHEDULER)
    sch.set_timesteps(steps)
    ids = tokenize(tok, prompts + [""] * len(prompts))
    ctx = te(ids).last_hidden_state
    z = torch.randn((len(prompts), 4, 16, 16), generator=torch.Generator().manual_seed(0))
    for t in sch.timesteps:
        e = unet(torch.cat([z, z]), t, ctx).sample
        ec, eu = e.chunk(2)
        z = sch.step(eu + cfg * (ec - eu), t, z).prev_sample
    img = vae.decode(z / scale).sample.clamp(-1, 1)
    img = ((img + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    grid = np.concatenate(list(img), 1)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def widen_conv_in(state):
    """A 4-channel UNet's weights for the 9-channel one: conv_in's new
    input channels (mask, masked latent) start at zero, so the widened
    UNet begins as the one it came from."""
    state = dict(state)
    w = state["conv_in.weight"]
    wide = torch.zeros((w.shape[0], 9) + tuple(w.shape[2:]), dtype=w.dtype)
    wide[:, :4] = w
    state["conv_in.weight"] = wide
    return state


def train_ldm(args, inpaint=False):
    plan = INPAINT_PLAN if inpaint else LDM_PLAN
    name = "inpaint" if inpaint else "ldm"
    path = os.path.join(args.dir, name + ".pt")
    vae, scale, unet, te, sched = ldm_models(args, inpaint)
    tok = make_tokenizer(os.path.join(args.dir, "tokenizer"))
    trained = [unet] if inpaint else [unet, te]
    params = [p for m in trained for p in m.parameters()]
    groups = [dict(params=list(unet.parameters()), lr_mult=1.0)]
    if not inpaint:
        groups.append(dict(params=list(te.parameters()), lr_mult=plan["te_lr_mult"]))
    opt = torch.optim.AdamW(groups, lr=plan["lr"], weight_decay=0.01, betas=(0.9, 0.999))
    ema = EMA(trained, plan["ema"])
    ck = load_latest(path)
    step, losses, seconds = 0, [], 0.0
    seed = os.path.join(args.dir, "ldm-init.pt")
    if not ck and os.path.exists(seed):
        init = torch.load(seed, map_location="cpu", weights_only=False)
        unet.load_state_dict(widen_conv_in(init["unet"]) if inpaint else init["unet"])
        te.load_state_dict(init["text_encoder"])
        ema = EMA(trained, plan["ema"])
        log(f"{name}: weights from {init['init_from']}")
    if ck:
        unet.load_state_dict(ck["unet"])
        te.load_state_dict(ck["text_encoder"])
        opt.load_state_dict(ck["opt"])
        ema.load_state_dict(ck["ema"])
        set_rng_state(ck["rng"])
        step, losses, seconds = ck["step"], ck["losses"], ck["seconds"]
        log(f"{name}: resumed at step {step}/{plan['steps']} ({seconds / 3600:.2f} h trained)")
    else:
        nu = sum(p.numel() for p in unet.parameters())
        nt = sum(p.numel() for p in te.parameters())
        log(f"{name}: fresh start, UNet {nu / 1e6:.2f} M + text encoder {nt / 1e6:.2f} M parameters, "
            f"latent scale {scale:.5f}, plan {json.dumps(plan)}")
    if step >= min(plan["steps"], args.stop_at or plan["steps"]):
        log(f"{name}: done already")
        return
    acp = sched.alphas_cumprod
    snr_all = acp / (1 - acp)
    B = plan["batch"]
    last_ck, last_prev, t_window, acc = time.time(), time.time(), time.time(), []
    thr = Threads(args.threads)
    stop = min(plan["steps"], args.stop_at or plan["steps"])
    while step < stop:
        thr.update(step)
        t0 = time.time()
        for gp in opt.param_groups:
            gp["lr"] = lr_at(step, plan) * gp.get("lr_mult", 1.0)
        g = step_generator(31 if inpaint else 21, step)
        if inpaint:
            x, caps, masks = data.inpaint_batch(range(step * B, (step + 1) * B),
                                                seed=plan["data_seed"],
                                                mix=plan.get("data_mix", "default"))
        else:
            x, caps = data.batch(range(step * B, (step + 1) * B), seed=plan["data_seed"],
                                 mix=plan.get("data_mix", "default"))
        drop = torch.rand(B, generator=g) < plan["drop"]
        caps = ["" if dr else c for c, dr in zip(caps, drop.tolist())]
        ids = tokenize(tok, caps)
        with torch.no_grad():
            post = vae.encode(torch.from_numpy(x)).latent_dist
            z0 = (post.mean + post.std * torch.randn(post.mean.shape, generator=g)) * scale
        noise = torch.randn(z0.shape, generator=g)
        if plan["noise_offset"]:
            noise = noise + plan["noise_offset"] * torch.randn((B, 4, 1, 1), generator=g)
        t = torch.randint(0, 1000, (B,), generator=g)
        hi = torch.rand(B, generator=g) < plan["hi_t_frac"]
        t = torch.where(hi, plan["hi_t_from"] + t * (1000 - plan["hi_t_from"]) // 1000, t)
        zt = sched.add_noise(z0, noise, t)
        if inpaint:
            # as diffusers' inpainting pipeline and the engine feed it: the
            # mask at latent size (nearest) and a VAE sample of the picture
            # with the masked pixels at 0 (grey)
            m = torch.from_numpy(masks)
            with torch.no_grad():
                mp = vae.encode(torch.from_numpy(x) * (m < 0.5)).latent_dist
                zm = (mp.mean + mp.std * torch.randn(mp.mean.shape, generator=g)) * scale
            m16 = torch.nn.functional.interpolate(m, size=zt.shape[-2:])
            zt = torch.cat([zt, m16, zm], dim=1)
            with torch.no_grad():
                ctx = te(ids).last_hidden_state
        else:
            ctx = te(ids).last_hidden_state
        pred = unet(zt, t, ctx).sample
        snr = snr_all[t]
        w = torch.clamp(snr, max=plan["snr_gamma"]) / snr
        loss_each = (pred - noise).pow(2).mean(dim=(1, 2, 3))
        loss = (loss_each * w).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, plan["grad_clip"])
        opt.step()
        ema.update(step)
        step += 1
        seconds += time.time() - t0
        losses.append((step, loss.item(), loss_each.mean().item()))
        acc.append(loss_each.mean().item())
        if step % args.log_every == 0 or step == stop:
            dt = (time.time() - t_window) / len(acc)
            log(f"{name} step {step}/{plan['steps']} mse {np.mean(acc):.4f} lr {lr_at(step, plan):.2e} "
                f"{dt:.2f} s/step {thr} trained {seconds / 3600:.2f} h")
            acc, t_window = [], time.time()
        if time.time() - last_ck > args.ckpt_minutes * 60 or step == stop:
            save_atomic(dict(unet=unet.state_dict(), text_encoder=te.state_dict(), opt=opt.state_dict(),
                             ema=ema.state_dict(), rng=rng_state(), step=step, losses=losses,
                             seconds=seconds, plan=plan,
                             unet_config=dict(UNET, in_channels=9 if inpaint else 4), text_config=TEXT,
                             scaling_factor=scale), path)
            log(f"{name}: checkpoint at step {step}")
            last_ck = time.time()
            if not inpaint and (time.time() - last_prev > args.preview_minutes * 60
                                or step == plan["steps"]):
                ema.swap()
                unet.eval(), te.eval()
                ldm_preview(vae, scale, unet, te, tok, os.path.join(args.dir, f"preview-ldm-{step:06d}.png"))
                unet.train(), te.train()
                ema.swap()
                log(f"ldm: preview at step {step}")
                last_prev = time.time()
    log(f"{name}: {'finished' if step >= plan['steps'] else f'stopped at step {step}'}, "
        f"{seconds / 3600:.2f} h")


def main():
    global LOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=("ae", "ldm", "all", "inpaint"), default="all",
                    help="'inpaint': the 9-channel inpainting UNet from --init-from's UNet "
                    "(INPAINT_PLAN)")
    ap.add_argument("--dir", default=DEFAULT_DIR)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-minutes", type=float, default=8.0)
    ap.add_argument("--preview-minutes", type=float, default=30.0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--ae-steps", type=int, help="override the plan (tests)")
    ap.add_argument("--ldm-steps", type=int, help="override the plan (tests)")
    ap.add_argument("--inpaint-steps", type=int, help="override INPAINT_PLAN's length")
    ap.add_argument("--stop-at", type=int, help="stop the LDM or inpaint stage after this step "
                    "(with a checkpoint there), the plan's schedule unchanged")
    ap.add_argument("--ldm-lr", type=float, help="override the plan's peak learning rate")
    ap.add_argument("--ldm-data-seed", type=int, help="override the plan's data seed (a continued "
                    "run should see new pictures)")
    ap.add_argument("--ldm-data-mix", choices=sorted(data.MIXES),
                    help="override the plan's picture mix (data.MIXES; 'positions': mostly "
                    "single objects, every caption with its place; 'balanced': the same with "
                    "30 %% of single objects unplaced in the caption)")
    ap.add_argument("--init-from", help="a shipped diffusers folder (models/sdcl-shapes) to start "
                    "from where --dir has no checkpoints (see init_from_folder)")
    a = ap.parse_args()
    if a.init_from:
        LDM_PLAN.update(CONTINUE_PLAN)
    if a.stage == "inpaint" and not a.init_from:
        ap.error("--stage inpaint starts from a shipped model: give --init-from models/sdcl-shapes")
    if a.inpaint_steps:
        INPAINT_PLAN["steps"] = a.inpaint_steps
    if a.ae_steps:
        AE_PLAN["steps"] = a.ae_steps
    if a.ldm_steps:
        LDM_PLAN["steps"] = a.ldm_steps
    if a.ldm_lr:
        LDM_PLAN["lr"] = a.ldm_lr
    if a.ldm_data_seed is not None:
        LDM_PLAN["data_seed"] = a.ldm_data_seed
    if a.ldm_data_mix:
        LDM_PLAN["data_mix"] = a.ldm_data_mix
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    os.makedirs(a.dir, exist_ok=True)
    LOG = os.path.join(a.dir, "train.log")
    log(f"start: stage {a.stage}, pid {os.getpid()}, dir {a.dir}, threads {a.threads}")
    if a.init_from:
        init_from_folder(a)
    if a.stage in ("ae", "all"):
        train_ae(a)
    if a.stage in ("ldm", "all"):
        train_ldm(a)
    if a.stage == "inpaint":
        train_ldm(a, inpaint=True)


if __name__ == "__main__":
    main()
