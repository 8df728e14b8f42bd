"""Synthetic datasets: layout, determinism, exact masks, every defect kind."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from inspector.data.images import read_image, read_mask
from inspector.data.synth import DEFECT_KINDS, NOTABLE, good_image, load_sources, make_defect, synthesize
from inspector.errors import DataError


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_manifest_and_masks(tmp_path):
    ds = synthesize(tmp_path / "b", size=64, n_train=4, n_test_good=2, n_test_defect=12, seed=1)
    s = ds.summary()
    assert ds.layout == "mvtec" and s["n_train"] == 4
    assert s["test"] == {**{k: 2 for k in DEFECT_KINDS}, "good": 2}
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["size"] == 64 and manifest["defects"] == list(DEFECT_KINDS)
    assert (tmp_path / "b" / "README.txt").is_file()
    for sample in ds.test:
        img = read_image(sample.path)
        assert img.shape == (64, 64, 3)
        if sample.label:
            raw = read_image(sample.mask_path)
            assert set(np.unique(raw)) == {0, 255}
            assert read_mask(sample.mask_path).sum() >= 6


def test_same_seed_same_bytes(tmp_path):
    kwargs = dict(size=64, n_train=3, n_test_good=2, n_test_defect=6)
    synthesize(tmp_path / "a", seed=5, **kwargs)
    synthesize(tmp_path / "b", seed=5, **kwargs)
    synthesize(tmp_path / "c", seed=6, **kwargs)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    # more test images do not change the training images
    synthesize(tmp_path / "d", seed=5, size=64, n_train=3, n_test_good=4, n_test_defect=1)
    assert _digest(tmp_path / "a" / "train") == _digest(tmp_path / "d" / "train")


@pytest.mark.parametrize("kind", DEFECT_KINDS)
@pytest.mark.parametrize("texture", ["brick", "gravel"])
def test_mask_is_exactly_the_changed_pixels(kind, texture):
    sources = load_sources(texture)
    for i in range(4):
        rng = np.random.default_rng([7, i])
        good = good_image(sources, 96, rng)
        img, mask = make_defect(good, kind, rng)
        diff = np.abs(img.astype(int) - good.astype(int)).max(axis=2)
        assert mask.dtype == bool and mask.shape == (96, 96)
        assert np.array_equal(mask, diff > 0)  # nothing changed outside the mask
        assert (diff[mask] >= NOTABLE).all()  # everything inside changed notably
        assert mask.sum() >= 9  # visible
        assert mask.mean() < 0.35  # not the whole image
        assert diff[mask].mean() > 25


def test_folder_texture(tmp_path):
    src = tmp_path / "src"
    synthesize(src / "tmp", size=128, n_train=2, n_test_good=0, n_test_defect=0)
    (src / "tmp" / "train" / "good" / "000.png").rename(src / "photo.png")
    ds = synthesize(tmp_path / "out", texture=src, size=48, n_train=2, n_test_good=1, n_test_defect=1,
                    defects=("stain",))
    assert ds.summary()["test"] == {"good": 1, "stain": 1}


def test_errors(tmp_path):
    with pytest.raises(DataError, match="unknown defect kind"):
        synthesize(tmp_path / "x", size=64, defects=("dent",))
    with pytest.raises(DataError, match="neither a folder of images nor one of brick"):
        synthesize(tmp_path / "x", texture=tmp_path / "missing", size=64)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="full: folder exists and is not empty"):
        synthesize(tmp_path / "full", size=64, n_train=2)
    with pytest.raises(DataError, match="full: not a data set written by 'inspector data synth'"):
        synthesize(tmp_path / "full", size=64, n_train=2, overwrite=True)  # --force replaces only synth's output
    synthesize(tmp_path / "ours", size=64, n_train=2, n_test_good=0, n_test_defect=0)
    (tmp_path / "ours" / "keep.txt").write_text("mine")
    synthesize(tmp_path / "ours", size=64, n_train=2, n_test_good=0, n_test_defect=0, overwrite=True)
    assert (tmp_path / "ours" / "keep.txt").read_text() == "mine"  # --force removes only synth's own files


def _image(path, value=128):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((40, 40, 3), value, np.uint8))


def _tree(root):
    return sorted((p.relative_to(root).as_posix(), p.read_bytes() if p.is_file() else b"")
                  for p in root.rglob("*"))


def _user_folders(tmp_path):
    """Folders a user has that ``data synth --out X --force`` must not delete from (name → path)."""
    real = tmp_path / "real"  # an MVTec-layout data set of camera images: no synth manifest
    for rel in ("train/good/cam_1.png", "test/good/cam_2.png", "test/crack/cam_3.png",
                "ground_truth/crack/cam_3_mask.png"):
        _image(real / rel)
    fake = tmp_path / "fake"  # a manifest.json of another tool
    _image(fake / "train" / "good" / "000.png")
    (fake / "manifest.json").write_text('{"generator": "labelling-tool"}')
    added = tmp_path / "added"  # synth's output, then the user's own images added to its test split
    synthesize(added, size=32, n_train=1, n_test_good=1, n_test_defect=1)
    _image(added / "test" / "good" / "line3_0001.png")
    linked = tmp_path / "linked"  # synth's output with the user's folder linked in as a defect type
    synthesize(linked, size=32, n_train=1, n_test_good=1, n_test_defect=1)
    (linked / "test" / "dent").symlink_to(real / "test" / "good", target_is_directory=True)
    readme = tmp_path / "readme"  # synth's output whose README.txt the user rewrote as the line's notes
    synthesize(readme, size=32, n_train=1, n_test_good=1, n_test_defect=1)
    (readme / "README.txt").write_text("line 3 brick: defects seen in March, see the shift log\n")
    stopped = tmp_path / "stopped"  # a stopped synth run (its marker), and the user's own manifest.json there
    synthesize(stopped, size=32, n_train=1, n_test_good=1, n_test_defect=1)
    (stopped / "synth-in-progress.json").write_text('{"generator": "inspector.data.synth", "complete": false}')
    (stopped / "manifest.json").write_text('{"generator": "labelling-tool"}')
    project = tmp_path / "project"  # a source checkout, also as '.' and as a parent of --out
    (project / "test").mkdir(parents=True)
    (project / "test" / "test_x.py").write_text("def test(): pass\n")
    return {"real": real, "fake": fake, "added": added, "linked": linked, "readme": readme, "stopped": stopped,
            "project": project}


@pytest.mark.parametrize("which, out, match", [
    ("real", "{real}", "not a data set written by 'inspector data synth'"),
    ("fake", "{fake}", "not a data set written by 'inspector data synth'"),
    ("added", "{added}", "added/test/good/line3_0001.png: not written by 'inspector data synth'"),
    ("linked", "{linked}", "linked/test/dent: not written by 'inspector data synth'"),
    ("readme", "{readme}", "readme/README.txt: not written by 'inspector data synth'"),
    ("stopped", "{stopped}", "stopped/manifest.json: not written by 'inspector data synth'"),
    ("project", ".", ".: not a data set written by 'inspector data synth'"),
    ("project", "{project}/test/..", "not a data set written by 'inspector data synth'"),
])
def test_force_replaces_only_what_synth_wrote(tmp_path, monkeypatch, capsys, which, out, match):
    """``data synth --out X --force`` on a folder that is not synth's (a real data set, a checkout, '.', a parent),
    or that holds files synth did not write, is one line and exit 2; every file stays as it was. Before, it
    removed train/, test/ and ground_truth/ of any folder (the real data set's images gone, exit 0), and with
    ``--out /`` wrote a data set into the root (not a case here: a regression would write there again)."""
    from inspector.cli import main

    folders = _user_folders(tmp_path)
    before = {name: _tree(path) for name, path in folders.items()}
    monkeypatch.chdir(folders["project"])
    argv = ["data", "synth", "--out", out.format(**folders), "--force", "--size", "32", "--train", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "--force" in err and err.count("\n") == 0, err
    assert {name: _tree(path) for name, path in folders.items()} == before


def test_a_run_stopped_by_a_full_disk_is_replaced_by_a_rerun_with_force(tmp_path):
    """A run that failed part-way (a real EFBIG from a file size limit, as a full disk's ENOSPC) left images and
    no manifest.json (written last, on purpose): ``--force`` refused the folder as 'not a data set written by
    synth' and it had to be deleted by hand. Its in-progress marker names it synth's; a folder without it or a
    manifest is still refused."""
    from file_faults import file_size_limit

    out = tmp_path / "stopped"
    with file_size_limit(200), pytest.raises(OSError, match="too large"):  # the marker fits, no PNG does
        synthesize(out, size=64, n_train=3, n_test_good=1, n_test_defect=1)
    assert not (out / "manifest.json").exists() and (out / "train" / "good").is_dir()
    with pytest.raises(DataError, match="folder exists and is not empty"):
        synthesize(out, size=64, n_train=3, n_test_good=1, n_test_defect=1)
    ds = synthesize(out, size=64, n_train=3, n_test_good=1, n_test_defect=1, overwrite=True)
    assert ds.summary()["train"] == {"good": 3} and (out / "manifest.json").is_file()
    assert not (out / "synth-in-progress.json").exists()  # gone once written whole
    (out / "manifest.json").unlink()
    with pytest.raises(DataError, match="not a data set written by 'inspector data synth'"):
        synthesize(out, size=64, n_train=3, overwrite=True)  # neither manifest nor marker: not synth's
    assert (out / "train" / "good" / "000.png").is_file()


def test_force_says_it_replaced_the_earlier_data_set(tmp_path, capsys):
    """README "Outputs": a command replaces only what an earlier run of it wrote, and says so. ``--force`` replaced
    an earlier data set (or one a stopped run left) and said only "wrote"."""
    from inspector.cli import main

    out = tmp_path / "syn"
    argv = ["data", "synth", "--out", str(out), "--size", "32", "--train", "2", "--test-good", "1",
            "--test-defect", "1", "--force"]
    lines = []
    for _ in range(2):
        assert main(argv) == 0
        lines.append(capsys.readouterr().out.strip())
    assert "(replaced" not in lines[0] and lines[1].endswith(" (replaced the earlier data set)"), lines
    (out / "manifest.json").rename(out / "synth-in-progress.json")  # as a run stopped part-way leaves it
    assert main(argv) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith(" (replaced the data set an earlier run left unfinished)"), line
