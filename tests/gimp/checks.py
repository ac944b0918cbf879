# checks.py — the gimp suite's checks, run inside GIMP 3 by
# `gimp-console-3.0 --batch-interpreter=python-fu-eval` (run-gimp-test starts
# it). Calls the plug-in's procedures non-interactively on images made here,
# reads the layers back through GEGL and writes TAP lines to
# $SDCL_GIMP_OUT/result.tap; run-gimp-test reports them.
#
# Which checks run: $SDCL_GIMP_TEST (generate, img2img, inpaint, failure).
# Models: the test's GIMP profile has tiny-sd and tiny-sd-inpaint in its
# sdcl/models folder; $SDCL_TEST_MODELS is the fixture folder.
import os
import time
import traceback

import gi
gi.require_version('Gimp', '3.0')
gi.require_version('Gegl', '0.4')
from gi.repository import Gegl, Gimp, Gio  # noqa: E402
import numpy as np  # noqa: E402

OUT = os.environ['SDCL_GIMP_OUT']
TEST = os.environ['SDCL_GIMP_TEST']
MODELS = os.environ['SDCL_TEST_MODELS']
TINY = os.path.join(MODELS, 'tiny-sd.safetensors')
TINY_INPAINT = os.path.join(MODELS, 'tiny-sd-inpaint.safetensors')
SUCCESS = Gimp.PDBStatusType.SUCCESS

results = []


def check(ok, what, detail=''):
    results.append((bool(ok), what, '' if ok else detail))
    return bool(ok)


# ---- images ---------------------------------------------------------------------------------

