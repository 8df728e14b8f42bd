"""The model sidecar: a JSON file beside exported graphs describing them.

``export/rs-brick.onnx``, ``export/rs-brick.fp16.onnx`` and
``export/rs-brick.int8.onnx`` share one sidecar ``export/rs-brick.json``. It
holds everything the daemon and the engine builder need: the model identity,
the input spec (uint8 NHWC RGB, fixed size, resize policy), the output spec,
and per graph its file name, precision and sha256, so a graph that does not
match its sidecar is refused. Thresholds never live here (see calibration).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inspector.backends.base import InputSpec
from inspector.config import bounded, from_dict, load_json
from inspector.errors import ConfigError, ExportError

SCHEMA_VERSION = 1
PRECISION_SUFFIXES = ("fp16", "int8")  # rs-brick.fp16.onnx → precision fp16


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def split_graph_name(path: str | Path) -> tuple[Path, str]:
    """``export/rs.fp16.onnx`` → (``export/rs``, ``fp16``); plain ``.onnx`` → fp32."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    for precision in PRECISION_SUFFIXES:
        if stem.endswith("." + precision):
            return path.with_name(stem[: -len(precision) - 1]), precision
    return path.with_name(stem), "fp32"


def sidecar_path_for(graph_path: str | Path) -> Path:
    """The sidecar JSON that describes ``graph_path``."""
    base, _ = split_graph_name(graph_path)
    return base.with_name(base.name + ".json")


# -- schema: what the readers of a sidecar rely on (other keys are informative and ignored) ----------------
@dataclass(frozen=True)
class SidecarInput:
    """``input``: the one layout every backend and the daemon's preprocessing produce."""

    _unknown_keys = "ignore"
    height: int = bounded(ge=1, le=8192)
    width: int = bounded(ge=1, le=8192)
    channels: Literal[3] = 3
    dtype: Literal["uint8"] = "uint8"
    layout: Literal["NHWC"] = "NHWC"
    color: Literal["RGB"] = "RGB"
    resize: str = "square"  # one of inspector.data.images.RESIZE_POLICIES
    name: str = "images"
    batch: int | str | None = bounded(None, ge=1, le=65536)  # a fixed batch, or the name of the dynamic axis
    bit_depth: int | None = bounded(None, ge=1, le=16)  # significant bits of 16-bit inputs (None: container's)

    def validate(self, where: str) -> None:
        from inspector.data.images import BIT_DEPTHS, RESIZE_POLICIES

        if self.resize not in RESIZE_POLICIES:
            raise ConfigError(f"{where}.resize: '{self.resize[:40]}' is not one of {list(RESIZE_POLICIES)}")
        if self.bit_depth is not None and self.bit_depth not in BIT_DEPTHS:
            raise ConfigError(f"{where}.bit_depth: {self.bit_depth} is not one of {list(BIT_DEPTHS)} or null")


@dataclass(frozen=True)
class SidecarGraph:
    """``graphs.<precision>``: one graph file and its sha256."""

    _unknown_keys = "ignore"
    file: str
    sha256: str

    def validate(self, where: str) -> None:
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ConfigError(f"{where}.sha256: expected 64 lowercase hex digits")


@dataclass(frozen=True)
class SidecarModel:
    _unknown_keys = "ignore"
    name: str = ""
    version: str | None = None


@dataclass(frozen=True)
class Sidecar:
    """The model sidecar's schema (checked by :func:`validate_sidecar`)."""

    _unknown_keys = "ignore"
    schema_version: Literal[1]
    model: SidecarModel
    input: SidecarInput
    outputs: dict[str, Any]
    graphs: dict[str, SidecarGraph]


def validate_sidecar(data: Any, where: str) -> dict[str, Any]:
    """Check ``data`` against :class:`Sidecar`; returns it unchanged. One-line ExportError otherwise."""
    if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
        raise ExportError(f"{where}: unsupported sidecar schema {data.get('schema_version')!r:.40}"
                          f" (expected {SCHEMA_VERSION})")
    try:
        from_dict(Sidecar, data, where=where)
    except ConfigError as exc:
        raise ExportError(f"sidecar {exc}") from None
    return data


@dataclass(frozen=True)
class EngineModel:
    """The model sidecar an engine sidecar embeds: its input is what the engine was built for."""

    _unknown_keys = "ignore"
    input: SidecarInput
    model: SidecarModel = field(default_factory=SidecarModel)
    graphs: dict[str, SidecarGraph] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineProfile:
    _unknown_keys = "ignore"
    min_batch: int = bounded(1, ge=1, le=65536)
    opt_batch: int | None = bounded(None, ge=1, le=65536)
    max_batch: int | None = bounded(None, ge=1, le=65536)


