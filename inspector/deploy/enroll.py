"""Enrolment: a trained meta-comparer + K normal images of a new surface → one deployable graph.

The references' patch embeddings are computed once and frozen into the exported graph as
constants (the model's ``bank_*`` buffers): uint8 images in, (score, anomaly_map) out, FP32 and
strongly typed FP16 (:func:`inspector.deploy.export.export_model`), so calibrate, build and the
daemon treat it like any other model. The model card (sidecar ``model.description``) records K,
each reference file's sha256 and the enrolment time.
"""

from __future__ import annotations

import glob
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from inspector.data.images import is_image_file, not_an_image, read_image, resize_image
from inspector.config import not_a_file
from inspector.errors import ConfigError, DataError, ModelError
from inspector.textline import one_line
from inspector.models.meta_comparer.model import MAX_REFERENCES
from inspector.artifacts.model_card import sha256_file

log = logging.getLogger(__name__)


def _glob_images(pattern: str) -> list[str]:
    """The image files a glob matches (:func:`inspector.data.images.is_image_file`, as a folder listing), the
    others told in one warning with their count."""
    matches = sorted(glob.glob(pattern))
    images = [m for m in matches if is_image_file(Path(m))]
    if len(images) < len(matches):
        left = [m for m in matches if m not in images]
        log.warning("references: %d file(s) matching '%s' are not images and are left out, e.g. %s",
                    len(left), one_line(pattern), one_line(left[0]))
    return images


def reference_files(patterns: Sequence[str]) -> list[Path]:
    """Files named by ``patterns`` (paths or quoted globs), sorted, duplicates removed; 1…50 of them."""
    found: list[Path] = []
    for pattern in patterns:
        matches = _glob_images(pattern) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise ConfigError(f"references: no file matches '{pattern}'", field="references")
        for match in matches:
            path = Path(match)
            if (why := not_a_file(path, "reference image")) is not None:  # a folder, a link loop: no "no such file"
                raise ConfigError(f"references: {why}", field="references")
            if not_an_image(path):  # the rule of a folder listing (images.is_image_file), for a named file too
                raise ConfigError(f"references: {not_an_image(path)}", field="references")
            refuse_defect_reference(path)
            if path not in found:
                found.append(path)
    if not found:
        raise ConfigError("references: no reference images given (1…50 normal images of the new surface)",
                          field="references")
    if len(found) > MAX_REFERENCES:
        raise ConfigError(f"references: {len(found)} images; the meta-comparer takes 1…{MAX_REFERENCES} "
                          f"(choose the {MAX_REFERENCES} most typical)", field="references")
    return found


def refuse_defect_reference(path: Path) -> None:
    """Raise DataError when the reference ``path`` lies in a dataset's defect or mask folder
    (:func:`inspector.data.datasets.not_good_images_problem`, the rule ``train``, ``calibrate`` and ``quantize``
    apply to good images): enrolled, the defects became the surface's normal look, so the same defects on the line
    scored low, with no word."""
    from inspector.data.datasets import not_good_images_problem

    if why := not_good_images_problem(path.parent, "enrol good images of the surface (e.g. {dataset}/train/good)"):
        raise DataError(f"references: {path} is in {why}")


def load_references(paths: Sequence[Path], size: tuple[int, int], resize: str, downscale: str,
                    bit_depth: int | None) -> np.ndarray:
    """uint8 (K, H, W, 3) exactly as the daemon will see frames (same resize, downscale, bit depth).

    An unreadable file raises :class:`DataError` naming it (no reference is silently skipped).
    """
    h, w = size
    out = np.empty((len(paths), h, w, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        resize_image(read_image(path, bit_depth), h, w, resize, out=out[i], downscale=downscale)
    return out


def check_comparer(payload: dict) -> None:
    """A checkpoint payload (:func:`inspector.artifacts.checkpoint.read_checkpoint`) must be a meta-comparer's."""
    name = ((payload.get("config") or {}).get("model") or {}).get("name")
    if name != "meta_comparer":
        raise ModelError(f"{payload.get('path')}: a '{name}' checkpoint; enroll needs a meta_comparer "
                         f"(inspector train --model meta_comparer --data D1 --data D2 …)")


def enroll(model, config, payload: dict, patterns: Sequence[str], out_base: str | Path,
           version: str | None = None) -> dict:
    """Enrol the references into ``model`` (a loaded meta-comparer checkpoint: model, run config, payload)
    and export; returns export_model's result plus ``enrollment``."""
    from inspector.artifacts.checkpoint import BEST
    from inspector.deploy.export import export_model

    check_comparer(payload)
    paths = reference_files(patterns)
    data = config.data
    start = time.perf_counter()
    images = load_references(paths, model.config.image_size, data.resize, data.downscale, data.bit_depth)
    model.enroll(torch.from_numpy(images))
    seconds = time.perf_counter() - start
    digests = [{"file": str(p), "sha256": sha256_file(p)} for p in paths]
    enrollment = {"k": len(paths), "references": digests, "seconds": round(seconds, 3),
                  "bank_patches": model.describe()["bank_patches"]}
    # the checkpoint's teacher identity knows the weights' source; the rebuilt model only its state dict
    identity = {**model.describe(), "teachers": (payload.get("model") or {}).get("teachers", []),
                "enrollment": enrollment}
    ckpt = Path(payload["path"])
    ckpt_sha = sha256_file(ckpt if ckpt.is_file() else ckpt / BEST)
    training = {"checkpoint": str(ckpt.resolve()), "checkpoint_sha256": ckpt_sha,
                **{k: payload.get(k) for k in ("phase", "epoch", "val_loss")},
                "data": payload.get("data"), "config": payload.get("config")}
    result = export_model(model, out_base, resize=data.resize, bit_depth=data.bit_depth, downscale=data.downscale,
                          version=version or f"{ckpt_sha[:8]}-k{len(paths)}", identity=identity, training=training)
    result["enrollment"] = enrollment
    return result
