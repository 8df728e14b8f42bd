"""The engine card (the "engine sidecar"): ``engines/x.fp16.json`` beside ``engines/x.fp16.plan``.

Written by ``inspector build`` (:mod:`inspector.deploy.engine_build`), read by the
TensorRT backend and the daemon. It embeds the model card the engine was built
from under ``model``, so the engine's input spec (size, resize policy, bit
depth, downscale method) is the model's, and records the TensorRT version, GPU,
profile and file hashes the runtime checks before loading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inspector.artifacts.card_loading import parse_card, validate_card
from inspector.artifacts.model_card import CardGraph, CardInput, CardModel, CardTraining
from inspector.config import bounded, load_json
from inspector.contract import InputSpec
from inspector.errors import BackendError, InspectorError
from inspector.outputs import write_whole

ENGINE_SCHEMA_VERSION = 1
ENGINE_KIND = "tensorrt-engine"


@dataclass(frozen=True)
class EngineModel:
    """The model card an engine card embeds: its input is what the engine was built for."""

    _unknown_keys = "ignore"
    input: CardInput
    model: CardModel = field(default_factory=CardModel)
    graphs: dict[str, CardGraph] = field(default_factory=dict)
    training: CardTraining | None = None  # calibrate reads its validation file names through the engine card


@dataclass(frozen=True)
class EngineProfile:
    _unknown_keys = "ignore"
    min_batch: int = bounded(1, ge=1, le=65536)
    opt_batch: int | None = bounded(None, ge=1, le=65536)
    max_batch: int | None = bounded(None, ge=1, le=65536)


@dataclass(frozen=True)
class EngineCard:
    """A TensorRT engine's card: the parts its readers rely on (other keys are informative)."""

    _unknown_keys = "ignore"
    kind: Literal["tensorrt-engine"]
    schema_version: int = bounded(ge=1, le=1000)  # compared with the reader's version by the engine check
    model: EngineModel  # the model card the engine was built from
    engine: dict[str, Any] = field(default_factory=dict)
    onnx: dict[str, Any] = field(default_factory=dict)
    tensorrt: dict[str, Any] = field(default_factory=dict)
    gpu: dict[str, Any] = field(default_factory=dict)
    io: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    profile: EngineProfile = field(default_factory=EngineProfile)
    precision: str = "fp32"

    @property
    def input_spec(self) -> InputSpec:
        """The embedded model card's input, limited to the profile's max batch."""
        return self.model.input.spec(self.profile.max_batch)


def parse_engine_card(data: Any, where: str) -> EngineCard:
    """The typed :class:`EngineCard` of ``data`` (and the model card it embeds); one-line ExportError."""
    return parse_card(EngineCard, data, where, "engine sidecar")


def validate_engine_card(data: Any, where: str) -> dict[str, Any]:
    """Check an engine card; returns it unchanged."""
    return validate_card(EngineCard, data, where, "engine sidecar")


def engine_sidecar_path(engine_path: str | Path) -> Path:
    """``engines/x.fp16.plan`` → ``engines/x.fp16.json``."""
    return Path(engine_path).with_suffix(".json")


def verify_report_path(candidate: str | Path) -> Path:
    """The precision gate's report on ``candidate`` (``inspector verify``, ``build --reference-data``):
    ``engines/x.fp16.plan`` → ``engines/x.fp16.verify.json``; a rebuilt engine removes it with the engine it
    judged (``deploy.engine_build.engine_paths``)."""
    candidate = Path(candidate)
    return candidate.with_name(candidate.name[: -len(candidate.suffix)] + ".verify.json")


def read_engine_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """Load and check an engine's card; one-line BackendError when it is missing, unreadable or invalid."""
    path = engine_sidecar_path(engine_path)
    if not path.is_file():
        raise BackendError(f"{engine_path}: engine sidecar {path.name} not found; "
                           f"rebuild with: inspector build <model>.onnx --out {engine_path}")
    data = load_json(path, "engine sidecar", BackendError)
    if data.get("kind") != ENGINE_KIND:
        raise BackendError(f"{path}: not a TensorRT engine sidecar (kind {str(data.get('kind'))[:40]!r})")
    try:
        return validate_engine_card(data, str(path))
    except InspectorError as exc:
        raise BackendError(str(exc)) from None


def write_engine_sidecar(data: dict[str, Any], engine_path: str | Path) -> Path:
    """Write an engine card beside ``engine_path`` (pretty JSON), whole or not at all
    (:func:`inspector.outputs.write_whole`); returns its path. OSError when it cannot be written."""
    path = engine_sidecar_path(engine_path)
    write_whole(path, (json.dumps(data, indent=2) + "\n").encode())
    return path