def pattern(w, h, seed):
    """A deterministic picture with edges and gradients (RGBA u8)."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(1, w - 1))
    g = (y * 255 // max(1, h - 1))
    b = ((x // 8 + y // 8 + seed) % 2) * 200 + 30
    a = np.full_like(x, 255)
    return np.stack([r, g, b, a], axis=-1).astype(np.uint8)


def set_pixels(drawable, rgba):
    h, w = rgba.shape[:2]
    buf = drawable.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), "R'G'B'A u8", rgba.tobytes())
    buf.flush()
    drawable.update(0, 0, w, h)


def get_pixels(drawable, fmt="R'G'B'A u8", channels=4):
    w, h = drawable.get_width(), drawable.get_height()
    buf = drawable.get_buffer()
    data = buf.get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt, Gegl.AbyssPolicy.NONE)
    return np.frombuffer(data, dtype=np.uint8).reshape(h, w, channels)


def make_image():
    """160x120: 'background' (opaque pattern), 'top' (60x40 at 100,70, half
    transparent); background is the active layer."""
    img = Gimp.Image.new(160, 120, Gimp.ImageBaseType.RGB)
    bg = Gimp.Layer.new(img, 'background', 160, 120, Gimp.ImageType.RGBA_IMAGE, 100,
                        Gimp.LayerMode.NORMAL)
    img.insert_layer(bg, None, 0)
    set_pixels(bg, pattern(160, 120, 0))
    top = Gimp.Layer.new(img, 'top', 60, 40, Gimp.ImageType.RGBA_IMAGE, 100,
                         Gimp.LayerMode.NORMAL)
    img.insert_layer(top, None, 0)
    top.set_offsets(100, 70)
    px = pattern(60, 40, 1)
    px[..., 3] = 128
    set_pixels(top, px)
    img.set_selected_layers([bg])
    return img, bg, top


def snapshot(img):
    """Every layer: name, offsets, size, pixels, mask pixels."""
    out = {}
    for layer in img.get_layers():
        ok, x, y = layer.get_offsets()
        mask = layer.get_mask()
        out[layer.get_id()] = (layer.get_name(), x, y, layer.get_width(), layer.get_height(),
                               get_pixels(layer).tobytes(),
                               get_pixels(mask, 'Y u8', 1).tobytes() if mask else None)
    return out


def composite(img):
    dup = img.duplicate()
    flat = dup.flatten()
    px = get_pixels(flat, "R'G'B' u8", 3).copy()
    dup.delete()
    return px


def selection_values(img):
    sel = img.get_selection()
    return get_pixels(sel, 'Y u8', 1)[..., 0]


def distance_to(selected, w, h):
    """Euclidean distance of every pixel of an h x w image to the nearest
    selected pixel (brute force in blocks; the images are small)."""
    ys, xs = np.nonzero(selected)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    gy, gx = np.mgrid[0:h, 0:w]
    q = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float64)
    d = np.empty(len(q))
    for i in range(0, len(q), 2048):
        diff = q[i:i + 2048, None, :] - pts[None, :, :]
        d[i:i + 2048] = np.sqrt((diff ** 2).sum(-1)).min(1)
    return d.reshape(h, w)


# ---- calling the procedures -------------------------------------------------------------------

def call(name, img, drawables, **args):
    """Runs a procedure non-interactively; returns (status, values, error)."""
    proc = Gimp.get_pdb().lookup_procedure(name)
    cfg = proc.create_config()
    cfg.set_property('run-mode', Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property('image', img)
    cfg.set_core_object_array('drawables', drawables)
    for key, value in args.items():
        key = key.replace('_', '-')
        if key == 'model':
            value = Gio.File.new_for_path(value)
        cfg.set_property(key, value)
    r = proc.run(cfg)
    status = r.index(0)
    values = [r.index(i) for i in range(1, r.length())]
    error = None if status == SUCCESS else (values[0] if values else '')
    return status, values, error


def new_layers(img, before):
    return [la for la in img.get_layers() if la.get_id() not in before]


def others_unchanged(img, before, what):
    after = snapshot(img)
    same = all(after.get(k) == v for k, v in before.items())
    check(same, f'{what}: every other layer is byte-identical (pixels, offsets, masks)',
          'a layer that was there before changed')


def layer_geometry(layer):
    ok, x, y = layer.get_offsets()
    return x, y, layer.get_width(), layer.get_height()


# ---- generate -------------------------------------------------------------------------------

def test_generate():
    for proc, label in (('plug-in-sdcl-generate', '_Generate from Prompt...'),
                        ('plug-in-sdcl-img2img', '_Image to Image...'),
                        ('plug-in-sdcl-inpaint', '_Inpaint Selection...')):
        p = Gimp.get_pdb().lookup_procedure(proc)
        check(p is not None and '<Image>/Filters/Generative' in p.get_menu_paths()
              and p.get_menu_label() == label,
              f'{proc} is registered in Filters > Generative as "{label}"',
              p and (p.get_menu_paths(), p.get_menu_label()))
    img, bg, top = make_image()
    before = snapshot(img)
    status, values, error = call('plug-in-sdcl-generate', img, [bg],
                                 prompt='a red circle', steps=2, seed=1234)
    check(status == SUCCESS, 'generate (default model from the profile folder) succeeds',
          f'status {status}: {error}')
    if status != SUCCESS:
        return
    layer, seed, params = values
    check(seed == 1234, 'generate returns the seed it was given', f'seed {seed}')
    check(layer.get_name() == 'a red circle (seed 1234)', 'the new layer is named with prompt and seed',
          f'name {layer.get_name()!r}')
    check(layer_geometry(layer) == (0, 0, 160, 120), 'the layer covers the active layer',
          f'geometry {layer_geometry(layer)}')
    check(img.get_item_position(layer) == img.get_item_position(bg) - 1,
          'the new layer is right above the active one',
          f'positions {img.get_item_position(layer)} / {img.get_item_position(bg)}')
    check(layer.get_mask() is None, 'generate adds no layer mask')
    check('Model: tiny-sd,' in params and 'Seed: 1234' in params and 'Steps: 2' in params,
          'the parameters name the default model (tiny-sd), seed and steps', params)
    px = get_pixels(layer)
    check(px[..., 3].min() == 255 and px[..., :3].std() > 1, 'the layer is opaque and not flat',
          f'alpha min {px[..., 3].min()}, std {px[..., :3].std():.2f}')
    parasite = layer.get_parasite('sdcl-parameters')
    check(parasite is not None, 'the settings are kept on the layer (parasite sdcl-parameters)')
    others_unchanged(img, before, 'generate')

    before = snapshot(img)
    status, values, error = call('plug-in-sdcl-generate', img, [bg], prompt='a blue square',
                                 steps=2, seed=-1, width=64, height=48, model=TINY,
                                 sampler='dpmpp_2m_karras')
    check(status == SUCCESS, 'generate 64x48 with a random seed succeeds', f'{status}: {error}')
    if status == SUCCESS:
        layer, seed, params = values
        check(0 <= seed, 'a random seed is reported', f'seed {seed}')
        check(layer.get_name() == f'a blue square (seed {seed})', 'its name has the seed used',
              layer.get_name())
        check(layer.get_width() == 64 and layer.get_height() == 48, 'the layer is 64x48',
              f'{layer.get_width()}x{layer.get_height()}')
        check('Sampler: DPM++ 2M, Schedule type: Karras' in params, 'the sampler choice reaches the engine', params)
        others_unchanged(img, before, 'generate 64x48')

    img.select_rectangle(Gimp.ChannelOps.REPLACE, 30, 20, 50, 40)
    before = snapshot(img)
    status, values, error = call('plug-in-sdcl-generate', img, [bg], prompt='x' * 80, steps=1,
                                 seed=7, model=TINY)
    check(status == SUCCESS, 'generate over a selection succeeds', f'{status}: {error}')
    if status == SUCCESS:
        layer = values[0]
        check(layer_geometry(layer) == (30, 20, 50, 40), "the layer covers the selection's bounds",
              f'{layer_geometry(layer)}')
        name = layer.get_name()
        check(name == 'x' * 47 + '… (seed 7)', 'a long prompt is cut in the layer name', name)
        others_unchanged(img, before, 'generate over a selection')
    img.delete()


# ---- img2img --------------------------------------------------------------------------------

def test_img2img():
    img, bg, top = make_image()
    before = snapshot(img)
    original = composite(img)
    status, values, error = call('plug-in-sdcl-img2img', img, [top], prompt='a green field',
                                 steps=3, strength=0.5, seed=42, model=TINY)
    check(status == SUCCESS, 'img2img of a layer succeeds', f'{status}: {error}')
    if status == SUCCESS:
        layer, seed, params = values
        check(layer_geometry(layer) == (100, 70, 60, 40),
              'the new layer covers the whole drawable (offset and size)', f'{layer_geometry(layer)}')
        check(layer.get_mask() is None, 'without a selection there is no layer mask')
        check(layer.get_name() == 'a green field (seed 42)', 'named with prompt and seed',
              layer.get_name())
        check(img.get_item_position(layer) == img.get_item_position(top) - 1,
              'the new layer is right above the active one')
        check('Denoising strength: 0.5' in params, 'the strength reaches the engine', params)
        others_unchanged(img, before, 'img2img')
        after = composite(img)
        outside = np.ones(after.shape[:2], bool)
        outside[70:110, 100:160] = False
        check((after[outside] == original[outside]).all(),
              'the composite outside the drawable is unchanged')

    img.select_rectangle(Gimp.ChannelOps.REPLACE, 40, 30, 40, 30)
    before = snapshot(img)
    status, values, error = call('plug-in-sdcl-img2img', img, [bg], prompt='a tree', steps=2,
                                 strength=0.6, seed=3, model=TINY, grow=2, feather=6,
                                 context_padding=8)
    check(status == SUCCESS, 'img2img of a selection succeeds', f'{status}: {error}')
    if status == SUCCESS:
        layer = values[0]
        reach = 2 + 6 + 8
        check(layer_geometry(layer) == (40 - reach, 30 - reach, 40 + 2 * reach, 30 + 2 * reach),
              'the region is the selection grown by grow + feather + padding',
              f'{layer_geometry(layer)}')
        check(layer.get_mask() is not None, 'img2img of a selection adds a layer mask')
        others_unchanged(img, before, 'img2img of a selection')
    img.delete()

    # a grey image gets a grey layer
    img = Gimp.Image.new(64, 48, Gimp.ImageBaseType.GRAY)
    grey = Gimp.Layer.new(img, 'grey', 64, 48, Gimp.ImageType.GRAYA_IMAGE, 100,
                          Gimp.LayerMode.NORMAL)
    img.insert_layer(grey, None, 0)
    set_pixels(grey, pattern(64, 48, 2))
    before = snapshot(img)
    status, values, error = call('plug-in-sdcl-img2img', img, [grey], prompt='snow', steps=2,
                                 seed=1, model=TINY)
    check(status == SUCCESS, 'img2img of a grey image succeeds', f'{status}: {error}')
    if status == SUCCESS:
        check(values[0].type() == Gimp.ImageType.GRAYA_IMAGE, 'its new layer is grey',
              f'type {values[0].type()}')
        others_unchanged(img, before, 'img2img of a grey image')
    img.delete()


# ---- inpaint --------------------------------------------------------------------------------

def inpaint_case(shape, model, grow, feather, padding, expect_model):
    img, bg, top = make_image()
    if shape == 'rectangle':
        img.select_rectangle(Gimp.ChannelOps.REPLACE, 30, 25, 40, 30)
    else:
        img.select_ellipse(Gimp.ChannelOps.REPLACE, 50, 30, 56, 44)
    sel = selection_values(img)
    before = snapshot(img)
    original = composite(img)
    args = dict(prompt='a yellow star', steps=3, seed=11, grow=grow, feather=feather,
                context_padding=padding)
    if model:
        args['model'] = model
    status, values, error = call('plug-in-sdcl-inpaint', img, [bg], **args)
    what = f'inpaint ({shape})'
    check(status == SUCCESS, f'{what} succeeds', f'{status}: {error}')
    if status != SUCCESS:
        img.delete()
        return
    layer, seed, params = values
    check(f'Model: {expect_model},' in params, f'{what} runs {expect_model}', params)
    mask = layer.get_mask()
    check(mask is not None, f'{what}: the new layer has a layer mask')
    if mask is None:
        img.delete()
        return
    x, y, w, h = layer_geometry(layer)
    check(x >= 0 and y >= 0 and x + w <= 160 and y + h <= 120,
          f'{what}: the region stays on the layer', f'{(x, y, w, h)}')
    m = np.zeros((120, 160), np.uint8)
    m[y:y + h, x:x + w] = get_pixels(mask, 'Y u8', 1)[..., 0][:120 - y, :160 - x]

    dist = distance_to(sel >= 128, 160, 120)
    reach = grow + feather
    far = dist > reach + 1
    check((m[far] == 0).all(), f'{what}: the mask is transparent outside the grown, feathered '
          'selection', f'max {m[far].max()} at distance > {reach + 1}')
    inner = dist == 0
    check((m[inner] == 255).all(), f'{what}: the mask is opaque over the selection',
          f'min {m[inner].min()}')
    soft = (dist > grow + 1) & (dist < reach - 1)
    check(soft.any() and ((m[soft] > 0) & (m[soft] < 255)).mean() > 0.9,
          f'{what}: the edge is feathered', f'{((m[soft] > 0) & (m[soft] < 255)).mean():.2f}')
    inside = (x <= np.arange(160))[None, :] & (np.arange(160) < x + w)[None, :] & \
             (y <= np.arange(120))[:, None] & (np.arange(120) < y + h)[:, None]
    check(inside[sel >= 128].all(), f'{what}: the layer covers the selection')

    after = composite(img)
    check((after[far] == original[far]).all(),
          f'{what}: composite pixels far outside the selection equal the original',
          f'{(after[far] != original[far]).any(-1).sum()} pixels differ')
    changed = (after[inner] != original[inner]).any(-1).mean()
    check(changed > 0.5, f'{what}: the selection was repainted', f'{changed:.2f} changed')
    others_unchanged(img, before, what)
    img.delete()


def test_inpaint():
    inpaint_case('rectangle', TINY, 4, 8, -1, 'tiny-sd')
    inpaint_case('ellipse', None, 3, 10, 12, 'tiny-sd-inpaint')


# ---- failures -------------------------------------------------------------------------------

def failure_case(what, proc, img, drawables, expect, **args):
    before = snapshot(img)
    n = len(img.get_layers())
    status, values, error = call(proc, img, drawables, **args)
    check(status == Gimp.PDBStatusType.EXECUTION_ERROR, f'{what}: the call fails',
          f'status {status}')
    check(error is not None and expect in error, f'{what}: with the message "{expect}…"',
          f'message {error!r}')
    check(len(img.get_layers()) == n and snapshot(img) == before,
          f'{what}: the layers are unchanged')


def wait_plug_ins_gone(seconds=20):
    """True once no sdcl-gimp process is left (at most `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = False
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    argv0 = f.read().split(b'\0')[0]
            except OSError:
                continue
            alive |= os.path.basename(argv0) == b'sdcl-gimp'
        if not alive:
            return True
        time.sleep(0.02)
    return False


def test_failure():
    img, bg, top = make_image()
    failure_case('missing model', 'plug-in-sdcl-generate', img, [bg], 'does not exist',
                 prompt='x', steps=1, model='/nonexistent/model.safetensors')
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 10, 10, 20, 20)
    failure_case('missing model, inpaint', 'plug-in-sdcl-inpaint', img, [bg], 'does not exist',
                 prompt='x', steps=1, model='/nonexistent/model.safetensors')
    Gimp.Selection.none(img)
    failure_case('empty selection', 'plug-in-sdcl-inpaint', img, [bg], 'Nothing is selected',
                 prompt='x', steps=1, model=TINY)
    failure_case('a pickle instead of a model', 'plug-in-sdcl-img2img', img, [bg], '.ckpt',
                 prompt='x', steps=1, model=os.path.join(MODELS, 'not-a-model.ckpt'))
    img.select_rectangle(Gimp.ChannelOps.REPLACE, 10, 10, 20, 20)
    Gimp.edit_copy([bg])
    floating = Gimp.edit_paste(bg, False)
    check(img.get_floating_sel() is not None, 'a floating selection is made for the next check')
    failure_case('a floating selection', 'plug-in-sdcl-generate', img, [bg], 'floating selection',
                 prompt='x', steps=1, model=TINY)
    Gimp.floating_sel_anchor(floating[0])
    Gimp.Selection.none(img)

    # What GIMP does when the user cancels from the progress bar: it ends the
    # plug-in's process. run-gimp-test kills it once this flag is there. The
    # plug-in processes of the calls above may still be exiting after GIMP
    # has their answer; the flag waits for them, or the kill could find one
    # of those instead of the run to cancel.
    check(wait_plug_ins_gone(), 'cancel: the plug-ins of the calls before have ended')
    before = snapshot(img)
    open(os.path.join(OUT, 'kill-plug-in'), 'w').close()
    status, values, error = call('plug-in-sdcl-generate', img, [bg], prompt='x', steps=150,
                                 width=512, height=512, model=TINY)
    check(os.path.exists(os.path.join(OUT, 'killed')), 'cancel: the plug-in was ended mid-run')
    check(status != SUCCESS, 'cancel: the call fails', f'status {status}')
    check(snapshot(img) == before, 'cancel: the layers are unchanged')
    if os.environ.get('SDCL_DEVICE'):
        results.append((True, 'no OpenCL device # SKIP SDCL_DEVICE is set', ''))
    else:
        failure_case('no OpenCL device', 'plug-in-sdcl-generate', img, [bg], 'OpenCL device',
                     prompt='x', steps=1, model=TINY, device='no-such-device')
    img.delete()


# ---- main -----------------------------------------------------------------------------------

def main():
    try:
        {'generate': test_generate, 'img2img': test_img2img, 'inpaint': test_inpaint,
         'failure': test_failure}[TEST]()
    except Exception:
        results.append((False, f'{TEST}: the checks ran to the end', traceback.format_exc()))
    with open(os.path.join(OUT, 'result.tap'), 'w') as f:
        for i, (ok, what, detail) in enumerate(results, 1):
            f.write(f"{'ok' if ok else 'not ok'} {i} - {what}\n")
            for line in detail.splitlines():
                f.write(f'#   {line}\n')
        f.write(f'1..{len(results)}\n')


main()
