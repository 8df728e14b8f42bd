"""Every command that takes good images refuses a dataset's defect or mask folder given as them, in one line naming
the dataset to give instead (exit 2), before anything is written; ``train`` did, the others did not.

A newcomer's ``calibrate --good-dir data/brick/test/hole`` calibrated on the holes as good parts: the threshold went
above every hole, so the line would pass them all, with no word. ``calibrate --data data/brick/test/hole`` said "no
validation split recorded for this model" of a model that recorded one, and ``quantize --calibration`` fitted the
INT8 ranges to defects. Real folders, real PNGs, the tests' really trained and exported model."""

from __future__ import annotations

import shutil

import pytest

from inspector.cli import main


@pytest.fixture()
def brick(tiny_dataset, tmp_path, monkeypatch):
    """A copy of the tests' synthetic brick dataset at data/brick under a fresh working directory."""
    shutil.copytree(tiny_dataset, tmp_path / "data" / "brick")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data" / "brick"


def _defect_type(brick):
    return next(p.name for p in sorted((brick / "test").iterdir()) if p.name != "good")


@pytest.mark.parametrize("option", ["--good-dir", "--data"])
@pytest.mark.parametrize("inner, said", [("test/{bad}", "the defective images ({bad}) of the dataset"),
                                         ("ground_truth/{bad}", "the ground-truth masks of the dataset")])
def test_calibrate_refuses_a_defect_or_mask_folder_as_good_images(option, inner, said, brick, exported_model,
                                                                   capsys):
    bad = _defect_type(brick)
    folder = "data/brick/" + inner.format(bad=bad)
    assert main(["calibrate", str(exported_model), option, folder, "--out", "cal.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == (f"error: {folder}: {said.format(bad=bad)} data/brick, no good images; "
                                        f"give --data data/brick (the good images its model kept out, else its "
                                        f"test/good)"), err
    assert not (brick.parent.parent / "cal.yaml").exists()


def test_calibrate_data_on_a_good_folder_of_the_dataset_names_the_dataset(brick, exported_model, capsys):
    """The model recorded its validation images: "no validation split recorded" was false, and no folder was named."""
    assert main(["calibrate", str(exported_model), "--data", "data/brick/test/good", "--out", "cal.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no validation split recorded" not in err[0], err
    assert err[0].startswith("error: data/brick/test/good: none of the model's ") and err[0].endswith(
        "validation image(s) is here and no test/good images; it is the test/good folder of the dataset "
        "data/brick: pass data/brick"), err


def test_calibrate_good_dir_on_the_good_folder_still_calibrates(brick, exported_model, capsys):
    assert main(["calibrate", str(exported_model), "--good-dir", "data/brick/test/good", "--out", "cal.yaml",
                 "--allow-few-good"]) == 0
    assert (brick.parent.parent / "cal.yaml").is_file()


@pytest.mark.parametrize("inner", ["test/{bad}", "ground_truth/{bad}"])
def test_quantize_calibration_images_refuse_a_defect_or_mask_folder(inner, brick):
    from inspector.deploy.quantize import calibration_images
    from inspector.errors import DataError

    folder = "data/brick/" + inner.format(bad=_defect_type(brick))
    with pytest.raises(DataError) as caught:
        calibration_images(folder)
    assert str(caught.value).startswith(f"{folder}: ") and str(caught.value).endswith(
        "no good images; pass data/brick (its train/ good images are used)")
    for good in ("data/brick", "data/brick/train/good", "data/brick/test/good"):
        assert calibration_images(good), good


@pytest.mark.parametrize("inner, said", [("test/{bad}", "the defective images ({bad}) of the dataset"),
                                         ("ground_truth/{bad}", "the ground-truth masks of the dataset")])
def test_enroll_refuses_references_from_a_defect_or_mask_folder(inner, said, brick, capsys):
    """Enrolled, a dataset's defects became the new surface's normal look, so the same defects on the line scored
    low. References are checked before the model is read, so no model is needed to show it."""
    bad = _defect_type(brick)
    folder = "data/brick/" + inner.format(bad=bad)
    first = sorted((brick.parent.parent / folder).iterdir())[0].name
    assert main(["enroll", "--model", "runs/none.pt", "--references", f"{folder}/*.png", "--out", "export/new"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == (f"error: references: {folder}/{first} is in {folder}: "
                                        f"{said.format(bad=bad)} data/brick, no good images; enrol good images of "
                                        f"the surface (e.g. data/brick/train/good)"), err
    assert not (brick.parent.parent / "export").exists()


def test_enroll_references_from_a_good_folder_pass_the_check(brick):
    from inspector.deploy.enroll import reference_files

    assert reference_files(["data/brick/train/good/*.png", "data/brick/test/good/*.png"])


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo") or not __import__("os").path.exists("/dev/zero"),
                    reason="no FIFOs or /dev/zero here")
def test_calibrate_skips_a_fifo_and_a_device_link_among_the_good_images_instead_of_hashing_them(
        brick, exported_model, capsys):
    """A FIFO and a link to /dev/zero named like good images: calibrate hashed every good image to tell the ones
    the model was fitted on, and the hash of /dev/zero never ends (a FIFO's open waits for a writer). They are
    skipped as unreadable, counted, and the threshold is written. The hash refuses what is no regular file, unread.
    (In a worker thread: the old hash would not return.)"""
    import os
    import threading

    from inspector.artifacts.model_card import sha256_file

    good = brick / "test" / "good"
    os.mkfifo(good / "zz_fifo.png")
    (good / "zz_zero.png").symlink_to("/dev/zero")
    def within(limit_s, fn):
        done = []
        worker = threading.Thread(target=lambda: done.append(fn()), daemon=True)
        worker.start()
        worker.join(limit_s)
        assert not worker.is_alive(), f"still running after {limit_s} s"
        return done[0] if done else None

    def refused(path, error):
        with pytest.raises(error, match="not a regular file|Is a directory"):
            sha256_file(path)
        return True

    for special in ("zz_fifo.png", "zz_zero.png"):
        assert within(10, lambda: refused(good / special, OSError))
    assert within(10, lambda: refused(good, IsADirectoryError))
    assert within(300, lambda: main(["calibrate", str(exported_model), "--good-dir", "data/brick/test/good",
                                     "--out", "cal.yaml", "--allow-few-good"])) == 0
    said = capsys.readouterr()
    assert "2 good image(s) were skipped" in said.out + said.err, said
    assert (brick.parent.parent / "cal.yaml").is_file()
