"""Which files are images: one rule (inspector.data.images.is_image_file) for a folder listing and a file named
on the command line, and every file of an image format left out is told, never dropped silently."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from PIL import Image

from inspector.cli import main


def _folder(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((32, 32, 3), 90, np.uint8))
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(folder / "b.gif")  # OpenCV 5 decodes it
    (folder / "notes.txt").write_text("not an image")
    return folder


def _scored(out: str) -> list[str]:
    return [line.split("\t")[0] for line in out.splitlines() if "\t" in line]


def test_predict_scores_the_same_files_named_or_listed(tmp_path, capsys, caplog):
    """Before, ``predict parts/`` scored a.png only (b.gif left out silently) while ``predict parts/b.gif``
    scored the GIF: the same file was an image or not depending on how it was named."""
    from tiny_graphs import write_exported

    model = str(write_exported(tmp_path / "export", fp16=False))
    folder = _folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert main(["predict", model, str(folder)]) == 0
    listed = _scored(capsys.readouterr().out)
    told = [r.getMessage() for r in caplog.records if "b.gif" in r.getMessage()]
    assert listed == [str(folder / "a.png")] and len(told) == 1 and "1 file(s)" in told[0], (listed, told)

    assert main(["predict", model, str(folder / "b.gif"), str(folder / "a.png")]) == 2
    captured = capsys.readouterr()
    assert _scored(captured.out) == listed, captured.out
    err = [line for line in captured.err.splitlines() if "b.gif" in line]
    assert len(err) == 1 and err[0].startswith(f"error: {folder / 'b.gif'}: '.gif' is not an image format"), err


def test_predict_of_only_files_it_does_not_read_is_one_line(tmp_path, capsys):
    """``predict model x.gif`` told the GIF, then "x.gif: no images found": two lines for one fault."""
    from tiny_graphs import write_exported

    model = str(write_exported(tmp_path / "export", fp16=False))
    folder = _folder(tmp_path)
    assert main(["predict", model, str(folder / "b.gif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {folder / 'b.gif'}: '.gif' is not an image format"), err



@pytest.mark.parametrize("suffix", [".jfif", ".jpe", ".JFIF"])
def test_jpeg_under_its_other_names_is_an_image_on_every_path(tmp_path, capsys, caplog, suffix):
    """``.jfif`` / ``.jpe`` are JPEG's other names (browsers on Windows save photos as .jfif). predict refused
    such a file by name and a folder listing (training, evaluation, the folder camera) skipped it without a word,
    while a camera on that one file inspected it: it is an image everywhere now, and scores as its .jpg copy."""
    from tiny_graphs import write_exported

    from inspector.data.datasets import load_dataset
    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.sources import FolderSource

    model = str(write_exported(tmp_path / "export", fp16=False))
    folder = tmp_path / "parts"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
    cv2.imwrite(str(folder / "a.jpg"), pixels)
    (folder / f"b{suffix}").write_bytes((folder / "a.jpg").read_bytes())
    with caplog.at_level(logging.WARNING):
        assert main(["predict", model, str(folder)]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines() if "\t" in line]
    assert [name for name, *_ in lines] == [str(folder / "a.jpg"), str(folder / f"b{suffix}")], lines
    assert lines[0][1] == lines[1][1]
    assert main(["predict", model, str(folder / f"b{suffix}")]) == 0
    assert [s.path.name for s in load_dataset(folder).train] == ["a.jpg", f"b{suffix}"]
    source = FolderSource(CameraSection(name="parts", source=str(folder)))
    source.open()
    seen = []
    while (grabbed := source.read()) is not None:
        seen.append((grabbed.meta["file"], grabbed.image is not None))
    source.close()
    assert seen == [("a.jpg", True), (f"b{suffix}", True)], seen

def test_enroll_references_follow_the_same_rule(tmp_path, caplog):
    """A glob keeps the images and tells the rest in one line; a named non-image is refused in one line."""
    from inspector.deploy.enroll import reference_files
    from inspector.errors import ConfigError

    folder = _folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert reference_files([str(folder / "*")]) == [folder / "a.png"]
    told = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(told) == 1 and "2 file(s)" in told[0], told
    with pytest.raises(ConfigError, match=r"b\.gif: '\.gif' is not an image format read"):
        reference_files([str(folder / "b.gif")])


@pytest.mark.parametrize("name", ["frame_0001", "frame.dat", "scan.JP2", ".frame.png"])
def test_a_named_file_is_an_image_by_its_content_on_every_path(tmp_path, capsys, name):
    """The daemon's camera on one file decides by the file's content where its name says nothing (no extension,
    ``.dat``, ``.jp2``) and inspects such a still, a hidden one too; ``predict`` refused the very file by its
    name. Both decide by one rule now: predict scores it as its ``.png`` copy, and a named file that is no
    image is still one error line. (Listings keep to names and skip hidden files, as shell globs do.)"""
    from tiny_graphs import write_exported

    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.sources import ImageFileSource, make_source

    model = str(write_exported(tmp_path / "export", fp16=False))
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), pixels)
    fmt = ".jp2" if name.lower().endswith(".jp2") else ".png"
    (tmp_path / name).write_bytes(cv2.imencode(fmt, pixels)[1].tobytes())
    (tmp_path / "notes").write_text("not an image")
    assert isinstance(make_source(CameraSection(name="still", source=str(tmp_path / name))), ImageFileSource)
    assert main(["predict", model, str(tmp_path / "a.png"), str(tmp_path / name), str(tmp_path / "notes")]) == 2
    captured = capsys.readouterr()
    lines = [line.split("\t") for line in captured.out.splitlines() if "\t" in line]
    assert [p for p, _ in lines] == [str(tmp_path / "a.png"), str(tmp_path / name)], captured
    assert lines[0][1] == lines[1][1] or fmt == ".jp2", lines  # JPEG 2000 round trip is lossless here too
    err = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'notes'}: "), err


def test_a_non_finite_score_from_predict_exits_2_naming_the_image(tmp_path, capsys):
    """A model scoring NaN (a damaged graph, an FP16 overflow) printed "nan" ("nan\terror" under a calibration)
    and exited 0: a script reading the exit status took it for a passed check. Each such image is an error line
    now, the others scored as usual."""
    from tiny_graphs import write_exported

    graph = write_exported(tmp_path / "export", nan=True)  # the FP16 graph gives NaN
    fp16 = graph.with_name("tiny.fp16.onnx")
    folder = _folder(tmp_path)
    assert main(["predict", str(fp16), str(folder / "a.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out.strip().split("\t")[1] == "nan", captured.out
    assert captured.err.strip() == (f"error: {folder / 'a.png'}: {fp16} gave a non-finite score (nan); is the model "
                                    f"damaged or its FP16 graph overflowing?"), captured.err
    assert main(["predict", str(graph), str(folder / "a.png")]) == 0


def test_predict_of_a_folder_of_sub_folders_names_them_in_its_one_line(tmp_path, capsys):
    """'predict day/' where the pictures sit in day/shift1/, day/shift2/: 'no images found' alone sent the user
    looking for a format problem; the line names the sub-folders that hold images (not read: name them)."""
    for shift in ("shift1", "shift2"):
        (tmp_path / "day" / shift).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "day" / shift / "0.png"), np.full((32, 32, 3), 90, np.uint8))
    from tiny_graphs import write_exported

    model = str(write_exported(tmp_path / "export", fp16=False))
    assert main(["predict", model, str(tmp_path / "day")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "no images found" in err[0]
    assert "2 sub-folder(s) holding images are not read" in err[0] and "shift1, shift2" in err[0]


def test_predict_of_a_dataset_root_is_told_once_and_says_which_folders_to_name(tiny_dataset, tmp_path, capsys,
                                                                               caplog):
    """`predict MODEL data/brick` (the dataset, not its images) logged a warning about its sub-folders and then
    an error saying the same. Now one line, saying to name its test/<type> folders; beside other images that
    are scored, one warning line instead."""
    import logging

    from tiny_graphs import write_exported

    model = str(write_exported(tmp_path / "export", fp16=False))
    with caplog.at_level(logging.WARNING):
        assert main(["predict", model, str(tiny_dataset)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tiny_dataset}: no images found"), err
    assert f"(a dataset: its test/<type> folders, e.g. {tiny_dataset / 'test' / 'good'})" in err[0], err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    image = next((tiny_dataset / "test" / "good").glob("*.png"))
    assert main(["predict", model, str(tiny_dataset), str(image)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"warning: {tiny_dataset}: 3 sub-folder(s) holding images are not read"), line
