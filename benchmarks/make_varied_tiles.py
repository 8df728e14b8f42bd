"""A dataset of tiles of varying size and aspect, cut from a real MVTec-layout dataset with masks.

    python benchmarks/make_varied_tiles.py --src ../shared/data/kolektorsdd --out runs/kolektorsdd-tiles

The shared datasets each have one image shape (KolektorSDD 500×~1260, ELPV 300×300), so they
cannot show what a resize policy does to parts that come in many shapes, as tiles of a material
cut to order do. This cuts one tile from every image, at the camera's pixel scale (no resizing):
width 50–100 % and height 30–100 % of the image (aspects ~0.75 to ~5), at a random place; a
defective image's tile always contains its whole defect mask, so every label stays right. Seeded,
so two runs write the same files; ``bench_quality.py --data-root`` then reads the folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from _common import claim_folder_or_exit


def tile_box(h: int, w: int, rng: np.random.Generator, must: tuple[int, int, int, int] | None = None
             ) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random tile of an (h, w) image containing ``must`` (y0, x0, y1, x1)."""
    th, tw = int(h * rng.uniform(0.3, 1.0)), int(w * rng.uniform(0.5, 1.0))
    y0, x0, y1, x1 = must or (h, w, 0, 0)
    th, tw = max(th, y1 - y0), max(tw, x1 - x0)
    top = int(rng.integers(max(0, y1 - th), min(y0, h - th) + 1))
    left = int(rng.integers(max(0, x1 - tw), min(x0, w - tw) + 1))
    return top, left, th, tw


def cut(src: Path, out: Path, seed: int = 0) -> int:
    """Write the tiled copy of ``src`` to ``out``; returns the number of tiles."""
    rng = np.random.default_rng(seed)
    n = 0
    for image in sorted(p for p in src.glob("*/*/*") if p.parent.parent.name in ("train", "test")):
        img = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
        mask_path = src / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) if mask_path.is_file() else None
        must = None
        if mask is not None and mask.any():
            ys, xs = np.nonzero(mask)
            must = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
        top, left, th, tw = tile_box(img.shape[0], img.shape[1], rng, must)
        rel = image.relative_to(src)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str((out / rel).with_suffix(".png")), img[top:top + th, left:left + tw])
        if mask is not None:
            dst = out / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
            dst.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dst), mask[top:top + th, left:left + tw])
        n += 1
    return n


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    claim_folder_or_exit(args.out)  # tiles written among a folder's own files replaced some of them
    print(f"{cut(args.src, args.out, args.seed)} tiles written to {args.out}")


if __name__ == "__main__":
    main()
