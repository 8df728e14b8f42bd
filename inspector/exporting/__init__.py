"""torch → ONNX export: FP32 and strongly typed FP16 graphs plus their sidecar JSON.

(Named ``exporting`` so it is not confused with the top-level ``export/`` folder,
where the artifacts land.)

>>> from inspector.exporting import export_run
>>> export_run("runs/rs-brick", "export/rs-brick")    # doctest: +SKIP
{'fp32': PosixPath('export/rs-brick.onnx'), 'fp16': PosixPath('export/rs-brick.fp16.onnx'),
 'sidecar': PosixPath('export/rs-brick.json'), 'metadata': {...}}

Modules: :mod:`~inspector.exporting.graph` (the torch exporter call),
:mod:`~inspector.exporting.checks` (the graph contract, onnx only),
:mod:`~inspector.exporting.export` (orchestration and the sidecar).
"""

from inspector.exporting.checks import check_graph
from inspector.exporting.export import (DEFAULT_OPSET, PRECISIONS, export_model, export_run, graph_paths)

__all__ = ["DEFAULT_OPSET", "PRECISIONS", "check_graph", "export_model", "export_run", "graph_paths"]
