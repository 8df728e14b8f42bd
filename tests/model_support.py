"""Checks shared by the model tests."""

import numpy as np
import onnxruntime as ort
import torch


def assert_fp32_graph_agrees(model, tmp_path, batch: torch.Tensor) -> None:
    """Export ``model`` as one FP32 graph and check ONNX Runtime's score and map against torch's on ``batch``."""
    from inspector.deploy import export_model

    result = export_model(model.eval(), tmp_path / "model", precisions=("fp32",))
    session = ort.InferenceSession(str(result["fp32"]), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    with torch.no_grad():
        score, amap = model(batch)
    names = [o.name for o in session.get_outputs()]
    np.testing.assert_allclose(outputs[names.index("score")], score.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(outputs[names.index("anomaly_map")], amap.numpy(), rtol=1e-3, atol=1e-4)
