"""The ONNX opsets the exporter writes: one home for the range that ``export --opset`` accepts and
:func:`inspector.deploy.export.export_model` checks (no torch here, so the command line can read it).

The newest is the installed ``onnx`` package's (``onnx.defs.onnx_opset_version()``: the checker refuses a
newer one); onnx is imported only when a range is asked for.
"""

from __future__ import annotations

DEFAULT_OPSET = 18  # ONNX Runtime ≥ 1.14, TensorRT 10.x and 11.x
MIN_OPSET = 18  # the dynamo exporter writes opset 18 when asked for less, and onnx cannot convert Pad down


def newest_opset() -> int:
    """The newest opset the installed onnx package knows (28 for onnx 1.23)."""
    import onnx

    return onnx.defs.onnx_opset_version()
