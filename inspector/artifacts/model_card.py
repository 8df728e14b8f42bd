"""The model card (the "model sidecar"): a JSON file beside exported graphs describing them.

``export/rs-brick.onnx`` and ``export/rs-brick.fp16.onnx`` (made together by
``export``) share one sidecar ``export/rs-brick.json``; ``export/rs-brick.int8.onnx``,
made later from the FP32 graph by ``quantize``, has its own card
``export/rs-brick.int8.json`` (the same sections, its one graph, and ``derived_from``:
the FP32 graph and sidecar it was made from), so the export is never rewritten. A card
holds everything the daemon and the engine builder need: the model identity,
the input spec (uint8 NHWC RGB, fixed size, resize policy), the output spec,
and per graph its file name, precision and sha256, so a graph that does not
match its sidecar is refused. Thresholds never live here (see calibration).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inspector.artifacts.card_loading import parse_card
from inspector.contract import (BIT_DEPTHS, DOWNSCALE_METHODS, INPUT_NAME, LEGACY_DOWNSCALE, MAX_IMAGE_SIDE,
                                RESIZE_POLICIES, InputSpec)
from inspector.config import bounded, load_json, not_a_file
from inspector.errors import ConfigError, ExportError
from inspector.outputs import write_whole

SCHEMA_VERSION = 1
PRECISION_SUFFIXES = ("fp16", "int8")  # rs-brick.fp16.onnx → precision fp16
# Graphs made from an export by a later command (quantize), each described by its own card, not the export's.
DERIVED_PRECISIONS = ("int8",)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a regular file, streamed.

    Raises IsADirectoryError for a folder and OSError for anything else that is no regular file, unread: a FIFO
    (opened without waiting for a writer, fifo(7)) or a device, whose data never ends. Listed among good images,
    a link to /dev/zero held ``calibrate`` hashing it for ever."""
    digest = hashlib.sha256()
    with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)), "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def split_graph_name(path: str | Path) -> tuple[Path, str]:
    """``export/rs.fp16.onnx`` → (``export/rs``, ``fp16``); plain ``.onnx`` → fp32.

    Raises ExportError for a path without a file name (``/``, ``.``): every command that takes a graph names
    its sidecar and siblings through here, and ``quantize /`` ended in pathlib's ValueError, a traceback.
    """
    path = Path(path)
    if not path.name:
        raise ExportError(f"{path}: not a model file (a folder has no sidecar); give the .onnx graph")
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    for precision in PRECISION_SUFFIXES:
        if stem.endswith("." + precision):
            return path.with_name(stem[: -len(precision) - 1]), precision
    return path.with_name(stem), "fp32"


def sidecar_path_for(graph_path: str | Path) -> Path:
    """The card JSON that describes ``graph_path``: the export's shared sidecar ``<base>.json``, or for a graph
    made later from the export (:data:`DERIVED_PRECISIONS`) its own card ``<base>.int8.json``
    (:func:`derived_card_path`) when there is one.

    Rule: a command never modifies its input. ``quantize`` added ``graphs.int8`` to the FP32 export's shared
    sidecar, rewriting it; it now writes the INT8 graph's own card. An INT8 graph quantized before that (named in
    the shared sidecar, no card of its own) is still described by the shared sidecar.
    """
    base, precision = split_graph_name(graph_path)
    shared = base.with_name(base.name + ".json")
    if precision in DERIVED_PRECISIONS:
        own = derived_card_path(graph_path)
        if os.path.lexists(own) or not os.path.lexists(shared):
            return own
    return shared


def derived_card_path(graph_path: str | Path) -> Path:
    """The own card of a derived graph: ``export/rs.int8.onnx`` → ``export/rs.int8.json``."""
    base, precision = split_graph_name(graph_path)
    return base.with_name(f"{base.name}.{precision}.json")


