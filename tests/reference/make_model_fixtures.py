#!/usr/bin/env python3
"""Tiny random-weight SD 1.x models and their reference outputs.

Writes tests/fixtures/models/ (see the README there): a tiny model as a
diffusers folder and as single files in the original SD layout (f16, bf16),
a standalone replacement VAE (f32), broken and foreign files for the
refusal tests, and tiny-sd-ref.safetensors with inputs and outputs computed
by diffusers/transformers in float64.

Every weight is rounded to a value that bf16, f16 and f32 all hold exactly,
so one set of reference outputs serves every file dtype. The original-layout
files are checked against diffusers' own single-file loader.

    ~/.cache/sdcl-venv/bin/python tests/reference/make_model_fixtures.py
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_vocab import clip_tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "models")

TEXT = dict(vocab_size=49408, max_position_embeddings=77, hidden_size=8, intermediate_size=16,
            num_hidden_layers=3, num_attention_heads=2, hidden_act="quick_gelu",
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
UNET = dict(block_out_channels=(32, 32, 32), layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=8, attention_head_dim=8, norm_num_groups=32,
            in_channels=4, out_channels=4, sample_size=8)
VAE = dict(block_out_channels=(32, 32, 32, 32), layers_per_block=1,
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
           latent_channels=4, norm_num_groups=32, sample_size=64, scaling_factor=0.18215)
# the replacement VAE changes channels between levels (nin_shortcut)
VAE2 = dict(VAE, block_out_channels=(32, 32, 32, 64))
SCHEDULER = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
             "set_alpha_to_one": False, "clip_sample": False, "skip_prk_steps": True,
             "prediction_type": "epsilon", "timestep_spacing": "leading"}


# ---- weights ---------------------------------------------------------------------

def exact_in_all_dtypes(t):
    """Rounds to bf16, flushes what f16 would make subnormal, clamps to f16."""
    t = t.to(torch.bfloat16).to(torch.float32)
    t = torch.where(t.abs() < 2.0 ** -14, torch.zeros_like(t), t)
    return t.clamp(-65504, 65504)


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


ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def save(sd, path, dtype, meta=None):
    """A safetensors file with a reproducible header (safetensors' own writer
    orders the metadata differently from run to run)."""
    header, blobs, offset = {}, [], 0
    if meta:
        header["__metadata__"] = dict(sorted(meta.items()))
    for k, v in sorted(sd.items()):
        t = v.detach().to(dtype).contiguous()
        raw = t.view(torch.int16 if t.element_size() == 2 else torch.int32).numpy().tobytes()
        header[k] = {"dtype": ST_DTYPES[dtype], "shape": list(t.shape),
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


# ---- verification through diffusers' own single-file loader ---------------------

def verify_single_file(path, folder, te, unet, vae, tok):
    """UNet and VAE through StableDiffusionPipeline.from_single_file; the text
    encoder through diffusers' converter directly (its single-file loader
    refuses a text model this small)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from safetensors.torch import load_file
    pipe = StableDiffusionPipeline.from_single_file(
        path, config=folder, local_files_only=True, safety_checker=None,
        requires_safety_checker=False, torch_dtype=torch.float32, text_encoder=te, tokenizer=tok)
    # transformers 5 names the text model's tensors without "text_model."
    text = {k.removeprefix("text_model."): v
            for k, v in convert_ldm_clip_checkpoint(load_file(path)).items()}
    for part, ref in (("unet", unet), ("vae", vae), ("text_encoder", te)):
        got = text if part == "text_encoder" else getattr(pipe, part).state_dict()
        want = ref.state_dict()
        for k, v in want.items():
            if k.endswith("position_ids"):
                continue
            g = got[k].float().reshape(v.shape)
            if not torch.equal(g, v.float()):
                raise SystemExit(f"{path}: {part}.{k} differs after diffusers' single-file load")
    print(f"  verified {os.path.basename(path)} with diffusers' single-file loader")


# ---- reference outputs --------------------------------------------------------------

def f32(t):
    return t.detach().to(torch.float32).contiguous()


def references(te, unet, unet9, vae, vae2, tok):
    g = torch.Generator().manual_seed(1234)
    ref = {}
    te64, unet64, unet964, vae64, vae264 = (m.double() for m in (te, unet, unet9, vae, vae2))
    with torch.no_grad():
        prompts = ["a photograph of an astronaut riding a horse", ""]
        ids = tok(prompts, padding="max_length", max_length=77, truncation=True,
                  return_tensors="pt").input_ids
        ids_long = torch.tensor([[49406] + list(range(49000, 49000 + 75)) + [49407]])
        ref["te.ids"] = ids.float()
        ref["te.ids_long"] = ids_long.float()
        out = te64(ids, output_hidden_states=True)
        ref["te.hidden"] = f32(out.last_hidden_state)
        final_ln = te64.text_model.final_layer_norm if hasattr(te64, "text_model") else te64.final_layer_norm
        ref["te.hidden_skip2"] = f32(final_ln(out.hidden_states[-2]))
        ref["te.hidden_long"] = f32(te64(ids_long).last_hidden_state)

        def unet_case(key, model, shape, timesteps, ctx_len):
            x = torch.randn(shape, generator=g)
            ctx = torch.randn((shape[0], ctx_len, TEXT["hidden_size"]), generator=g)
            t = torch.tensor(timesteps, dtype=torch.float64)
            y = model(x.double(), t, encoder_hidden_states=ctx.double()).sample
            ref[key + ".sample"], ref[key + ".context"] = x, ctx
            ref[key + ".timesteps"], ref[key + ".out"] = t.float(), f32(y)

        unet_case("unet", unet64, (2, 4, 8, 8), [981, 1], 77)
        unet_case("unet2", unet64, (1, 4, 8, 12), [500], 154)
        unet_case("inpaint", unet964, (1, 9, 8, 8), [700], 77)

        # a smooth image: low-resolution noise upsampled, plus a little noise
        low = torch.rand((1, 3, 8, 6), generator=g) * 2 - 1
        image = torch.nn.functional.interpolate(low, size=(64, 48), mode="bilinear", align_corners=False)
        image = (image + 0.05 * torch.randn(image.shape, generator=g)).clamp(-1, 1)
        latent = torch.randn((1, 4, 8, 6), generator=g)
        big = torch.randn((1, 4, 24, 32), generator=g)
        for key, model in (("vae", vae64), ("vae2", vae264)):
            dist = model.encode(image.double()).latent_dist
            ref[key + ".image"] = image
            ref[key + ".mean"], ref[key + ".logvar"] = f32(dist.mean), f32(dist.logvar)
            ref[key + ".latent"] = latent
            ref[key + ".decoded"] = f32(model.decode(latent.double()).sample)
        ref["vae.big_latent"] = big
        ref["vae.big_decoded"] = f32(vae64.decode(big.double()).sample)
    for m in (te, unet, unet9, vae, vae2):
        m.float()
    return {k: f32(v) for k, v in ref.items()}


