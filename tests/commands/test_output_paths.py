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
    """A folder name longer than the file system takes (ENAMETOOLONG, NAME_MAX 255): an OSError no check foresees
    still prints file and reason."""
    out = tmp_path / ("o" * 300)
    assert main(["data", "synth", "--out", str(out), "--size", "32", "--train", "1",
                 "--test-good", "1", "--test-defect", "1"]) == 2
    err = capsys.readouterr().err
    # the line shortens a long path in its middle; it still names the folder asked for, and the reason
    assert err.count("\n") == 1 and err.startswith(f"error: {str(out)[:40]}") and err.endswith(
        f"{'o' * 40}: File name too long\n"), err
    with pytest.raises(OSError):
        main(["data", "synth", "--out", str(out), "--size", "32", "--debug"])


# (argv with {model} / {fp16} / {sidecar} / {image} / {data}, the option named, the input it would destroy)
OVER_AN_INPUT = [
    (["calibrate", "{model}", "--data", "{data}", "--out", "{model}"], "--out", "{model}"),
    (["calibrate", "{fp16}", "--data", "{data}", "--out", "{sidecar}"], "--out", "{sidecar}"),
    (["calibrate", "{model}", "--data", "{data}", "--out", "{image}"], "--out", "{image}"),
    (["bench", "{model}", "--duration", "0.1", "--json", "{model}"], "--json", "{model}"),
    (["verify", "{fp16}", "--reference", "{model}", "--data", "{data}", "--report", "{fp16}"], "--report", "{fp16}"),
    (["verify", "{fp16}", "--reference", "{model}", "--data", "{data}", "--report", "{model}"], "--report", "{model}"),
    (["build", "{model}", "--out", "{model}"], "--out", "{model}"),
    (["build", "{model}", "--timing-cache", "{sidecar}"], "--timing-cache", "{sidecar}"),
    (["predict", "{model}", "{image}", "--out", "{data}"], "--out", "{image}"),  # predict's own check
]


@pytest.mark.parametrize("argv, option, victim", OVER_AN_INPUT,
                         ids=[f"{a[0]} {o} {v}" for a, o, v in OVER_AN_INPUT])
def test_an_output_over_an_input_is_one_line_and_the_input_is_kept(argv, option, victim, tmp_path, capsys,
                                                                     monkeypatch):
    """No command writes over what it reads. Before, ``calibrate m.onnx --out m.onnx`` replaced the model
    with a YAML file, ``bench --json`` and ``verify --report`` the graph with a JSON report, and
    ``calibrate --out data/000.png`` an image of the data set: exit 0 each, the input gone."""
    from tiny_graphs import write_exported

    import cv2
    import numpy as np

    monkeypatch.chdir(tmp_path)
    write_exported(tmp_path / "export")
    (tmp_path / "good").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "good" / f"{i:03d}.png"), np.full((32, 32, 3), 40 * i, np.uint8))
    names = {"model": "export/tiny.onnx", "fp16": "export/tiny.fp16.onnx", "sidecar": "export/tiny.json",
             "image": "good/000.png", "data": "good"}
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = [a.format(**names) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {option}") and victim.format(**names) in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_an_output_beside_the_inputs_is_written(tmp_path, capsys, monkeypatch):
    """The rule refuses only what the command reads: a calibration file kept in the data folder (not an image)
    is replaced by a new calibration (said), and a symlink to the model is refused like the model itself."""
    from tiny_graphs import write_exported

    import cv2
    import numpy as np

    monkeypatch.chdir(tmp_path)
    model = write_exported(tmp_path / "export", fp16=False)
    (tmp_path / "good").mkdir()
    for i in range(4):
        cv2.imwrite(str(tmp_path / "good" / f"{i:03d}.png"), np.full((32, 32, 3), 40 * i, np.uint8))
    assert main(["calibrate", str(model), "--good-dir", "good", "--out", "good/tiny.yaml"]) == 0
    assert main(["calibrate", str(model), "--good-dir", "good", "--out", "good/tiny.yaml"]) == 0  # its own: replaced
    assert "image_threshold" in (tmp_path / "good" / "tiny.yaml").read_text()
    assert "(replaced the earlier calibration)" in capsys.readouterr().out
    (tmp_path / "link.onnx").symlink_to(model)
    capsys.readouterr()
    assert main(["bench", str(model), "--duration", "0.1", "--json", "link.onnx"]) == 2
    assert "--json: link.onnx is the input" in capsys.readouterr().err
    assert (tmp_path / "link.onnx").is_symlink()


def _image_folder(folder, n=3):
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((32, 32, 3), 40 * i, np.uint8))