# -- schema: what the readers of a model card rely on (other keys are informative and ignored) -------------
@dataclass(frozen=True)
class CardInput:
    """``input``: the one layout every backend and the daemon's preprocessing produce (:mod:`inspector.contract`)."""

    _unknown_keys = "ignore"
    height: int = bounded(ge=1, le=MAX_IMAGE_SIDE)  # the contract's rule, as a model config's image_size
    width: int = bounded(ge=1, le=MAX_IMAGE_SIDE)
    channels: Literal[3] = 3
    dtype: Literal["uint8"] = "uint8"
    layout: Literal["NHWC"] = "NHWC"
    color: Literal["RGB"] = "RGB"
    resize: str = "square"  # one of contract.RESIZE_POLICIES
    downscale: str = LEGACY_DOWNSCALE  # v1 cards without the key were made with INTER_AREA
    name: str = INPUT_NAME
    batch: int | str | None = bounded(None, ge=1, le=65536)  # a fixed batch, or the name of the dynamic axis
    bit_depth: int | None = bounded(None, ge=1, le=16)  # significant bits of 16-bit inputs (None: container's)

    def validate(self, where: str) -> None:
        if self.resize not in RESIZE_POLICIES:
            raise ConfigError(f"{where}.resize: '{self.resize[:40]}' is not one of {list(RESIZE_POLICIES)}")
        if self.downscale not in DOWNSCALE_METHODS:
            raise ConfigError(f"{where}.downscale: {self.downscale[:40]!r} is not one of {list(DOWNSCALE_METHODS)}")
        if self.bit_depth is not None and self.bit_depth not in BIT_DEPTHS:
            raise ConfigError(f"{where}.bit_depth: {self.bit_depth} is not one of {list(BIT_DEPTHS)} or null")

    def spec(self, max_batch: int | None = None) -> InputSpec:
        """This input as the contract's :class:`InputSpec`."""
        return InputSpec(height=self.height, width=self.width, channels=self.channels, dtype=self.dtype,
                         layout=self.layout, color=self.color, max_batch=max_batch, resize=self.resize,
                         downscale=self.downscale, bit_depth=self.bit_depth)


@dataclass(frozen=True)
class CardGraph:
    """``graphs.<precision>``: one graph file and its sha256."""

    _unknown_keys = "ignore"
    file: str
    sha256: str

    def validate(self, where: str) -> None:
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ConfigError(f"{where}.sha256: expected 64 lowercase hex digits")


@dataclass(frozen=True)
class CardModel:
    _unknown_keys = "ignore"
    name: str = ""
    version: str | None = None


@dataclass(frozen=True)
class CardImageSizes:
    """``training.data.image_sizes``: the range of the good images' own sizes (pixels) and aspect ratios
    (width / height) before they were resized to the model's input, over every good image train read (its
    train, validation and calibration parts; tiles of a dataset may differ). Frames far outside it are told by
    :mod:`inspector.artifacts.frame_shapes`. Cards before Session 44 have none: nothing is checked."""

    _unknown_keys = "ignore"
    min_width: int = bounded(ge=1)
    max_width: int = bounded(ge=1)
    min_height: int = bounded(ge=1)
    max_height: int = bounded(ge=1)
    min_aspect: float = bounded(gt=0)
    max_aspect: float = bounded(gt=0)

    def validate(self, where: str) -> None:
        for low, high in (("min_width", "max_width"), ("min_height", "max_height"), ("min_aspect", "max_aspect")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(f"{where}.{low}: {getattr(self, low):g} is above {high} {getattr(self, high):g}")


@dataclass(frozen=True)
class CardTrainingData:
    """``training.data``: what calibrate reads back (the validation and calibration images kept out of
    training: their file names, contents' sha256 and the dataset root they were read from)."""

    _unknown_keys = "ignore"
    root: str | None = None
    val_files: tuple[str, ...] = ()  # never opened: they narrow down the dataset's files to hash
    val_sha256: tuple[str, ...] = ()  # what makes a dataset's file one of them (cards before it: root + name)
    calibration_files: tuple[str, ...] = ()  # used by nothing at training (cards before Session 36: none)
    calibration_sha256: tuple[str, ...] = ()
    train_sha256: tuple[str, ...] = ()  # the images trained on (cards before Session 41: none, nothing told)
    image_sizes: CardImageSizes | None = None  # the good images' sizes before resizing (None: not recorded)


@dataclass(frozen=True)
class CardTraining:
    """``training``: the run the graph was exported from (the torch backend opens its checkpoint by this path)."""

    _unknown_keys = "ignore"
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    data: CardTrainingData | None = None


@dataclass(frozen=True)
class ModelCard:
    """The model card's schema (today's ``export/<name>.json``; checked by :func:`validate_model_card`).

    Every section a command reads back is typed here, informative ones included (``training``: calibrate and
    the torch backend read it), so a hand-edited or corrupted card is one line naming the key, not a crash in
    whichever reader meets the bad value first.
    """

    _unknown_keys = "ignore"
    schema_version: Literal[1]
    model: CardModel
    input: CardInput
    outputs: dict[str, Any]
    graphs: dict[str, CardGraph]
    training: CardTraining | None = None


def parse_model_card(data: Any, where: str) -> ModelCard:
    """The typed :class:`ModelCard` of ``data``; one-line ExportError naming ``where`` otherwise."""
    if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
        raise ExportError(f"{where}: unsupported sidecar schema {data.get('schema_version')!r:.40}"
                          f" (expected {SCHEMA_VERSION})")
    return parse_card(ModelCard, data, where, "sidecar")


def validate_model_card(data: Any, where: str) -> dict[str, Any]:
    """Check ``data`` against :class:`ModelCard`; returns it unchanged. One-line ExportError otherwise."""
    parse_model_card(data, where)
    return data


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Load a sidecar JSON file and check it against its schema (one-line ExportError naming the file)."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path}: sidecar not found (re-run 'inspector export' to recreate it)")
    return validate_model_card(load_json(path, "sidecar", ExportError), str(path))


