"""What Session 45 added per frame on the daemon's hot path, timed alone (timeit, one thread): the capture worker's
frame-size comparison that triggers the queue-memory check (CaptureWorker._check_layout), and the publisher inbox
counting frames (FrameQueue) against a plain queue.Queue, per batch put and taken.

    python benchmarks/experiments/s45_hot_path_checks.py [--out FILE]
"""

from __future__ import annotations

import argparse
import queue
import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import claim_out_or_exit, write_out  # noqa: E402

from inspector.pipeline.frame_queue import FrameQueue  # noqa: E402

NAME = "s45_hot_path_checks"


def per_call(fn, number: int) -> float:
    """Seconds per call of ``fn``, the best of 5 rounds of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")
    out = claim_out_or_exit(ap.parse_args().out, NAME)
    image, checked = np.zeros((1080, 1920, 3), np.uint8), {"bytes": 1080 * 1920 * 3}
    result = {"size_check_ns": per_call(lambda: image.nbytes > checked["bytes"], 200_000) * 1e9}
    batch = [object()] * 8
    for kind in (queue.Queue, FrameQueue):
        q = kind(maxsize=10**6)
        result[f"{kind.__name__}_put_get_us"] = per_call(lambda: (q.put_nowait(batch), q.get_nowait()), 50_000) * 1e6
    print(result)
    write_out(out, NAME, result)


if __name__ == "__main__":
    main()
