#!/usr/bin/env python3
"""Procedural captioned images for the sdcl-shapes model.

Every example is a pure function of (seed, index): `example(i, seed)` gives
the same RGB image and caption on any machine, in any order, so the data
set needs no storage and no download.

A picture holds one or two filled shapes (circle, square, triangle, star,
ring, diamond, heart, cross, hexagon) in one of 12 named colours, small or
big, at one of nine named positions (left, right, top, bottom, centre and
the four corners), on a plain background in a named colour or a vertical or
horizontal two-colour gradient. Edges are antialiased: each shape is drawn
as a 4x supersampled coverage mask and box-filtered down.

Captions come from templates with synonyms; optional parts (size, position,
background, article, lead-in such as "a picture of") are sometimes left out,
so the model also learns what a short prompt means.

    python models/train/data.py --sheet sheet.png        # 64 examples, captions
"""
import argparse
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = 64           # image side in pixels
SS = 4              # supersampling factor for the coverage masks

COLOURS = {         # name -> sRGB; chosen to be far apart
    "red": (220, 30, 35),
    "green": (35, 160, 60),
    "blue": (35, 75, 225),
    "yellow": (250, 215, 35),
    "orange": (250, 135, 25),
    "purple": (130, 45, 175),
    "pink": (250, 135, 195),
    "white": (245, 245, 245),
    "black": (18, 18, 18),
    "cyan": (40, 215, 225),
    "brown": (125, 75, 35),
    "gray": (128, 128, 128),
}
COLOUR_NAMES = list(COLOURS)
COLOUR_SYNONYMS = {"gray": ["gray", "grey"]}

SHAPES = ["circle", "square", "triangle", "star", "ring", "diamond", "heart", "cross", "hexagon"]
SHAPE_SYNONYMS = {"circle": ["circle", "circle", "disc", "dot"],
                  "ring": ["ring", "ring", "donut"],
                  "cross": ["cross", "cross", "plus sign"],
                  "diamond": ["diamond", "diamond", "rhombus"]}

# position name -> centre (x, y) as fractions of the side
POSITIONS = {
    "centre": (0.5, 0.5), "left": (0.26, 0.5), "right": (0.74, 0.5),
    "top": (0.5, 0.26), "bottom": (0.5, 0.74),
    "top left": (0.26, 0.26), "top right": (0.74, 0.26),
    "bottom left": (0.26, 0.74), "bottom right": (0.74, 0.74),
}
POSITION_PHRASES = {
    "centre": ["in the centre", "in the center", "in the middle"],
    "left": ["on the left", "on the left", "at the left", "on the left side"],
    "right": ["on the right", "on the right", "at the right", "on the right side"],
    "top": ["at the top", "at the top", "near the top"],
    "bottom": ["at the bottom", "at the bottom", "near the bottom"],
    "top left": ["in the top left corner", "in the top left", "at the top left", "in the upper left corner"],
    "top right": ["in the top right corner", "in the top right", "at the top right", "in the upper right corner"],
    "bottom left": ["in the bottom left corner", "in the bottom left", "at the bottom left",
                    "in the lower left corner"],
    "bottom right": ["in the bottom right corner", "in the bottom right", "at the bottom right",
                     "in the lower right corner"],
}
# pairs of positions for two objects that do not collide
PAIRS = [("left", "right"), ("top", "bottom"), ("top left", "bottom right"),
         ("top right", "bottom left"), ("top left", "top right"), ("bottom left", "bottom right"),
         ("top left", "bottom left"), ("top right", "bottom right"), ("left", "top right"),
         ("left", "bottom right"), ("right", "top left"), ("right", "bottom left"),
         ("top", "bottom left"), ("top", "bottom right"), ("bottom", "top left"),
         ("bottom", "top right")]

SIZES = {"small": 0.12, "big": 0.22}     # radius as a fraction of the side
SIZE_WORDS = {"small": ["small", "small", "little", "tiny"], "big": ["big", "big", "large"]}

LEADS = ["", "", "", "", "a picture of ", "an image of ", "a drawing of ", "a simple drawing of ",
         "an illustration of "]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


# ---- drawing ------------------------------------------------------------------------