# (argv with {data} (an MVTec-layout data set) / {model}, the option named, the input folder named)
FOLDER_IN_IMAGES = [
    (["evaluate", "run", "--data", "{data}", "--out", "{data}/test/good"], "--out", "{data}"),
    (["evaluate", "run", "--data", "{data}", "--out", "{data}"], "--out", "{data}"),
    (["train", "--data", "{data}", "--out", "{data}/test/runs"], "--out", "{data}"),
    (["predict", "{model}", "{data}/test/good", "--out", "{data}/test/good/overlays"], "--out", "{data}/test/good"),
    (["predict", "{model}", "{data}/test/good", "--out", "{data}/test/heat"], "--out", "{data}"),
    (["predict", "{model}", "{data}/test/good/000.png", "--out", "{data}/heat"], "--out", "{data}"),
    (["calibrate", "{model}", "--data", "{data}", "--allow-few-good", "--out", "{data}/train/good/cal.yaml"], None,
     None),  # its 3 good images: fewer than 4 are refused unless allowed
]


@pytest.mark.parametrize("argv, option, holder", FOLDER_IN_IMAGES, ids=[" ".join(a[:1] + a[-1:]) for a, _, _ in FOLDER_IN_IMAGES])
def test_an_output_folder_inside_an_input_image_folder_is_one_line(argv, option, holder, tmp_path, capsys,
                                                                   monkeypatch):
    """A folder output is never an input image folder or inside one. Before, ``evaluate --data D --out
    D/test/good`` wrote roc.png and score_histogram.png among the good test images (the next evaluation
    scored them as parts), and ``--out D/test/runs`` made 'runs' a defect type."""
    from tiny_graphs import write_exported

    monkeypatch.chdir(tmp_path)
    write_exported(tmp_path / "export")
    for sub in ("train/good", "test/good", "test/crack"):
        _image_folder(tmp_path / "data" / sub)
    argv = [a.format(data="data", model="export/tiny.onnx") for a in argv]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code = main(argv)
    err = capsys.readouterr().err
    if option is None:  # a named file (not a folder output) beside the images: the file rule's, and written
        assert code == 0 and (tmp_path / "data/train/good/cal.yaml").is_file(), err
        return
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {option}: ") and f"input image folder {holder.format(data='data')};" in err, err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_evaluate_refuses_an_output_inside_the_data_set_of_its_config(tiny_dataset, tmp_path_factory, capsys):
    """``evaluate RUN`` reads the data set named in RUN/config.yaml, not on the command line: same rule."""
    from tiny_models import untrained_run

    run = untrained_run("reduced_student", tiny_dataset, tmp_path_factory)
    before = sorted(str(p) for p in tiny_dataset.rglob("*"))
    assert main(["evaluate", str(run), "--out", str(tiny_dataset / "test" / "good")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --out: ") and str(tiny_dataset) in err, err
    assert sorted(str(p) for p in tiny_dataset.rglob("*")) == before


def test_an_output_folder_beside_the_input_images_is_written(tmp_path, capsys, monkeypatch):
    """Only folders of images count: predict's overlays go to a sibling folder, and a run folder (no images) may
    hold its evaluation."""
    from tiny_graphs import write_exported

    monkeypatch.chdir(tmp_path)
    write_exported(tmp_path / "export")
    _image_folder(tmp_path / "good")
    assert main(["predict", "export/tiny.onnx", "good", "--out", "heat"]) == 0
    assert len(list((tmp_path / "heat").iterdir())) == 3
    assert main(["predict", "export/tiny.onnx", "good", "--out", "export/heat"]) == 0
