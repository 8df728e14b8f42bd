"""Daemon benchmark: 1, 2 and 4 synthetic cameras in offline mode on the ONNX Runtime backend.

Measures, in one run:

* the bare backend's throughput (frames/s at ``max_batch``, already-preprocessed
  uint8 batches, no pipeline), before and after the daemon runs;
* for each camera count: the daemon's end-to-end throughput (first capture →
  last publish, from the events a real ZeroMQ subscriber received), the ratio
  pipeline / bare backend (the pipeline's overhead), the mean batch size, and
  per-stage p50/p99 latencies from the daemon's own histograms.

Offline sources never wait, so frames queue in front of the batcher: the
``preprocessed`` stage (queued → preprocessed) includes that backlog wait.

    python benchmarks/bench_daemon.py --model export/rs-brick.onnx
    python benchmarks/bench_daemon.py --quick          # no --model: exports a random-weight reduced student

Writes ``benchmarks/results/daemon.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inspector.backends import load_backend  # noqa: E402
from inspector.client import Subscriber  # noqa: E402
from inspector.pipeline.config import daemon_config  # noqa: E402
from inspector.pipeline.daemon import Daemon  # noqa: E402
from inspector.pipeline.preprocess import Preprocessor  # noqa: E402
from inspector.pipeline.sources import make_synthetic_pool  # noqa: E402
from inspector.pipeline.config import SyntheticSection  # noqa: E402


def default_model(workdir: Path, size: int) -> Path:
    """A random-weight reduced student exported like a real one (same graph, same cost; needs torch)."""
    from inspector.exporting import export_model
    from inspector.models.registry import build_model, parse_model_config

    cfg = parse_model_config({"name": "reduced_student", "image_size": [size, size], "teacher_weights": "random"})
    return Path(export_model(build_model(cfg).eval(), workdir / "rs-random", precisions=["fp32"])["fp32"])


def bare_backend(model: Path, batch: np.ndarray, threads: int | None, seconds: float) -> dict:
    backend = load_backend(model, threads=threads)
    try:
        for _ in range(3):
            backend.infer(batch)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            backend.infer(batch)
            n += 1
        elapsed = time.perf_counter() - start
    finally:
        backend.close()
    return {"batch": int(batch.shape[0]), "calls": n, "fps": round(n * batch.shape[0] / elapsed, 2),
            "ms_per_batch": round(elapsed / n * 1e3, 3)}


def model_batch(model: Path, synth: SyntheticSection, max_batch: int) -> tuple[np.ndarray, list[np.ndarray]]:
    backend = load_backend(model, threads=1)
    spec, policy = backend.input_spec, backend.sidecar["input"].get("resize", "square")
    backend.close()
    good, bad = make_synthetic_pool(synth, "bench")
    frames = good + [b for b, _ in bad]
    batch = np.zeros((max_batch, spec.height, spec.width, 3), np.uint8)
    pre = Preprocessor(spec, policy)
    for i in range(max_batch):
        pre.into(frames[i % len(frames)], batch[i])
    return batch, good


def pick_threshold(model: Path, synth: SyntheticSection, threads: int | None) -> float:
    """p90 of the good synthetic frames' scores: ~10 % NG, so payload encoding is part of the cost."""
    backend = load_backend(model, threads=threads)
    spec, policy = backend.input_spec, backend.sidecar["input"].get("resize", "square")
    good, _ = make_synthetic_pool(synth, "bench")
    pre = Preprocessor(spec, policy)
    batch = np.zeros((len(good), spec.height, spec.width, 3), np.uint8)
    for i, g in enumerate(good):
        pre.into(g, batch[i])
    scores = np.concatenate([backend.infer(batch[i:i + 8]).scores.copy() for i in range(0, len(good), 8)])
    backend.close()
    return float(np.percentile(scores, 90))