def _polygon_points(shape, cx, cy, r, rot):
    """Vertices for the polygonal shapes, in supersampled pixels."""
    def pts(angles_radii):
        return [(cx + rr * math.sin(a + rot), cy - rr * math.cos(a + rot)) for a, rr in angles_radii]
    if shape == "square":
        s = r * 0.9
        return pts([(math.pi / 4 + k * math.pi / 2, s * math.sqrt(2)) for k in range(4)])
    if shape == "triangle":
        return pts([(k * 2 * math.pi / 3, r * 1.1) for k in range(3)])
    if shape == "diamond":
        return [(cx + dx * math.cos(rot) - dy * math.sin(rot), cy + dx * math.sin(rot) + dy * math.cos(rot))
                for dx, dy in ((0, -r * 1.05), (r * 0.7, 0), (0, r * 1.05), (-r * 0.7, 0))]
    if shape == "star":
        return pts([(k * math.pi / 5, r * (1.1 if k % 2 == 0 else 0.45)) for k in range(10)])
    if shape == "hexagon":
        return pts([(math.pi / 6 + k * math.pi / 3, r) for k in range(6)])
    if shape == "cross":
        a, b = r * 0.95, r * 0.32
        corners = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b),
                   (-a, -b), (-b, -b)]
        c, s = math.cos(rot), math.sin(rot)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in corners]
    if shape == "heart":
        out = []
        for k in range(64):
            t = 2 * math.pi * k / 64
            x = 16 * math.sin(t) ** 3
            y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
            x, y = x * r / 16.5, (y + 2.5) * r / 16.5
            out.append((cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot)))
        return out
    raise ValueError(shape)


def coverage(shape, cx, cy, r, rot, size=SIZE):
    """Antialiased coverage in [0, 1] of one shape, (size, size) float32.
    cx, cy, r in pixels of the final image."""
    big = size * SS
    m = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(m)
    X, Y, R = cx * SS, cy * SS, r * SS
    if shape == "circle":
        d.ellipse([X - R, Y - R, X + R, Y + R], fill=255)
    elif shape == "ring":
        d.ellipse([X - R, Y - R, X + R, Y + R], fill=255)
        ri = R * 0.58
        d.ellipse([X - ri, Y - ri, X + ri, Y + ri], fill=0)
    else:
        d.polygon(_polygon_points(shape, X, Y, R, rot), fill=255)
    m = m.resize((size, size), Image.BOX)
    return np.asarray(m, dtype=np.float32) / 255.0


def background(kind, c1, c2, size=SIZE):
    a = np.array(COLOURS[c1], np.float32)
    if kind == "plain":
        return np.broadcast_to(a, (size, size, 3)).copy()
    b = np.array(COLOURS[c2], np.float32)
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    if kind == "vertical":          # c1 at the top, c2 at the bottom
        w = t[:, None, None] * np.ones((1, size, 1), np.float32)
    else:                           # horizontal: c1 on the left
        w = t[None, :, None] * np.ones((size, 1, 1), np.float32)
    return a * (1 - w) + b * w


# ---- scene and caption --------------------------------------------------------------

def _distinct_from(rng, avoid):
    while True:
        c = _pick(rng, COLOUR_NAMES)
        if c not in avoid:
            return c


# How often a picture holds one object, and how often its caption names
# the position (one object, two objects). "positions" is for training on
# where things are: mostly single objects, each caption with its place.
# The mixes draw the same random numbers, so a seed's backgrounds, shapes
# and colours stay where they were.
MIXES = {
    "default": dict(single=0.55, pos_single=0.85, pos_pair=0.95),
    "positions": dict(single=0.8, pos_single=1.0, pos_pair=0.95),
    # mostly one object as in "positions", but 30 % of them unplaced in the
    # caption: a model trained only on "positions" draws an unplaced object
    # in the upper half
    "balanced": dict(single=0.8, pos_single=0.7, pos_pair=0.95),
}


