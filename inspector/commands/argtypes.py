"""Range-checked argparse types: every numeric command-line argument declares its range.

``p.add_argument("--batch-size", type=int_range(1, 4096))``. A value outside the range, NaN, infinity or
an integer too long to parse is refused by argparse with one line naming the argument (exit 2), the same
rule :func:`inspector.config.bounded` applies to config fields. A test walks every command's parser and
refuses a bare ``int``/``float`` type. Output paths (``--out``, ``--json``, ``--report`` …) are typed too
(:func:`out_folder`, :func:`out_file`, :func:`out_path`): a folder that is a file, or a file name that is a
folder, is refused before any work instead of ending minutes of it in an OSError.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import os
from pathlib import Path
from typing import Callable

from inspector import outputs
from inspector.errors import ConfigError
from inspector.textline import identifier_problem


def _fmt(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool = False) -> str:
    left = "(-inf" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
    right = "inf)" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
    return f"{left}, {right}"


def int_range(lo: int | Callable[[], int] | None, hi: int | Callable[[], int] | None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]`` (None: unbounded side).

    A bound may be a function, called when a value is parsed: the range is then exactly what the code behind
    the option accepts where that depends on an installed package (``export --opset``: 18 to the installed
    onnx's newest), read without importing the package for ``--help``. A range wider than the code's let a
    value through to fail later in words that do not name the option.
    """
    def parse(text: str) -> int:
        lo_v, hi_v = (b() if callable(b) else b for b in (lo, hi))
        try:
            value = int(text)
        except ValueError:  # not digits, or more digits than Python converts
            digits = text.strip().lstrip("+-")
            if not (digits.isdigit() and len(digits) > 30):
                raise argparse.ArgumentTypeError(f"'{text[:30]}' is not an integer") from None
            value = None
        if value is None or (lo_v is not None and value < lo_v) or (hi_v is not None and value > hi_v):
            shown = text[:30] + "..." if len(text) > 30 else text
            raise argparse.ArgumentTypeError(f"{shown} is out of range {_fmt(lo_v, hi_v, False)}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    parse.range = (lo, hi)  # type: ignore[attr-defined]
    return parse


def float_range(lo: float | None, hi: float | None, *, lo_open: bool = False,
                hi_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[lo, hi]`` (open ends with ``lo_open`` / ``hi_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text[:30]}' is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text[:30]} is not a finite number")
        if ((lo is not None and (value < lo or (lo_open and value == lo)))
                or (hi is not None and (value > hi or (hi_open and value == hi)))):
            raise argparse.ArgumentTypeError(f"{value:g} is out of range {_fmt(lo, hi, lo_open, hi_open)}")
        return value

    parse.__name__ = "number"
    parse.range = (lo, hi)  # type: ignore[attr-defined]
    return parse


# The largest finite float32: scores and anomaly maps are float32 (every backend's output), so a threshold or a
# colour-scale bound beyond it cannot be compared with one (cast, it is ±inf). ``--threshold -1e308`` was
# accepted as "any finite number": a flip check that can never flip, reported as passed.
SCORE_LIMIT = 3.4028234663852886e38


def score_value() -> Callable[[str], float]:
    """An argparse type for a score-scale value (threshold, colour-scale bound): finite, within float32's range."""
    return float_range(-SCORE_LIMIT, SCORE_LIMIT)


def int_list(lo: int, hi: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers, each in ``[lo, hi]``, de-duplicated in the given order
    (``bench --batch 1,4,8``). One-line ArgumentTypeError naming the first bad item."""
    one = int_range(lo, hi)

    def parse(text: str) -> list[int]:
        values: list[int] = []
        for item in text.split(","):
            value = one(item.strip())
            if value not in values:
                values.append(value)
        return values

    parse.__name__ = "list of integers"
    parse.range = (lo, hi)  # type: ignore[attr-defined]
    return parse


def _output(problem: Callable[[str], str | None], name: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        why = problem(text) if text else None  # "" is the command's to refuse, in its own words
        if why:
            raise argparse.ArgumentTypeError(why)
        return text

    parse.__name__ = name
    parse.writes = name  # type: ignore[attr-defined]  # marks an output for check_outputs_spare_inputs
    return parse


def out_folder() -> Callable[[str], str]:
    """An argparse type: a folder to write in (absent, or an existing folder; never a file or below one)."""
    return _output(outputs.folder_problem, "folder")


def out_file() -> Callable[[str], str]:
    """An argparse type: a file to write (absent or a file to replace; never an existing folder or below a file)."""
    return _output(outputs.file_problem, "file name")


def out_path() -> Callable[[str], str]:
    """An argparse type: a file or base path (``export/rs`` → ``export/rs.onnx`` …), or a folder to write in
    when it exists as one or ends in '/' (``export --out``, ``calibrate --out``)."""
    def problem(text: str) -> str | None:
        if text.endswith(("/", os.sep)) or os.path.isdir(text):
            return outputs.folder_problem(text)
        return outputs.file_problem(text)

    return _output(problem, "path")


def model_file(*suffixes: str, hint: str = "") -> Callable[[str], str]:
    """An argparse type: a model file to read, named with one of ``suffixes`` (``.onnx``; ``.plan``, ``.engine``);
    ``hint`` ends the refusal (what to give instead, e.g. the export that makes one from a training run).

    Its card is found from its name (``x.onnx`` → ``x.json``): given another file (a config, a checkpoint, the
    card itself, an image folder), ``quantize``/``build`` said "x.json: sidecar not found (re-run 'inspector
    export')" or "x.json: sha256 … does not match its sidecar", sending the user to re-export a sound model.
    Whether the file is there is the reader's to say (one line naming it)."""
    def parse(text: str) -> str:
        path = Path(text)
        expected = " or ".join(suffixes)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder, not a {expected} model file{hint}")
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text} is not a {expected} model file "
                                             f"('{path.suffix or 'no extension'}'){hint}")
        return text

    parse.__name__ = "model file"
    return parse


def identifier(kind: str) -> Callable[[str], str]:
    """An argparse type: a free-text identifier that travels on (a model version, an MQTT client id), checked
    against its rule (:data:`inspector.textline.IDENTIFIERS`): refused in one line naming the option, exit 2."""
    def parse(text: str) -> str:
        why = identifier_problem(kind, text)
        if why:
            raise argparse.ArgumentTypeError(why)
        return text

    parse.__name__ = kind
    return parse


def default_of(source: Callable | type, name: str):
    """The library's default for ``name``: a field of the options dataclass ``source``, or a keyword
    parameter of the function ``source``. argparse reads its defaults here so each has one home
    (``p.add_argument("--max-batch", default=default_of(BuildOptions, "max_batch"))``).

    Raises LookupError (a programming error, not a user's) when ``source`` has no default for ``name``.
    """
    if dataclasses.is_dataclass(source):
        for f in dataclasses.fields(source):
            if f.name == name and f.default is not dataclasses.MISSING:
                return f.default
    else:
        param = inspect.signature(source).parameters.get(name)
        if param is not None and param.default is not inspect.Parameter.empty:
            return param.default
    raise LookupError(f"{getattr(source, '__qualname__', source)} has no default for '{name}'")


def _input_paths(actions: list[argparse.Action], args: argparse.Namespace) -> list[str]:
    """The values of the ``actions`` that are not outputs and name an existing file or folder."""
    found = []
    for action in actions:
        if getattr(action.type, "writes", None) or not action.dest:
            continue
        value = getattr(args, action.dest, None)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and item and os.path.exists(item):
                found.append(item)
    return found


def _read_inputs(path: str) -> list[str]:
    """What a command reads for the input ``path``: the file and, for a model graph or engine, its sidecar."""
    from inspector.artifacts.engine_card import engine_sidecar_path
    from inspector.artifacts.model_card import sidecar_path_for

    if path.endswith(".onnx"):
        return [path, str(sidecar_path_for(path))]
    if path.endswith((".plan", ".engine")):
        return [path, str(engine_sidecar_path(path))]
    return [path]


def _replaces_an_input(out: str, inputs: list[str]) -> str | None:
    """The input that writing the file ``out`` would replace, or None.

    An input is a file named on the command line (and a graph's sidecar), or an image inside a folder named
    there (a data set): the command reads both. Other files inside input folders (a calibration YAML kept
    beside the images) are the user's to replace.
    """
    if not os.path.isfile(out):
        return None  # a new file replaces nothing
    real = os.path.realpath(out)
    for given in inputs:
        if os.path.isdir(given):
            from inspector.data.images import IMAGE_EXTENSIONS

            inside = real.startswith(os.path.join(os.path.realpath(given), ""))
            if inside and real.lower().endswith(IMAGE_EXTENSIONS):
                return f"an image of the input folder {given}"
            continue
        for read in _read_inputs(given):
            if os.path.isfile(read) and os.path.samefile(out, read):
                return f"the input {read}"
    return None


def _image_folders(given: str) -> list[str]:
    """The folders of images that reading the input ``given`` implies: ``given`` itself when it is a folder
    holding images or a data set, and the MVTec/BTAD data set it lies in (``D`` of ``D/test/good`` or of
    ``D/test/good/000.png``), whose every sub-folder is read (a new ``test/<name>`` becomes a defect type)."""
    from inspector.data.datasets import detect_layout

    found = [given] if os.path.isdir(given) and detect_layout(Path(given)) is not None else []
    for up in range(1, 4):  # file → good → test → D at most
        above = os.path.normpath(os.path.join(given, *[os.pardir] * up))
        if detect_layout(Path(above)) in ("mvtec", "btad"):
            found.append(above)
            break
    return found


def image_folder_holding(out: str | os.PathLike, inputs: list[str]) -> str | None:
    """The input folder of images that the folder ``out`` is (or lies inside), or None.

    An input folder of images is one named on the command line that holds images or a data set (its layout is
    detected as by :func:`inspector.data.datasets.detect_layout`), or the data set an input lies in; a run or
    export folder is not one. Anywhere below it counts, not only the sub-folders this command happens to
    list: a data set's ``test/<name>`` becomes a defect type, its ``train/good`` training images, and the
    daemon or the next command may list the folder differently.
    """
    real = os.path.join(os.path.realpath(out), "")
    for given in inputs:
        for folder in _image_folders(given):
            if real.startswith(os.path.join(os.path.realpath(folder), "")):
                return folder
    return None


def refuse_folder_in_images(field: str, out: str | os.PathLike, inputs: list[str]) -> None:
    """ConfigError (naming ``field``) when the output folder ``out`` is, or lies inside, an input folder of
    images (:func:`image_folder_holding`): what the command writes there (plots, overlays, a data set) would be
    read back as input images by the next run. ``evaluate --data D --out D/test/good`` wrote roc.png and
    score_histogram.png among the good test images, which the next evaluation scored as parts."""
    holder = image_folder_holding(out, inputs)
    if holder is not None:
        where = "is" if os.path.realpath(out) == os.path.realpath(holder) else "is inside"
        raise ConfigError(f"{field}: {out} {where} the input image folder {holder}; what is written there would be "
                          f"read as images next time, choose a folder outside it", field=field)


def check_outputs_spare_inputs(actions: list[argparse.Action], args: argparse.Namespace) -> None:
    """ConfigError (naming the option) when an output file of a command (its parser's ``actions``, given as
    parsed in ``args``) is one of its inputs.

    Rule: no command writes over what it reads. ``calibrate m.onnx --out m.onnx`` replaced the model with a
    YAML file, ``bench m.onnx --json m.onnx`` and ``verify c.onnx --report c.onnx`` replaced the graph with
    a JSON report, ``calibrate --out data/test/good/000.png`` an image of the data set; each exit 0, the
    input gone. Checked for every command before any work, on the outputs typed :func:`out_file` or
    :func:`out_path` that name a file (a folder output's file names are the command's: ``predict`` checks
    its overlays itself). A folder output (:func:`out_folder`) is refused inside an input folder of images
    (:func:`refuse_folder_in_images`); a folder given to :func:`out_path` receives named files that are not
    images (``<name>.yaml``, ``<name>.onnx``), which the file rule judges.
    """
    inputs = _input_paths(actions, args)
    for action in actions:
        value = getattr(args, action.dest, None) if getattr(action.type, "writes", None) else None
        if isinstance(value, str) and value and action.type.writes == "folder":
            refuse_folder_in_images(action.dest, value, inputs)
        if not isinstance(value, str) or not value or os.path.isdir(value):
            continue
        replaced = _replaces_an_input(value, inputs)
        if replaced:
            raise ConfigError(f"{action.dest}: {value} is {replaced}; writing there would destroy it, "
                              f"choose another path", field=action.dest)
