"""A folder where a file is expected is told as a folder, never as "not found".

Each reader checked ``path.is_file()`` and said "model file not found" (or "engine file", "weights file", the
daemon's model.path…) of a folder that is there: the user went looking for a missing file. They share
:func:`inspector.config.not_a_file` now, as the config, sidecar, calibration and checkpoint readers did; the
converse (a file where a folder is expected) is told too.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from tiny_graphs import write_exported

from inspector.cli import main
from inspector.errors import InspectorError


def _one_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["predict", "{d}/m.onnx", "{d}/img.png"], "error: {d}/m.onnx: is a folder, not a model file"),
    (["bench", "{d}/m.onnx"], "error: {d}/m.onnx: is a folder, not a model file"),
    (["bench", "{d}/e.plan"], "error: {d}/e.plan: is a folder, not an engine file"),
    (["verify", "{d}/m.onnx", "--reference", "{d}/m.onnx", "--data", "{d}/imgs"],
     "error: inspector verify: argument candidate: {d}/m.onnx is a folder, not a .onnx or .plan or .engine model "
     "file"),
    (["run", "--config", "{d}/daemon.yaml", "--check"], "error: {d}/daemon.yaml: model.path: {d}/m.onnx: is a folder, not a model file"),
    (["calibrate", "{d}/real/tiny.onnx", "--good-dir", "{d}/daemon.yaml"],
     "error: {d}/daemon.yaml: good-image folder is a file, not a folder"),
], ids=["predict", "bench-onnx", "bench-engine", "verify", "run", "calibrate-good-dir"])
def test_a_folder_for_a_model_or_engine_file_is_named_a_folder(tmp_path, capsys, argv, expected):
    (tmp_path / "m.onnx").mkdir()
    (tmp_path / "e.plan").mkdir()
    (tmp_path / "imgs").mkdir()
    for image in (tmp_path / "img.png", tmp_path / "imgs" / "a.png"):
        cv2.imwrite(str(image), np.full((32, 32, 3), 128, np.uint8))
    write_exported(tmp_path / "real")
    (tmp_path / "daemon.yaml").write_text(f"model: {{path: {tmp_path}/m.onnx}}\nthresholds: {{image: 0.5}}\n"
                                          f"cameras: [{{name: a, source: synthetic}}]\n")
    err = _one_line(capsys, [a.format(d=tmp_path) for a in argv])
    assert err.startswith(expected.format(d=tmp_path)), err


def test_a_folder_for_a_weights_file_or_an_engine_card_is_named_a_folder(tmp_path):
    from inspector.artifacts.engine_card import read_engine_sidecar
    from inspector.models.backbones.weights import locate_weights

    (tmp_path / "w.pth").mkdir()
    with pytest.raises(InspectorError, match=f"^resnet18: {tmp_path}/w.pth: is a folder, not a weights file$"):
        locate_weights("resnet18", tmp_path / "w.pth")
    (tmp_path / "e.plan").write_bytes(b"plan")
    (tmp_path / "e.json").mkdir()
    with pytest.raises(InspectorError, match=f"^{tmp_path}/e.plan: {tmp_path}/e.json: is a folder, not an engine "
                                             f"sidecar$"):
        read_engine_sidecar(tmp_path / "e.plan")


def test_a_symbolic_link_loop_or_a_broken_link_is_named_so_not_not_found(tmp_path, capsys):
    """A model path that is a symbolic link loop, or a link whose target is gone, was "model file not found"
    (config.not_a_file, which every reader of a named file shares): the user went looking for a file whose name
    ``ls`` lists there."""
    cv2.imwrite(str(tmp_path / "img.png"), np.full((32, 32, 3), 128, np.uint8))
    (tmp_path / "a.onnx").symlink_to(tmp_path / "b.onnx")
    (tmp_path / "b.onnx").symlink_to(tmp_path / "a.onnx")
    (tmp_path / "gone.onnx").symlink_to(tmp_path / "deleted.onnx")
    err = _one_line(capsys, ["predict", str(tmp_path / "a.onnx"), str(tmp_path / "img.png")])
    assert err == f"error: {tmp_path}/a.onnx: a symbolic link loop (too many levels of symbolic links), not a model file"
    err = _one_line(capsys, ["predict", str(tmp_path / "gone.onnx"), str(tmp_path / "img.png")])
    assert err == (f"error: {tmp_path}/gone.onnx: broken symbolic link (its target {tmp_path}/deleted.onnx does not "
                   f"exist), not a model file")


def test_an_enroll_reference_that_is_no_file_is_named_for_what_it_is(tmp_path):
    """``enroll --references`` said "no such file" of a folder named like an image, a symbolic link loop and a
    broken link alike: each is named for what it is, as a model path is."""
    from inspector.deploy.enroll import reference_files

    (tmp_path / "dir.png").mkdir()
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "deleted.png")
    expected = {"dir.png": "is a folder, not a reference image",
                "a.png": "a symbolic link loop (too many levels of symbolic links), not a reference image",
                "gone.png": f"broken symbolic link (its target {tmp_path}/deleted.png does not exist), not a "
                            f"reference image",
                "none.png": "reference image not found"}
    for name, why in expected.items():
        with pytest.raises(InspectorError) as exc:
            reference_files([str(tmp_path / name)])
        assert str(exc.value) == f"references: {tmp_path}/{name}: {why}", exc.value