def write_sidecar(data: dict[str, Any], path: str | Path) -> None:
    """Write a sidecar or card (pretty JSON, stable key order), whole or not at all
    (:func:`inspector.outputs.write_whole`: a full disk or Ctrl-C never leaves half a card). OSError when it
    cannot be written."""
    write_whole(path, (json.dumps(data, indent=2) + "\n").encode())


def verify_graph(graph_path: str | Path, sidecar: dict[str, Any] | None = None,
                 sha256: str | None = None) -> dict[str, Any]:
    """Check that ``graph_path`` is the file its sidecar describes; return the sidecar.

    ``sha256``: the file's hash when the caller already has it (else it is computed).
    Raises ExportError naming the file when the sidecar is missing, lacks an
    entry for this precision, or records a different sha256, and for a derived graph
    (an INT8 card's ``derived_from``) when the export beside it is no longer the one it
    was made from (:func:`_check_derived_from`).
    """
    graph_path = Path(graph_path)
    if (why := not_a_file(graph_path, "model file")) is not None:  # a folder is told as one, not "not found"
        raise ExportError(why)
    if sidecar is None:
        sidecar = read_sidecar(sidecar_path_for(graph_path))
    _, precision = split_graph_name(graph_path)
    entry = sidecar["graphs"].get(precision)
    if entry is None:
        raise ExportError(f"{graph_path}: sidecar has no '{precision}' graph entry")
    actual = sha256 or sha256_file(graph_path)
    if entry.get("sha256") != actual:
        raise ExportError(
            f"{graph_path}: sha256 {actual[:12]}… does not match its sidecar "
            f"({str(entry.get('sha256'))[:12]}…); re-export or restore the matching file"
        )
    _check_derived_from(graph_path, sidecar)
    return sidecar


def _check_derived_from(graph_path: Path, card: dict[str, Any]) -> None:
    """ExportError when ``card`` is a derived graph's own card and the export's sidecar beside it now describes
    another FP32 graph than the one it was made from (an export made again at that name since).

    Before INT8 graphs had their own card, exporting again rewrote the shared sidecar without the INT8 entry, so
    the stale INT8 graph was refused; its own card would otherwise keep it loading silently beside a new model.
    A card whose export is not beside it (copied alone to a line PC) is not checked.
    """
    origin = card.get("derived_from")
    if not isinstance(origin, dict) or not isinstance(origin.get("sidecar"), str):
        return
    shared = graph_path.with_name(Path(origin["sidecar"]).name)
    try:
        current = json.loads(shared.read_text())["graphs"]["fp32"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no readable export beside it: nothing to compare with
    if current != origin.get("sha256"):
        raise ExportError(f"{graph_path}: made from an earlier {origin.get('graph')} (sha256 "
                          f"{str(origin.get('sha256'))[:12]}…), and {shared.name} now describes another "
                          f"({str(current)[:12]}…); quantize the new export again: inspector quantize "
                          f"{graph_path.with_name(str(origin.get('graph')))} --calibration IMAGES")
