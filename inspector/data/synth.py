"""Synthetic MVTec-layout datasets: real texture photographs plus procedural defects with exact masks.

Sources are scikit-image's real photographs (``brick``, ``grass``, ``gravel``:
grayscale 512×512, replicated to 3 channels and tinted) or any folder of good
images. Good images are random crops with scale jitter, flips and a small
brightness jitter. Each defect kind draws a *candidate* image and the region it
may touch; the ground-truth mask is then, by construction, exactly the set of
pixels that differ from the good image:

* pixels of the region whose largest channel change is below :data:`NOTABLE`
  are put back to their good value (they did not change notably),
* connected pieces smaller than a few pixels are put back too,

so ``mask == (defect != good).any(-1)`` and every masked pixel changed by at
least ``NOTABLE`` grey levels. Every image has its own seed derived from
(seed, split, index): the same seed gives identical bytes, and adding test
images does not change the training images.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from inspector.data.datasets import Dataset, listed_images, load_dataset
from inspector.data.images import read_image
from inspector.errors import DataError
from inspector.outputs import write_whole

log = logging.getLogger(__name__)

BUILTIN_TEXTURES = ("brick", "grass", "gravel")
TINTS = {"brick": (1.0, 0.72, 0.58), "grass": (0.70, 0.95, 0.50), "gravel": (0.95, 0.90, 0.82)}
DEFECT_KINDS = ("scratch", "crack", "hole", "stain", "colour_spot", "fold")
NOTABLE = 12  # grey levels: smaller changes are reverted, so they are neither drawn nor masked
_SPLITS = {"train": 0, "test_good": 1, "test_defect": 2}
# Written first and removed last (after manifest.json): a run stopped part-way (a full disk, Ctrl-C, a kill)
# leaves no manifest, and this marker names the folder synth's, so a rerun with overwrite may replace it
_MARKER = "synth-in-progress.json"
_GENERATOR = "inspector.data.synth"
_WRITTEN = ("train", "test", "ground_truth", "manifest.json", "README.txt")


# ----------------------------------------------------------------------------- sources

def load_sources(texture: str | Path, tint: bool = True) -> list[np.ndarray]:
    """The source photographs as float32 (H, W, 3) in 0..255."""
    name = str(texture)
    if name in BUILTIN_TEXTURES:
        try:
            import skimage.data
        except ImportError:
            raise DataError(f"texture '{name}' needs scikit-image (pip install 'inspector[train]')") from None
        gray = getattr(skimage.data, name)().astype(np.float32)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        if tint:
            rgb *= np.asarray(TINTS[name], dtype=np.float32)
        return [rgb]
    folder = Path(texture).expanduser()
    try:
        is_dir = folder.is_dir()
    except (OSError, ValueError):  # a name longer than the system takes (ENAMETOOLONG), a NUL byte
        is_dir = False
    if not is_dir:
        raise DataError(f"{folder}: texture is neither a folder of images nor one of {', '.join(BUILTIN_TEXTURES)}")
    paths = listed_images(folder)  # other image formats told in one line
    if not paths:
        raise DataError(f"{folder}: no images to use as texture")
    return [read_image(p).astype(np.float32) for p in paths]


def good_image(sources: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop (scale jitter) of a source, flipped and brightness-jittered: uint8 (size, size, 3)."""
    src = sources[int(rng.integers(len(sources)))]
    h, w = src.shape[:2]
    side = min(h, w)
    crop = int(min(side, max(8, round(side * 0.5 * rng.uniform(0.85, 1.15)))))
    top = int(rng.integers(0, h - crop + 1))
    left = int(rng.integers(0, w - crop + 1))
    patch = src[top:top + crop, left:left + crop]
    interp = cv2.INTER_AREA if crop >= size else cv2.INTER_LINEAR
    img = cv2.resize(patch, (size, size), interpolation=interp)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.5:
        img = img[::-1]
    img = img * rng.uniform(0.93, 1.07) + rng.uniform(-6.0, 6.0)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- drawing helpers

_SHIFT = 3  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT


def _draw_polyline_alpha(shape, points: np.ndarray, thickness: int) -> np.ndarray:
    canvas = np.zeros(shape, dtype=np.uint8)
    pts = np.round(points * _ONE).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], False, 255, max(1, int(thickness)), cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) / 255.0


def _fill_polygon_alpha(shape, points: np.ndarray) -> np.ndarray:
    canvas = np.zeros(shape, dtype=np.uint8)
    pts = np.round(points * _ONE).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(canvas, [pts], 255, cv2.LINE_AA, _SHIFT)
    return canvas.astype(np.float32) / 255.0


