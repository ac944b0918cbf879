#!/usr/bin/env python3
"""Tiny random-weight SD 1.x models and their reference outputs.

Writes tests/fixtures/models/ (see the README there): a tiny model as a
diffusers folder and as single files in the original SD layout (f16, bf16),
a standalone replacement VAE (f32), foreign files for the refusal tests, and
tiny-sd-ref.safetensors with inputs and outputs computed by
diffusers/transformers in float64.

Every weight is rounded to a value that bf16, f16 and f32 all hold exactly,
so one set of reference outputs serves every file dtype. Then it checks
what it wrote, through the loaders of diffusers and transformers only:
every file loads back (the single files with from_single_file, their own
metadata as the config) to exactly the weights that made it; the
references, recomputed from the reloaded models, come out identical; the
float32 error of every reference is small; every parameter reaches the
outputs (see check_every_parameter_matters) and the UNet depends on the
timestep. The output is the same byte for byte on every run.

    ~/.cache/sdcl-venv/bin/python tests/reference/make_model_fixtures.py [OUT_DIR]
"""
import json
import os
import re
import shutil
import sys
import tempfile

import torch

torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_vocab import clip_tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "models")

TEXT = dict(vocab_size=49408, max_position_embeddings=77, hidden_size=8, intermediate_size=16,
            num_hidden_layers=3, num_attention_heads=2, hidden_act="quick_gelu",
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
# 64 channels at the last level: with 32 groups on 32 channels a group norm
# removes any per-channel constant, so resnets there ignore the timestep
UNET = dict(block_out_channels=(32, 32, 64), layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=8, attention_head_dim=8, norm_num_groups=32,
            in_channels=4, out_channels=4, sample_size=8)
VAE = dict(block_out_channels=(32, 32, 32, 32), layers_per_block=1,
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
           latent_channels=4, norm_num_groups=32, sample_size=64, scaling_factor=0.18215)
# the replacement VAE changes channels between levels (nin_shortcut)
VAE2 = dict(VAE, block_out_channels=(64, 32, 32, 32))
PROMPTS = ["a photograph of an astronaut riding a horse", ""]
# largest float32-vs-float64 difference (max |err| / max |ref|) accepted
# as a sign the references are well conditioned
F32_SANITY = 1e-4
SCHEDULER = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
             "set_alpha_to_one": False, "clip_sample": False, "skip_prk_steps": True,
             "prediction_type": "epsilon", "timestep_spacing": "leading"}


# ---- weights ---------------------------------------------------------------------

def exact_in_all_dtypes(t):
    """Rounds to bf16, flushes what f16 would make subnormal, clamps to the
    largest value both hold (65280: f16's 65504 is not a bf16 value)."""
    t = t.to(torch.bfloat16).to(torch.float32)
    t = torch.where(t.abs() < 2.0 ** -14, torch.zeros_like(t), t)
    return t.clamp(-65280, 65280)


