"""The library names fields, the CLI names flags, and each option's default has one home.

A library error (``BuildOptions.validate``, ``parse_batches``, ``apply_overrides``, …) names the field
it was given and carries it in ``InspectorError.field``; ``inspector.cli`` swaps in the flag that sets
that field (the parser's ``dest`` is the field name). Every argparse default of an option that a
library function or options dataclass also defaults is read from there (``argtypes.default_of``); the
last test fails if the two diverge.
"""

from __future__ import annotations

import argparse

import pytest

from inspector.cli import build_parser, flag_for, main, user_message
from inspector.config import apply_overrides
from inspector.contract import DEFAULT_BATCH
from inspector.errors import ConfigError, ExportError


def test_a_library_error_names_the_field_not_the_flag():
    from inspector.deploy.engine_build import BuildOptions
    from inspector.evaluation.bench import parse_batches

    with pytest.raises(ExportError) as err:
        BuildOptions(max_batch=0).validate()
    assert str(err.value) == "max_batch must be ≥ 1, got 0" and err.value.field == "max_batch"
    with pytest.raises(ConfigError) as err:
        parse_batches("4,0")
    assert str(err.value) == "batches: batch sizes must be ≥ 1, got 0" and err.value.field == "batches"
    with pytest.raises(ConfigError) as err:
        apply_overrides({}, ["model.name"])
    assert str(err.value) == "overrides model.name: expected key=value" and err.value.field == "overrides"


