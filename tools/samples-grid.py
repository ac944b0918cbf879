#!/usr/bin/env python3
"""Stacks the pictures the default-model suite drew into one labelled grid,
docs/samples.png: one row per prompt, one column per seed, as the engine
made them (not diffusers).

    SDCL_TEST_KEEP=build/samples tools/sdcl-root -- ./build/tests/test-default-model
    ~/.cache/sdcl-venv/bin/python tools/samples-grid.py build/samples docs/samples.png

Each PNG in the folder is a strip of 64x64 pictures named after its prompt
(tests/test-default-model.c, keep()). Needs Pillow.
"""
import os
import sys

from PIL import Image, ImageDraw

SCALE = 2        # 64 px pictures shown at 128 px
LABEL_W = 420


def main():
    src, out = sys.argv[1], sys.argv[2]
    names = sorted(n for n in os.listdir(src) if n.endswith(".png"))
    if not names:
        sys.exit(f"samples-grid: no PNG files in {src}")
    # colour rows first, then positions, then inpainting, in the suite's order
    order = {"circle": 0, "square": 1, "inpaint": 2}
    names.sort(key=lambda n: (next((v for k, v in order.items() if k in n), 3), n))
    strips = [Image.open(os.path.join(src, n)).convert("RGB") for n in names]
    width = max(s.width for s in strips) * SCALE + LABEL_W
    row_h = max(s.height for s in strips) * SCALE + 4
    grid = Image.new("RGB", (width, row_h * len(strips)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for i, (name, strip) in enumerate(zip(names, strips)):
        y = i * row_h
        label = os.path.splitext(name)[0].replace("-", " ")
        draw.text((8, y + row_h // 2 - 6), label, fill=(0, 0, 0))
        big = strip.resize((strip.width * SCALE, strip.height * SCALE), Image.NEAREST)
        grid.paste(big, (LABEL_W, y + 2))
    grid.save(out, optimize=True)
    print(f"{out}: {len(strips)} rows")


if __name__ == "__main__":
    main()