def _blend(img: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[:, :, None]
    return img * (1.0 - a) + target * a


def _point(rng, size: int, margin: float = 0.15) -> np.ndarray:
    return rng.uniform(margin * size, (1 - margin) * size, 2)


def _blob_alpha(size: int, rng, radius: float, roughness: float, softness: float) -> np.ndarray:
    """An irregular soft blob: radial falloff perturbed by smooth noise, alpha in 0..1."""
    cy, cx = _point(rng, size, 0.12)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    aspect = rng.uniform(0.55, 1.0)
    dy, dx = yy - cy, xx - cx
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / aspect
    dist = np.sqrt(u * u + v * v) / radius
    noise = rng.standard_normal((6, 6)).astype(np.float32)
    noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    field = 1.0 - dist + roughness * noise
    return np.clip(field / softness, 0.0, 1.0)


# ----------------------------------------------------------------------------- defect kinds
# Each returns (candidate float32 image, alpha/support float32 in 0..1); pixels with support 0 stay good.

def _scratch(img: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    p0 = _point(rng, size)
    length = rng.uniform(0.25, 0.6) * size
    theta = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(theta), math.sin(theta)])
    normal = np.array([-direction[1], direction[0]])
    p2 = p0 + direction * length
    p1 = (p0 + p2) / 2 + normal * rng.uniform(-0.25, 0.25) * length
    t = np.linspace(0, 1, 48)[:, None]
    curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
    alpha = _draw_polyline_alpha(img.shape[:2], curve, round(rng.uniform(1.0, 2.5) * size / 256))
    if rng.random() < 0.7:  # bright: the coating is scraped off
        target = np.minimum(img + rng.uniform(70, 120), 255.0)
    else:
        target = img * rng.uniform(0.25, 0.45)
    return _blend(img, target, alpha * rng.uniform(0.8, 1.0)), alpha


def _walk(start: np.ndarray, theta: float, length: float, step: float, rng) -> np.ndarray:
    n = max(2, int(length / step))
    angles = theta + np.cumsum(rng.normal(0, 0.35, n))
    deltas = np.stack([np.cos(angles), np.sin(angles)], axis=1) * step
    return np.vstack([start, start + np.cumsum(deltas, axis=0)])