def randomise(model, seed):
    """Every parameter random and O(1)-preserving, so a wrong mapping shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g) * (0.5 if "embedding" not in name else 1.0)
                if "embedding" not in name:
                    v = v / fan_in ** 0.5 * 1.7
            elif name.endswith("weight"):           # norms
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            else:
                v = 0.1 * torch.randn(p.shape, generator=g)
            p.copy_(exact_in_all_dtypes(v))
    return model


def build(seed, in_channels=4):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(seed)
    te = randomise(CLIPTextModel(CLIPTextConfig(**TEXT)).eval(), seed + 1)
    unet = randomise(UNet2DConditionModel(**dict(UNET, in_channels=in_channels)).eval(), seed + 2)
    vae = randomise(AutoencoderKL(**VAE).eval(), seed + 3)
    return te, unet, vae


# ---- the original single-file layout ----------------------------------------------

UNET_RESNET = [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."),
               ("time_emb_proj.", "emb_layers.1."), ("norm2.", "out_layers.0."),
               ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection.")]
VAE_RESNET = [("conv_shortcut.", "nin_shortcut.")]
VAE_ATTENTION = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                 ("to_out.0.", "proj_out.")]


def rename_inner(rest, table):
    for a, b in table:
        if rest.startswith(a):
            return b + rest[len(a):]
    return rest


def unet_prefixes(cfg):
    """(diffusers prefix, original prefix, inner renames) for every block."""
    n, L = cfg["layers_per_block"], len(cfg["block_out_channels"])
    attn = [t.startswith("CrossAttn") for t in cfg["down_block_types"]]
    P = []
    P += [("time_embedding.linear_1.", "time_embed.0.", []),
          ("time_embedding.linear_2.", "time_embed.2.", []),
          ("conv_in.", "input_blocks.0.0.", []), ("conv_norm_out.", "out.0.", []),
          ("conv_out.", "out.2.", [])]
    for i in range(L):
        for j in range(n):
            k = 1 + i * (n + 1) + j
            P.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{k}.0.", UNET_RESNET))
            if attn[i]:
                P.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{k}.1.", []))
        if i < L - 1:
            P.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (n + 1)}.0.op.", []))
    P += [("mid_block.resnets.0.", "middle_block.0.", UNET_RESNET),
          ("mid_block.attentions.0.", "middle_block.1.", []),
          ("mid_block.resnets.1.", "middle_block.2.", UNET_RESNET)]
    for i in range(L):
        up_attn = attn[L - 1 - i]
        for j in range(n + 1):
            k = i * (n + 1) + j
            P.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{k}.0.", UNET_RESNET))
            if up_attn:
                P.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{k}.1.", []))
        if i < L - 1:
            P.append((f"up_blocks.{i}.upsamplers.0.conv.",
                      f"output_blocks.{i * (n + 1) + n}.{2 if up_attn else 1}.conv.", []))
    return P


def vae_prefixes(cfg):
    n, L = cfg["layers_per_block"], len(cfg["block_out_channels"])
    P = [(x, x, []) for x in ("encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.",
                               "decoder.conv_out.", "quant_conv.", "post_quant_conv.")]
    for c in ("encoder", "decoder"):
        P += [(f"{c}.conv_norm_out.", f"{c}.norm_out.", []),
              (f"{c}.mid_block.resnets.0.", f"{c}.mid.block_1.", VAE_RESNET),
              (f"{c}.mid_block.attentions.0.", f"{c}.mid.attn_1.", VAE_ATTENTION),
              (f"{c}.mid_block.resnets.1.", f"{c}.mid.block_2.", VAE_RESNET)]
    for i in range(L):
        for j in range(n):
            P.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.", VAE_RESNET))
        if i < L - 1:
            P.append((f"encoder.down_blocks.{i}.downsamplers.0.conv.", f"encoder.down.{i}.downsample.conv.", []))
        for j in range(n + 1):
            P.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{L - 1 - i}.block.{j}.", VAE_RESNET))
        if i < L - 1:
            P.append((f"decoder.up_blocks.{i}.upsamplers.0.conv.", f"decoder.up.{L - 1 - i}.upsample.conv.", []))
    return P


def to_original(sd, prefixes, out_prefix):
    out = {}
    for name, t in sd.items():
        best = max((p for p in prefixes if name.startswith(p[0])), key=lambda p: len(p[0]), default=None)
        if best is None:
            raise KeyError(f"no original name for {name}")
        rest = rename_inner(name[len(best[0]):], best[2])
        new = out_prefix + best[1] + rest
        if ".mid.attn_1." in new and t.dim() == 2:
            t = t.reshape(*t.shape, 1, 1)        # the original files hold 1x1 convs
        out[new] = t
    return out


def single_file(te, unet, vae, prefix_vae="first_stage_model."):
    sd = {}
    sd.update(to_original(unet.state_dict(), unet_prefixes(unet.config), "model.diffusion_model."))
    sd.update(to_original(vae.state_dict(), vae_prefixes(vae.config), prefix_vae))
    for k, v in te.state_dict().items():
        if not k.endswith("position_ids"):
            # real SD 1.x files say text_model. (transformers 4's names)
            k = k if k.startswith("text_model.") else "text_model." + k
            sd["cond_stage_model.transformer." + k] = v
    return sd


def config_json(config):
    """A config as config.json holds it, without the fields that vary from
    run to run (a set's order, a path), so the files are reproducible."""
    d = {k: v for k, v in dict(config).items() if k not in ("_use_default_values", "_name_or_path")}
    return json.dumps(d, sort_keys=True)


def metadata(te, unet, vae, kind):
    return {"sdcl.unet_config": config_json(unet.config),
            "sdcl.vae_config": config_json(vae.config),
            "sdcl.text_encoder_config": config_json(te.config.to_dict()),
            "sdcl.scheduler_config": json.dumps(SCHEDULER),
            "sdcl.kind": kind}


ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.uint32: "U32"}


