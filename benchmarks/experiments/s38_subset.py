"""A copy of a dataset with fewer good training images, the test split left whole (symlinks, nothing copied).

    python benchmarks/experiments/s38_subset.py ../shared/data/elpv/mono runs/small/elpv_mono_n40 --good 40

Why: a plant often starts with a few dozen good parts. This keeps the test split (and its masks) identical to
the full set's, so an image AUROC measured on the subset differs from the full set's only by what the models
learned from fewer images. The images kept are the first ``--good`` of the sorted names shuffled with ``--seed``.
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path


def make_subset(src: Path, out: Path, good: int, seed: int = 0) -> list[str]:
    """Link ``good`` of ``src/train/good`` and the whole ``test`` / ``ground_truth`` under ``out``; the names kept.

    Raises FileExistsError when ``out/train/good`` already holds files (a subset is never mixed with another).
    """
    names = sorted(os.listdir(src / "train" / "good"))
    random.Random(seed).shuffle(names)
    kept = sorted(names[:good])
    train = out / "train" / "good"
    train.mkdir(parents=True, exist_ok=True)
    if any(train.iterdir()):
        raise FileExistsError(f"{train} is not empty")
    for name in kept:
        (train / name).symlink_to((src / "train" / "good" / name).resolve())
    for part in ("test", "ground_truth"):
        if (src / part).is_dir():
            (out / part).symlink_to((src / part).resolve())
    return kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--good", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    kept = make_subset(args.src, args.out, args.good, args.seed)
    print(f"{args.out}: {len(kept)} good training images of {args.src}")


if __name__ == "__main__":
    main()