def _crack(img: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    step = max(1.5, 3.0 * size / 256)
    width = max(1, round(rng.uniform(1.0, 2.5) * size / 256))
    main = _walk(_point(rng, size), rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 0.7) * size, step, rng)
    alpha = _draw_polyline_alpha(img.shape[:2], main, width)
    for _ in range(int(rng.integers(0, 3))):  # branches, thinner
        j = min(len(main) - 2, int(rng.integers(len(main) // 4, 3 * len(main) // 4 + 1)))
        heading = main[j + 1] - main[j]
        turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
        branch = _walk(main[j], math.atan2(heading[1], heading[0]) + turn, rng.uniform(0.1, 0.25) * size, step, rng)
        alpha = np.maximum(alpha, _draw_polyline_alpha(img.shape[:2], branch, max(1, width - 1)))
    return img * (1.0 - 0.85 * alpha[:, :, None]), alpha


def _hole(img: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    center = _point(rng, size, 0.12)
    radius = rng.uniform(0.04, 0.1) * size
    phi = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    wobble = sum(rng.uniform(-0.08, 0.08) * np.cos(k * phi + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
    r = radius * (1 + wobble)
    aspect, angle = rng.uniform(0.7, 1.0), rng.uniform(0, math.pi)
    local = np.stack([r * np.cos(phi), aspect * r * np.sin(phi)], axis=1)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    outline = center + local @ rot.T
    inside = _fill_polygon_alpha(img.shape[:2], outline)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dist = np.sqrt((yy - center[1]) ** 2 + (xx - center[0]) ** 2) / radius
    depth = rng.uniform(12, 35)
    dark = np.clip(depth * (0.6 + 0.6 * dist), 0, 255)[:, :, None] * np.ones(3, np.float32)
    # a raised, lit burr around the edge (light from the upper left)
    ring = _draw_polyline_alpha(img.shape[:2], np.vstack([outline, outline[:1]]),
                                max(2, round(3 * size / 256))) * (1 - inside)
    light = np.clip(-((xx - center[0]) + (yy - center[1])) / (radius * 1.4), 0, 1)
    rim = ring * light * rng.uniform(0.6, 0.9)
    out = _blend(img, dark, inside)
    out = _blend(out, np.minimum(img + 90, 255.0), rim)
    return out, np.maximum(inside, ring)


def _stain(img: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    alpha = _blob_alpha(size, rng, rng.uniform(0.08, 0.2) * size, 0.35, 0.25)
    colours = ((0.45, 0.38, 0.28), (0.38, 0.38, 0.40), (0.70, 0.48, 0.18))  # oil, soot, rust
    factor = np.asarray(colours[int(rng.integers(len(colours)))], np.float32) * rng.uniform(0.85, 1.1)
    opacity = rng.uniform(0.7, 0.95)
    return _blend(img, img * factor, alpha * opacity), alpha


def _colour_spot(img: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    alpha = _blob_alpha(size, rng, rng.uniform(0.03, 0.07) * size, 0.15, 0.3)
    palette = ((40, 90, 220), (40, 170, 60), (210, 40, 40), (230, 200, 40), (200, 50, 200))
    colour = np.asarray(palette[int(rng.integers(len(palette)))], np.float32)
    shade = 0.6 + 0.5 * img.mean(axis=2, keepdims=True) / 255.0  # keep the texture's shading
    return _blend(img, np.minimum(colour * shade, 255.0), alpha * rng.uniform(0.65, 0.9)), alpha


def _fold(img: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    cy, cx = _point(rng, size, 0.2)
    theta = rng.uniform(0, math.pi)
    half_len = rng.uniform(0.25, 0.55) * size
    width = rng.uniform(0.04, 0.08) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    along = (xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)
    across = -(xx - cx) * math.sin(theta) + (yy - cy) * math.cos(theta)
    taper = np.clip((half_len - np.abs(along)) / (0.3 * half_len), 0, 1)
    taper = taper * taper * (3 - 2 * taper)  # smoothstep
    bump = np.exp(-(across / width) ** 2) * taper
    # pinch the texture towards the ridge: sample from further out across the fold
    # (narrower than the shading, so the mask edge follows the shading, not displaced texture edges)
    shift = rng.uniform(0.5, 0.9) * across * bump * bump
    map_x = (xx - shift * math.sin(theta)).astype(np.float32)
    map_y = (yy + shift * math.cos(theta)).astype(np.float32)
    warped = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # one side lit, the other in shadow, meeting at a sharp ridge
    strength = rng.uniform(0.35, 0.55)
    lit = np.clip(across + 0.5, 0, 1)  # 1-pixel anti-aliased ridge
    shading = 1 + strength * bump * (1.8 * lit - 1)
    support = (bump > 0.02).astype(np.float32)
    return warped * shading[:, :, None], support


_KINDS: dict[str, Callable] = {"scratch": _scratch, "crack": _crack, "hole": _hole, "stain": _stain,
                               "colour_spot": _colour_spot, "fold": _fold}


def make_defect(good: np.ndarray, kind: str, rng: np.random.Generator,
                min_area: int | None = None, tries: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Inject one ``kind`` defect into uint8 ``good``; returns (image, mask) with mask == changed pixels."""
    if kind not in _KINDS:
        raise DataError(f"unknown defect kind '{kind}'; choose from {', '.join(DEFECT_KINDS)}")
    size = good.shape[0]
    min_area = max(6, round(size * size * 0.001)) if min_area is None else min_area
    min_piece = max(2, round(size * size / 16384))
    base = good.astype(np.float32)
    best = None
    for _ in range(tries):
        candidate, support = _KINDS[kind](base, rng)
        candidate = np.clip(candidate + 0.5, 0, 255).astype(np.uint8)
        diff = np.abs(candidate.astype(np.int16) - good.astype(np.int16)).max(axis=2)
        mask = (support > 0) & (diff >= NOTABLE)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_piece)
        small = small[small > 0]
        if small.size:
            mask &= ~np.isin(labels, small)
        out = np.where(mask[:, :, None], candidate, good)
        if best is None or mask.sum() > best[1].sum():
            best = (out, mask)
        if mask.sum() >= min_area:
            break
    else:
        log.warning("could not draw a visible %s defect on this image (largest try: %d px)", kind,
                    int(best[1].sum()))
    return best


# ----------------------------------------------------------------------------- dataset writer

def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLITS[split], index])


def _write_png(path: Path, img: np.ndarray) -> None:
    """``img`` (H×W uint8 grey, or H×W×3 RGB) as a PNG at ``path``, whole or not at all (write_whole)."""
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise DataError(f"{path}: cannot encode PNG")
    write_whole(path, buf.tobytes())


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready: absent or empty, or (``overwrite``) a data set this module wrote, whose own files
    are then removed; leaves synth's in-progress marker in it (:data:`_MARKER`). DataError (one line) otherwise.

    Rule: ``--force`` replaces only what synth wrote. It used to remove ``train``, ``test`` and
    ``ground_truth`` of any folder: ``data synth --out D --force`` on a real MVTec-layout data set deleted
    its images and masks, exit 0. Now a non-empty ``out`` must hold synth's ``manifest.json`` (a data set
    written whole) or its in-progress marker (a run stopped part-way: a full disk), and every file below its
    image folders must bear a name synth gives (:func:`_foreign_file`); other files at the top of ``out``
    (notes, a calibration) are left alone. The marker is written before anything is removed, so a run stopped
    at any point leaves a folder a rerun recognises.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DataError(f"{out}: folder exists and is not empty (use overwrite to replace it)", field="overwrite")
        if not _is_synth_output(out):
            raise DataError(f"{out}: not a data set written by 'inspector data synth' (no manifest.json or "
                            f"{_MARKER} of it); overwrite replaces only those, choose a new or empty folder",
                            field="overwrite")
        foreign = _foreign_file(out)
        if foreign is not None:
            raise DataError(f"{foreign}: not written by 'inspector data synth'; overwrite would delete it, move it "
                            f"out of {out} or choose a new folder", field="overwrite")
        _write_marker(out)
        for name in _WRITTEN:  # only what synth writes; anything else in the folder is left alone
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        return
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(out)


def _write_marker(out: Path) -> None:
    """Name ``out`` synth's while it is being written (:data:`_MARKER`, whole or not at all)."""
    write_whole(out / _MARKER, (json.dumps({"generator": _GENERATOR, "complete": False}) + "\n").encode("utf-8"))


def earlier_synth(out: str | Path) -> str | None:
    """What a ``--force`` run at ``out`` replaces: ``'the earlier data set'`` (its manifest), ``'the data set an
    earlier run left unfinished'`` (only its in-progress marker), or None (nothing of synth's there). Said in the
    command's line, as every command that replaces its own output says it (README "Outputs"): ``--force`` replaced
    an earlier data set and said only "wrote"."""
    out = Path(out)
    if _names_synth(out / "manifest.json"):
        return "the earlier data set"
    return "the data set an earlier run left unfinished" if _names_synth(out / _MARKER) else None


def _is_synth_output(out: Path) -> bool:
    """Whether ``out/manifest.json`` is the one :func:`_write_manifest` writes, or ``out`` holds the marker of a
    synth run stopped part-way (:data:`_MARKER`): a readable JSON object whose ``generator`` is this module."""
    return any(_names_synth(out / name) for name in ("manifest.json", _MARKER))


def _names_synth(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        doc = json.loads(path.read_bytes()[:1 << 20])
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("generator") == _GENERATOR


_OWN_NAMES = {  # folder below out → the names synth gives in it (see synthesize)
    "train": re.compile(r"good(/\d{3,}\.png)?"),
    "test": re.compile(rf"(good|{'|'.join(DEFECT_KINDS)})(/\d{{3,}}\.png)?"),
    "ground_truth": re.compile(rf"({'|'.join(DEFECT_KINDS)})(/\d{{3,}}_mask\.png)?"),
}


def _foreign_file(out: Path) -> Path | None:
    """The first entry below ``out``'s image folders that synth does not write (another name, a link, a
    deeper folder), or None. README.txt, manifest.json and the marker are synth's by their word."""
    for top, pattern in _OWN_NAMES.items():
        root = out / top
        if root.is_symlink() or (root.exists() and not root.is_dir()):
            return root
        for entry in sorted(root.rglob("*")) if root.is_dir() else []:
            rel = entry.relative_to(root).as_posix()
            is_folder = entry.is_dir() and not entry.is_symlink()
            if entry.is_symlink() or not pattern.fullmatch(rel) or is_folder != ("/" not in rel):
                return entry
    for own in (out / "README.txt", out / _MARKER):
        if own.is_symlink() or own.is_dir():
            return own
    # synth's by content, not by name: a user's own README.txt or manifest.json beside a data set synth wrote
    # (the marker of a stopped run tells the folder is synth's) was deleted by overwrite
    if (out / "manifest.json").exists() and not _names_synth(out / "manifest.json"):
        return out / "manifest.json"
    return None if _readme_of_synth(out / "README.txt") else out / "README.txt"


_README_HEAD = b"Synthetic defect dataset written by `inspector data synth`"  # _write_manifest's first line


def _readme_of_synth(path: Path) -> bool:
    """Whether ``path`` is absent or the README.txt :func:`_write_manifest` writes (by its first line)."""
    if not path.exists():
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_README_HEAD)) == _README_HEAD
    except OSError:
        return False


def synthesize(out: str | Path, texture: str | Path = "brick", size: int = 256, n_train: int = 200,
               n_test_good: int = 40, n_test_defect: int = 60, seed: int = 0,
               defects: Sequence[str] = DEFECT_KINDS, tint: bool = True, overwrite: bool = False) -> Dataset:
    """Write an MVTec-layout dataset to ``out`` and return it loaded.

    ``train/good``, ``test/good``, ``test/<kind>`` (defect kinds round-robin),
    ``ground_truth/<kind>/<stem>_mask.png`` (0/255), ``manifest.json`` and
    ``README.txt`` with the parameters. Deterministic by ``seed``. While it writes, ``out`` holds
    ``synth-in-progress.json`` (removed once the manifest is written): a run stopped part-way (a full disk:
    OSError) is replaced by a rerun with ``overwrite``. DataError: bad parameters, or an ``out`` that is not
    synth's (:func:`_prepare_out`).
    """
    out = Path(out).expanduser()
    defects = tuple(defects)
    unknown = [k for k in defects if k not in _KINDS]
    if unknown or not defects:
        raise DataError(f"unknown defect kind(s) {unknown or '(none given)'}; choose from {', '.join(DEFECT_KINDS)}")
    if size < 32:
        raise DataError(f"size {size} is too small (at least 32)")
    if min(n_train, n_test_good, n_test_defect) < 0 or n_train < 1:
        raise DataError("image counts must be >= 0 and at least one training image")
    sources = load_sources(texture, tint)
    _prepare_out(out, overwrite)
    start = time.perf_counter()

    def write_good(split: str, folder: Path, count: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            _write_png(folder / f"{i:03d}.png", good_image(sources, size, _rng(seed, split, i)))

    write_good("train", out / "train" / "good", n_train)
    write_good("test_good", out / "test" / "good", n_test_good)
    per_kind = {k: 0 for k in defects}
    for i in range(n_test_defect):
        kind = defects[i % len(defects)]
        rng = _rng(seed, "test_defect", i)
        image, mask = make_defect(good_image(sources, size, rng), kind, rng)
        stem = f"{per_kind[kind]:03d}"
        per_kind[kind] += 1
        (out / "test" / kind).mkdir(parents=True, exist_ok=True)
        (out / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
        _write_png(out / "test" / kind / f"{stem}.png", image)
        _write_png(out / "ground_truth" / kind / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
    _write_manifest(out, dict(texture=str(texture), size=size, n_train=n_train, n_test_good=n_test_good,
                              n_test_defect=n_test_defect, seed=seed, defects=list(defects), tint=tint,
                              per_defect_kind=per_kind))
    (out / _MARKER).unlink()  # after the manifest: the folder is synth's by one of them at every moment
    log.debug("wrote %d images to %s in %.1f s", n_train + n_test_good + n_test_defect, out,
             time.perf_counter() - start)
    return load_dataset(out)


def _write_manifest(out: Path, params: dict) -> None:
    """README.txt, then manifest.json, each whole or not at all (:func:`inspector.outputs.write_whole`; written in
    place, a full disk part-way left a cut manifest, or one of an earlier data set half overwritten). The manifest
    last: it is found only beside a data set written whole."""
    manifest = {"generator": _GENERATOR, "format": "mvtec", "notable_change": NOTABLE, **params}
    write_whole(out / "README.txt", (
        _README_HEAD.decode() + " (MVTec AD layout).\n"
        "train/good and test/good: random crops of the texture; test/<kind>: one injected defect each;\n"
        "ground_truth/<kind>/<name>_mask.png: 0/255, exactly the pixels that differ from the defect-free\n"
        f"image by at least {NOTABLE} grey levels. Parameters: manifest.json.\n"
        f"Regenerate: inspector data synth --texture {params['texture']} --size {params['size']} "
        f"--train {params['n_train']} --test-good {params['n_test_good']} "
        f"--test-defect {params['n_test_defect']} --seed {params['seed']} --out <folder>\n").encode("utf-8"))
    write_whole(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
