"""CPU per frame of each pipeline thread, exactly, and where its Python time goes (issue 17).

Runs the daemon as ``bench_daemon.py`` does (offline synthetic cameras, frames at the model's input size by
default, a real ZeroMQ subscriber) and reports, per role, the CPU milliseconds per frame measured with
``time.thread_time`` around each worker's whole loop (nanosecond clock, unlike ``v1/stats`` ``cpu_s``,
which counts 10 ms scheduler ticks), so the figure is the work each thread did, not how long it waited on
a loaded machine. ``--profile`` adds a cProfile of every thread except inference (the backend's own work
is not Python) and prints each role's top functions by own time; profiling slows Python roughly 2x, so
take the ms-per-frame figures from a run without it.

    python benchmarks/profile_daemon.py                         # 1, 4, 8 cameras, 400 frames each
    python benchmarks/profile_daemon.py --cameras 4 --profile   # where the Python time goes

Writes ``benchmarks/results/daemon-threads.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_daemon import (FRAME_SETTINGS, _camera, daemon_settings, default_model, pick_threshold,  # noqa: E402
                          run_daemon)
from _common import claim_out_or_exit, write_out  # noqa: E402
from inspector.backends import load_backend  # noqa: E402
from inspector.pipeline.config import SyntheticSection  # noqa: E402
from inspector.pipeline.worker import Worker  # noqa: E402

NOT_PROFILED = {"inference"}  # the backend's work: native code, a profiler would only slow it


class RoleClock:
    """Wraps :meth:`Worker.run`: each worker thread's ``time.thread_time`` over its run, summed per role,
    and (``profile``) one cProfile per role."""

    def __init__(self, profile: bool) -> None:
        self.cpu_s: dict[str, float] = defaultdict(float)
        self.profiles: dict[str, list[cProfile.Profile]] = defaultdict(list)
        self.profile = profile
        self._lock = threading.Lock()
        self._original = Worker.run

    def __enter__(self) -> "RoleClock":
        clock = self

        def run(worker: Worker) -> None:
            prof = cProfile.Profile(time.thread_time) if clock.profile and worker.role not in NOT_PROFILED else None
            started = time.thread_time()
            if prof is not None:
                prof.enable()
            try:
                clock._original(worker)
            finally:
                if prof is not None:
                    prof.disable()
                with clock._lock:
                    clock.cpu_s[worker.role] += time.thread_time() - started
                    if prof is not None:
                        clock.profiles[worker.role].append(prof)

        Worker.run = run
        return self

    def __exit__(self, *exc) -> None:
        Worker.run = self._original

    def top(self, role: str, n: int) -> str:
        out = io.StringIO()
        stats = None
        for prof in self.profiles[role]:
            stats = pstats.Stats(prof, stream=out) if stats is None else stats.add(prof)
        if stats is not None:
            stats.sort_stats("tottime").print_stats(n)
        return out.getvalue()


def one_run(model: Path, n: int, args, threshold: float, workdir: Path) -> dict:
    synth = {"texture": args.texture, "size": args.synth_size, "defect_rate": 0.1, "pool": args.pool}
    cfg = daemon_settings(model, [_camera(i, synth, "offline", args.frames) for i in range(n)], args, threshold,
                          f"ipc://{workdir}/profile-{n}.sock")
    with RoleClock(args.profile) as clock:
        out = run_daemon(cfg, FRAME_SETTINGS[args.frames_at], n * args.frames)
    events = len(out["results"])
    cpu = dict(clock.cpu_s)
    # the inference thread's own CPU includes loading and warming the backend up (and not its intra-op pool):
    # reported apart, v1/stats cpu_s (bench_daemon.py) has the steady-state figure
    inference = cpu.pop("inference", 0.0)
    batcher = out["daemon"].batcher
    cpu["preprocess"] = batcher.preprocess_cpu_s
    cpu["batcher"] = cpu.get("batcher", 0.0) - batcher.preprocess_cpu_s
    result = {"cameras": n, "events": events, "lost": n * args.frames - events,
              "ms_per_frame": {k: round(1e3 * v / events, 4) for k, v in sorted(cpu.items())},
              "pipeline_own_ms_per_frame": round(1e3 * sum(cpu.values()) / events, 4),
              "inference_thread_with_load_ms_per_frame": round(1e3 * inference / events, 4)}
    print(f"{n} camera(s): {events} events, CPU ms per frame {result['ms_per_frame']}, pipeline's own "
          f"{result['pipeline_own_ms_per_frame']}", flush=True)
    if args.profile:
        result["profile"] = {role: clock.top(role, args.top) for role in sorted(clock.profiles)}
        for role, text in result["profile"].items():
            print(f"--- {role} ({n} cameras) ---\n{text}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="exported ONNX graph; default: bench_daemon.py's seeded reduced student")
    parser.add_argument("--model-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--frames", type=int, default=400, help="frames per camera")
    parser.add_argument("--frames-at", default="model", choices=sorted(FRAME_SETTINGS))
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--texture", default="procedural")
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--profile", action="store_true", help="cProfile every thread but inference")
    parser.add_argument("--top", type=int, default=15, help="functions per role in the profile")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "daemon-threads.json"))
    args = parser.parse_args()
    out = claim_out_or_exit(args.out, "daemon-threads")  # before the runs: a user's file at --out is kept
    args.threads = args.spinning = args.spin_us = args.spin_after_run = None  # the daemon's defaults (bench_daemon.daemon_settings)
    cv2.setNumThreads(1)
    model = Path(args.model) if args.model else default_model(args.model_size, args.seed)[0]
    backend = load_backend(model, threads=1)
    # frames at the model's size (bench_daemon's "model" setting) or the 320 px texture enlarged to 1080p
    args.synth_size = backend.input_spec.height if args.frames_at == "model" else 320
    backend.close()
    synth = SyntheticSection(texture=args.texture, size=args.synth_size, pool=args.pool, defect_rate=0.1)
    threshold = pick_threshold(model, synth, None)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(model, n, args, threshold, Path(tmp)) for n in args.cameras]
    result = {"benchmark": "daemon-threads", "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "clock": "time.thread_time per worker thread over its run; preprocess = the batcher's time inside "
                       "preprocessing; the inference thread apart (load and warm-up included)",
              "model": str(model), "frames_at": args.frames_at, "frames_per_camera": args.frames,
              "profiled": args.profile, "loadavg_1min_before_after": [round(load, 2), round(os.getloadavg()[0], 2)],
              "runs": runs}
    write_out(out, "daemon-threads", result)
    print(f"wrote {out}")
    return 0 if all(r["lost"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
