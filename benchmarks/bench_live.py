"""Latency under live load: synthetic live cameras at a fixed frame rate, end-to-end capture → publish.

    python benchmarks/bench_live.py --model export/rs-brick.onnx
    python benchmarks/bench_live.py --quick          # no --model: exports a random-weight reduced student

Live cameras keep only their newest frame: a frame the pipeline has not taken
before the next one arrives is overwritten and counted as dropped. The script
first measures the bare backend's throughput at ``max_batch`` (the capacity),
then runs the daemon in-process (as ``bench_daemon.py`` does) at a sweep of
offered loads, each a fraction of that capacity split evenly over
``--cameras`` cameras paced at ``load × capacity / cameras`` FPS each (or at
the explicit ``--fps`` values). Per point: frames captured, frames dropped,
events a real ZeroMQ subscriber received, and the capture → publish latency
p50/p99/max of those events (from the events' own stage stamps). The first
point with drops above ``--drop-tolerance`` is reported as where drops start
(cameras × FPS). JSON to ``benchmarks/results/live.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_result_or_exit, percentiles, write_result  # noqa: E402


def live_config(model: Path, cameras: int, fps: float, frames: int, threshold: float, args, endpoint: str):
    """Daemon config: ``cameras`` synthetic live cameras at ``fps`` each, ``frames`` frames each."""
    from inspector.pipeline.config import daemon_config

    synth = {"texture": args.texture, "size": args.frame_size, "defect_rate": 0.1, "pool": args.pool}
    return daemon_config({
        "model": {"path": str(model), "threads": args.threads},
        "thresholds": {"image": threshold},
        "cameras": [{"name": f"cam{i}", "source": "synthetic", "mode": "live", "fps": fps, "max_frames": frames,
                     "synthetic": {**synth, "seed": i}} for i in range(cameras)],
        "batching": {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "queue_size": 2 * args.max_batch},
        "publish": {"endpoint": endpoint, "results": True, "stats_interval_s": 1.0},
        "drift": {"enabled": False},
    })


def collect(sub, done: threading.Event, out: list) -> None:
    """Append each result event's capture→publish latency (ms) until ``done`` and the socket is quiet."""
    while True:
        event = sub.recv(timeout=0.5)
        if event is None:
            if done.is_set():
                return
            continue
        out.append(float(event.latency_ms["total"]))


def run_point(model: Path, cameras: int, fps: float, threshold: float, args, workdir: Path) -> dict:
    """One offered load: run the daemon until every camera has delivered its frames; return the figures."""
    from inspector.client import Subscriber
    from inspector.integrations.runtime import make_daemon

    frames = max(2, round(fps * args.seconds))
    endpoint = f"ipc://{workdir}/live-{cameras}-{fps:.3f}.sock"
    daemon = make_daemon(live_config(model, cameras, fps, frames, threshold, args, endpoint))
    daemon.setup()
    for source in daemon.sources.values():  # generate the synthetic pools before the clock starts
        source.open()
    latencies: list[float] = []
    done = threading.Event()
    sub = Subscriber(endpoint, ["v1/result"])
    if not daemon.publisher.wait_for_subscription(5.0):
        raise RuntimeError(f"subscriber did not connect to {endpoint} within 5 s")
    reader = threading.Thread(target=collect, args=(sub, done, latencies), daemon=True)
    reader.start()
    daemon.start()
    code = daemon.wait()
    done.set()
    reader.join(30)
    sub.close()
    return summarize_point(cameras, fps, frames, code, latencies, daemon.final_stats or {})


def summarize_point(cameras: int, fps: float, frames: int, code: int, latencies: list[float], stats: dict) -> dict:
    """The JSON row of one load point from the subscriber's latencies and the daemon's final counters."""
    totals = stats.get("totals", {})
    drops = {k: v for k, v in totals.items() if "drop" in k and v}
    for cam, counters in (stats.get("cameras") or {}).items():  # per-camera counters, e.g. cam0.dropped_live
        drops.update({f"{cam}.{k}": v for k, v in counters.items() if "drop" in k and v})
    live_drops = sum(v for k, v in drops.items() if k.endswith("dropped_live"))
    offered = cameras * frames
    return {"cameras": cameras, "fps_per_camera": round(fps, 3), "offered_fps": round(cameras * fps, 3),
            "frames_offered": offered, "events_received": len(latencies), "exit_code": code,
            "dropped": int(sum(drops.values())), "dropped_live": int(live_drops),
            "drop_fraction": round(sum(drops.values()) / offered, 4) if offered else 0.0,
            "drops": drops, "mean_batch": totals.get("mean_batch"),
            "e2e_ms": percentiles(latencies) if latencies else None}


