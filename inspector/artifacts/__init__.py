"""Typed homes for every file that crosses a stage (process or machine boundary).

============================  ==========================================  ==============================
artifact                      file                                        defined in
============================  ==========================================  ==============================
model card                    ``export/<name>.json``                      :mod:`.model_card`
engine card                   ``engines/<name>.<precision>.json``         :mod:`.engine_card`
calibration (thresholds)      ``calibration/<name>.yaml``                 :mod:`inspector.artifacts.thresholds`
calibration's data section    ``data:`` in the calibration file           :mod:`.calibration_data`
checkpoint                    ``runs/<run>/best.pt``                      :mod:`.checkpoint`
run config                    ``runs/<run>/config.yaml``, in checkpoints  :mod:`.run_config`
============================  ==========================================  ==============================

A model is rebuilt from a checkpoint by :mod:`inspector.models.checkpoint` (it
needs the model registry, which sits above this package).

Each is a frozen dataclass loaded through the validated loader the configs use
(:func:`inspector.config.from_dict`); v1 files load unchanged (unknown keys are
ignored, missing newer keys take the value that v1 meant).

:func:`input_spec` is the ONE resolver of how frames become model input: every
backend's ``input_spec`` and the daemon come from it, and predict, verify,
calibrate, bench and demo read ``backend.input_spec`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inspector.artifacts.engine_card import ENGINE_KIND, parse_engine_card, read_engine_sidecar
from inspector.artifacts.model_card import parse_model_card, read_sidecar, sidecar_path_for
from inspector.contract import InputSpec

ENGINE_SUFFIXES = (".plan", ".engine")


def input_spec(card: dict[str, Any], where: str = "sidecar") -> InputSpec:
    """The :class:`InputSpec` a model card or an engine card (its embedded model card) declares.

    ``max_batch``: an engine card's profile maximum; None for a model card (the
    backend narrows it to a graph's static batch). Raises ExportError (one line
    naming ``where``) when the card does not match its schema.
    """
    if isinstance(card, dict) and card.get("kind") == ENGINE_KIND:
        return parse_engine_card(card, where).input_spec
    return parse_model_card(card, where).input.spec()


def read_card(model_path: str | Path) -> dict[str, Any]:
    """The card describing ``model_path``: an engine's card (``.plan``/``.engine``) or a graph's model card."""
    model_path = Path(model_path)
    if model_path.suffix.lower() in ENGINE_SUFFIXES:
        return read_engine_sidecar(model_path)
    return read_sidecar(sidecar_path_for(model_path))


def missing_model_hint(model_path: str | Path) -> str:
    """``"; make it with: inspector …"`` for a model file that is not there at all (no file, folder or link), the
    command that makes one of its kind, else ''. The daemon said "export a model with 'inspector export'" of a
    missing TensorRT engine too (``run`` before ``build``), and predict, calibrate, verify and bench said only
    "engine file not found"; an engine is built on the GPU box, an INT8 graph is quantized, the rest exported."""
    from inspector.artifacts.model_card import split_graph_name

    path = Path(model_path)
    if path.name == "" or path.exists() or path.is_symlink():
        return ""
    if path.suffix.lower() in ENGINE_SUFFIXES:
        return f"; make it with: inspector build GRAPH.onnx --out {path} (on the box with the GPU)"
    base, precision = split_graph_name(path)
    if precision == "int8":
        return f"; make it with: inspector quantize {base}.onnx --calibration DIR --out {path}"
    return f"; make it with: inspector export RUN --out {base}"


def model_card_of(card: dict[str, Any]) -> dict[str, Any]:
    """The model card itself: an engine card's embedded ``model``, or ``card`` unchanged."""
    if isinstance(card, dict) and card.get("kind") == ENGINE_KIND:
        return card["model"]
    return card