@dataclass(frozen=True)
class EngineSidecar:
    """A TensorRT engine's sidecar (written by ``inspector build``): the parts its readers rely on."""

    _unknown_keys = "ignore"
    kind: Literal["tensorrt-engine"]
    schema_version: int = bounded(ge=1, le=1000)  # compared with the reader's version by the engine check
    model: EngineModel  # the model sidecar the engine was built from
    engine: dict[str, Any] = field(default_factory=dict)
    onnx: dict[str, Any] = field(default_factory=dict)
    tensorrt: dict[str, Any] = field(default_factory=dict)
    gpu: dict[str, Any] = field(default_factory=dict)
    io: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    profile: EngineProfile = field(default_factory=EngineProfile)
    precision: str = "fp32"


def validate_engine_sidecar(data: Any, where: str) -> dict[str, Any]:
    """Check an engine sidecar (and the model sidecar it embeds); returns it unchanged."""
    try:
        from_dict(EngineSidecar, data, where=where)
    except ConfigError as exc:
        raise ExportError(f"engine sidecar {exc}") from None
    return data


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Load a sidecar JSON file and check it against its schema (one-line ExportError naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: sidecar not found (re-run 'inspector export' to recreate it)")
    return validate_sidecar(load_json(path, "sidecar", ExportError), str(path))


def write_sidecar(data: dict[str, Any], path: str | Path) -> None:
    """Write a sidecar (pretty JSON, stable key order)."""
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def input_spec_from_sidecar(sidecar: dict[str, Any]) -> InputSpec:
    """The backend input spec a sidecar declares."""
    inp = sidecar["input"]
    return InputSpec(
        height=int(inp["height"]),
        width=int(inp["width"]),
        channels=int(inp.get("channels", 3)),
        dtype=inp.get("dtype", "uint8"),
        layout=inp.get("layout", "NHWC"),
        color=inp.get("color", "RGB"),
    )


def input_bit_depth(sidecar: dict[str, Any] | None) -> int | None:
    """The ``bit_depth`` setting recorded at training (None: files/cameras are scaled by their container depth)."""
    if not isinstance(sidecar, dict):
        return None
    value = (sidecar.get("input") or {}).get("bit_depth")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def input_downscale(sidecar: dict[str, Any] | None) -> str:
    """How frames larger than the input are shrunk (:mod:`inspector.data.images`): sidecar
    ``input.downscale``; a sidecar without the key predates it and means ``area``. Raises ExportError."""
    from inspector.data.images import DOWNSCALE_METHODS, LEGACY_DOWNSCALE

    value = ((sidecar or {}).get("input") or {}).get("downscale", LEGACY_DOWNSCALE)
    if value not in DOWNSCALE_METHODS:
        raise ExportError(f"sidecar input.downscale: {value!r} is not one of {list(DOWNSCALE_METHODS)}")
    return value


def backend_downscale(backend: Any) -> str:
    """:func:`input_downscale` of a loaded backend (its sidecar; a torch model's run config)."""
    sidecar = getattr(backend, "sidecar", None)
    if isinstance(sidecar, dict):
        return input_downscale(sidecar)
    from inspector.data.images import LEGACY_DOWNSCALE

    return getattr(backend, "downscale", LEGACY_DOWNSCALE)


def backend_bit_depth(backend: Any) -> int | None:
    """:func:`input_bit_depth` of a loaded backend (its sidecar; a torch model's run config)."""
    sidecar = getattr(backend, "sidecar", None)
    if isinstance(sidecar, dict):
        return input_bit_depth(sidecar)
    value = getattr(backend, "bit_depth", None)
    return value if isinstance(value, int) else None


def verify_graph(graph_path: str | Path, sidecar: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check that ``graph_path`` is the file its sidecar describes; return the sidecar.

    Raises ExportError naming the file when the sidecar is missing, lacks an
    entry for this precision, or records a different sha256.
    """
    graph_path = Path(graph_path)
    if not graph_path.is_file():
        raise ExportError(f"{graph_path}: model file not found")
    if sidecar is None:
        sidecar = read_sidecar(sidecar_path_for(graph_path))
    _, precision = split_graph_name(graph_path)
    entry = sidecar["graphs"].get(precision)
    if entry is None:
        raise ExportError(f"{graph_path}: sidecar has no '{precision}' graph entry")
    actual = sha256_file(graph_path)
    if entry.get("sha256") != actual:
        raise ExportError(
            f"{graph_path}: sha256 {actual[:12]}… does not match its sidecar "
            f"({str(entry.get('sha256'))[:12]}…); re-export or restore the matching file"
        )
    return sidecar
