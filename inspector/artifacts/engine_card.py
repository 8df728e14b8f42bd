"""The engine card (the "engine sidecar"): ``engines/x.fp16.json`` beside ``engines/x.fp16.plan``.

Written by ``inspector build`` (:mod:`inspector.deploy.engine_build`), read by the
TensorRT backend and the daemon. It embeds the model card the engine was built
from under ``model``, so the engine's input spec (size, resize policy, bit
depth, downscale method) is the model's, and records the TensorRT version, GPU,
profile and file hashes the runtime checks before loading.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inspector.artifacts.card_loading import parse_card, validate_card
from inspector.artifacts.model_card import CardGraph, CardInput, CardModel, CardTraining
from inspector.config import bounded, load_json, not_a_file
from inspector.contract import InputSpec
from inspector.errors import BackendError, ConfigError, InspectorError
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

    def validate(self, where: str) -> None:
        """min_batch ≤ opt_batch ≤ max_batch, as TensorRT's optimisation profile (and ``build``) has them: a card
        edited to max_batch 2 with min_batch 8 passed, and the daemon batched to a size the engine never took."""
        given = [v for v in (self.min_batch, self.opt_batch, self.max_batch) if v is not None]
        if given != sorted(given):
            raise ConfigError(f"{where}: min_batch {self.min_batch} ≤ opt_batch {self.opt_batch} ≤ max_batch "
                              f"{self.max_batch} does not hold")


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


def engine_file_prefix(engine_path: str | Path) -> Path:
    """The path an engine's card, build log and precision report are named from (+ ``.json``, ``.build.log``,
    ``.verify.json``): the engine's path without its suffix (``engines/x.int8.plan`` → ``engines/x.int8``), or,
    beside the graph it was built from, with it (``export/x.int8.plan`` → ``export/x.int8.plan``).

    Why: without the suffix, an engine built beside its graph takes that graph's names. ``export/x.int8.json`` is
    the INT8 graph's own card and ``export/x.json`` the export's sidecar (both model cards, which build may not
    replace, so it refused ``--out export/x.int8.plan``), and ``export/x.fp16.verify.json`` the FP16 graph's
    precision report. So the longer prefix is used where the engine's card was written with it, or where no
    engine card holds the shorter name and a graph (``<prefix>.onnx``) or a model card (``<prefix>.json``) does;
    the shorter one everywhere else (the default ``engines/`` folder, and engines built before this rule).
    """
    engine = Path(engine_path)
    full, short = engine, engine.with_suffix("") if engine.suffix else engine
    if os.path.lexists(f"{full}.json"):
        return full
    kind = _card_kind(Path(f"{short}.json"))
    if kind == ENGINE_KIND:
        return short
    if kind == "model" or os.path.lexists(f"{short}.onnx"):
        return full
    return short


def _card_kind(path: Path) -> str | None:
    """ENGINE_KIND for an engine card, "model" for a model card (a JSON object with ``graphs``), None otherwise."""
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(1 << 24))  # cards are a few kB
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("kind") == ENGINE_KIND:
        return ENGINE_KIND
    return "model" if isinstance(data.get("graphs"), dict) else None


def engine_sidecar_path(engine_path: str | Path) -> Path:
    """``engines/x.fp16.plan`` → ``engines/x.fp16.json``; beside the graph, ``export/x.int8.plan`` →
    ``export/x.int8.plan.json`` (:func:`engine_file_prefix`)."""
    return Path(f"{engine_file_prefix(engine_path)}.json")


def verify_report_path(candidate: str | Path) -> Path:
    """The precision gate's report on ``candidate`` (``inspector verify``, ``build --reference-data``):
    ``engines/x.fp16.plan`` → ``engines/x.fp16.verify.json`` (an engine beside its graph: ``.plan.verify.json``,
    :func:`engine_file_prefix`); a rebuilt engine removes it with the engine it judged
    (``deploy.engine_build.engine_paths``)."""
    candidate = Path(candidate)
    if candidate.suffix in (".plan", ".engine"):
        return Path(f"{engine_file_prefix(candidate)}.verify.json")
    return candidate.with_name(candidate.name[: -len(candidate.suffix)] + ".verify.json")


def read_engine_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """Load and check an engine's card; one-line BackendError when it is missing, unreadable or invalid."""
    path = engine_sidecar_path(engine_path)
    if path.exists() and not path.is_file():  # a folder (or a pipe) is told as one, not "not found"
        raise BackendError(f"{engine_path}: {not_a_file(path, 'engine sidecar')}")
    if not path.is_file():
        short = Path(engine_path).with_suffix(".json")
        beside = f" ({short.name} beside it is a model card)" if path != short and _card_kind(short) == "model" else ""
        raise BackendError(f"{engine_path}: engine sidecar {path.name} not found{beside}; "
                           f"rebuild with: inspector build <model>.onnx --out {engine_path}")
    data = load_json(path, "engine sidecar", BackendError)
    if data.get("kind") != ENGINE_KIND:
        raise BackendError(f"{path}: not a TensorRT engine sidecar (kind {str(data.get('kind'))[:40]!r})")
    try:
        return validate_engine_card(data, str(path))
    except InspectorError as exc:
        raise BackendError(str(exc)) from None


def write_engine_sidecar(data: dict[str, Any], engine_path: str | Path, card_path: str | Path | None = None) -> Path:
    """Write an engine card at ``card_path`` (default: :func:`engine_sidecar_path` of ``engine_path``) (pretty JSON),
    whole or not at all (:func:`inspector.outputs.write_whole`); returns its path. OSError when it cannot be
    written."""
    path = Path(card_path) if card_path is not None else engine_sidecar_path(engine_path)
    write_whole(path, (json.dumps(data, indent=2) + "\n").encode())
    return path
