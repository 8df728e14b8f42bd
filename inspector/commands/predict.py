"""`inspector predict MODEL IMG... [--backend B] [--out DIR]`: score images, optionally write overlays.

MODEL is an exported ``.onnx`` (ONNX Runtime by default), a TensorRT engine, or a
training run folder (torch). ``--backend torch`` with an ``.onnx`` uses the run
the sidecar names. Images of any size are decoded to RGB and resized with the
model's input spec (``backend.input_spec``: resize policy, bit depth, downscale), exactly as in training.
Prints one line per image: ``PATH<TAB>SCORE``, and with ``--calibration FILE``
``PATH<TAB>SCORE<TAB>DECISION`` (OK / NG / uncertain, the daemon's rule against the
file's thresholds; the file must have been made for this very model file). Unreadable images print one
error line each on stderr and make the exit status 2; the rest are still scored.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from inspector.commands.argtypes import int_range, out_folder, score_value
from inspector.contract import DEFAULT_BATCH
from inspector.errors import ConfigError, DataError
from inspector.textline import one_line
from inspector.visual import PREDICT_OVERLAY_TAG


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="score images with an exported model",
                       description="Score images with an exported model (or a run folder with --backend torch).")
    p.add_argument("model", help="MODEL.onnx, an engine .plan, or a training run folder")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"],
                   help="runtime (default: by file type: .onnx → onnxruntime, run folder → torch)")
    p.add_argument("--calibration", metavar="FILE",
                   help="calibration YAML made for this model file by 'inspector calibrate': print OK/NG per "
                        "image against its threshold")
    p.add_argument("--out", type=out_folder(), help="write a heat-map overlay PNG per image into this folder (an earlier overlay of predict "
                        "is replaced, and said; any other file of that name is refused)")
    p.add_argument("--batch-size", type=int_range(1, 4096), default=DEFAULT_BATCH,
                   help="images per inference call (default %(default)s)")
    p.add_argument("--threads", type=int_range(1, 1024), help="CPU threads for onnxruntime / torch")
    p.add_argument("--vmin", type=score_value(), help="overlay colour scale minimum (default: lowest map value seen)")
    p.add_argument("--vmax", type=score_value(), help="overlay colour scale maximum (default: highest map value seen), "
                                              "e.g. a calibrated threshold")
    p.set_defaults(func=run)


def expand_images(items: list[str], errors: list[str] | None = None, bare: list[str] | None = None) -> list[Path]:
    """Files as given; folders → their images sorted by name.

    One rule for which files are images (:func:`inspector.data.images.is_image_file`): a folder's other image
    formats are counted in one warning (:func:`inspector.data.datasets.listed_images`); a named file outside
    the rule is an error line (appended to ``errors``), not scored: ``predict x.gif`` scored a GIF that
    ``predict folder/`` left out silently. A folder whose images all sit in sub-folders is appended to ``bare``
    and told once by the caller (its error, or one warning beside other items' images), not also logged here.
    """
    from inspector.data.datasets import listed_images
    from inspector.data.images import not_an_image

    paths: list[Path] = []
    for item in items:
        path = Path(item)
        why = None if path.is_dir() else not_an_image(path)
        if why:
            print(f"error: {one_line(why)}", file=sys.stderr)
            if errors is not None:
                errors.append(why)
            continue
        try:
            if path.is_dir() and bare is not None and _only_sub_folders(path):
                bare.append(item)
                continue
            paths.extend(listed_images(path) if path.is_dir() else [path])
        except DataError as exc:  # a folder that cannot be listed: one line, the other items still scored
            print(f"error: {exc}", file=sys.stderr)
            if errors is not None:
                errors.append(str(exc))
    return paths


def _only_sub_folders(folder: Path) -> bool:
    """Whether ``folder`` (listable, else DataError) holds no image of its own, only sub-folders that do."""
    from inspector.data.datasets import check_listable
    from inspector.data.images import list_images, subfolders_note, unread_image_names

    check_listable(folder)
    return not list_images(folder) and not unread_image_names(folder) and bool(subfolders_note(folder))


def _bare_line(folder: str) -> str:
    """``'day: 2 sub-folder(s) holding images are not read …: name them'``, and a dataset told as one."""
    from inspector.data.images import subfolders_note

    path = Path(folder)
    line = f"{folder}: {subfolders_note(path)}: name them"
    if (path / "test").is_dir():
        line += f" (a dataset: its test/<type> folders, e.g. {path / 'test' / 'good'})"
    return line


def _nested_hint(items: list[str]) -> str:
    """``'; <folder>: 2 sub-folder(s) holding images are not read …'`` for the first folder named whose images sit in
    sub-folders (a folder of dated folders gave 'no images found' alone), else ''."""
    from inspector.data.images import subfolders_note

    for item in items:
        note = subfolders_note(Path(item)) if Path(item).is_dir() else ""
        if note:
            return f"; {item}: {note}: name them"
    return ""


def _batches(paths: list[Path], spec, batch_size: int, errors: list[str], shapes=None):
    """Yield (paths, uint8 batch) of readable images, made into the model input as ``spec`` says
    (:class:`inspector.contract.InputSpec`: size, resize policy, bit depth, downscale method). ``shapes``
    (:class:`inspector.artifacts.frame_shapes.FrameShapes`): tells each folder whose images are unlike the
    model's training images, once."""
    from inspector.data.images import read_image, resize_image

    chunk: list[Path] = []
    images: list[np.ndarray] = []
    for path in paths:
        try:
            image = read_image(path, spec.bit_depth, warn_key=str(path.parent))
            if shapes is not None:
                shapes.see(str(path.parent), image.shape[0], image.shape[1])
            images.append(resize_image(image, spec.height, spec.width, spec.resize, downscale=spec.downscale))
            chunk.append(path)
        except DataError as exc:
            errors.append(str(exc))
            print(f"error: {one_line(exc)}", file=sys.stderr)
        if len(chunk) == batch_size:
            yield chunk, np.stack(images)
            chunk, images = [], []
    if chunk:
        yield chunk, np.stack(images)


def result_field(path: Path) -> str:
    """``path`` as the first tab-separated field of its result line: scripts read one image per line, so a
    newline (or ESC) in a file name is escaped (:func:`~inspector.textline.one_line`), and so is a tab."""
    return one_line(path).replace("\t", "\\t")


def overlay_names(paths: list[Path]) -> list[str]:
    """``<stem>.png``; when stems clash, ``<parent>_<stem>.png`` for all (crack/000.png → crack_000.png)."""
    stems = [p.stem for p in paths]
    qualify = len(set(stems)) < len(stems)
    names, used = [], set()
    for path in paths:
        base = f"{path.parent.name}_{path.stem}" if qualify else path.stem
        name, k = f"{base}.png", 1
        while name in used:
            name, k = f"{base}-{k}.png", k + 1
        used.add(name)
        names.append(name)
    return names


OVERLAY_TAG = PREDICT_OVERLAY_TAG  # in each overlay PNG (visual.tag_png): an earlier overlay known by content


def check_overlays_spare_inputs(named: list[Path], out_dir: Path, inputs: list[Path]) -> int:
    """Make sure the overlays named after ``named`` may be written in ``out_dir``: the number of earlier
    ``predict`` overlays they replace. ConfigError, one line, when one would replace one of the ``inputs``
    (``--out`` the images' own folder: the images were overwritten by their overlays), or a file there that is
    not an overlay ``predict`` wrote (known by its tag, :data:`OVERLAY_TAG`; :func:`inspector.outputs.claim_file`,
    the rule of every output): a user's picture of that name was overwritten without a word."""
    from inspector.outputs import claim_file
    from inspector.visual import png_tagged

    mine = {os.path.realpath(p) for p in inputs}
    replaced = 0
    for path, name in zip(named, overlay_names(named)):
        if os.path.realpath(out_dir / name) in mine:
            raise ConfigError(f"out: the overlay {out_dir / name} would replace the input image of that name; "
                              f"choose another --out folder", field="out")
        replaced += claim_file(out_dir / name, lambda raw: png_tagged(raw, OVERLAY_TAG), ConfigError,
                               command="predict", option="--out", noun="overlay")
    return replaced


def colour_scale(maps: list[np.ndarray], vmin: float | None, vmax: float | None) -> tuple[float, float]:
    """The overlays' colour scale (map units): ``--vmin``/``--vmax``, an end not given from the maps' range.

    ConfigError (one line, before any overlay is written) when one end is given and the maps' other end is not
    beyond it (``--vmin 1e9`` above every map value): every overlay was drawn in one flat colour, silently. Both
    given out of order is refused before inference (:func:`run`); the maps' range is known only after it.
    """
    lo = float(min(m.min() for m in maps)) if vmin is None else vmin
    hi = float(max(m.max() for m in maps)) if vmax is None else vmax
    if (vmin is None) != (vmax is None) and not lo < hi:
        given, seen = (f"--vmin {vmin:g}", f"the highest map value seen ({hi:g}), the default --vmax") \
            if vmax is None else (f"--vmax {vmax:g}", f"the lowest map value seen ({lo:g}), the default --vmin")
        raise ConfigError(f"{given} is not {'below' if vmax is None else 'above'} {seen}: every overlay would "
                          f"be one flat colour; give both --vmin and --vmax")
    return lo, hi


def write_overlays(results: list[tuple[Path, np.ndarray]], out_dir: Path, policy: str,
                   vmin: float | None, vmax: float | None, bit_depth: int | None = None,
                   inputs: list[Path] = ()) -> int:
    """One PNG per image: the map (back in frame geometry) over the original image, tagged as predict's
    (:data:`OVERLAY_TAG`); never over ``inputs`` nor over a file that is not an earlier overlay
    (:func:`check_overlays_spare_inputs`); returns how many earlier overlays were replaced.
    Each written whole or not at all (:func:`inspector.outputs.write_whole`): written in place, a full disk or a
    crash part-way left a cut PNG under the overlay's name, or an earlier run's overlay half overwritten."""
    from inspector.data.images import map_to_frame, read_image
    from inspector.outputs import new_folders_removed_on_failure, write_whole
    from inspector.visual import encode_png, heatmap_overlay, tag_png

    lo, hi = colour_scale([m for _, m in results], vmin, vmax)
    # again: the names depend on which images could be read (crack/000.png, good/000.png → crack_000.png)
    replaced = check_overlays_spare_inputs([p for p, _ in results], out_dir, [p for p, _ in results] + list(inputs))
    with new_folders_removed_on_failure(out_dir):  # no empty --out folder left by a full disk
        out_dir.mkdir(parents=True, exist_ok=True)
        for (path, amap), name in zip(results, overlay_names([p for p, _ in results])):
            frame = read_image(path, bit_depth, warn_key=str(path.parent))
            frame_map = map_to_frame(amap, frame.shape[0], frame.shape[1], policy)
            overlay = heatmap_overlay(frame, frame_map, lo, hi, alpha=0.5)
            write_whole(out_dir / name, tag_png(encode_png(overlay), OVERLAY_TAG))
    return replaced


def load_decider(calibration: str, model: str):
    """(the daemon's OK/NG/uncertain rule, the calibration file) from a calibration file bound to the file
    ``model``."""
    from inspector.pipeline.postprocess import Decider
    from inspector.artifacts.model_card import sha256_file
    from inspector.artifacts.thresholds import load_thresholds

    if not Path(model).is_file():
        raise ConfigError(f"--calibration: needs the model file it was made for (.onnx or .plan), not {model}")
    t = load_thresholds(calibration, sha256_file(model), model)
    return Decider(t.image_threshold, t.pixel_threshold, t.uncertain_band), t


def warn_batch_coverage(thresholds, calibration: str, model: str, batch_size: int, n_images: int) -> None:
    """One warning line on stderr when the calibration's threshold was not checked at the largest batch this
    run scores (``--batch-size``, or fewer when fewer images are given): its good images just below the
    threshold may be NG at that size (:func:`inspector.artifacts.thresholds.batch_coverage_warning`)."""
    from inspector.artifacts.thresholds import batch_coverage_warning

    size = min(batch_size, max(1, n_images))
    # capped by the images given, "--batch-size is 10" contradicted the 16 typed: say both
    setting = ("--batch-size" if size == batch_size
               else f"its largest batch (--batch-size {batch_size}, {n_images} image(s))")
    line = batch_coverage_warning(thresholds, calibration, model, size, setting)
    if line:
        print(f"warning: {one_line(line)}", file=sys.stderr)


def _shown(score: float, decider) -> str:
    """The score column: 6 decimals, or the score's exact value where 6 decimals would read as the other
    decision against the calibration's threshold (:meth:`Decider.shown`)."""
    text = f"{score:.6f}"
    if decider is None or not math.isfinite(score) or decider.decide(float(text)) == decider.decide(score):
        return text
    return repr(float(score))


def _non_finite(path: Path, score: float, model: str) -> str:
    """The error line of an image the model scored NaN or ±inf: printed "nan" (with "error" under a calibration)
    and exit 0, so a script reading the exit status took a broken model (an FP16 overflow) for a passed check."""
    line = f"{path}: {model} gave a non-finite score ({score}); is the model damaged or its FP16 graph overflowing?"
    print(f"error: {one_line(line)}", file=sys.stderr)
    return line


def run(args: argparse.Namespace) -> int:
    from inspector.artifacts.frame_shapes import backend_frame_shapes
    from inspector.backends import load_backend
    from inspector.commands.backend_flags import backend_options

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: must be ≥ 1, got {args.batch_size}")
    for flag, value in (("--vmin", args.vmin), ("--vmax", args.vmax)):
        if value is not None and not args.out:  # the colour scale of overlays that would not be written
            raise ConfigError(f"{flag}: only used for the overlays; add --out FOLDER")
    if args.vmin is not None and args.vmax is not None and not args.vmin < args.vmax:
        # an empty colour scale drew every overlay in one flat colour, silently
        raise ConfigError(f"--vmin {args.vmin:g} must be below --vmax {args.vmax:g}")
    decider, thresholds = load_decider(args.calibration, args.model) if args.calibration else (None, None)
    options = backend_options(args, args.model, args.backend)  # a flag this backend does not read: refused
    errors: list[str] = []
    bare: list[str] = []  # folders of sub-folders: told once, in the error or a warning (was: both)
    paths = expand_images(args.images, errors, bare)
    if not paths and errors:  # each item already told in its line ('x.gif' is not read; a folder not listed)
        return 2
    if not paths:
        told = f"; {_bare_line(bare[0])}" if bare else _nested_hint(args.images)
        raise DataError(f"{' '.join(args.images)}: no images found (files or folders of .png/.jpg/.bmp/.tif)" + told)
    for folder in bare:
        print(f"warning: {one_line(_bare_line(folder))}", file=sys.stderr)
    if thresholds is not None:
        warn_batch_coverage(thresholds, args.calibration, args.model, args.batch_size, len(paths))
    if args.out:
        check_overlays_spare_inputs(paths, Path(args.out), paths)  # before any inference
    kept: list[tuple[Path, np.ndarray]] = []
    with load_backend(args.model, args.backend, **options) as backend:
        spec = backend.input_spec
        shapes = backend_frame_shapes(backend, args.model, retell=False)
        for chunk, batch in _batches(paths, spec, args.batch_size, errors, shapes):
            result = backend.infer(batch)
            for i, path in enumerate(chunk):
                score = float(result.scores[i])
                verdict = f"\t{decider.decide(score)}" if decider else ""
                print(f"{result_field(path)}\t{_shown(score, decider)}{verdict}", flush=True)
                if not math.isfinite(score):  # the model's fault, not the image's: told, and the exit says so
                    errors.append(_non_finite(path, score, args.model))
                if args.out:
                    kept.append((path, np.array(result.maps[i, 0], dtype=np.float32)))  # copy: buffers are reused
    if args.out and kept:
        replaced = write_overlays(kept, Path(args.out), spec.resize, args.vmin, args.vmax, spec.bit_depth,
                                  inputs=paths)
        said = f" (replaced {replaced} earlier overlay(s))" if replaced else ""
        print(f"wrote {len(kept)} overlay(s) to {args.out}{said}", file=sys.stderr)
    return 2 if errors else 0
