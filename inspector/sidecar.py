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
from pathlib import Path
from typing import Any

from inspector.backends.base import InputSpec
from inspector.errors import ExportError

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


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Load and sanity-check a sidecar JSON file."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: sidecar not found (re-run 'inspector export' to recreate it)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: sidecar is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ExportError(
            f"{path}: unsupported sidecar schema {data.get('schema_version') if isinstance(data, dict) else None!r}"
            f" (expected {SCHEMA_VERSION})"
        )
    for key in ("model", "input", "outputs", "graphs"):
        if key not in data:
            raise ExportError(f"{path}: sidecar lacks the '{key}' section")
    return data


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
