"""Source/target domains of the meta-comparer: labelled images of one surface each.

A domain is named by a dataset folder (MVTec layout, :func:`inspector.data.datasets.load_dataset`)
or ``synth:<texture>`` (``brick``, ``grass``, ``gravel``: :mod:`inspector.data.synth`, generated
in memory with their procedural defects).

Which images a *training* domain gives (issue 21: image-level labels only):

* normal: ``train/good`` and ``test/good`` together — they are references and normal queries;
* abnormal: every ``test/<defect type>`` except ambiguous ``likely_*`` folders (ELPV's
  probability-2/3 cells).

Each is a seeded draw of at most ``domain_normals`` / ``domain_defects`` images. A held-out
(*target*) domain is never loaded through this module during training; evaluation takes its
references from ``train/good`` and its queries from ``test/*`` (benchmarks/bench_meta_comparer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.contract import DEFAULT_DOWNSCALE
from inspector.data.datasets import is_ambiguous, load_batch, load_dataset
from inspector.data.synth import BUILTIN_TEXTURES, DEFECT_KINDS, good_image, load_sources, make_defect
from inspector.errors import DataError

SYNTH_PREFIX = "synth:"


@dataclass(frozen=True)
class Domain:
    """uint8 (n, H, W, 3) normal and (m, H, W, 3) defective images of one surface."""

    name: str
    normals: np.ndarray
    defects: np.ndarray


def _draw(items: list, count: int, rng: np.random.Generator) -> list:
    if len(items) <= count:
        return items
    return [items[i] for i in sorted(rng.choice(len(items), count, replace=False))]


def _synthetic(texture: str, size: tuple[int, int], normals: int, defects: int, seed: int) -> Domain:
    if texture not in BUILTIN_TEXTURES:
        raise DataError(f"data {SYNTH_PREFIX}{texture}: unknown texture; choose from "
                        f"{', '.join(SYNTH_PREFIX + t for t in BUILTIN_TEXTURES)}", field="data")
    if size[0] != size[1]:
        raise DataError(f"data {SYNTH_PREFIX}{texture}: synthetic textures are square; "
                        f"model.image_size is {size[0]}x{size[1]}", field="data")
    sources = load_sources(texture)
    rng = np.random.default_rng([seed, 21])
    good = np.stack([good_image(sources, size[0], rng) for _ in range(normals + defects)])
    bad = np.stack([make_defect(good[normals + i], DEFECT_KINDS[i % len(DEFECT_KINDS)], rng)[0]
                    for i in range(defects)])
    return Domain(SYNTH_PREFIX + texture, good[:normals], bad)


def load_domain(spec: str, size: tuple[int, int], normals: int, defects: int, *, seed: int = 0,
                resize: str = "square", downscale: str = DEFAULT_DOWNSCALE) -> Domain:
    """The labelled images of ``spec`` (a dataset folder or ``synth:<texture>``) at ``size`` (H, W)."""
    if spec.startswith(SYNTH_PREFIX):
        return _synthetic(spec[len(SYNTH_PREFIX):], size, normals, defects, seed)
    dataset = load_dataset(spec)
    good = [s for s in dataset.train + dataset.test if s.label == 0]
    bad = [s for s in dataset.test if s.label == 1 and not is_ambiguous(s.defect_type)]
    if len(good) < 2 or not bad:
        raise DataError(f"{spec}: a training domain needs ≥ 2 good images and ≥ 1 defective one "
                        f"(test/<defect type>); found {len(good)} good, {len(bad)} defective")
    rng = np.random.default_rng([seed, 21])
    h, w = size
    normal_imgs, _, _ = load_batch(_draw(good, normals, rng), h, w, resize, downscale=downscale)
    defect_imgs, _, _ = load_batch(_draw(bad, defects, rng), h, w, resize, downscale=downscale)
    if len(normal_imgs) < 2 or not len(defect_imgs):
        raise DataError(f"{spec}: too few readable images to train on")
    return Domain(Path(spec).as_posix().rstrip("/"), normal_imgs, defect_imgs)