def drops_start(points: list[dict], tolerance: float) -> dict | None:
    """The lowest offered load whose drop fraction exceeds ``tolerance`` (None: no drops in the sweep)."""
    for p in sorted(points, key=lambda p: p["offered_fps"]):
        if p["drop_fraction"] > tolerance:
            return {"cameras": p["cameras"], "fps_per_camera": p["fps_per_camera"], "offered_fps": p["offered_fps"],
                    "drop_fraction": p["drop_fraction"]}
    return None


def prepare(args, workdir: Path) -> tuple[Path, float, dict]:
    """Model graph, decision threshold and bare-backend capacity (frames/s at max_batch)."""
    import bench_daemon
    from inspector.pipeline.config import SyntheticSection

    model = Path(args.model) if args.model else bench_daemon.default_model(args.model_size, 0)[0]
    synth = SyntheticSection(texture=args.texture, size=args.frame_size, pool=args.pool, defect_rate=0.1)
    batch, _ = bench_daemon.model_batch(model, synth, args.max_batch)
    threshold = bench_daemon.pick_threshold(model, synth, args.threads)
    bare = bench_daemon.bare_backend(model, batch, args.threads, args.bare_seconds)
    return model, threshold, bare


def load_points(args, capacity: float) -> list[float]:
    """FPS per camera of each point: the explicit --fps list, or load fractions of the capacity."""
    if args.fps:
        return [float(f) for f in args.fps.split(",")]
    return [float(f) * capacity / args.cameras for f in args.loads.split(",")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="exported ONNX graph (sidecar beside it); default: random-weight reduced student")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter load points")
    ap.add_argument("--cameras", type=int, default=2, help="live cameras (default 2)")
    ap.add_argument("--loads", default=None,
                    help="offered load as fractions of the bare capacity (default 0.25,0.5,0.75,1.0,1.25,1.5; "
                         "quick 0.5,1.5)")
    ap.add_argument("--fps", default=None, help="explicit FPS per camera, comma list (overrides --loads)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per load point (default 15, quick 3)")
    ap.add_argument("--drop-tolerance", type=float, default=0.0, help="drop fraction that counts as 'drops start'")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all cores)")
    ap.add_argument("--frame-size", type=int, default=320)
    ap.add_argument("--texture", default="procedural")
    ap.add_argument("--pool", type=int, default=8)
    ap.add_argument("--model-size", type=int, default=256, help="input size of the default model")
    ap.add_argument("--bare-seconds", type=float, default=None, help="bare-backend timing (default 5, quick 2)")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    ap.add_argument("--name", default="live")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    args.loads = args.loads or ("0.5,1.5" if args.quick else "0.25,0.5,0.75,1.0,1.25,1.5")
    args.seconds = args.seconds or (3.0 if args.quick else 15.0)
    args.bare_seconds = args.bare_seconds or (2.0 if args.quick else 5.0)
    if args.cameras < 1:
        ap.error("--cameras must be ≥ 1")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="inspector-live-") as tmp:
        model, threshold, bare = prepare(args, Path(tmp))
        print(f"bare backend: {bare['fps']} frames/s at batch {args.max_batch}", flush=True)
        points = []
        for fps in load_points(args, bare["fps"]):
            point = run_point(model, args.cameras, fps, threshold, args, Path(tmp))
            points.append(point)
            e2e = point["e2e_ms"] or {}
            print(f"{args.cameras} × {fps:.2f} FPS: {point['dropped']} dropped of {point['frames_offered']}, "
                  f"e2e p50 {e2e.get('p50', float('nan')):.1f} ms p99 {e2e.get('p99', float('nan')):.1f} ms "
                  f"max {e2e.get('max', float('nan')):.1f} ms", flush=True)
    settings = {"cameras": args.cameras, "seconds_per_point": args.seconds, "max_batch": args.max_batch,
                "max_wait_ms": args.max_wait_ms, "threads": args.threads, "frame_size": args.frame_size,
                "model": args.model or "random-weight reduced_student (exported by the benchmark)",
                "model_size": args.model_size, "drop_tolerance": args.drop_tolerance, "quick": args.quick,
                "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    path = write_result(args.name, {"settings": settings, "bare_backend": bare, "points": points,
                                    "drops_start": drops_start(points, args.drop_tolerance)}, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
