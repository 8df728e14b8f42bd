"""Fixtures for the daemon tests: the model and a free endpoint (helpers: ``pipeline_support.py``).

``tiny_model`` is the single place that makes the model the pipeline tests run
on. Until real exported models exist it is a small real ONNX graph with the
exported models' exact I/O contract (uint8 NHWC ``images`` in; ``score`` (N,)
and ``anomaly_map`` (N, 1, h, w) float32 out) and a real sidecar: the map is the
local deviation of the grey level from a blurred mean, so an injected defect
really scores high. ``build_tiny_model`` is importable on its own
(tests/backends/test_onnxruntime.py loads it from this file).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SIZE = 64  # model input (square); the map is half of it


def build_tiny_model(out_dir: str | Path, size: int = TINY_SIZE, name: str = "tiny") -> Path:
    """Export the tiny anomaly graph + sidecar into ``out_dir``; return the ``.onnx`` path (needs torch)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from inspector.artifacts.model_card import write_sidecar
    from tiny_graphs import sidecar_for

    class TinyAnomaly(nn.Module):
        def forward(self, images: torch.Tensor):
            x = images.permute(0, 3, 1, 2).float() / 255.0
            gray = x.mean(dim=1, keepdim=True)
            blur = F.avg_pool2d(gray, 9, stride=1, padding=4, count_include_pad=False)
            amap = F.avg_pool2d((gray - blur).abs(), 2)
            return amap.amax(dim=(1, 2, 3)), amap

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    torch.onnx.export(
        TinyAnomaly().eval(), (example,), str(onnx_path), dynamo=False, opset_version=17,
        input_names=["images"], output_names=["score", "anomaly_map"],
        dynamic_axes={"images": {0: "N"}, "score": {0: "N"}, "anomaly_map": {0: "N"}},
    )
    write_sidecar(sidecar_for(name, size, size, {"fp32": onnx_path}, map_size=(size // 2, size // 2)),
                  out_dir / f"{name}.json")
    return onnx_path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Path of the exported test model (FP32 ONNX with its sidecar beside it)."""
    pytest.importorskip("torch")
    return build_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def endpoint() -> str:
    from pipeline_support import free_port

    return f"tcp://127.0.0.1:{free_port()}"