def scene(rng, mix="default"):
    """A random scene description (a dict), drawn from rng."""
    u = rng.random()
    if u < 0.55:
        bg = ("plain", _pick(rng, COLOUR_NAMES), None)
    else:
        c1 = _pick(rng, COLOUR_NAMES)
        bg = ("vertical" if rng.random() < 0.7 else "horizontal", c1, _distinct_from(rng, {c1}))
    avoid = {bg[1], bg[2]}
    n = 1 if rng.random() < MIXES[mix]["single"] else 2
    if n == 1:
        poss = [_pick(rng, list(POSITIONS))]
    else:
        poss = list(_pick(rng, PAIRS))
        if rng.random() < 0.5:
            poss.reverse()
    objs = []
    for p in poss:
        size = "small" if rng.random() < 0.5 else "big"
        if n == 2 and size == "big" and objs and objs[0]["size"] == "big" and rng.random() < 0.5:
            size = "small"
        objs.append(dict(shape=_pick(rng, SHAPES), colour=_distinct_from(rng, avoid), size=size, pos=p))
    if n == 2 and objs[0]["shape"] == objs[1]["shape"] and objs[0]["colour"] == objs[1]["colour"]:
        objs[1]["colour"] = _distinct_from(rng, avoid | {objs[0]["colour"]})
    for o in objs:
        o["jx"], o["jy"] = rng.uniform(-0.04, 0.04, 2)
        o["jr"] = rng.uniform(0.88, 1.12)
        o["rot"] = rng.uniform(-0.2, 0.2)
    return dict(bg=bg, objs=objs)


def render(sc, size=SIZE):
    img = background(*sc["bg"], size=size)
    for o in sc["objs"]:
        fx, fy = POSITIONS[o["pos"]]
        r = SIZES[o["size"]] * o["jr"] * size
        a = coverage(o["shape"], (fx + o["jx"]) * size, (fy + o["jy"]) * size, r, o["rot"], size)[..., None]
        img = img * (1 - a) + np.array(COLOURS[o["colour"]], np.float32) * a
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _article(word):
    return "an" if word[0] in "aeiou" else "a"


def _object_phrase(rng, o, with_size, with_article):
    words = []
    if with_size:
        words.append(_pick(rng, SIZE_WORDS[o["size"]]))
    words.append(_pick(rng, COLOUR_SYNONYMS.get(o["colour"], [o["colour"]])))
    words.append(_pick(rng, SHAPE_SYNONYMS.get(o["shape"], [o["shape"]])))
    s = " ".join(words)
    return (_article(s) + " " + s) if with_article else s


def _background_phrase(rng, bg):
    kind, c1, c2 = bg
    n1 = _pick(rng, COLOUR_SYNONYMS.get(c1, [c1]))
    if kind == "plain":
        return _pick(rng, [f"on a {n1} background", f"on a {n1} background", f"against a {n1} background",
                           f"{n1} background", f"on {n1}"])
    n2 = _pick(rng, COLOUR_SYNONYMS.get(c2, [c2]))
    if kind == "vertical":
        return _pick(rng, [f"on a gradient from {n1} to {n2}", f"on a gradient from {n1} to {n2}",
                           f"on a vertical gradient from {n1} to {n2}",
                           f"on a {n1} to {n2} gradient background"])
    return _pick(rng, [f"on a horizontal gradient from {n1} to {n2}",
                       f"on a gradient from {n1} on the left to {n2} on the right"])


def caption(sc, rng, mix="default"):
    objs = sc["objs"]
    lead = _pick(rng, LEADS)
    article = bool(lead) or rng.random() < 0.85
    m = MIXES[mix]
    with_pos = rng.random() < (m["pos_single"] if len(objs) == 1 else m["pos_pair"])
    parts = []
    for o in objs:
        p = _object_phrase(rng, o, rng.random() < 0.8, article)
        if with_pos:
            p += " " + _pick(rng, POSITION_PHRASES[o["pos"]])
        parts.append(p)
    text = lead + (" and ".join(parts) if len(parts) == 2 and rng.random() < 0.8 else ", ".join(parts))
    if rng.random() < 0.85:
        text += _pick(rng, [" ", " ", ", "]) + _background_phrase(rng, sc["bg"])
    return text


def example(index, seed=0, size=SIZE, mix="default"):
    """(uint8 image (size, size, 3), caption) for one index of one seed."""
    rng = np.random.default_rng([seed, index])
    sc = scene(rng, mix)
    return render(sc, size), caption(sc, rng, mix)


def batch(indices, seed=0, size=SIZE, mix="default"):
    """Images as float32 (N, 3, size, size) in [-1, 1] and their captions."""
    imgs, caps = [], []
    for i in indices:
        im, c = example(int(i), seed, size, mix)
        imgs.append(im)
        caps.append(c)
    x = np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
    return x, caps


# ---- inpainting ------------------------------------------------------------------------

