"""Probe: do the exported graph's intermediate tensors hold denormal floats on the daemon benchmark's frames?

Denormal (subnormal) float32 values, |x| < 1.18e-38 and not 0, make x86 arithmetic many times slower unless
flush-to-zero is on (ONNX Runtime: ``session.set_denormal_as_zero``), and they depend on the frames' content:
one camera's frames could then cost more than the bare benchmark's batch. Every float tensor of the graph is
exposed as an output and its denormals counted, for good and defective synthetic frames of several seeds.

    python benchmarks/probe_denormals.py [--model runs/bench-models/….onnx] [--seeds 0 1 2]

Writes ``results/probe-denormals.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_result_or_exit, write_result  # noqa: E402
from bench_daemon import MODEL_CACHE, _preprocessor, default_model  # noqa: E402


def all_tensors_session(path: Path):
    """An ONNX Runtime session of ``path`` whose outputs are every float tensor of the graph."""
    import onnx
    import onnxruntime as ort

    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    have = {o.name for o in graph.graph.output}
    for info in graph.graph.value_info:
        if info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and info.name not in have:
            graph.graph.output.append(info)
    return ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])


def count_denormals(session, batch: np.ndarray) -> dict:
    """Denormal and total float32 values over every output of ``session`` on ``batch``; the worst tensors."""
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(None, {session.get_inputs()[0].name: batch})
    tiny, total, worst = np.finfo(np.float32).tiny, 0, []
    for name, value in zip(names, outputs):
        if value.dtype != np.float32:
            continue
        total += value.size
        n = int(np.count_nonzero((value != 0) & (np.abs(value) < tiny)))
        if n:
            worst.append({"tensor": name, "denormals": n, "values": int(value.size)})
    worst.sort(key=lambda w: -w["denormals"])
    return {"denormals": sum(w["denormals"] for w in worst), "values": total, "worst": worst[:5]}


def main() -> int:
    from inspector.backends import load_backend
    from inspector.pipeline.config import SyntheticSection
    from inspector.pipeline.sources import make_synthetic_pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="exported graph (default: the daemon benchmark's seeded model)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--texture", default="brick")
    args = ap.parse_args()
    claim_result_or_exit("probe-denormals")  # before the work: a user's file at the name is kept
    model = args.model or default_model(256, 0, MODEL_CACHE)[0]
    backend = load_backend(model, threads=1)
    pre, spec = _preprocessor(backend), backend.input_spec
    backend.close()
    session, rows = all_tensors_session(model), []
    for seed in args.seeds:
        good, bad = make_synthetic_pool(SyntheticSection(texture=args.texture, size=spec.height, seed=seed), "probe")
        for label, frames in (("good", good[:8]), ("defective", [b for b, _ in bad[:8]])):
            batch = np.zeros((len(frames), spec.height, spec.width, spec.channels), np.uint8)
            for i, frame in enumerate(frames):
                pre.into(frame, batch[i])
            rows.append({"seed": seed, "frames": label, **count_denormals(session, batch)})
            print(f"seed {seed}, {label} frames: {rows[-1]['denormals']} denormals in {rows[-1]['values']} values")
    write_result("probe-denormals", {"model": str(model), "texture": args.texture, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
