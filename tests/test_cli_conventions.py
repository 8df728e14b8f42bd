"""CLI conventions users bring from Ultralytics/anomalib: option placement, fast help, quiet libraries."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time

import pytest

from inspector.cli import COMMANDS, build_parser, main


def _python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; ``env`` replaces the environment."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=os.environ if env is None else env, timeout=120)


@pytest.mark.parametrize("argv, debug, verbose", [
    (["--debug", "train", "--out", "r"], True, False),
    (["train", "--out", "r", "--debug", "-v"], True, True),
    (["-v", "train", "--out", "r"], False, True),  # given before: not reset by the sub-parser's default
    (["data", "synth", "--out", "d", "--verbose"], False, True),  # nested sub-commands too
    (["subscribe", "tcp://127.0.0.1:1"], False, False),
])
def test_global_options_before_or_after_the_command(argv, debug, verbose):
    args = build_parser(only=argv[0] if argv[0] in COMMANDS else argv[1]).parse_args(argv)
    assert (args.debug, args.verbose) == (debug, verbose)


def test_debug_after_the_command_shows_the_traceback(tmp_path, capsys):
    from inspector.errors import ConfigError

    argv = ["run", "--config", str(tmp_path / "missing.yaml")]
    assert main(argv) == 2 and capsys.readouterr().err.startswith("error: ")
    with pytest.raises(ConfigError):
        main(argv + ["--debug"])


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--epochs", "-3"), ("--time-budget", "0"),
                                         ("--time-budget", "-1")])
def test_zero_epochs_or_time_budget_are_refused(tmp_path, capsys, flag, value):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: inspector train: argument {flag}: {value}") and "out of range" in err
    assert "\n" not in err
    assert not (tmp_path / "r").exists()


def test_model_help_lists_the_registered_models():
    from inspector.models import model_package_names
    from inspector.models.registry import model_names

    assert model_package_names() == tuple(sorted(model_names()))  # the torch-free list is the registry's
    parser = build_parser(only="train")
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    text = " ".join(train.format_help().split())
    assert all(name in text for name in model_names()), text


def test_help_and_config_errors_do_not_import_torch(tmp_path):
    """`--help` of every command and a config error of train/run answer without loading torch."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: reduced_studnet}\n")
    result = _python("""
        import contextlib, io, sys, time
        from inspector.cli import COMMANDS, main
        start = time.perf_counter()
        for name in COMMANDS:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main([name, "--help"])
                except SystemExit:
                    pass
        codes = [main(["train", "--config", sys.argv[1], "--out", sys.argv[2]]),
                 main(["run", "--config", sys.argv[2]])]
        print(codes, sorted(m for m in ("torch", "onnxruntime", "skimage") if m in sys.modules))
        """, str(bad), str(tmp_path / "nothing"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[2, 2] []", result.stdout
    assert "did you mean 'reduced_student'" in result.stderr


def test_library_log_lines_quiet_unless_verbose(tmp_path):
    """FFmpeg's decoder chatter (via OpenCV) and library INFO lines (e.g. ORT's quantizer) need -v."""
    import cv2
    import numpy as np

    video = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for _ in range(10):
        writer.write(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    writer.release()
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # a truncated file: FFmpeg complains
    code = """
        import logging, sys
        from inspector.cli import configure_logging
        configure_logging(verbose=sys.argv[1] == "1")
        logging.getLogger("onnxruntime.quantization").info("library info line")
        logging.getLogger("inspector.train").info("inspector info line")
        import cv2
        cap = cv2.VideoCapture(sys.argv[2])
        while cap.read()[0]:
            pass
        """
    # A user's shell, without the variables an earlier main() in this process may have set.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    quiet = _python(code, "0", str(video), env=clean)
    loud = _python(code, "1", str(video), env=clean)
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "inspector info line" in quiet.stderr and "library info line" not in quiet.stderr
    assert "@" not in quiet.stderr, quiet.stderr  # FFmpeg lines look like "[mjpeg @ 0x…] …"
    assert "library info line" in loud.stderr and "[mjpeg @" in loud.stderr, loud.stderr


def test_help_is_fast():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "inspector", "train", "--help"], capture_output=True, timeout=60)
    assert result.returncode == 0
    assert time.perf_counter() - start < 5.0  # well under a second on an idle machine; generous for shared CI


@pytest.mark.parametrize("command", [["quantize", "{m}", "--calibration", "{d}"], ["build", "{m}"],
                                     ["predict", "{m}", "{d}"], ["calibrate", "{m}", "--good-dir", "{d}"],
                                     ["verify", "{m}", "--reference", "{m}", "--data", "{d}"]])
@pytest.mark.parametrize("model", ["/", "."])
def test_a_model_path_without_a_file_name_is_one_line(command, model, tmp_path, capsys):
    """Every command that takes a graph names its sidecar from the graph's file name; ``/`` and ``.`` have none,
    and ``quantize /`` or ``build .`` ended in pathlib's ValueError (a traceback)."""
    argv = [a.format(m=model, d=tmp_path) for a in command]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err


def test_an_error_naming_a_file_with_a_newline_escapes_it(tmp_path, capsys):
    """A file name ``a<LF>b`` in an error line is written ``a\\nb``; before, InspectorError turned the newline into a
    space, so the line named 'a b', another file (which may exist), and no escaping could tell them apart."""
    from inspector.cli import main
    from inspector.errors import DataError

    (tmp_path / "a b").mkdir()  # the file the old line seemed to name
    assert main(["data", "info", str(tmp_path / "a\nb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {tmp_path}/a\\nb: dataset folder not found" in err, err
    assert str(DataError("x\ry\x1b[2J")) == "x\\ry\\x1b[2J"


def test_an_os_error_naming_a_very_long_file_keeps_its_reason_on_a_short_line():
    """An OSError about a name of 5,000 characters (ENAMETOOLONG) printed the name whole: a 5,000-character line
    whose reason came last. The name is cut in its middle, as every error line cuts a value echoed whole."""
    import errno

    from inspector.cli import os_error_line

    line = os_error_line(OSError(errno.ENAMETOOLONG, "File name too long", "/data/" + "x" * 5000 + ".png"))
    assert len(line) < 300 and line.endswith(".png: File name too long") and "[5010 chars]" in line, line


def _zero_width_png() -> bytes:
    """A PNG whose IHDR says width 0: libpng prints 'libpng warning: Image width is zero in IHDR' and
    'libpng error: Invalid IHDR data' to descriptor 2 when OpenCV decodes it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 16, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_native_codec_lines_of_an_offline_command_come_through_logging(tmp_path):
    """A data set's images are decoded on threads, where the decoder's own stderr sink stands aside: calibrate
    on a folder with a 0-width PNG printed libpng's two lines raw, beside its own 'skipping …' line. Now they are
    DEBUG records of inspector.native (shown with -v), and the command's line names the file."""
    import os
    import subprocess
    import sys

    import cv2
    import numpy as np
    from tiny_graphs import write_exported

    model = write_exported(tmp_path / "export", fp16=False)
    good = tmp_path / "good"
    good.mkdir()
    for i in range(6):
        cv2.imwrite(str(good / f"{i:03d}.png"), np.full((32, 32, 3), 30 * i, np.uint8))
    (good / "zero.png").write_bytes(_zero_width_png())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}

    def calibrate(*extra: str) -> str:
        done = subprocess.run([sys.executable, "-m", "inspector", "calibrate", str(model), "--good-dir", str(good),
                               "--out", str(tmp_path / "cal.yaml"), *extra], capture_output=True, text=True,
                              env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr

    quiet = calibrate()
    assert "libpng" not in quiet and "zero.png: cannot decode image" in quiet, quiet
    verbose = calibrate("-v")
    assert "DEBUG inspector.native: libpng: Invalid IHDR data" in verbose, verbose
    assert not any(line.startswith("libpng") for line in verbose.splitlines()), verbose


def _inspector(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector", *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv, usage", [((), "usage: inspector "), (("--debug",), "usage: inspector "),
                                         (("data",), "usage: inspector data "),
                                         (("service",), "usage: inspector service ")])
def test_no_command_is_a_usage_error_with_the_list_on_stderr(argv, usage):
    """Bare `inspector` (or `inspector data`) is argparse's usage error: the commands on stderr, exit 2."""
    result = _inspector(*argv)
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr.startswith(usage), result.stderr
    assert ("<command>" in result.stderr) != ("<action>" in result.stderr), result.stderr  # the list of that level


@pytest.mark.parametrize("argv, line", [
    (("trian",), "error: inspector: unknown command 'trian' (did you mean 'train'?)"),
    (("--debug", "calibrte", "--help"), "error: inspector: unknown command 'calibrte' (did you mean 'calibrate'?)"),
    (("data", "synt", "--out", "d"), "error: inspector data: unknown action 'synt' (did you mean 'synth'?)"),
    (("service", "instal"), "error: inspector service: unknown action 'instal' (did you mean 'install'?)"),
    (("train", "--out", "r", "--epohcs", "3"),
     "error: inspector train: unknown option '--epohcs' (did you mean '--epochs'?)"),
    # a misspelt required option: the misspelling is told, not the option it left out
    (("data", "synth", "--ot", "d"), "error: inspector data synth: unknown option '--ot' (did you mean '--out'?)"),
    (("data", "info", "d", "--jsn"), "error: inspector data info: unknown option '--jsn' (did you mean '--json'?)"),
    (("calibrate", "--backend", "onxruntime"),
     "error: inspector calibrate: argument --backend: invalid choice: 'onxruntime' (did you mean 'onnxruntime'?)"),
    (("xyzzy",), "error: inspector: unknown command 'xyzzy' (see 'inspector --help')"),
])
def test_a_mistyped_command_or_option_gets_one_line_with_did_you_mean(argv, line, tmp_path):
    result = subprocess.run([sys.executable, "-m", "inspector", *argv], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


def test_help_and_version_still_exit_0_on_stdout():
    for argv in (("--help",), ("--version",), ("data", "--help")):
        result = _inspector(*argv)
        assert result.returncode == 0 and result.stdout and not result.stderr, (argv, result)


def _options_with_defaults(parser, name="inspector"):
    """``(command, option, default, help)`` of every argument, sub-commands included, whose default is a value a
    user gets without typing it (not None, False, an empty list/tuple or argparse's SUPPRESS)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _options_with_defaults(sub, f"{name} {sub_name}")
        elif not (action.default is None or action.default is False or action.default in ([], (), argparse.SUPPRESS)
                  or action.help in (None, argparse.SUPPRESS)):
            yield name, (action.option_strings or [action.dest])[-1], action.default, action.help


def test_every_default_is_told_in_help():
    # a newcomer reads --help to learn what happens without an option: `inspector subscribe` with no endpoint
    # connected to tcp://127.0.0.1:5556 while its help named no default, and so did --timeout, --queue-mib,
    # --cuda, --device, --unit-dir and --watchdog-s
    untold = [f"{command} {option} (default {default!r})"
              for command, option, default, text in _options_with_defaults(build_parser())
              if "default" not in text.lower() and str(default) not in text]
    assert not untold, untold