def save(sd, path, dtype, meta=None):
    """A safetensors file with a reproducible header (safetensors' own writer
    orders the metadata differently from run to run). dtype None keeps each
    tensor's own (one of ST_DTYPES)."""
    header, blobs, offset = {}, [], 0
    if meta:
        header["__metadata__"] = dict(sorted(meta.items()))
    for k, v in sorted(sd.items()):
        t = (v.detach() if dtype is None else v.detach().to(dtype)).contiguous()
        raw = t.view(torch.int16 if t.element_size() == 2 else torch.int32).numpy().tobytes()
        header[k] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                     "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)


# ---- verification: diffusers' and transformers' own loaders ----------------------

def read_header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


def config_folder(d, meta):
    """A diffusers folder holding only the configs from a file's metadata."""
    for sub, key in (("unet", "sdcl.unet_config"), ("vae", "sdcl.vae_config"),
                     ("text_encoder", "sdcl.text_encoder_config")):
        if key in meta:
            os.makedirs(os.path.join(d, sub))
            with open(os.path.join(d, sub, "config.json"), "w") as f:
                f.write(meta[key])
    if "sdcl.scheduler_config" in meta:
        os.makedirs(os.path.join(d, "scheduler"))
        with open(os.path.join(d, "scheduler", "scheduler_config.json"), "w") as f:
            f.write(meta["sdcl.scheduler_config"])
    with open(os.path.join(d, "model_index.json"), "w") as f:
        json.dump(MODEL_INDEX, f)


def assert_same(loaded, original, what):
    got = {k: v for k, v in loaded.state_dict().items() if not k.endswith("position_ids")}
    want = {k: v for k, v in original.state_dict().items() if not k.endswith("position_ids")}
    if set(got) != set(want):
        raise SystemExit(f"{what}: parameter names differ: {sorted(set(got) ^ set(want))[:5]}")
    for k, v in want.items():
        if got[k].shape != v.shape or not torch.equal(got[k].float(), v.float()):
            raise SystemExit(f"{what}: {k} differs from the original")
    return len(want)


