"""CPU time per event of the daemon's postprocess and publish roles, on the real objects.

The daemon's throughput against the bare backend is set, once the backend is
fast, by what its own threads spend per frame. This benchmark measures that
cost directly and load-insensitively: the thread CPU time (``time.thread_time``)
that :class:`~inspector.pipeline.postprocess.PostprocessWorker` and
:class:`~inspector.pipeline.publish.PublishWorker` spend per frame, called in
one thread on finished frames (a map per frame, ~10 % of them NG), with a real
ZeroMQ XPUB socket on ``ipc://`` and a real subscriber of ``v1/result`` (as
``bench_daemon.py``) or of nothing (``--subscribe none``: payloads are skipped).

    python benchmarks/bench_event_cost.py                     # 4000 frames, 64x64 maps
    python benchmarks/bench_event_cost.py --map 256 --profile  # where the time goes (cProfile, top 25)

Writes ``benchmarks/results/event-cost.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _common import claim_out_or_exit, write_out  # noqa: E402
from inspector.client import Subscriber  # noqa: E402
from inspector.pipeline.config import DriftSection, PostprocessSection, PublishSection  # noqa: E402
from inspector.pipeline.drift import DriftMonitor  # noqa: E402
from inspector.pipeline.frame import STAGES, Frame  # noqa: E402
from inspector.pipeline.postprocess import Decider, PostprocessWorker  # noqa: E402
from inspector.pipeline.publish import PublishContext, Publisher, PublishWorker  # noqa: E402
from inspector.pipeline.telemetry import Counters  # noqa: E402
from inspector.artifacts.thresholds import ScoreStats  # noqa: E402

MODEL_INFO = {"name": "reduced_student", "version": "bench", "precision": "fp32", "backend": "onnxruntime",
              "sha256": "0" * 64, "run_id": "bench"}


def make_frames(n: int, cameras: int, image: int, map_size: int, ng_rate: float, seed: int) -> list[Frame]:
    """Finished-inference frames: images, maps with a bright blob on NG frames, scores, all stages stamped."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (image, image, 3), dtype=np.uint8)
    frames = []
    base = time.monotonic_ns()
    for i in range(n):
        amap = rng.random((map_size, map_size), dtype=np.float32) * 0.4
        ng = rng.random() < ng_rate
        if ng:
            y, x = rng.integers(0, map_size - 8, 2)
            amap[y:y + 6, x:x + 6] += 1.0
        f = Frame(camera=f"cam{i % cameras}", frame_id=i // cameras, image=img, capture_ns=base + i * 1000,
                  capture_utc=time.time(), meta={"index": i // cameras, "injected": "blob" if ng else None})
        for k, stage in enumerate(STAGES[1:5], 1):
            f.stamp(stage, base + i * 1000 + k * 250_000)
        f.score, f.amap = float(amap.max()), amap
        f.backend_ms = {"infer": 3.2, "h2d": 0.0}
        frames.append(f)
    return frames


def run(args, frames: list[Frame], endpoint: str) -> dict:
    counters = Counters()
    stop = threading.Event()
    publisher = Publisher(PublishSection(endpoint=endpoint, results=True, stats_interval_s=3600))
    sub = None if args.subscribe == "none" else Subscriber(publisher.endpoint, [args.subscribe])
    if sub is not None:
        assert publisher.wait_for_subscription(5.0), "no subscription arrived"
    decider = Decider(0.9, 0.9)
    drift = DriftMonitor(DriftSection(), ScoreStats(mean=0.3, std=0.05, min=0.1, max=0.5, p50=0.3, p99=0.4, n=1000))
    post = PostprocessWorker(decider, PostprocessSection(), "square", queue.Queue(), queue.Queue(), stop, counters,
                             drift, False, publisher.wanted)
    ctx = PublishContext(publisher=publisher, cfg=PublishSection(endpoint=endpoint, results=True), model=MODEL_INFO,
                         decider=decider, stats=dict, run_id="bench", run_started_utc="2026-01-01T00:00:00.000Z")
    pub = PublishWorker(ctx, queue.Queue(), queue.Queue(), stop, counters)
    received = [0]

    def drain():
        while not stop.is_set():
            if sub.recv(timeout=0.2) is not None:
                received[0] += 1

    reader = threading.Thread(target=drain, daemon=True) if sub is not None else None
    if reader:
        reader.start()
    profile = cProfile.Profile() if args.profile else None
    cost = {"postprocess": 0.0, "publisher": 0.0}
    batch = args.batch
    for start in range(0, len(frames), batch):
        chunk = frames[start:start + batch]
        if profile:
            profile.enable()
        t0 = time.thread_time()
        post.process_batch(chunk) if hasattr(post, "process_batch") else [post.process(f) for f in chunk]
        t1 = time.thread_time()
        if hasattr(pub, "_publish_batch"):
            pub._publish_batch(chunk)
        else:  # the code before issue 17's third round (A/B runs)
            for f in chunk:
                pub._publish_frame(f)
        t2 = time.thread_time()
        if profile:
            profile.disable()
        cost["postprocess"] += t1 - t0
        cost["publisher"] += t2 - t1
        if sub is not None and start % (batch * 16) == 0:
            time.sleep(0.005)  # let the subscriber keep up (its HWM would drop otherwise)
    time.sleep(0.3)
    stop.set()
    if reader:
        reader.join(2)
        sub.close()
    publisher.close()
    n = len(frames)
    out = {"frames": n, "ng_frames": counters.get("published.defect"), "received": received[0],
           "us_per_event": {k: round(v / n * 1e6, 1) for k, v in cost.items()},
           "counters": counters.snapshot()}
    if profile:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(args.profile_top)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image", type=int, default=128, help="frame side (pixels)")
    parser.add_argument("--map", type=int, default=64, help="anomaly map side (pixels)")
    parser.add_argument("--ng-rate", type=float, default=0.1)
    parser.add_argument("--subscribe", default="v1/result", help="the subscriber's topic prefix ('none': no subscriber)")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the median per role is reported")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--label", default="", help="recorded in the JSON, e.g. before / after")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "event-cost.json"))
    args = parser.parse_args()
    if not args.profile:  # --profile writes no result
        claim_out_or_exit(args.out, "event_cost")  # before the runs: a user's file at --out is kept
    frames_args = (args.frames, args.cameras, args.image, args.map, args.ng_rate, 0)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1 if args.profile else args.repeats):
            runs.append(run(args, make_frames(*frames_args), f"ipc://{tmp}/cost-{r}.sock"))
    median = {role: float(np.median([r["us_per_event"][role] for r in runs])) for role in runs[0]["us_per_event"]}
    result = {"benchmark": "event_cost", "label": args.label,
              "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"platform": platform.platform(), "python": platform.python_version()},
              "settings": {k: getattr(args, k) for k in ("frames", "cameras", "batch", "image", "map", "ng_rate",
                                                          "subscribe", "repeats")},
              "us_per_event_median": median, "runs": runs}
    print(json.dumps({"label": args.label, "us_per_event_median": median,
                      "received": [r["received"] for r in runs]}))
    if not args.profile:
        write_out(args.out, "event_cost", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