def run_daemon(model: Path, cameras: int, frames: int, args, threshold: float, workdir: Path) -> dict:
    endpoint = f"ipc://{workdir}/bench-{cameras}.sock"
    synth = {"texture": args.texture, "size": args.frame_size, "defect_rate": 0.1, "pool": args.pool}
    cfg = daemon_config({
        "model": {"path": str(model), "threads": args.threads},
        "thresholds": {"image": threshold},
        "cameras": [{"name": f"cam{i}", "source": "synthetic", "mode": "offline", "max_frames": frames,
                     "synthetic": {**synth, "seed": i}} for i in range(cameras)],
        "batching": {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "queue_size": 2 * args.max_batch},
        "publish": {"endpoint": endpoint, "results": True, "stats_interval_s": 1.0},
        "drift": {"enabled": False},
    })
    daemon = Daemon(cfg)
    daemon.setup()
    for source in daemon.sources.values():  # generate the synthetic pools before the clock starts
        source.open()
    results: list = []
    sub = Subscriber(endpoint, ["v1/result"])
    done = threading.Event()

    def drain():
        while not done.is_set() or len(results) < cameras * frames:
            event = sub.recv(timeout=0.5)
            if event is None:
                if done.is_set():
                    return
                continue
            results.append((event.capture["monotonic_ns"], event.latency_ms["total"]))

    assert daemon.publisher.wait_for_subscription(5.0)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    daemon.start()
    code = daemon.wait()
    done.set()
    reader.join(30)
    sub.close()
    stats = daemon.final_stats
    first = min(t for t, _ in results)
    last = max(t + lat * 1e6 for t, lat in results)
    throughput = len(results) / ((last - first) / 1e9)
    stages = {s: {"p50": v["p50"], "p99": v["p99"]} for s, v in stats["latency_ms"].items() if v.get("n")}
    totals = stats["totals"]
    return {"cameras": cameras, "frames": cameras * frames, "events_received": len(results), "exit_code": code,
            "throughput_fps": round(throughput, 2), "mean_batch": totals.get("mean_batch"),
            "batches": totals.get("batches"), "ng_events": totals.get("published.defect", 0),
            "drops": {k: v for k, v in totals.items() if "drop" in k},
            "stages_ms": stages}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="exported ONNX graph (sidecar beside it); default: random-weight reduced student")
    parser.add_argument("--quick", action="store_true", help="fewer frames (CI / smoke)")
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--frames", type=int, help="frames per camera (default 400, --quick 48)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all cores)")
    parser.add_argument("--frame-size", type=int, default=320, help="synthetic frames are this size (resized to the model)")
    parser.add_argument("--texture", default="procedural", help="synthetic texture (procedural, brick, …)")
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--model-size", type=int, default=256, help="input size of the default model")
    parser.add_argument("--bare-seconds", type=float, help="timing of each bare-backend measurement (default 5, --quick 2)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "daemon.json"))
    args = parser.parse_args()
    frames = args.frames or (48 if args.quick else 400)
    bare_s = args.bare_seconds or (2.0 if args.quick else 5.0)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = Path(args.model) if args.model else default_model(workdir, args.model_size)
        synth = SyntheticSection(texture=args.texture, size=args.frame_size, pool=args.pool, defect_rate=0.1)
        batch, _ = model_batch(model, synth, args.max_batch)
        threshold = pick_threshold(model, synth, args.threads)
        bare_before = bare_backend(model, batch, args.threads, bare_s)
        print(f"bare backend: {bare_before['fps']} frames/s at batch {args.max_batch}", flush=True)
        runs = []
        for n in args.cameras:
            run = run_daemon(model, n, frames, args, threshold, workdir)
            runs.append(run)
            print(f"{n} camera(s): {run['throughput_fps']} frames/s end to end, mean batch {run['mean_batch']}, "
                  f"e2e p50 {run['stages_ms']['total']['p50']} ms p99 {run['stages_ms']['total']['p99']} ms",
                  flush=True)
        bare_after = bare_backend(model, batch, args.threads, bare_s)
        bare_fps = (bare_before["fps"] + bare_after["fps"]) / 2
        for run in runs:
            run["ratio_to_bare"] = round(run["throughput_fps"] / bare_fps, 3)
        backend = load_backend(model, threads=1)
        model_info = {"path": str(model) if args.model else "random-weight reduced_student (exported by the benchmark)",
                      "name": backend.sidecar["model"]["name"], "sha256": backend.sha256,
                      "input": [backend.input_spec.height, backend.input_spec.width], "precision": backend.precision}
        backend.close()

    import onnxruntime

    result = {
        "benchmark": "daemon", "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "onnxruntime": onnxruntime.__version__,
                    "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
        "model": model_info,
        "settings": {"frames_per_camera": frames, "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
                     "threads": args.threads, "frame_size": args.frame_size, "texture": args.texture,
                     "threshold": threshold, "results_topic": True, "quick": args.quick},
        "bare_backend": {"before": bare_before, "after": bare_after, "fps": round(bare_fps, 2)},
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for run in runs:
        print(f"{run['cameras']} camera(s): pipeline/bare = {run['ratio_to_bare']:.2f}")
    print(f"wrote {out}")
    return 0 if all(r["exit_code"] == 0 and r["events_received"] == r["frames"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
