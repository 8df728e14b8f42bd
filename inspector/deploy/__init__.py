"""Deployment: the checkpoint → graph → engine chain (torch → ONNX export, INT8 quantization, TensorRT build).

Its products are the artifacts of :mod:`inspector.artifacts` (model card, engine
card); running them is :mod:`inspector.backends`. Named ``deploy`` so it is not
confused with the repository's ``export/`` and ``engines/`` folders, where the
artifacts land.

>>> from inspector.deploy import export_run
>>> export_run("runs/rs-brick", "export/rs-brick")    # doctest: +SKIP
{'fp32': PosixPath('export/rs-brick.onnx'), 'fp16': PosixPath('export/rs-brick.fp16.onnx'),
 'sidecar': PosixPath('export/rs-brick.json'), 'metadata': {...}}

Modules: :mod:`~inspector.deploy.graph` (the torch exporter call),
:mod:`~inspector.deploy.checks` (the graph contract, onnx only),
:mod:`~inspector.deploy.export` (orchestration and the model card),
:mod:`~inspector.deploy.quantize` (ONNX Runtime static INT8),
:mod:`~inspector.deploy.engine_build` (TensorRT). The export names below load
lazily, so ``inspector build`` and ``inspector quantize`` run where torch is not
installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"check_graph": "checks", "DEFAULT_OPSET": "export", "PRECISIONS": "export", "export_model": "export",
         "export_run": "export", "graph_paths": "export"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'inspector.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"inspector.deploy.{_LAZY[name]}"), name)
