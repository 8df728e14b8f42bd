"""Decode cost of one still on every path (:func:`inspector.data.images.read_image`, which the daemon's folder camera
and predict/train/calibrate share), against OpenCV's bare ``imdecode`` of the same bytes.

    python benchmarks/bench_decode.py                              # this checkout
    python benchmarks/bench_decode.py --against /path/to/old/tree  # and another checkout, in alternating rounds

Frames: a 1920x1080 JPEG (quality 90) with and without an EXIF block (orientation 6: a quarter turn), and the
same frame as a PNG, a lossy WebP (quality 90) and two TIFFs, deflate and JPEG (Pillow's libtiff). Each checkout runs in its own process (``--against`` sets its PYTHONPATH), one OpenCV thread,
``--rounds`` alternating rounds of ``--per-round`` decodes; the median of the per-round medians is reported (ms).
Why: Session 34 decodes JPEG/PNG/WebP as stored and turns them by one EXIF reader (Pillow) instead of OpenCV's
own, a header parse added per frame on the hot path; Session 47 checks lossy WebP and deflate/JPEG TIFF strips
for damage, one more decode or inflate per frame. JSON to ``benchmarks/results/<--name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402

FILES = ("plain.jpg", "exif6.jpg", "plain.png", "lossy.webp", "deflate.tif", "jpeg.tif")


def write_frames(folder: Path) -> None:
    """The three test files of the module docstring into ``folder``."""
    import cv2
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8), (9, 9), 3)
    cv2.imwrite(str(folder / "plain.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(folder / "plain.png"), frame)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(frame).save(folder / "exif6.jpg", quality=90, exif=exif)
    cv2.imwrite(str(folder / "lossy.webp"), frame, [cv2.IMWRITE_WEBP_QUALITY, 90])
    rgb = Image.fromarray(np.ascontiguousarray(frame[..., ::-1]))
    rgb.save(folder / "deflate.tif", compression="tiff_adobe_deflate")
    rgb.save(folder / "jpeg.tif", compression="jpeg", quality=90)


def time_round(folder: Path, per_round: int) -> dict:
    """One round in this process: {file: {"read_image": ms, "imdecode": ms}} (medians of ``per_round``)."""
    import time

    import cv2
    import numpy as np

    from inspector.data.images import read_image

    cv2.setNumThreads(1)
    out = {}
    for name in FILES:
        path = folder / name
        data = np.frombuffer(path.read_bytes(), np.uint8)
        row = {}
        for label, call in (("read_image", lambda: read_image(path)),
                            ("imdecode", lambda: cv2.imdecode(data, cv2.IMREAD_UNCHANGED))):
            call()
            times = []
            for _ in range(per_round):
                t = time.perf_counter()
                call()
                times.append((time.perf_counter() - t) * 1000)
            row[label] = statistics.median(times)
        out[name] = row
    return out


def run_round(tree: Path, folder: Path, per_round: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--one-round", str(folder), "--per-round", str(per_round)],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def summarise(rounds: list[dict]) -> dict:
    return {name: {k: round(statistics.median(r[name][k] for r in rounds), 3) for k in rounds[0][name]}
            for name in FILES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", type=Path, default=None, help="another checkout's root, timed in alternation")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=15)
    ap.add_argument("--name", default="decode")
    ap.add_argument("--one-round", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name)  # before the work: a user's file at the name is kept
    if args.one_round is not None:
        print(json.dumps(time_round(args.one_round, args.per_round)))
        return 0
    trees = {"this": HERE.parent, **({"against": args.against.resolve()} if args.against else {})}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_frames(folder)
        rounds: dict[str, list[dict]] = {label: [] for label in trees}
        for _ in range(args.rounds):
            for label, tree in trees.items():
                rounds[label].append(run_round(tree, folder, args.per_round))
    results = {label: {"tree": str(trees[label]), "ms": summarise(r)} for label, r in rounds.items()}
    settings = {"frame": "1920x1080", "rounds": args.rounds, "per_round": args.per_round, "opencv_threads": 1}
    print(json.dumps(results, indent=1))
    write_result(args.name, {"settings": settings, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
