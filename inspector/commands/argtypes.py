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
from typing import Callable

from inspector import outputs


def _fmt(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool = False) -> str:
    left = "(-inf" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
    right = "inf)" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
    return f"{left}, {right}"


def int_range(lo: int | None, hi: int | None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]`` (None: unbounded side)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not digits, or more digits than Python converts
            digits = text.strip().lstrip("+-")
            if not (digits.isdigit() and len(digits) > 30):
                raise argparse.ArgumentTypeError(f"'{text[:30]}' is not an integer") from None
            value = None
        if value is None or (lo is not None and value < lo) or (hi is not None and value > hi):
            shown = text[:30] + "..." if len(text) > 30 else text
            raise argparse.ArgumentTypeError(f"{shown} is out of range {_fmt(lo, hi, False)}")
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


def _output(problem: Callable[[str], str | None], name: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        why = problem(text) if text else None  # "" is the command's to refuse, in its own words
        if why:
            raise argparse.ArgumentTypeError(why)
        return text

    parse.__name__ = name
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
