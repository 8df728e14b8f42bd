"""Each throughput lever of issue 17 alone: the daemon with one setting changed, in alternating rounds.

    python benchmarks/bench_levers.py --model /tmp/rs.onnx --cameras 4 --frames 64 --rounds 3

Runs :func:`bench_daemon.offline_run` (offline synthetic cameras, 1080p frames by
default) for each variant in turn — baseline, variant, baseline, … — ``--rounds``
times, so machine load hits every variant alike, and reports each variant's
median throughput and its ratio to the baseline's. Variants:

* ``baseline``: the daemon's defaults (ONNX Runtime threads spin inside a run and stop
  when it returns, one OpenCV thread, payloads only for subscribed topics; the
  subscriber takes ``v1/result`` only);
* ``spinning_off``: ONNX Runtime's idle threads never busy-wait;
* ``spinning_after_run``: they go on spinning after a run returns (ONNX Runtime's own default);
* ``threads_1``: one ONNX Runtime intra-op thread;
* ``opencv_default``: OpenCV's own thread pool (every core) in the batcher;
* ``payloads_encoded``: a subscriber also holds ``v1/defect``, so every NG frame's
  thumbnail and map are encoded (≈10 % NG);
* ``gil_switch_0.5ms``: Python's GIL switch interval at 0.5 ms instead of 5 ms
  (``sys.setswitchinterval``, process-wide, restored after the run): a thread
  that wants the GIL waits up to one interval for its holder to drop it, so the
  inference thread, back from ONNX Runtime with a batch's results, may wait up
  to 5 ms on the pipeline's other Python threads.

JSON to ``benchmarks/results/levers.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_daemon  # noqa: E402
from _common import claim_out_or_exit, write_out  # noqa: E402

VARIANTS = {
    "baseline": {},
    "spinning_off": {"spinning": False},
    "spinning_after_run": {"spinning": True, "spin_after_run": True},
    "threads_1": {"threads": 1},
    "opencv_default": {"overrides": {"batching": {"opencv_threads": 0}}},
    "payloads_encoded": {"topics": ("v1/result", "v1/defect")},
    "gil_switch_0.5ms": {"switch_interval_s": 0.0005},
}


def run_variant(model: Path, args, run_args, threshold: float, workdir: Path, hw) -> dict:
    """One offline run with ``run_args`` (a variant's settings); the GIL switch interval set for it alone."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(getattr(run_args, "switch_interval_s", before))
    try:
        return bench_daemon.offline_run(model, args.cameras, args.frames, run_args, threshold, workdir, hw)
    finally:
        sys.setswitchinterval(before)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="exported ONNX graph; default: random-weight reduced student")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--frames", type=int, default=64, help="frames per camera per run")
    ap.add_argument("--frames-at", default="1080p", choices=sorted(bench_daemon.FRAME_SETTINGS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=str(HERE / "results" / "levers.json"))
    args = ap.parse_args(argv)
    claim_out_or_exit(args.out, "levers")  # before the runs: a user's file at --out is kept
    load_before = os.getloadavg()[0]
    base = argparse.Namespace(threads=None, spinning=None, spin_us=None, spin_after_run=None, max_batch=8,
                              max_wait_ms=5.0, texture="procedural", frame_size=320, pool=8)
    names = args.variants.split(",")
    fps: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = Path(args.model) if args.model else bench_daemon.default_model(256, 0)[0]
        synth = bench_daemon.SyntheticSection(texture="procedural", size=320, pool=8, defect_rate=0.1)
        threshold = bench_daemon.pick_threshold(model, synth, None)
        hw = bench_daemon.FRAME_SETTINGS[args.frames_at]
        for r in range(args.rounds):
            for name in names:
                run_args = argparse.Namespace(**{**vars(base), **VARIANTS[name]})
                run = run_variant(model, args, run_args, threshold, workdir, hw)
                assert run["lost"] == 0, run
                fps[name].append(run["throughput_fps"])
                cpu[name].append(run["cpu"]["percent_of_one_core"])
                print(f"round {r} {name}: {run['throughput_fps']} frames/s", flush=True)
    base_fps = statistics.median(fps["baseline"]) if "baseline" in fps else None
    result = {
        "benchmark": "levers", "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {"cameras": args.cameras, "frames_per_camera": args.frames, "frames_at": args.frames_at,
                     "rounds": args.rounds, "cpus": os.cpu_count(),
                     "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "variants": {n: {"fps": v, "median_fps": statistics.median(v),
                         "ratio_to_baseline": round(statistics.median(v) / base_fps, 3) if base_fps else None,
                         "cpu_percent_of_one_core_last": cpu[n][-1]} for n, v in fps.items()},
    }
    write_out(args.out, "levers", result)
    for n, v in result["variants"].items():
        print(f"{n:18s} median {v['median_fps']:.1f} frames/s, ratio to baseline {v['ratio_to_baseline']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
