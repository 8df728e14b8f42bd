"""ONNX Runtime on CPU: one batch split across single-threaded sessions (``model.replicas``) against one
multi-threaded session, alternating, on the same ready batches.

    python benchmarks/bench_replicas.py [--model M.onnx] [--rounds 6] [--seconds 5] [--batch 8]

Per setting and round: frames/s and process CPU ms per frame (the load-insensitive figure: a busy or
noisy host stretches wall time, not the work done per frame). Settings alternate within each round so
that a drift in the host's speed falls on both alike. Writes ``results/replicas.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from _common import claim_out_or_exit, machine, write_out  # noqa: E402
from inspector.backends import load_backend  # noqa: E402
from inspector.backends.ort_replicas import usable_cores  # noqa: E402

# the daemon's defaults apart from the split (inspector/pipeline/config.py ModelSection)
SETTINGS = {"one session": {"spinning": True, "spin_after_run": False},
            "split": {"spinning": True, "spin_after_run": False, "replicas": None}}


def timed(backend, batch: np.ndarray, seconds: float) -> dict:
    """Frames/s and process CPU ms per frame of back-to-back ``infer`` calls on ``batch``."""
    for _ in range(3):
        backend.infer(batch)
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        backend.infer(batch)
        n += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    frames = n * len(batch)
    return {"fps": round(frames / wall, 2), "cpu_ms_per_frame": round(cpu / frames * 1e3, 3),
            "ms_per_batch": round(wall / n * 1e3, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(REPO / "runs" / "bench-models" / "rs-offline-256-seed0-halving.onnx"))
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "replicas.json"))
    args = p.parse_args()
    claim_out_or_exit(args.out, "replicas")  # before the runs: a user's file at --out is kept
    replicas = min(usable_cores(), args.batch)
    backends = {name: load_backend(args.model, **{k: (replicas if k == "replicas" else v) for k, v in opts.items()})
                for name, opts in SETTINGS.items()}
    spec = backends["split"].input_spec
    batch = np.random.default_rng(0).integers(0, 256, (args.batch, spec.height, spec.width, spec.channels), np.uint8)
    load_before = os.getloadavg()[0]
    rounds = [{name: timed(b, batch, args.seconds) for name, b in backends.items()} for _ in range(args.rounds)]
    for b in backends.values():
        b.close()
    median = {name: {k: float(np.median([r[name][k] for r in rounds])) for k in rounds[0][name]} for name in SETTINGS}
    result = {"benchmark": "replicas", "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {**machine(), "usable_cores": usable_cores(),
                          "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
              "model": args.model, "batch": args.batch, "replicas": replicas, "seconds": args.seconds,
              "rounds": rounds, "median": median,
              "split_over_one_session": {"fps": round(median["split"]["fps"] / median["one session"]["fps"], 3),
                                         "cpu_ms_per_frame": round(median["split"]["cpu_ms_per_frame"]
                                                                   / median["one session"]["cpu_ms_per_frame"], 3)}}
    write_out(args.out, "replicas", result)
    print(json.dumps({"median": median, "split_over_one_session": result["split_over_one_session"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