def load_back(te, unet, unet9, vae, vae2):
    """Every file through the loaders of diffusers and transformers (the
    single files with their own metadata as the config), compared tensor by
    tensor with the models that made them. Returns the loaded models."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel
    folder = os.path.join(OUT, "tiny-sd")
    loaded = {}
    for sub, cls, want in (("unet", UNet2DConditionModel, unet), ("vae", AutoencoderKL, vae),
                           ("text_encoder", CLIPTextModel, te)):
        m = cls.from_pretrained(folder, subfolder=sub, local_files_only=True)
        n = assert_same(m, want, f"tiny-sd/{sub}")
        print(f"  tiny-sd/{sub}: {n} tensors, from_pretrained gives the originals")
    for name, u in (("tiny-sd.safetensors", unet), ("tiny-sd-inpaint.safetensors", unet9)):
        path = os.path.join(OUT, name)
        with tempfile.TemporaryDirectory() as d:
            config_folder(d, read_header(path)["__metadata__"])
            pipe = StableDiffusionPipeline.from_single_file(
                path, config=d, local_files_only=True, safety_checker=None, tokenizer=None,
                requires_safety_checker=False, torch_dtype=torch.float32)
        n = sum(assert_same(getattr(pipe, part), want, f"{name} {part}")
                for part, want in (("unet", u), ("vae", vae), ("text_encoder", te)))
        print(f"  {name}: {n} tensors, StableDiffusionPipeline.from_single_file gives the originals")
        loaded[name] = pipe
    path = os.path.join(OUT, "tiny-vae.safetensors")
    with tempfile.TemporaryDirectory() as d:
        config_folder(d, read_header(path)["__metadata__"])
        v2 = AutoencoderKL.from_single_file(path, config=d, subfolder="vae", local_files_only=True,
                                            torch_dtype=torch.float32)
    n = assert_same(v2, vae2, "tiny-vae.safetensors")
    print(f"  tiny-vae.safetensors: {n} tensors, AutoencoderKL.from_single_file gives the originals")
    p, p9 = loaded["tiny-sd.safetensors"], loaded["tiny-sd-inpaint.safetensors"]
    return p.text_encoder, p.unet, p9.unet, p.vae, v2


def rel_err(a, ref):
    return ((a.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def check_references(ref, models):
    """The references again, from the loaded models, in float64 (must match
    exactly) and float32 (the error a float32 engine can expect at least)."""
    print(f"  {'reference':17s} {'shape':17s} {'rms':>7s}  reloaded  {'f32 err':>8s}")
    worst = 0.0
    for dtype in (torch.float64, torch.float32):
        for m in models:
            m.to(dtype)
        out = run_models(ref, *models, dtype)
        for k, v in out.items():
            if dtype == torch.float64:
                if not torch.equal(f32(v), ref[k]):
                    raise SystemExit(f"{k}: the reloaded models give {rel_err(v, ref[k]):.1e} off")
            else:
                e = rel_err(v, ref[k])
                worst = max(worst, e)
                rms = ref[k].double().square().mean().sqrt().item()
                print(f"  {k:17s} {str(list(v.shape)):17s} {rms:7.4f}  equal     {e:8.1e}")
    for m in models:
        m.float()
    print(f"  float32 vs float64, worst max|err|/max|ref|: {worst:.1e}")
    if worst > F32_SANITY:
        raise SystemExit(f"float32 differs from float64 by {worst:.1e}: references too ill-conditioned")


# A key bias adds the same q.b_k to every score of a row, which softmax
# ignores: no output of any attention can show it.
KEY_BIASES = ("k_proj.bias", "to_k.bias")


def kind(name):
    """What a parameter is, without its block numbers: resnets.conv1.bias."""
    name = re.sub(r"\d+", "N", name)
    cut = max(name.rfind("resnets.N."), name.rfind("attentions.N."))
    return name[cut:].replace(".N.", ".", 1) if cut >= 0 else name


def check_every_parameter_matters(ref, te, unet, unet9, vae, vae2):
    """The gradient of a random projection of the outputs must reach every
    parameter tensor, well above rounding noise, and the UNet output must
    depend on the timestep.

    The exceptions are exact. Key biases (see KEY_BIASES). And with 32
    groups on 32 channels a group norm has one channel per group, so it
    removes any per-channel constant: a bias or time embedding whose only
    way to the output is through such norms cannot show (real SD has 10 to
    40 channels per group). Those must be biases or time projections, and
    the same kind of parameter (block numbers aside) must reach the output
    in a 64-channel part of the model family, so the names are still
    checked through it."""
    def d(k):
        return ref[k].double()

    def unet_out(m, key, t=None):
        return m(d(key + ".sample"), d(key + ".timesteps") if t is None else t,
                 encoder_hidden_states=d(key + ".context")).sample

    def vae_out(m):
        dist = m.encode(d("vae.image")).latent_dist
        return torch.cat([dist.mean.flatten(), dist.logvar.flatten(), m.decode(d("vae.latent")).sample.flatten()])

    def text_out(m):
        return torch.cat([m(ref["te.ids"].long()).last_hidden_state,
                          m(ref["te.ids_long"].long()).last_hidden_state])

    families = [[("text encoder", te, text_out)],
                [("UNet", unet, lambda m: unet_out(m, "unet")),
                 ("inpainting UNet", unet9, lambda m: unet_out(m, "inpaint"))],
                [("VAE", vae, vae_out), ("replacement VAE", vae2, vae_out)]]
    g = torch.Generator().manual_seed(0)
    for family in families:
        dead, alive = {}, set()
        for what, m, fn in family:
            m.double().zero_grad(set_to_none=True)
            y = fn(m)
            (y * torch.randn(y.shape, generator=g, dtype=torch.float64)).sum().backward()
            size = {n: (p.grad.norm().item() if p.grad is not None else 0.0) for n, p in m.named_parameters()}
            m.zero_grad(set_to_none=True)
            m.float()
            top = max(size.values())
            dead[what] = [n for n, s in size.items() if not s > 1e-6 * top and not n.endswith(KEY_BIASES)]
            alive |= {kind(n) for n, s in size.items() if s > 1e-6 * top}
            keys = sum(n.endswith(KEY_BIASES) for n in size)
            print(f"  {what}: {len(size) - len(dead[what]) - keys} of {len(size)} parameter tensors reach "
                  f"the output; {keys} key biases; {len(dead[what])} biases behind one-channel group norms")
        for what, names in dead.items():
            bad = [n for n in names if not (n.endswith(".bias") or "time_emb_proj" in n) or kind(n) not in alive]
            if bad:
                raise SystemExit(f"{what}: these parameters do not reach any output: {bad}")
    with torch.no_grad():
        unet.double()
        a = unet_out(unet, "unet")
        b = unet_out(unet, "unet", d("unet.timesteps") + 10)
        unet.float()
    print(f"  UNet: timesteps + 10 change the output by {rel_err(b, a):.1e} of its max")
    if rel_err(b, a) < 1e-3:
        raise SystemExit("the UNet output hardly depends on the timestep")


# ---- reference outputs --------------------------------------------------------------

def f32(t):
    return t.detach().to(torch.float32).contiguous()


def inputs(tok):
    """The reference inputs, all float32 (ids too), from one seeded generator."""
    g = torch.Generator().manual_seed(1234)
    ref = {}
    ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    # the last 75 ordinary ids: the far end of the embedding table
    ids_long = torch.tensor([[49406] + list(range(49406 - 75, 49406)) + [49407]])
    ref["te.ids"], ref["te.ids_long"] = ids.float(), ids_long.float()

    def unet_case(key, shape, timesteps, ctx_len):
        ref[key + ".sample"] = torch.randn(shape, generator=g)
        ref[key + ".timesteps"] = torch.tensor(timesteps, dtype=torch.float32)
        ref[key + ".context"] = torch.randn((shape[0], ctx_len, TEXT["hidden_size"]), generator=g)

    unet_case("unet", (2, 4, 8, 8), [981, 1], 77)
    unet_case("unet2", (1, 4, 8, 12), [500], 154)        # H, W must be multiples of 4
    unet_case("inpaint", (1, 9, 8, 8), [700], 77)

    # a smooth image: low-resolution noise upsampled, plus a little noise
    low = torch.rand((1, 3, 8, 6), generator=g) * 2 - 1
    image = torch.nn.functional.interpolate(low, size=(64, 48), mode="bilinear", align_corners=False)
    image = (image + 0.05 * torch.randn(image.shape, generator=g)).clamp(-1, 1)
    latent = torch.randn((1, 4, 8, 6), generator=g)
    ref["vae.big_latent"] = torch.randn((1, 4, 24, 32), generator=g)
    for key in ("vae", "vae2"):
        ref[key + ".image"], ref[key + ".latent"] = image, latent
    return ref


def run_models(ref, te, unet, unet9, vae, vae2, dtype):
    """Every output, in `dtype`, from the inputs in `ref`."""
    out = {}
    with torch.no_grad():
        o = te(ref["te.ids"].long(), output_hidden_states=True)
        final_ln = te.text_model.final_layer_norm if hasattr(te, "text_model") else te.final_layer_norm
        out["te.hidden"] = o.last_hidden_state
        out["te.hidden_skip2"] = final_ln(o.hidden_states[-2])
        out["te.hidden_long"] = te(ref["te.ids_long"].long()).last_hidden_state
        for key, m in (("unet", unet), ("unet2", unet), ("inpaint", unet9)):
            out[key + ".out"] = m(ref[key + ".sample"].to(dtype), ref[key + ".timesteps"].to(dtype),
                                  encoder_hidden_states=ref[key + ".context"].to(dtype)).sample
        for key, m in (("vae", vae), ("vae2", vae2)):
            dist = m.encode(ref[key + ".image"].to(dtype)).latent_dist
            out[key + ".mean"], out[key + ".logvar"] = dist.mean, dist.logvar
            out[key + ".decoded"] = m.decode(ref[key + ".latent"].to(dtype)).sample
        out["vae.big_decoded"] = vae.decode(ref["vae.big_latent"].to(dtype)).sample
    return out


def references(models, tok):
    ref = inputs(tok)
    for m in models:
        m.double()
    ref.update(run_models(ref, *models, torch.float64))
    for m in models:
        m.float()
    return {k: f32(v) for k, v in ref.items()}


# ---- main ------------------------------------------------------------------------------

MODEL_INDEX = {"_class_name": "StableDiffusionPipeline",
               "feature_extractor": [None, None], "safety_checker": [None, None],
               "requires_safety_checker": False,
               "scheduler": ["diffusers", "PNDMScheduler"],
               "text_encoder": ["transformers", "CLIPTextModel"],
               "tokenizer": [None, None],
               "unet": ["diffusers", "UNet2DConditionModel"],
               "vae": ["diffusers", "AutoencoderKL"]}


def main():
    from diffusers import AutoencoderKL
    global OUT
    if len(sys.argv) > 1:
        OUT = sys.argv[1]
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    work = tempfile.mkdtemp()
    tok = clip_tokenizer(work)

    te, unet, vae = build(100)
    _, unet9, _ = build(100, in_channels=9)
    vae2 = randomise(AutoencoderKL(**VAE2).eval(), 200)
    models = (te, unet, unet9, vae, vae2)

    # diffusers folder, f16
    folder = os.path.join(OUT, "tiny-sd")
    unet.half().save_pretrained(os.path.join(folder, "unet"), safe_serialization=True)
    vae.half().save_pretrained(os.path.join(folder, "vae"), safe_serialization=True)
    te.half().save_pretrained(os.path.join(folder, "text_encoder"), safe_serialization=True)
    for m in (unet, vae, te):
        m.float()
    os.makedirs(os.path.join(folder, "scheduler"))
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER, f, indent=2)
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(MODEL_INDEX, f, indent=2)
    # keep weights and configs only
    for part in ("unet", "vae", "text_encoder"):
        for fn in os.listdir(os.path.join(folder, part)):
            if fn.endswith((".md", ".txt")) or fn == "generation_config.json":
                os.remove(os.path.join(folder, part, fn))

    # single files in the original layout
    sd = single_file(te, unet, vae)
    save(sd, os.path.join(OUT, "tiny-sd.safetensors"), torch.float16, metadata(te, unet, vae, "sd1"))
    sd9 = single_file(te, unet9, vae)
    save(sd9, os.path.join(OUT, "tiny-sd-inpaint.safetensors"), torch.bfloat16,
         metadata(te, unet9, vae, "sd1-inpaint"))
    vae_sd = to_original(vae2.state_dict(), vae_prefixes(vae2.config), "")
    save(vae_sd, os.path.join(OUT, "tiny-vae.safetensors"), torch.float32,
         {"sdcl.vae_config": config_json(vae2.config)})

    # foreign files (the missing-tensor and wrong-shape files are made by the C
    # test itself from tiny-sd.safetensors). SDXL's own big tensors (token
    # embeddings [49408, 768] and [49408, 1280], label_emb.0.0.weight
    # [1280, 2816]) would take 209 MB in f16: these are small SDXL tensors
    # with their real names and shapes.
    save({"conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight":
              torch.zeros(77, 768),
          "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
          "model.diffusion_model.label_emb.0.0.bias": torch.zeros(1280)},
         os.path.join(OUT, "fake-sdxl.safetensors"), torch.float16)
    torch.save({"state_dict": {"w": torch.zeros(2)}}, os.path.join(OUT, "not-a-model.ckpt"))

    ref = references(models, tok)
    save(ref, os.path.join(OUT, "tiny-sd-ref.safetensors"), torch.float32)

    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README)
    shutil.rmtree(work)

    print("checks:")
    loaded = load_back(*models)
    check_references(ref, loaded)
    check_every_parameter_matters(ref, *loaded)
    total = 0
    for d, _, fs in sorted(os.walk(OUT)):
        for fn in sorted(fs):
            size = os.path.getsize(os.path.join(d, fn))
            total += size
            print(f"  {os.path.relpath(os.path.join(d, fn), OUT):48s} {size:10,d}")
    print(f"wrote {OUT}: {total:,} bytes")


README = """# Tiny model fixtures

