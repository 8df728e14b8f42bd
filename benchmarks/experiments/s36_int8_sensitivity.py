"""Session 36: which convolutions cost the INT8 graph its accuracy (benchmarks/README.md, Session 36).

Quantizes subsets of an exported model's feature convolutions with quantize's own quantizer settings
(7-bit per-channel weights, symmetric per-tensor minmax activations) and prints verify's two figures
against the FP32 graph on the dataset's test split (max |Δscore| / max |score_ref|; worst image's p99
|Δmap| / max |map_ref|).

    python benchmarks/experiments/s36_int8_sensitivity.py export/rs-brick.onnx data/brick [--images 64]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from inspector.artifacts import input_spec
from inspector.artifacts.model_card import read_sidecar, sidecar_path_for
from inspector.data.datasets import load_batch
from inspector.deploy.quantize import (_run_quantizer, calibration_images, make_reader, name_nodes, precision_figures,
                                       separable_nodes, split_quantizable)
from inspector.evaluation.verify import reference_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32")
    parser.add_argument("data")
    parser.add_argument("--images", type=int, default=64, help="calibration images (quantize's default: 256)")
    args = parser.parse_args()
    spec = input_spec(read_sidecar(sidecar_path_for(args.fp32)))
    model = name_nodes(onnx.load(args.fp32))
    convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    separable = separable_nodes(model)
    feature = [n for n in split_quantizable(model)[0]] + sorted(separable)  # every convolution quantize may touch
    images, _, _ = load_batch(reference_samples(args.data), spec.height, spec.width, spec.resize, spec.bit_depth,
                              spec.downscale)

    def run(path) -> tuple[np.ndarray, np.ndarray]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = [session.run(None, {"images": images[i:i + 8]}) for i in range(0, len(images), 8)]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    ref = run(args.fp32)
    paths = calibration_images(args.data, args.images)
    weight = {n: convs[n].input[1] for n in feature}
    depthwise = {n for n in separable if "depthwise" in weight[n] or _group(convs[n]) > 1}
    trials = {
        "all feature convolutions (before)": feature,
        "teacher only": [n for n in feature if weight[n].startswith("teacher")],
        "student only": [n for n in feature if weight[n].startswith("student")],
        "depthwise FP32": [n for n in feature if n not in depthwise],
        "depthwise + projections FP32 (now)": [n for n in feature if n not in separable],
    }
    for label, nodes in trials.items():
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "m.int8.onnx"
            _run_quantizer(model, out, make_reader(paths, spec, 8), list(nodes), [n for n in convs if n not in nodes],
                           ("Conv",), "minmax", 7)
            cand = run(out)
        score, amap = precision_figures(cand[0], ref[0], cand[1], ref[1])
        print(f"{label:40s} {len(nodes):3d} int8 convolutions: score {score:.3f}, map {amap:.3f}", flush=True)


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


if __name__ == "__main__":
    main()
