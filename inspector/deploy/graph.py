"""torch → ONNX for one model in one precision (the dynamo exporter, quietly).

The exporter is ``torch.onnx.export(..., dynamo=True)``: it captures the model
with ``torch.export`` (so a dynamic batch dimension is proven dynamic, not just
traced at one size), and its onnxscript optimiser folds constants and BatchNorm
into the convolutions. Its graph is the cleaner one: at 64×64 the reduced
student exports to ~110 nodes with no Constant/Identity chains, where the legacy
TorchScript exporter produces ~330 nodes and a wrong symbolic output shape
(``anomaly_map`` as [batch, 1, batch, ?]). The legacy exporter is deprecated in
torch 2.9+, so it is not offered as a fallback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from inspector.contract import INPUT_NAME, OUTPUT_NAMES
from inspector.errors import ExportError

log = logging.getLogger(__name__)

BATCH_DIM = "batch"
MAX_BATCH = 4096  # the symbolic batch dimension's upper bound during capture (not a runtime limit)
EXAMPLE_BATCH = 2  # capture with N=2 so the batch is not specialised to 1


@contextlib.contextmanager
def _quiet_exporter():
    """Route the exporter's progress prints, log lines and warnings to the debug log."""
    out = io.StringIO()
    noisy = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in noisy]
    for lg in noisy:
        lg.setLevel(logging.ERROR)
    with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for lg, level in zip(noisy, levels):
                lg.setLevel(level)
            for line in out.getvalue().splitlines():
                log.debug("exporter: %s", line)
            for w in caught:
                log.debug("exporter warning: %s", w.message)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


# node metadata the exporter fills with the Python stack that made each node: absolute paths of the installed
# package and line numbers (534 in the reduced student's graph)
SOURCE_LOCATION_KEYS = ("pkg.torch.onnx.stack_trace",)


def _drop_source_locations(model) -> None:
    """Remove :data:`SOURCE_LOCATION_KEYS` from every node of ``model`` (an ``onnx_ir`` model, in place).

    With them the graph's bytes, so its sha256, depended on where inspector was installed and on the line numbers
    of its source: the same checkpoint exported from another checkout (or after an edit that changed no
    computation) was another model, whose calibration and engine cards no longer matched it ("calibration was
    made for another model"), and the deployed file carried the build machine's paths."""
    functions = getattr(model, "functions", {}) or {}
    for graph in [*model.graphs(), *functions.values()]:
        for node in graph:
            for key in SOURCE_LOCATION_KEYS:
                node.metadata_props.pop(key, None)


def export_graph(model: nn.Module, path: str | Path, height: int, width: int, opset: int) -> None:
    """Export ``model`` (eval mode, in whatever compute dtype it holds) to ``path``.

    Input ``images`` uint8 [batch, height, width, 3]; outputs ``score`` [batch] and
    ``anomaly_map`` [batch, 1, h, w]. Raises ExportError with the exporter's first
    line when capture or translation fails; OSError naming ``path`` when the graph cannot be written (a full
    disk was "torch.onnx export failed").
    """
    path = Path(path)
    example = torch.randint(0, 256, (EXAMPLE_BATCH, height, width, 3), dtype=torch.uint8,
                            generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim(BATCH_DIM, min=1, max=MAX_BATCH)
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                model.eval(), (example,), None, dynamo=True, opset_version=opset,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                dynamic_shapes=({0: batch},), optimize=True, verify=False,
                external_data=False, report=False,
            )
    except ExportError:
        raise
    except Exception as exc:  # the exporter raises many types; the user needs one line
        raise ExportError(f"{path}: torch.onnx export failed ({_first_line(exc)})") from exc
    _drop_source_locations(program.model)
    try:
        with _quiet_exporter():
            program.save(str(path), external_data=False)
    except OSError as exc:  # the disk, not the exporter: told as any output's storage error, naming the file
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