@pytest.mark.parametrize("argv, expected", [
    # --batch is range-typed on the command line (argtypes.int_list): refused by argparse, naming the option
    (["bench", "m.onnx", "--batch", "4,0"],
     "error: inspector bench: argument --batch: 0 is out of range [1, 4096] (see 'inspector bench --help')"),
    (["bench", "m.onnx", "--batch", "1,99999999"],
     "error: inspector bench: argument --batch: 99999999 is out of range [1, 4096] (see 'inspector bench --help')"),
    (["bench", "m.onnx", "--suite"], "error: bench: give a MODEL (m.onnx) or --suite (the suite's own models), "
                                     "not both"),  # the suite ran for minutes, MODEL ignored
    (["bench", "m.onnx", "--quick"], "error: --quick: only used with --suite"),
    (["build", "m.onnx", "--threshold-file", "c.yaml"],
     "error: --threshold-file: only used by the precision gate; add --reference-data IMAGES"),  # ignored after the build
    (["build", "m.onnx", "--reference", "r.onnx"], "error: --reference: only used by the precision gate; add "
                                                   "--reference-data IMAGES"),
    (["predict", "m.onnx", "x.png", "--vmax", "1"], "error: --vmax: only used for the overlays; add --out FOLDER"),
    (["predict", "m.onnx", "x.png", "--out", "o", "--vmin", "2", "--vmax", "1"],
     "error: --vmin 2 must be below --vmax 1"),  # all overlays one flat colour before
    (["predict", "m.onnx", "x.png", "--out", "o", "--vmin", "0.5", "--vmax", "0.5"],
     "error: --vmin 0.5 must be below --vmax 0.5"),
    (["build", "m.onnx", "--max-batch", "4", "--opt-batch", "8"],
     "error: --opt-batch must be in 1..4, got 8"),
    (["run", "--config", "{cfg}", "--set", "model.path"], "error: --set model.path: expected key=value"),
    (["data", "synth", "--out", "{full}"], "folder exists and is not empty (use --force to replace it)"),
])
def test_the_cli_names_the_flag(argv, expected, tmp_path, capsys):
    cfg = tmp_path / "inspector.yaml"
    cfg.write_text("{}\n")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    argv = [a.format(cfg=cfg, full=full) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and err.count("\n") == 0, err


def test_field_to_flag_mapping_is_the_parser():
    parser = build_parser(only="build")
    assert flag_for(parser, "build", "optimization_level") == "--opt-level"
    assert flag_for(parser, "build", "onnx") == "onnx"  # a positional keeps its name
    assert flag_for(parser, "build", "no_such_field") is None
    exc = ExportError("max_batch must be ≥ 1, got 0", field="max_batch")
    assert user_message(exc, parser, "build") == "--max-batch must be ≥ 1, got 0"
    assert user_message(exc, None, None) == "max_batch must be ≥ 1, got 0"  # no parser: the field stays


def _library_defaults():
    """(command, library source of its defaults): every option whose dest the source defaults."""
    from inspector.deploy.engine_build import BuildOptions
    from inspector.deploy.quantize import quantize_model
    from inspector.evaluation.bench import run_benchmark
    from inspector.evaluation.calibrate import calibrate
    from inspector.evaluation.evaluate import evaluate_dataset
    from inspector.evaluation.verify import verify

    from inspector.data.synth import synthesize

    return [("build", BuildOptions), ("quantize", quantize_model), ("bench", run_benchmark),
            ("calibrate", calibrate), ("verify", verify), ("evaluate", evaluate_dataset), ("data synth", synthesize)]


def _options(command: str) -> dict[str, argparse.Action]:
    """dest → action of ``command``'s options ("data synth": a subcommand's)."""
    names = command.split()
    parser = build_parser(only=names[0])
    for name in names:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return {a.dest: a for a in parser._actions if a.option_strings}


def test_argparse_defaults_are_the_library_defaults():
    from inspector.commands.argtypes import default_of
    from inspector.evaluation.bench import parse_batches

    checked = 0
    for command, source in _library_defaults():
        for dest, action in _options(command).items():
            try:
                expected = default_of(source, dest)
            except LookupError:
                continue  # an option the library does not default (a path, a CLI-only switch)
            got = action.default
            if dest == "batches":  # a comma-separated list on the command line
                got, expected = parse_batches(got), list(expected)
            elif dest == "defects":
                got, expected = got.split(","), list(expected)
            assert got == expected, (command, dest, got, expected)
            checked += 1
    assert checked >= 18, checked  # the comparison really ran over the options
    for command in ("predict", "evaluate", "calibrate", "quantize"):
        assert _options(command)["batch_size"].default == DEFAULT_BATCH, command


def test_the_default_check_sees_a_diverging_default(monkeypatch):
    from inspector.commands.argtypes import default_of
    from inspector.deploy.engine_build import BuildOptions

    assert default_of(BuildOptions, "max_batch") == DEFAULT_BATCH
    with pytest.raises(LookupError):
        default_of(BuildOptions, "no_such_field")
    monkeypatch.setattr(BuildOptions.__dataclass_fields__["max_batch"], "default", 16)
    assert _options("build")["max_batch"].default == 16  # argparse follows the dataclass


@pytest.mark.parametrize("given, said", [
    (["--vmin", "1e9"], "error: --vmin 1e+09 is not below the highest map value seen ("),
    (["--vmax=-1e9"], "error: --vmax -1e+09 is not above the lowest map value seen (")])
def test_one_colour_scale_end_beyond_the_maps_other_end_is_refused_before_any_overlay(given, said, tmp_path, capsys):
    # --vmin 1e9 alone was taken: the default --vmax (the maps' highest value) lay below it and every overlay
    # was drawn in one flat colour, exit 0. The maps' range is known only after inference: the scores are
    # printed, then one line, exit 2, and no overlay written.
    import cv2
    import numpy as np
    from tiny_graphs import write_exported

    model = write_exported(tmp_path / "m", fp16=False)
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))
    out = tmp_path / "overlays"
    assert main(["predict", str(model), str(tmp_path / "img"), "--out", str(out), *given]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(said) and captured.err.count("\n") == 1, captured.err
    assert "a.png\t" in captured.out and not out.exists()
    assert main(["predict", str(model), str(tmp_path / "img"), "--out", str(out), "--vmin", "0"]) == 0
    assert len(list(out.iterdir())) == 1
