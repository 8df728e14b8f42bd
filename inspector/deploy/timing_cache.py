"""What ``build --timing-cache FILE`` may read and write: a TensorRT timing cache, and nothing else.

The build merged its tactics into the file and wrote it back (whole) after every build. A file there that TensorRT
could not read was "corrupt or from another TensorRT": the build started an empty cache and then replaced the file
with it, so ``--timing-cache engines/rs.json`` (the engine card, by a slip), a config or a colleague's notes were
lost after the build, with one warning. TensorRT's cache format is its own (a binary archive whose magic tag is not
documented), so without TensorRT a cache cannot be told by its content; what is clearly another kind of file can:
text (JSON, YAML, notes), an image, an archive (a torch checkpoint, .npz), an ONNX graph, an engine its card names.
Those are refused before any work (:func:`check_timing_cache`, the rule of every output: :mod:`inspector.outputs`).
During the build, a file TensorRT cannot read or that holds the cache of another TensorRT or GPU is used as an empty
cache and left as it was, never written over (:func:`inspector.deploy.engine_build`): a cache the build did not
write is not its to replace. An empty file is an empty cache (``touch``-ed to reserve the place).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from inspector.artifacts.engine_card import ENGINE_KIND
from inspector.errors import ExportError

_HEAD = 4096  # bytes enough to tell text from binary
_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"BM": "a BMP image", b"II*\x00": "a TIFF image",
          b"MM\x00*": "a TIFF image", b"PK\x03\x04": "a zip archive (a torch checkpoint, an .npz)"}


def check_timing_cache(path: str | Path, outputs: list[Path] = ()) -> None:
    """Raise ExportError, one line naming ``path``, when what is there is clearly not a TensorRT timing cache
    (module doc) or is one of the build's own ``outputs`` (the engine, its card, its log); a missing or empty
    file passes. Checked before the build: the file is otherwise written over after it."""
    path = Path(path)
    tail = "'inspector build' replaces only its own files: --timing-cache another name, or move it"
    if any(os.path.abspath(path) == os.path.abspath(out) for out in outputs):
        raise ExportError(f"{path}: --timing-cache names one of the files this build writes; {tail}")
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_file():
        kind = "a symbolic link" if path.is_symlink() else "not a file"
        raise ExportError(f"{path}: {kind}, not a TensorRT timing cache; {tail}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the timing cache ({exc.strerror or exc})") from None
    kind = other_kind(path, head)
    if kind is not None:
        raise ExportError(f"{path}: is {kind}, not a TensorRT timing cache; {tail}")


def other_kind(path: Path, head: bytes) -> str | None:
    """What the file ``path`` (first bytes ``head``) is when it is clearly no timing cache, or None (a cache,
    or bytes TensorRT alone can judge)."""
    if not head:
        return None
    said = next((what for magic, what in _MAGIC.items() if head.startswith(magic)), None)
    if said is None and _is_text(head):
        said = f"text that begins {head[:24].decode('utf-8', 'replace')!r}"
    if said is None and head.startswith(b"\x08") and _is_onnx(path):
        said = "an ONNX graph"
    return said if said is not None else _engine_of_card(path)


def _is_text(head: bytes) -> bool:
    """Whether ``head`` is UTF-8 text without control characters (a character cut at the end is allowed)."""
    text = head.decode("utf-8", "ignore")
    if len(text.encode("utf-8")) < len(head) - 3:
        return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def _is_onnx(path: Path) -> bool:
    """Whether ``path`` parses as an ONNX model with a graph of nodes (an ONNX file begins with byte 0x08, its
    ir_version field; a cache that happens to begin so does not parse as one)."""
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - whatever the protobuf parser raises, it is no ONNX graph
        return False
    return len(model.graph.node) > 0


def _engine_of_card(path: Path) -> str | None:
    """"a TensorRT engine (its card X names it)" when an engine card beside ``path`` (``NAME.json`` or
    ``STEM.json``, :func:`inspector.artifacts.engine_card.engine_file_prefix`) names it, else None."""
    for card in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        try:
            data = json.loads(card.read_bytes()[:1 << 24])
        except (OSError, ValueError, RecursionError):
            continue
        engine = data.get("engine") if isinstance(data, dict) and data.get("kind") == ENGINE_KIND else None
        if isinstance(engine, dict) and engine.get("file") == path.name:
            return f"a TensorRT engine (its card {card} names it)"
    return None
