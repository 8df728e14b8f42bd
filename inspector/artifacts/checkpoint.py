"""Checkpoints (``runs/<run>/best.pt``): the whole model state (teacher included) plus the resolved config.

Keeping the teacher's weights in the checkpoint makes a run folder
self-contained: export and evaluation never need the ImageNet file again.

The payload is plain data only: ``format``, ``version``, ``config`` (the run
config as a dict), ``model`` (``AnomalyModel.describe()``), ``state_dict``
(host tensors) and the loop's bookkeeping (``phase``, ``epoch``, ``val_loss``,
``completed_phases``, and ``phases``: every phase the run trains, so an
incomplete run is recognised). So it is read with ``torch.load(weights_only=True)``:
a checkpoint path given by a user can never run code (a pickle could).
Rebuilding the model from it is :func:`inspector.models.checkpoint.load_model`; the run config it
carries is :mod:`inspector.artifacts.run_config`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from inspector.artifacts.run_files import check_checkpoint_of_run
from inspector.config import not_a_file
from inspector.errors import ModelError
from inspector.outputs import write_whole

FORMAT = "inspector-checkpoint"
VERSION = 1
BEST = "best.pt"


def write_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plain data and tensors) whole or not at all (:func:`save_whole`). OSError when the disk
    fails."""
    save_whole(path, {"format": FORMAT, "version": VERSION, **payload})


def save_whole(path: str | Path, obj: Any) -> None:
    """``torch.save`` ``obj`` to ``path`` whole or not at all: serialised in memory, then written through
    :func:`inspector.outputs.write_whole` (on disk before it is renamed over the old file). torch.save to a
    temporary file left that file behind, half written, when the disk filled up or the write failed (raising
    torch's RuntimeError, not an OSError), and renamed it unsynced. OSError when the disk fails."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_whole(path, buffer.getbuffer())


def _other_kind(head: bytes) -> str | None:
    """What a file is when its first bytes show it is no torch checkpoint, or None. torch.save writes a zip
    archive (``PK``, torch ≥ 1.6) or, in the legacy format, a pickle (protocol byte 0x80); an empty or cut file
    is left to torch.load, which says it is cut short."""
    if not head or head.startswith((b"PK", b"\x80")):
        return None
    known = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"\x08": "an ONNX graph",
             b"BM": "a BMP image", b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image"}
    said = next((what for magic, what in known.items() if head.startswith(magic)), None)
    if said is None and all(32 <= b < 127 or b in b"\t\r\n" for b in head):  # YAML, JSON, a script: text
        said = f"text that begins {head.decode('ascii')!r}"
    return said  # else unknown bytes: torch.load says whether it is a damaged checkpoint


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a checkpoint file (or a run folder's ``best.pt``), with ``path`` added.

    Raises ModelError (one line naming the file) when it is missing, unreadable,
    holds anything but plain data and tensors, or is not an inspector checkpoint; for a run folder also
    when its best.pt is not the checkpoint of the run its config.yaml and history.json record
    (:func:`inspector.artifacts.run_files.check_checkpoint_of_run`).
    """
    import torch

    path, folder = Path(path), Path(path).is_dir()
    if folder:
        path = path / BEST
    if (why := not_a_file(path, "checkpoint")) is not None:  # a folder or a FIFO there was "not found"
        raise ModelError(why + (" (train a model first: inspector train …)" if why.endswith("not found") else ""))
    try:
        with path.open("rb") as fh:
            if (kind := _other_kind(fh.read(8))) is not None:
                # a config, a card, a graph or an image was "damaged or cut short?": the user looked for damage
                raise ModelError(f"{path}: not a checkpoint ({kind}); give a run folder or its best.pt")
            fh.seek(0)
            payload = torch.load(fh, map_location="cpu", weights_only=True)
    except ModelError:
        raise
    except OSError as exc:  # permissions, a disk error: the file may be sound ("damaged?" sent users to retrain)
        raise ModelError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    except Exception as exc:  # torch raises many types for a damaged or code-carrying file
        said = str(exc).strip().splitlines()[0].split(". ")[0][:100] if str(exc).strip() else ""  # torch's first sentence
        raise ModelError(f"{path}: not a readable checkpoint, damaged or cut short? ({type(exc).__name__}"
                         f"{': ' + said if said else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not an inspector checkpoint")
    problem = payload_problem(payload)
    if problem:
        raise ModelError(f"{path}: damaged inspector checkpoint ({problem})")
    if folder:  # a run folder's files are read together: its best.pt must be the run's
        check_checkpoint_of_run(path, payload)
    payload["path"] = str(path)
    return payload


# key → (types it may hold, whether it is required); None stands for "absent or null"
_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "config": ((dict,), True), "state_dict": ((dict,), True), "model": ((dict, type(None)), False),
    "phase": ((str, type(None)), False), "epoch": ((int, type(None)), False),
    "val_loss": ((int, float, type(None)), False), "data": ((dict, type(None)), False),
    "completed_phases": ((list,), False), "phases": ((list,), False), "lr_schedule": ((dict, type(None)), False),
}


def payload_problem(payload: dict) -> str | None:
    """What makes a checkpoint payload unusable, one phrase (None: its structure is sound). Written by
    another tool or edited by hand, a wrong type here was a TypeError/KeyError traceback in export,
    evaluate or --resume; the values inside ``config`` are the run config's to check."""
    import torch

    for key, (types, required) in _FIELDS.items():
        if key not in payload:
            if required:
                return f"no '{key}'"
            continue
        value = payload[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"'{key}' holds a {type(value).__name__}"
    for name, section in payload["config"].items():
        if not isinstance(name, str) or not isinstance(section, (dict, type(None))):
            return f"config section {str(name)[:40]!r} is not a mapping"
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload["state_dict"].items()):
        return "'state_dict' holds something other than named tensors"
    for key in ("completed_phases", "phases"):
        if not all(isinstance(p, str) for p in payload.get(key, [])):
            return f"'{key}' is not a list of phase names"
    return None


def update_checkpoint(path: str | Path, payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Write ``payload`` (as read by :func:`read_checkpoint`) with ``changes`` back to ``path``; returns it."""
    payload = {k: v for k, v in {**payload, **changes}.items() if k not in ("path", "format", "version")}
    write_checkpoint(path, payload)
    return payload
