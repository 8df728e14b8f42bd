"""Where a command writes: a folder that is a file, a file name that is a folder, a path below a file.

Every such case is refused by the parser in one line naming the option, before any work and with the user's
file untouched; an OSError the parser cannot foresee (a folder the system will not create) is one line too.
Before, each ended in a FileExistsError / IsADirectoryError traceback, some after training or scoring.
"""

from __future__ import annotations

import argparse

import pytest

from inspector.cli import build_parser, main

# (argv with {file} / {folder} for the path of the wrong kind, the option named in the error)
WRONG_KIND = [
    (["train", "--data", "d", "--out", "{file}"], "--out"),
    (["evaluate", "run", "--out", "{file}"], "--out"),
    (["predict", "m.onnx", "x.png", "--out", "{file}"], "--out"),
    (["export", "run", "--out", "{file}/rs"], "--out"),
    (["enroll", "--model", "m.pt", "--references", "x.png", "--out", "{file}/new"], "--out"),
    (["calibrate", "m.onnx", "--out", "{file}/cal.yaml"], "--out"),
    (["quantize", "m.onnx", "--calibration", "d", "--out", "{folder}"], "--out"),
    (["build", "m.onnx", "--out", "{folder}"], "--out"),
    (["build", "m.onnx", "--timing-cache", "{folder}"], "--timing-cache"),
    (["verify", "c.onnx", "--reference", "m.onnx", "--data", "d", "--report", "{folder}"], "--report"),
    (["bench", "m.onnx", "--json", "{folder}"], "--json"),
    (["bench", "--suite", "--out", "{file}"], "--out"),
    (["subscribe", "ipc:///tmp/x.sock", "--save-dir", "{file}"], "--save-dir"),
    (["demo", "--out", "{file}"], "--out"),
    (["data", "synth", "--out", "{file}/data"], "--out"),
]


@pytest.mark.parametrize("argv, option", WRONG_KIND, ids=[" ".join(a[:1] + [o]) for a, o in WRONG_KIND])
def test_an_output_of_the_wrong_kind_is_one_line_and_nothing_is_touched(argv, option, tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("the user's")
    (tmp_path / "results").mkdir()
    argv = [a.format(file="notes.txt", folder="results") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: inspector {argv[0]}") and f"argument {option}:" in err, err
    assert "notes.txt" in err or "results" in err, err
    assert (tmp_path / "notes.txt").read_text() == "the user's" and not any((tmp_path / "results").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "results"]  # nothing created


def test_every_output_option_is_typed():
    """Each option that names where a command writes goes through an argtypes output type."""
    names = {"out", "json", "report", "save_dir", "timing_cache"}

    def walk(parser: argparse.ArgumentParser, prefix: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, f"{prefix} {name}")
            elif action.dest in names and action.nargs != 0 and getattr(action.type, "__module__", "") != \
                    "inspector.commands.argtypes":
                yield f"{prefix} {'/'.join(action.option_strings)}"

    untyped = sorted(set(walk(build_parser(), "inspector")))
    assert untyped == [], f"output options without an output type (use commands.argtypes): {untyped}"


def test_an_os_error_naming_a_file_is_one_line(tmp_path, capsys):
    """/proc takes no new folder (ENOENT): an OSError no check foresees still prints file and reason."""
    assert main(["data", "synth", "--out", "/proc/inspector-test-out", "--size", "32", "--train", "1",
                 "--test-good", "1", "--test-defect", "1"]) == 2
    err = capsys.readouterr().err
    assert err == "error: /proc/inspector-test-out: No such file or directory\n", err
    with pytest.raises(OSError):
        main(["data", "synth", "--out", "/proc/inspector-test-out", "--size", "32", "--debug"])