def main():
    from diffusers import AutoencoderKL
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    work = tempfile.mkdtemp()
    tok = clip_tokenizer(work)

    te, unet, vae = build(100)
    _, unet9, _ = build(100, in_channels=9)
    vae2 = randomise(AutoencoderKL(**VAE2).eval(), 200)

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
        json.dump({"_class_name": "StableDiffusionPipeline",
                   "feature_extractor": [None, None], "safety_checker": [None, None],
                   "requires_safety_checker": False,
                   "scheduler": ["diffusers", "PNDMScheduler"],
                   "text_encoder": ["transformers", "CLIPTextModel"],
                   "unet": ["diffusers", "UNet2DConditionModel"],
                   "vae": ["diffusers", "AutoencoderKL"]}, f, indent=2)
    # save_pretrained writes no stable order/metadata issues, but drop anything
    # that is not weights or config
    for part in ("unet", "vae", "text_encoder"):
        for fn in os.listdir(os.path.join(folder, part)):
            if fn.endswith((".md", ".txt")) or fn == "generation_config.json":
                os.remove(os.path.join(folder, part, fn))

    # single files in the original layout
    sd = single_file(te, unet, vae)
    path = os.path.join(OUT, "tiny-sd.safetensors")
    save(sd, path, torch.float16, metadata(te, unet, vae, "sd1"))
    verify_single_file(path, folder, te, unet, vae, tok)

    sd9 = single_file(te, unet9, vae)
    save(sd9, os.path.join(OUT, "tiny-sd-inpaint.safetensors"), torch.bfloat16,
         metadata(te, unet9, vae, "sd1-inpaint"))

    vae_sd = to_original(vae2.state_dict(), vae_prefixes(vae2.config), "")
    save(vae_sd, os.path.join(OUT, "tiny-vae.safetensors"), torch.float32,
         {"sdcl.vae_config": config_json(vae2.config)})

    # foreign files (the missing-tensor and wrong-shape files are made by the C
    # test itself from tiny-sd.safetensors)
    save({"conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight":
              torch.zeros(77, 768),
          "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
          "model.diffusion_model.label_emb.0.0.bias": torch.zeros(1280)},
         os.path.join(OUT, "fake-sdxl.safetensors"), torch.float16)
    torch.save({"state_dict": {"w": torch.zeros(2)}}, os.path.join(OUT, "not-a-model.ckpt"))

    ref = references(te, unet, unet9, vae, vae2, tok)
    save(ref, os.path.join(OUT, "tiny-sd-ref.safetensors"), torch.float32)

    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README)
    shutil.rmtree(work)
    total = sum(os.path.getsize(os.path.join(d, fn)) for d, _, fs in os.walk(OUT) for fn in fs)
    print(f"wrote {OUT}: {total / 1e6:.1f} MB")


README = """# Tiny model fixtures

Made by `tests/reference/make_model_fixtures.py` (diffusers/transformers,
random weights exact in f16, bf16 and f32; references in float64).

| file | what |
| --- | --- |
| `tiny-sd/` | diffusers folder (unet, vae, text_encoder in f16; scheduler) |
| `tiny-sd.safetensors` | the same model, one file in the original SD layout, f16, architecture in `__metadata__` |
| `tiny-sd-inpaint.safetensors` | 9-channel UNet variant, original layout, bf16 |
| `tiny-vae.safetensors` | a different VAE alone (`encoder.*`, `decoder.*`), f32: the replacement-VAE test |
| `fake-sdxl.safetensors` | three SDXL-shaped tensors (an SDXL text embedder and label embedding) |
| `not-a-model.ckpt` | a PyTorch zip pickle |
| `tiny-sd-ref.safetensors` | inputs and outputs: `te.*` (ids, hidden states, clip skip 2), `unet.*`, `unet2.*` (8x12 latent, two text chunks), `inpaint.*`, `vae.*` and `vae2.*` (encode mean/logvar, decode), `vae.big_*` (24x32 latent for tiling) |

Architecture: text encoder 8 wide, 3 layers, 2 heads, the real 49,408-token
vocabulary; UNet 32/32/32 channels, 2 resnets per level, cross-attention on
the first two levels, 8 heads; VAE 32/32/32/32 channels, 1 resnet per level
(latents 1/8 of the image), scaling factor 0.18215; the replacement VAE
32/32/32/64.
"""

if __name__ == "__main__":
    main()
