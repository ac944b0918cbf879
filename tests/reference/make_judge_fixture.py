#!/usr/bin/env python3
"""Pictures with a known answer for the default-model suite's judge.

The suite (tests/test-default-model.c) reads what the shipped model drew:
which colours are background and which one was drawn. This writes training
pictures from models/train/data.py, where the answer is known, so that
`/default-model/judge` can check the reading itself on them: each picture
holds one object in one of the suite's eight colours, on the data's own
backgrounds (plain colours and two-colour gradients), and the reading must
name that object's colour.

    python3 tests/reference/make_judge_fixture.py [OUT_DIR]

needs numpy and Pillow only (no PyTorch). Writes to OUT_DIR (default
tests/fixtures/default-model):

  judge.png   the pictures, 64x64 each, 16 to a row, in order
  judge.txt   one line per picture: its object's colour, then its caption

The first 192 pictures are the first of data seed 4242 (mix "default")
with one object in one of the suite's colours. The last 64 are pictures the
data never draws but a model may: the same kind of scene (seed 4243) on a
gradient that ends in the object's own colour, the object at the other
end, where it stands out (a prompt such as "a purple circle" says nothing
of the background). The set is fixed.
"""
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "train"))
import data  # noqa: E402

SEED = 4242
COUNT = 192
SEED_OWN_END = 4243
COUNT_OWN_END = 64
PER_ROW = 16
# the colours of the suite's colour case (test-default-model.c colour_names)
COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "pink", "black"]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "default-model")
    pics, lines = [], []
    index = 0
    while len(pics) < COUNT:
        rng = np.random.default_rng([SEED, index])
        sc = data.scene(rng)
        index += 1
        if len(sc["objs"]) != 1 or sc["objs"][0]["colour"] not in COLOURS:
            continue
        pics.append(data.render(sc))
        lines.append(f"{sc['objs'][0]['colour']}\t{data.caption(sc, rng)}")
    index = 0
    while len(pics) < COUNT + COUNT_OWN_END:
        rng = np.random.default_rng([SEED_OWN_END, index])
        sc = data.scene(rng)
        index += 1
        kind, c1, c2 = sc["bg"]
        if len(sc["objs"]) != 1 or kind == "plain":
            continue
        o = sc["objs"][0]
        if o["colour"] not in COLOURS:
            continue
        fx, fy = data.POSITIONS[o["pos"]]
        f = fy if kind == "vertical" else fx
        if f == 0.5:
            continue
        # the object near the c1 end (top or left): its colour at the c2 end
        other = c1 if f < 0.5 else c2
        if other == o["colour"]:
            continue
        sc["bg"] = (kind, other, o["colour"]) if f < 0.5 else (kind, o["colour"], other)
        pics.append(data.render(sc))
        lines.append(f"{o['colour']}\t{data.caption(sc, rng)}")
    s = data.SIZE
    n = len(pics)
    grid = np.zeros((n // PER_ROW * s, PER_ROW * s, 3), np.uint8)
    for i, p in enumerate(pics):
        y, x = divmod(i, PER_ROW)
        grid[y * s:(y + 1) * s, x * s:(x + 1) * s] = p
    os.makedirs(out, exist_ok=True)
    Image.fromarray(grid).save(os.path.join(out, "judge.png"), optimize=True)
    with open(os.path.join(out, "judge.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {n} pictures to {out}")


if __name__ == "__main__":
    main()
