"""Replay a mixed batch order on a TensorRT engine with and without CUDA graphs; compare and time (JSON).

Usage: ``python scripts/gpu_replay.py ENGINE OUT.json [--order 1,4,1,3,4] [--rounds 50]``.
The daemon's batches vary in size, so each size's graph is replayed after
others ran (one execution context per captured size). Outputs with graphs must
equal plain enqueue bit for bit; the report holds per-size latency percentiles
for both modes and the number of captures that fell back to plain enqueue.
Exit 0 when equal and no capture failed, 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from inspector.backends import load_backend
from inspector.evaluation.bench import percentiles
from inspector.errors import InspectorError


def run(engine: str, order: list[int], rounds: int, cuda_graphs: bool) -> tuple[list, dict]:
    outputs, times = [], {n: [] for n in order}
    with load_backend(engine, cuda_graphs=cuda_graphs) as backend:
        spec = backend.input_spec
        batches = {n: np.random.default_rng(n).integers(0, 256, (n, spec.height, spec.width, spec.channels),
                                                       dtype=np.uint8) for n in set(order)}
        for _ in range(rounds):
            for n in order:
                start = time.perf_counter()
                result = backend.infer(batches[n])
                times[n].append((time.perf_counter() - start) * 1e3)
                if len(outputs) < len(order):
                    outputs.append((result.scores, result.maps))
        failures = getattr(backend, "graph_capture_failures", 0)
    return outputs, {"latency_ms": {str(n): percentiles(v[1:]) for n, v in times.items()},
                     "graph_capture_failures": failures}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine")
    parser.add_argument("json")
    parser.add_argument("--order", default="1,4,1,3,4")
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args(argv)
    order = [int(x) for x in args.order.split(",")]
    try:
        plain, plain_stats = run(args.engine, order, args.rounds, cuda_graphs=False)
        graphed, graph_stats = run(args.engine, order, args.rounds, cuda_graphs=True)
    except InspectorError as exc:
        print(f"gpu_replay: {exc}", file=sys.stderr)
        return 2
    equal = all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(plain, graphed))
    report = {"engine": args.engine, "order": order, "rounds": args.rounds, "graphs_equal_plain": equal,
              "plain": plain_stats, "cuda_graphs": graph_stats}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"replay {order} x{args.rounds}: graphs equal plain: {equal}; capture failures: "
          f"{graph_stats['graph_capture_failures']}")
    return 0 if equal and graph_stats["graph_capture_failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