def _object_box(o, size):
    """The pixel box (x0, y0, x1, y1) an object covers."""
    fx, fy = POSITIONS[o["pos"]]
    r = SIZES[o["size"]] * o["jr"] * size
    a = coverage(o["shape"], (fx + o["jx"]) * size, (fy + o["jy"]) * size, r, o["rot"], size)
    ys, xs = np.nonzero(a > 0.05)
    if len(xs) == 0:
        return 0, 0, size, size
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def inpaint_example(index, seed=0, size=SIZE, mix="default"):
    """(uint8 image, caption, float32 mask (size, size): 1 repaints) for the
    9-channel inpainting model. The picture is example()'s; the mask, from
    its own generator:
      60 %  one object's box grown by 2-10 px (a rectangle, or the ellipse
            through its corners in 3 of 10), the caption then the whole
            one (half of them) or just that object ("a red square", with
            its size, place and background sometimes), as a user names
            what a selection should become;
      25 %  a random rectangle, 12 to 48 px a side, with the whole caption;
      15 %  everything (plain text to image).
    """
    rng = np.random.default_rng([seed, index])
    sc = scene(rng, mix)
    img, cap = render(sc, size), caption(sc, rng, mix)
    mr = np.random.default_rng([seed, index, 7])
    mask = np.zeros((size, size), np.float32)
    u = mr.random()
    if u < 0.6:
        o = sc["objs"][int(mr.integers(len(sc["objs"])))]
        x0, y0, x1, y1 = _object_box(o, size)
        g = mr.integers(2, 11, 4)
        x0, y0 = max(0, x0 - g[0]), max(0, y0 - g[1])
        x1, y1 = min(size, x1 + g[2]), min(size, y1 + g[3])
        if mr.random() < 0.3:
            yy, xx = np.mgrid[0:size, 0:size] + 0.5
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * 1.41, (y1 - y0) / 2 * 1.41
            mask[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = 1
        else:
            mask[y0:y1, x0:x1] = 1
        if mr.random() < 0.5:
            cap = _object_phrase(mr, o, mr.random() < 0.5, True)
            if mr.random() < 0.3:
                cap += " " + _pick(mr, POSITION_PHRASES[o["pos"]])
            if mr.random() < 0.3:
                cap += " " + _background_phrase(mr, sc["bg"])
    elif u < 0.85:
        w, h = mr.integers(12, 49, 2)
        x0, y0 = mr.integers(0, size - w + 1), mr.integers(0, size - h + 1)
        mask[y0:y0 + h, x0:x0 + w] = 1
    else:
        mask[:] = 1
    return img, cap, mask


def inpaint_batch(indices, seed=0, size=SIZE, mix="default"):
    """batch() with inpaint_example's masks: images (N, 3, size, size) in
    [-1, 1], captions, masks (N, 1, size, size)."""
    imgs, caps, masks = [], [], []
    for i in indices:
        im, c, m = inpaint_example(int(i), seed, size, mix)
        imgs.append(im)
        caps.append(c)
        masks.append(m)
    x = np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
    return x, caps, np.stack(masks)[:, None]


# ---- contact sheet ------------------------------------------------------------------

def contact_sheet(images, captions, path, cols=8, scale=2, cell_w=200, text_h=64):
    n = len(images)
    rows = (n + cols - 1) // cols
    side = images[0].shape[0] * scale
    sheet = Image.new("RGB", (cols * cell_w, rows * (side + text_h)), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:
        font = ImageFont.load_default()
    for k, (im, cap) in enumerate(zip(images, captions)):
        x0, y0 = (k % cols) * cell_w, (k // cols) * (side + text_h)
        sheet.paste(Image.fromarray(im).resize((side, side), Image.NEAREST), (x0 + (cell_w - side) // 2, y0))
        lines, line = [], ""
        for w in cap.split():
            if len(line) + len(w) + 1 > 34:
                lines.append(line)
                line = w
            else:
                line = (line + " " + w).strip()
        lines.append(line)
        for j, ln in enumerate(lines[:5]):
            d.text((x0 + 3, y0 + side + 1 + 12 * j), ln, fill=(0, 0, 0), font=font)
    sheet.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sheet", default="models/train/data-sheet.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--size", type=int, default=SIZE)
    a = ap.parse_args()
    ex = [example(i, a.seed, a.size) for i in range(a.n)]
    contact_sheet([e[0] for e in ex], [e[1] for e in ex], a.sheet)
    print(f"wrote {a.sheet}")


if __name__ == "__main__":
    main()
