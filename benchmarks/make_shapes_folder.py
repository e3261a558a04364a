"""Write a small seeded image-folder dataset (``<out>/<class>/<n>.png``) for the classifier jobs.

Four classes of 24x24 RGB images: a disc, a square, a triangle and a cross, each at a random
position, size and colour on a noisy background with a random distractor line, so that a small
MLP does not separate them perfectly and a membership signal remains (docs/results.md uses
it for the influence-pruning curve on an image folder)::

    python benchmarks/make_shapes_folder.py /tmp/shapes4 --per-class 150 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("cross", "disc", "square", "triangle")
SIDE = 24


def draw(kind: str, rng: np.random.Generator) -> Image.Image:
    """One image of ``kind``."""
    noise = rng.integers(0, 110, size=(SIDE, SIDE, 3), dtype=np.uint8)
    im = Image.fromarray(noise, "RGB")
    d = ImageDraw.Draw(im)
    colour = tuple(int(c) for c in rng.integers(90, 256, size=3))
    r = int(rng.integers(4, 9))
    cx, cy = (int(v) for v in rng.integers(r + 1, SIDE - r - 1, size=2))
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "disc":
        d.ellipse(box, fill=colour)
    elif kind == "square":
        d.rectangle(box, fill=colour)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        w = max(1, r // 3)
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    line = [int(v) for v in rng.integers(0, SIDE, size=4)]
    d.line(line, fill=tuple(int(c) for c in rng.integers(60, 256, size=3)), width=2)
    return im


def build(out: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(kind, rng).save(folder / f"{i:04d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (one sub-folder per class)")
    parser.add_argument("--per-class", type=int, default=150, help="images per class")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawing")
    args = parser.parse_args()
    build(args.out, args.per_class, args.seed)
    print(f"wrote {args.per_class * len(CLASSES)} images to {args.out}")


if __name__ == "__main__":
    main()