Made by `tests/reference/make_model_fixtures.py` (diffusers/transformers,
random weights exact in f16, bf16 and f32; references in float64). See
`tests/reference/README.md` for how, and for what the tests can expect.

| file | what |
| --- | --- |
| `tiny-sd/` | diffusers folder (unet, vae, text_encoder in f16 as `save_pretrained` writes them; scheduler; no tokenizer) |
| `tiny-sd.safetensors` | the same model, one file in the original SD layout, f16, architecture in `__metadata__` |
| `tiny-sd-inpaint.safetensors` | 9-channel UNet (other weights than tiny-sd's UNet), same text encoder and VAE, original layout, bf16 |
| `tiny-vae.safetensors` | a different VAE alone (`encoder.*`, `decoder.*`, `quant_conv.*`, `post_quant_conv.*`), f32: the replacement-VAE test |
| `fake-sdxl.safetensors` | three small SDXL tensors with their real names and shapes (no SD 2.x file: its smallest telling tensor is 100 MB) |
| `not-a-model.ckpt` | a PyTorch zip pickle |
| `tiny-sd-ref.safetensors` | inputs and outputs: `te.*` (ids, hidden states, clip skip 2, high ids), `unet.*`, `unet2.*` (8x12 latent, two text chunks), `inpaint.*`, `vae.*` and `vae2.*` (encode mean/logvar, decode), `vae.big_*` (24x32 latent for tiling) |

The files with a missing tensor and a wrongly shaped one are made by
`tests/test-models.c` from `tiny-sd.safetensors`.

Architecture: text encoder 8 wide, 3 layers, 2 heads, the real 49,408-token
vocabulary; UNet 32/32/64 channels, 2 resnets per level, cross-attention on
the first two levels, 8 heads, 32 groups; VAE 32/32/32/32 channels, 1
resnet per level (latents 1/8 of the image), scaling factor 0.18215; the
replacement VAE 64/32/32/32.
"""

if __name__ == "__main__":
    main()
