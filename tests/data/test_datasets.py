"""Layout detection (real KolektorSDD and MVTec leather subset, BTAD and folder trees), splits, loading."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.data.datasets import Sample, load_batch, load_dataset, load_masks, split_train_val
from inspector.data.images import read_mask
from inspector.errors import DataError


def _img(path, value=128, shape=(16, 16, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def test_kolektorsdd(kolektor):
    ds = load_dataset(kolektor)
    assert ds.layout == "mvtec"
    s = ds.summary()
    assert (s["n_train"], s["test"]) == (223, {"defect": 50, "good": 110})
    defects = [x for x in ds.test if x.label == 1]
    assert len(defects) == 50 and all(x.mask_path is not None and x.mask_path.is_file() for x in defects)
    assert all(x.mask_path.name == x.path.stem + "_mask.png" for x in defects)
    assert all(x.label == 0 and x.mask_path is None for x in ds.train)


def test_mvtec_leather_subset(shared_data):
    ds = load_dataset(shared_data / "mvtec_leather_subset")
    s = ds.summary()
    assert ds.layout == "mvtec" and s["n_train"] == 4
    assert s["test"] == {"color": 1, "cut": 2, "fold": 2, "glue": 3, "good": 4, "poke": 3}
    assert sum(x.label for x in ds.test) == 11 and s["test_defect_without_mask"] == 0
    images, kept, skipped = load_batch(ds.test, 64, 64, "shorter_side_crop")
    assert images.shape == (15, 64, 64, 3) and not skipped and kept == list(ds.test)
    masks = load_masks(kept, 64, 64, "shorter_side_crop")
    assert all(m.shape == (64, 64) and m.dtype == bool for m in masks)
    assert [bool(m.any()) for m in masks] == [bool(x.label) for x in kept]


def test_btad_layout(tmp_path):
    root = tmp_path / "01"
    for i in range(3):
        _img(root / "train" / "ok" / f"{i:04d}.bmp")
    _img(root / "test" / "ok" / "0000.bmp")
    _img(root / "test" / "ko" / "0000.bmp")
    _img(root / "test" / "ko" / "0001.bmp")
    _img(root / "test" / "ko" / "0002.bmp")
    _img(root / "ground_truth" / "ko" / "0000.png", 255, (16, 16))  # BTAD's own naming
    _img(root / "ground_truth" / "ko" / "0001_mask.png", 255, (16, 16))  # MVTec-style naming
    ds = load_dataset(root)
    assert ds.layout == "btad" and len(ds.train) == 3
    assert [(x.label, x.defect_type) for x in ds.test] == [(1, "ko")] * 3 + [(0, "good")]
    assert [x.mask_path.name if x.mask_path else None for x in ds.test] == ["0000.png", "0001_mask.png", None, None]
    assert ds.summary()["test_defect_without_mask"] == 1


def test_folder_layout_sorted_and_filtered(tmp_path):
    for name in ("b.JPG", "a.png", "c.tiff"):
        _img(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"")
    ds = load_dataset(tmp_path)
    assert ds.layout == "folder" and not ds.test
    assert [x.path.name for x in ds.train] == ["a.png", "b.JPG", "c.tiff"]


def test_missing_or_empty_root(tmp_path):
    with pytest.raises(DataError, match=r"nope: dataset folder not found .*MVTec AD"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no images found; expected MVTec AD .*BTAD"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "mv" / "train" / "good").mkdir(parents=True)
    with pytest.raises(DataError, match="no training images"):
        load_dataset(tmp_path / "mv")


def _samples(n):
    return [Sample(Path(f"/d/{i:03d}.png"), 0, "good", None) for i in range(n)]


def test_split_is_seeded_and_order_independent():
    samples = _samples(20)
    train, val = split_train_val(samples, 0.2, seed=3)
    assert len(val) == 4 and len(train) == 16 and not set(train) & set(val)
    assert split_train_val(list(reversed(samples)), 0.2, seed=3) == (train, val)
    assert split_train_val(samples, 0.2, seed=4) != (train, val)
    assert len(split_train_val(_samples(2), 0.2)[1]) == 1  # at least one validation sample
    assert split_train_val(_samples(1), 0.2) == (tuple(_samples(1)), ())
    assert split_train_val(samples, 0.0)[1] == ()


def test_good_images_split_three_ways_and_a_small_set_trains_on_its_calibration_share():
    """The calibration part (``data.calibration_fraction``, kept for `inspector calibrate` only) leaves the
    validation part as it was; a set too small for a useful one (fewer than MIN_CALIBRATION_IMAGES) trains on
    that share."""
    from inspector.data.datasets import MIN_CALIBRATION_IMAGES, split_good

    samples = _samples(200)
    split = split_good(samples, 0.1, 0.1, seed=3, min_train=2)
    assert (len(split.train), len(split.val), len(split.calibration)) == (160, 20, 20)
    assert split.val == split_train_val(samples, 0.1, seed=3)[1]
    assert sorted(split.train + split.val + split.calibration, key=str) == sorted(samples, key=str)
    assert not set(split.val) & set(split.calibration)
    assert split_good(list(reversed(samples)), 0.1, 0.1, seed=3, min_train=2) == split
    assert set(split.val + split.calibration) == set(split_train_val(samples, 0.2, seed=3)[1])
    small = split_good(_samples(40), 0.1, 0.1, seed=3, min_train=2)  # 4 would calibrate: too few
    assert 4 < MIN_CALIBRATION_IMAGES and (len(small.train), len(small.val), small.calibration) == (36, 4, ())
    assert len(split_good(_samples(40), 0.5, 0.49, min_train=2).calibration) == 18  # cut to leave 2 to train
    with pytest.raises(ValueError, match="calibration_fraction"):
        split_good(samples, 0.1, 1.0)


def test_corrupt_images_are_skipped_with_one_warning_each(tmp_path, caplog):
    good = _img(tmp_path / "train" / "good" / "000.png")
    bad = tmp_path / "train" / "good" / "001.png"
    bad.write_bytes(good.read_bytes()[:40])
    _img(tmp_path / "train" / "good" / "002.png", 7)
    ds = load_dataset(tmp_path)
    with caplog.at_level(logging.WARNING):
        images, kept, skipped = load_batch(ds.train, 8, 8, "square")
    assert images.shape == (2, 8, 8, 3) and images[1, 0, 0, 0] == 7
    assert [x.path.name for x in kept] == ["000.png", "002.png"]
    assert len(skipped) == 1 and skipped[0][0].path == bad and "cannot decode" in skipped[0][1]
    assert sum("001.png" in r.getMessage() for r in caplog.records) == 1


def test_load_masks_unknown_and_corrupt(tmp_path):
    mask = _img(tmp_path / "m.png", 255, (16, 16))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"xx")
    samples = [Sample(tmp_path / "g.png", 0, "good", None), Sample(tmp_path / "d.png", 1, "cut", mask),
               Sample(tmp_path / "e.png", 1, "cut", None), Sample(tmp_path / "f.png", 1, "cut", broken)]
    masks = load_masks(samples, 8, 8)
    assert not masks[0].any() and masks[1].all() and masks[2] is None and masks[3] is None


def test_fixed_folder_names_match_in_any_letter_case(tmp_path):
    """A tree made on a case-insensitive file system: Train/Good, Test/GOOD, Ground_Truth/<type>.

    test/Good must stay the good class (not a defect type) and masks under Ground_Truth must be found.
    """
    root = tmp_path / "part"
    for i in range(3):
        _img(root / "Train" / "Good" / f"{i:03d}.png")
    _img(root / "Test" / "GOOD" / "000.png")
    _img(root / "Test" / "crack" / "000.png")
    _img(root / "Ground_Truth" / "Crack" / "000_mask.png", 255, (16, 16))
    ds = load_dataset(root)
    assert ds.layout == "mvtec" and len(ds.train) == 3
    assert [(x.label, x.defect_type) for x in ds.test] == [(0, "good"), (1, "crack")]
    assert ds.test[1].mask_path == root / "Ground_Truth" / "Crack" / "000_mask.png"


def test_masks_are_checked_against_their_image_frame(tmp_path, caplog):
    """A scaled mask is scaled onto its image; a mask of another aspect (here transposed) is refused with a warning.

    shorter_side_crop crops by the frame's geometry: a half-size mask must give the same crop as a full one.
    """
    image = _img(tmp_path / "test" / "cut" / "a.png", 100, (40, 80))
    full = np.zeros((40, 80), np.uint8)
    full[:, :20] = 255  # the left quarter: outside the centre crop of a 40x80 frame into 32x32
    assert cv2.imwrite(str(tmp_path / "full.png"), full)
    assert cv2.imwrite(str(tmp_path / "half.png"), cv2.resize(full, (40, 20), interpolation=cv2.INTER_NEAREST))
    assert cv2.imwrite(str(tmp_path / "transposed.png"), np.ascontiguousarray(full.T))
    samples = [Sample(image, 1, "cut", tmp_path / name) for name in ("full.png", "half.png", "transposed.png")]
    with caplog.at_level(logging.WARNING):
        full_mask, half_mask, transposed = load_masks(samples, 32, 32, "shorter_side_crop")
    np.testing.assert_array_equal(half_mask, full_mask)
    assert transposed is None
    assert any("transposed.png: mask is 40x80 but its image" in r.getMessage() and "is 80x40" in r.getMessage()
               for r in caplog.records)


def test_an_empty_mask_on_a_defect_image_is_unknown_not_all_normal(tmp_path, caplog):
    """A defect image's all-zero mask contradicts its label: pixel metrics skip it (None), with one warning,
    instead of counting every one of its pixels as normal."""
    image = _img(tmp_path / "test" / "cut" / "a.png", 100, (40, 80))
    assert cv2.imwrite(str(tmp_path / "empty.png"), np.zeros((40, 80), np.uint8))
    marked = np.zeros((40, 80), np.uint8)
    marked[10:20, 30:50] = 255
    assert cv2.imwrite(str(tmp_path / "marked.png"), marked)
    samples = [Sample(image, 1, "cut", tmp_path / name) for name in ("empty.png", "marked.png")]
    with caplog.at_level(logging.WARNING):
        empty, kept = load_masks(samples, 32, 32)
    assert empty is None and kept is not None and kept.any()
    assert [r.getMessage() for r in caplog.records if "empty mask" in r.getMessage()] == [
        f"1 defect image(s) have an empty mask (e.g. {tmp_path / 'empty.png'}): pixel metrics skip them, as if unmasked"]


def test_unmatched_mask_names_and_empty_defect_folders_are_named(tmp_path, caplog):
    """Masks named by a convention not read (<stem>_ann.png) leave the images maskless: one warning says why."""
    root = tmp_path / "part"
    for i in range(2):
        _img(root / "train" / "good" / f"{i}.png")
        _img(root / "test" / "crack" / f"{i:03d}.png")
        _img(root / "ground_truth" / "crack" / f"{i:03d}_ann.png", 255, (16, 16))
    (root / "test" / "scratch").mkdir()
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert [s.mask_path for s in ds.test] == [None, None]
    lines = [r.getMessage() for r in caplog.records]
    assert any("2 mask file(s) match no image" in m and "000_mask.png for 000.png" in m
               and "found e.g. 000_ann.png" in m for m in lines), lines
    assert any(m.endswith("scratch: defect folder holds no images (ignored)") for m in lines), lines


def test_hidden_and_zip_artefact_folders_are_not_defect_types(tmp_path):
    """test/.thumbnails (cached copies of good parts) and test/__MACOSX must not become defect types."""
    root = tmp_path / "part"
    for i in range(2):
        _img(root / "train" / "good" / f"{i}.png")
    _img(root / "test" / "good" / "0.png")
    _img(root / "test" / ".thumbnails" / "0.png")
    _img(root / "test" / "__MACOSX" / "good" / "0.png")
    _img(root / "test" / "__MACOSX" / "0.png")
    _img(root / "test" / "crack" / "0.png")
    assert [(s.label, s.defect_type) for s in load_dataset(root).test] == [(1, "crack"), (0, "good")]


def test_masks_beside_their_images_are_masks_not_defect_images(tmp_path):
    """test/crack/000_mask.png next to 000.png: the mask of 000.png, not a second defective image."""
    root = tmp_path / "part"
    for i in range(2):
        _img(root / "train" / "good" / f"{i}.png")
    _img(root / "test" / "crack" / "000.png")
    _img(root / "test" / "crack" / "000_mask.png", 255, (16, 16))
    _img(root / "test" / "crack" / "001.png")
    _img(root / "test" / "crack" / "002.PNG")
    _img(root / "test" / "crack" / "002_MASK.PNG", 255, (16, 16))  # written by a tool on Windows
    _img(root / "test" / "crack" / "lone_mask.png")  # no image 'lone' beside it: an image with an odd name
    _img(root / "test" / "dent" / "000.png")
    _img(root / "ground_truth" / "dent" / "000_Mask.png", 255, (16, 16))
    ds = load_dataset(root)
    assert [(s.path.name, s.mask_path.name if s.mask_path else None) for s in ds.test] == [
        ("000.png", "000_mask.png"), ("001.png", None), ("002.PNG", "002_MASK.PNG"), ("lone_mask.png", None),
        ("000.png", "000_Mask.png")]



def test_masks_beside_good_images_are_masks_not_good_images(tmp_path):
    """A tool that writes a mask for every image writes empty ones beside the good images too: train/good,
    test/good, a folder of good images and calibrate's good-image folder read them as good parts (trained on,
    scored), while the same naming in a defect folder is a mask. One rule for every folder now."""
    from inspector.evaluation.calibrate import select_good_images

    root = tmp_path / "part"
    for split in ("train", "test"):
        for i in range(3):
            _img(root / split / "good" / f"{i:03d}.png")
            _img(root / split / "good" / f"{i:03d}_mask.png", 0, (16, 16))
    _img(root / "train" / "good" / "lone_mask.png")  # no image 'lone' beside it: an image with an odd name
    _img(root / "test" / "crack" / "000.png")
    _img(root / "test" / "crack" / "000_mask.png", 255, (16, 16))
    ds = load_dataset(root)
    assert [s.path.name for s in ds.train] == ["000.png", "001.png", "002.png", "lone_mask.png"]
    assert [(s.path.name, s.label) for s in ds.test] == [("000.png", 1), ("000.png", 0), ("001.png", 0),
                                                         ("002.png", 0)]
    assert [s.path.name for s in load_dataset(root / "test" / "good").train] == ["000.png", "001.png", "002.png"]
    good, _, _ = select_good_images(None, {}, good_dir=root / "test" / "good")
    assert [s.path.name for s in good] == ["000.png", "001.png", "002.png"]

def test_a_mask_marking_a_region_on_a_good_test_image_is_told(tmp_path, caplog):
    """A defective part filed under test/good with its mask (beside it or in ground_truth/good) was scored as a
    good part with no defect pixel, its mask dropped without a word; empty masks of good images stay silent."""
    root = tmp_path / "part"
    _img(root / "train" / "good" / "000.png")
    for i in range(4):
        _img(root / "test" / "good" / f"{i:03d}.png")
    _img(root / "test" / "good" / "000_mask.png", 0, (16, 16))  # empty: a tool's mask for every image
    _img(root / "test" / "good" / "001_mask.png", 255, (16, 16))
    _img(root / "ground_truth" / "good" / "002_mask.png", 255, (16, 16))
    with caplog.at_level(logging.WARNING, logger="inspector.data.datasets"):
        ds = load_dataset(root)
    assert [(s.path.name, s.label, s.mask_path) for s in ds.test] == [(f"{i:03d}.png", 0, None) for i in range(4)]
    told = [r.getMessage() for r in caplog.records if "good image(s) have a mask marking a defect region" in
            r.getMessage()]
    assert len(told) == 1 and told[0].startswith(f"{root / 'test' / 'good'}: 2 good image(s)")
    assert "001_mask.png" in told[0] and "002_mask.png" in told[0]


def test_broken_symlinks_are_skipped_and_counted_not_dropped(tmp_path):
    """A link into an unmounted share is an unreadable image: warned and listed as skipped, like a corrupt file."""
    good = tmp_path / "part" / "train" / "good"
    for i in range(2):
        _img(good / f"{i}.png")
    (good / "2.png").symlink_to(tmp_path / "unmounted" / "2.png")
    ds = load_dataset(tmp_path / "part")
    assert [s.path.name for s in ds.train] == ["0.png", "1.png", "2.png"]
    _, kept, skipped = load_batch(ds.train, 8, 8)
    assert len(kept) == 2 and skipped[0][0].path.name == "2.png"
    assert "2.png: broken symbolic link (its target" in skipped[0][1]


def test_a_dataset_one_level_down_is_pointed_at(tmp_path):
    """An archive unpacked into its own folder (data/part/train/good): the error names the sub-folder to pass."""
    _img(tmp_path / "data" / "part" / "train" / "good" / "0.png")
    (tmp_path / "data" / "__MACOSX" / "part" / "train" / "good").mkdir(parents=True)
    with pytest.raises(DataError, match=r"data: no images found; .*its sub-folder\(s\) part hold such a dataset: "
                                        r"pass one of them$"):
        load_dataset(tmp_path / "data")


@pytest.mark.parametrize("folder", ["train", "test", "ground_truth", "Train"])
def test_a_dataset_folder_one_level_too_low_names_the_dataset_to_pass(tmp_path, folder):
    """--data part/train (or test, ground_truth): one line naming the dataset folder above it to pass instead."""
    root = tmp_path / "part"
    _img(root / folder / "good" / "0.png")
    _img(root / "test" / "crack" / "0.png")
    _img(root / "ground_truth" / "crack" / "0_mask.png")
    if folder != "train":
        _img(root / "train" / "good" / "0.png")
    with pytest.raises(DataError, match=rf"{folder}: no images found; it is the {folder} folder of the dataset "
                                        rf"{re.escape(str(root))}: pass {re.escape(str(root))}$"):
        load_dataset(root / folder)


def test_a_folder_whose_images_are_in_sub_folders_names_them(tmp_path):
    """A folder of day1/ day2/ image folders (or a train/good of them): the error names the sub-folders."""
    for day in ("day1", "day2"):
        _img(tmp_path / "shots" / day / "0.png")
    with pytest.raises(DataError, match=r"shots: no images found; 2 sub-folder\(s\) holding images are not read "
                                        r"\(only the images directly in it are\), e\.g\. day1, day2: pass one of them$"):
        load_dataset(tmp_path / "shots")


def test_files_not_named_as_images_are_told_with_a_count_and_an_example(tmp_path, caplog):
    """notes.txt, an image saved without an extension (predict FILE reads it by content), a .bak copy, a DICOM
    file in train/good: left out with one warning; hidden files and Windows' Thumbs.db/desktop.ini silently."""
    good = tmp_path / "part" / "train" / "good"
    for i in range(3):
        _img(good / f"{i}.png")
    (good / "notes.txt").write_text("shift 2")
    (good / "frame_0001").write_bytes((good / "0.png").read_bytes())
    (good / "3.png.bak").write_bytes((good / "0.png").read_bytes())
    (good / "scan.dcm").write_bytes(b"\0" * 132 + b"DICM")
    for quiet in (".DS_Store", "._0.png", "Thumbs.db", "desktop.ini"):
        (good / quiet).write_bytes(b"\0" * 64)
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(tmp_path / "part")
    assert [s.path.name for s in ds.train] == ["0.png", "1.png", "2.png"]
    told = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert told == [f"{good}: 4 file(s) not named as images are left out, e.g. 3.png.bak (read: .png, .jpg, .jpeg, "
                    f".jpe, .jfif, .bmp, .dib, .tif, .tiff, .webp, .pgm, .ppm, .pbm, .pnm, .pam)"], told


@pytest.mark.parametrize("good", ["good", "ok"])
def test_folders_of_images_no_class_reads_are_told(tmp_path, caplog, good):
    """train/bad, train/good2 beside the good folder and a ground_truth/<type> naming no test folder: each told in
    one warning with a count and examples; the folders that are read give none."""
    root = tmp_path / "part"
    _img(root / "train" / good / "0.png")
    _img(root / "train" / "bad" / "0.png")
    _img(root / "train" / f"{good}2" / "0.png")
    _img(root / "test" / "crack" / "0.png")
    _img(root / "test" / "Good" / "0.png")
    _img(root / "ground_truth" / "Crack" / "0_mask.png", 255)
    _img(root / "ground_truth" / "scratch" / "0_mask.png", 255)
    with caplog.at_level(logging.WARNING):
        load_dataset(root)
    told = sorted(r.getMessage() for r in caplog.records)
    assert told == [f"{root / 'ground_truth'}: 1 mask folder(s) name no test/<defect type> and are not read, "
                    f"e.g. scratch",
                    f"{root / 'train'}: 2 sub-folder(s) holding images are not read (training reads train/{good} "
                    f"only; defective parts belong in test/<defect type>), e.g. bad, {good}2"], told


@pytest.mark.parametrize("name", ["normal", "OK_parts", "Good images"])
def test_a_train_folder_without_a_good_folder_says_to_name_it_good(tmp_path, name):
    """train/normal (another dataset's name for good parts): not "no images found; pass train"."""
    root = tmp_path / "part"
    _img(root / "train" / name / "0.png")
    with pytest.raises(DataError, match=rf"part: no images found; {re.escape(str(root / 'train'))} has no good \(or "
                                        rf"ok\) folder, and its sub-folder\(s\) {name} hold images: name the folder "
                                        rf"of good parts train/good$"):
        load_dataset(root)


def test_copies_go_to_the_first_part_holding_their_content():
    """train before validation before calibration; a split with no validation part (val_fraction 0) is no error."""
    from inspector.data.datasets import GoodSplit, keep_copies_together

    a, a2, b, b2, c = (Sample(Path(f"/d/{n}.png"), 0, "good") for n in ("a", "a2", "b", "b2", "c"))
    digests = {a.path: "A", a2.path: "A", b.path: "B", b2.path: "B", c.path: "C"}
    split = keep_copies_together(GoodSplit((a,), (b, a2), (b2, c)), digests)
    assert split == GoodSplit((a, a2), (b, b2), (c,))
    assert keep_copies_together(GoodSplit((a, b), (), (a2,)), digests) == GoodSplit((a, a2, b), (), ())


def test_a_good_folder_of_sub_folders_only_is_one_line_saying_what_to_do(tmp_path, caplog):
    """train/good/day1, train/good/day2: one error line, no warning saying the same before it."""
    for day in ("day1", "day2"):
        _img(tmp_path / "part" / "train" / "good" / day / "0.png")
    with caplog.at_level(logging.WARNING), pytest.raises(DataError) as err:
        load_dataset(tmp_path / "part")
    assert str(err.value) == (f"{tmp_path / 'part' / 'train' / 'good'}: no training images directly in it; 2 "
                              f"sub-folder(s) holding images are not read (only the images directly in it are), e.g. "
                              f"day1, day2: move their images into it")
    assert not caplog.records


def test_good_and_ok_are_the_good_class_in_either_layout(tmp_path):
    """A hybrid tree (train/good with test/OK, or train/ok with test/good): good parts, not a defect type."""
    for train, test in (("good", "OK"), ("ok", "good")):
        root = tmp_path / train
        _img(root / "train" / train / "0.png")
        _img(root / "test" / test / "0.png")
        _img(root / "test" / "crack" / "0.png")
        assert sorted((s.label, s.defect_type) for s in load_dataset(root).test) == [(0, "good"), (1, "crack")]


def test_images_of_formats_not_read_are_named_not_dropped_unseen(tmp_path, caplog):
    """A .gif among the good parts is left out with one warning naming it (not silently, not as a crash)."""
    root = tmp_path / "part"
    for i in range(2):
        _img(root / "train" / "good" / f"{i}.png")
    (root / "train" / "good" / "2.GIF").write_bytes(b"GIF89a")
    (root / "train" / "good" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert len(ds.train) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert any("good: 1 file(s) of an image format that is not read are left out, e.g. 2.GIF" in m for m in lines)
    # notes.txt is no image format: told apart, in the line of files not named as images, never as this one
    assert not any("notes.txt" in m and "image format" in m for m in lines)
    assert any("good: 1 file(s) not named as images are left out, e.g. notes.txt" in m for m in lines)


@pytest.mark.parametrize("suffix", ["_label", "_gt", "_GT", "_mask"])
def test_every_mask_naming_convention_pairs_beside_and_in_ground_truth(tmp_path, caplog, suffix):
    """Public datasets name masks <stem>_label.png or <stem>_gt.png as well as <stem>_mask.png: beside their
    image such a file was read as one more defect (or good) image and its image had no mask. One list of
    conventions (datasets.MASK_SUFFIXES) for every folder now; a file named like a mask with no image of its
    stem beside it stays an image (a photo named 'bolt_gt.png' must not vanish), named in one warning."""
    root = tmp_path / "part"
    for i in range(2):
        _img(root / "train" / "good" / f"{i}.png")
        _img(root / "train" / "good" / f"{i}{suffix}.png", 0, (16, 16))
    _img(root / "test" / "crack" / "000.png")
    _img(root / "test" / "crack" / f"000{suffix}.png", 255, (16, 16))
    _img(root / "test" / "crack" / f"lone{suffix}.png")
    _img(root / "test" / "crack" / f"other{suffix}.png")
    _img(root / "test" / "dent" / "000.png")
    _img(root / "ground_truth" / "dent" / f"000{suffix}.png", 255, (16, 16))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert [s.path.name for s in ds.train] == ["0.png", "1.png"]
    assert [(s.path.name, s.mask_path.name if s.mask_path else None) for s in ds.test] == [
        ("000.png", f"000{suffix}.png"), (f"lone{suffix}.png", None), (f"other{suffix}.png", None),
        ("000.png", f"000{suffix}.png")]
    told = [r.getMessage() for r in caplog.records if "named like a mask" in r.getMessage()]
    assert len(told) == 1 and f"2 file(s)" in told[0] and f"lone{suffix}.png" in told[0], told


def test_many_masks_of_another_aspect_are_told_in_one_line(tmp_path, caplog):
    """Every mask of a wrong-aspect dataset (masks exported transposed) logged its own warning: hundreds of
    lines. One line now: the count, the first reason in full and a few more names; unreadable masks alike."""
    samples = []
    for i in range(7):
        image = _img(tmp_path / "test" / "cut" / f"{i}.png", 100, (40, 80))
        samples.append(Sample(image, 1, "cut", _img(tmp_path / "gt" / f"{i}_mask.png", 255, (80, 40))))
    for i in range(2):
        (tmp_path / "gt" / f"bad{i}.png").write_bytes(b"xx")
        samples.append(Sample(tmp_path / "test" / "cut" / "0.png", 1, "cut", tmp_path / "gt" / f"bad{i}.png"))
    with caplog.at_level(logging.WARNING):
        masks = load_masks(samples, 32, 32)
    assert masks == [None] * 9
    lines = [r.getMessage() for r in caplog.records]
    aspect = [m for m in lines if "another aspect" in m]
    assert len(aspect) == 1 and aspect[0].startswith("7 mask(s) ignored"), lines
    assert "0_mask.png: mask is 40x80 but its image" in aspect[0] and "1_mask.png, 2_mask.png" in aspect[0]
    assert "6_mask.png" not in aspect[0], aspect  # a few names, not all
    unread = [m for m in lines if "bad0.png" in m]
    assert len(unread) == 1 and unread[0].startswith("2 mask(s) ignored") and "bad1.png" in unread[0], lines


def test_many_unreadable_images_are_told_in_one_line(tmp_path, caplog):
    """Like masks: every unreadable image logged a line of its own besides the count. One line now, with
    the first reason in full and a few more names; all are still returned to the caller."""
    for i in range(6):
        (tmp_path / "train" / "good").mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / "good" / f"{i:03d}.png").write_bytes(b"not a png")
    _img(tmp_path / "train" / "good" / "ok.png")
    with caplog.at_level(logging.WARNING):
        images, kept, skipped = load_batch(load_dataset(tmp_path).train, 8, 8)
    assert len(images) == 1 and len(skipped) == 6
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("skipped 6 of 7 image(s) that could not be read: "), lines
    assert "000.png" in lines[0] and "001.png, 002.png, 003.png" in lines[0] and "005.png" not in lines[0]


def test_predict_overlays_in_a_data_set_are_told_as_refused_overlays_not_as_unreadable(tmp_path, caplog):
    """An overlay ``inspector predict --out`` wrote into a data set's folder decodes but is refused as a part
    (reason ``overlay``); the one warning said it "could not be read", as of a damaged file, and lumped it with
    those. Now the overlays have their own line, saying what they are, and the unreadable ones theirs."""
    from inspector.visual import PREDICT_OVERLAY_TAG, encode_png, tag_png

    good = tmp_path / "train" / "good"
    for i in range(2):
        _img(good / f"ok{i}.png")
        (good / f"heat{i}.png").write_bytes(tag_png(encode_png(np.full((16, 16, 3), 90, np.uint8)),
                                                    PREDICT_OVERLAY_TAG))
    (good / "broken.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        images, kept, skipped = load_batch(load_dataset(tmp_path).train, 8, 8)
    assert len(images) == 2 and len(skipped) == 3
    lines = [r.getMessage() for r in caplog.records]
    overlay = [m for m in lines if "heat0.png" in m]
    assert len(overlay) == 1 and overlay[0].startswith("refused 2 of 5 image(s) as overlays written by 'inspector "
                                                       "predict'"), lines
    assert "heat1.png" in overlay[0] and "could not be read" not in overlay[0] and "broken.png" not in overlay[0]
    unread = [m for m in lines if "broken.png" in m]
    assert len(unread) == 1 and unread[0].startswith("skipped 1 of 5 image(s) that could not be read: "), lines
    assert "heat" not in unread[0] and len(lines) == 2, lines


def _mask_likes(folder: Path) -> dict[str, np.ndarray]:
    """Masks as tools write them, each beside an image of its stem: name → what read_mask must mark."""
    rng = np.random.default_rng(3)
    defect = np.zeros((40, 60), bool)
    defect[10:25, 20:45] = True
    written = {
        "binary_mask.png": defect.astype(np.uint8) * 255,
        "ones_gt.png": defect.astype(np.uint8),  # 0/1 masks
        "wide_label.png": defect.astype(np.uint16) * 65535,  # a 16-bit mask
        "classes_label.png": defect.astype(np.uint8) * rng.integers(2, 4, defect.shape).astype(np.uint8),
        "red_mask.png": np.dstack([np.zeros_like(defect, np.uint8)] * 2 + [defect.astype(np.uint8) * 200]),
        "empty_mask.png": np.zeros((40, 60), np.uint8),  # a good image's mask
    }
    for name, pixels in written.items():
        assert cv2.imwrite(str(folder / name), pixels)
    assert cv2.imwrite(str(folder / "lossy_mask.jpg"), np.dstack([defect.astype(np.uint8) * 255] * 3),
                       [cv2.IMWRITE_JPEG_QUALITY, 70])
    overlay = np.dstack([np.zeros((40, 60, 3), np.uint8), defect.astype(np.uint8) * 255])  # colour says nothing
    assert cv2.imwrite(str(folder / "overlay_mask.png"), overlay)
    marks = {Path(n).stem[:Path(n).stem.rindex("_")]: (n, defect) for n in [*written, "lossy_mask.jpg",
                                                                              "overlay_mask.png"]}
    marks["empty"] = ("empty_mask.png", np.zeros_like(defect))
    return marks


def test_a_photo_named_like_its_images_mask_stays_an_image_and_masks_are_known_by_content(shared_data, tmp_path,
                                                                                          caplog):
    """``bottle_label.png``, a colour photo beside ``bottle.png``, was taken for bottle.png's mask by its name
    (MASK_SUFFIXES): it vanished from the data and its pixels marked bottle.png's defect. A mask is now known by
    its content too (one channel or channels equal, few levels; or a few colours; or a varying alpha): the
    photo, colour or grey, stays an image with one warning, while masks of every kind tools write still pair."""
    leather = sorted((shared_data / "mvtec_leather_subset" / "test").glob("*/*.png"))[:2]
    kolektor = sorted((shared_data / "kolektorsdd" / "test" / "defect").glob("*.png"))
    kolektor = [p for p in kolektor if not p.stem.endswith("_mask")][:2]
    root = tmp_path / "part"
    crack, good = root / "test" / "crack", root / "train" / "good"
    for folder in (crack, good):
        folder.mkdir(parents=True)
    for i in range(2):
        _img(good / f"{i}.png")
    (good / "0_label.png").write_bytes(leather[1].read_bytes())  # a colour photo among the good parts
    (crack / "bottle.png").write_bytes(leather[0].read_bytes())
    (crack / "bottle_label.png").write_bytes(leather[1].read_bytes())
    (crack / "bolt.png").write_bytes(kolektor[0].read_bytes())
    (crack / "bolt_gt.png").write_bytes(kolektor[1].read_bytes())  # a grey photo
    marks = _mask_likes(crack)
    for stem in marks:
        _img(crack / f"{stem}.png", 90, (40, 60, 3))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert [s.path.name for s in ds.train] == ["0.png", "0_label.png", "1.png"]
    pairs = {s.path.name: s.mask_path.name if s.mask_path else None for s in ds.test}
    assert pairs == {"bottle.png": None, "bottle_label.png": None, "bolt.png": None, "bolt_gt.png": None,
                     **{f"{stem}.png": name for stem, (name, _) in marks.items()}}
    for stem, (name, defect) in marks.items():
        assert np.array_equal(read_mask(crack / name), defect), name
    told = [r.getMessage() for r in caplog.records if "hold a picture, not a mask" in r.getMessage()]
    assert len(told) == 2, told  # one line per folder
    assert any("crack: 2 file(s)" in m and "bolt_gt.png, bottle_label.png" in m for m in told), told


def test_images_in_sub_folders_are_told_not_dropped_unseen(tmp_path, caplog):
    """A folder of dated sub-folders (a camera's 2026-12-01/, an export per shift): listings read only the images
    directly in a folder, so training, evaluation, calibrate --good-dir and predict took the top level alone
    without a word (a threshold calibrated on 1 image of 4). One warning names them; hidden folders, __MACOSX and
    sub-folders without images say nothing."""
    root = tmp_path / "part"
    _img(root / "train" / "good" / "0.png")
    _img(root / "train" / "good" / "2026-12-01" / "deeper" / "1.png")
    _img(root / "train" / "good" / ".thumbnails" / "2.png")
    _img(root / "train" / "good" / "__MACOSX" / "3.png")
    (root / "train" / "good" / "notes").mkdir()
    _img(root / "test" / "crack" / "000.png")
    _img(root / "test" / "crack" / "shift2" / "001.png")
    _img(root / "ground_truth" / "crack" / "shift1" / "000_mask.png", 255, (16, 16))  # masks one level down
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert len(ds.train) == 1 and len(ds.test) == 1 and ds.test[0].mask_path is None
    told = [r.getMessage() for r in caplog.records if "sub-folder(s) holding images" in r.getMessage()]
    assert len(told) == 3, told
    assert "good: 1 sub-folder(s) holding images are not read" in told[0] and told[0].endswith("e.g. 2026-12-01")
    assert any("test/crack: 1 sub-folder(s)" in m and m.endswith("e.g. shift2") for m in told), told
    assert any("ground_truth/crack: 1 sub-folder(s)" in m and m.endswith("e.g. shift1") for m in told), told


def test_images_directly_in_test_or_train_are_told_not_dropped_unseen(tmp_path, caplog):
    """Test images put in test/ rather than test/<type>/ (and pictures beside train/good) were read by nothing:
    the metrics covered 4 of 6 images without a word. One warning per folder names them."""
    root = tmp_path / "part"
    _img(root / "train" / "good" / "0.png")
    _img(root / "train" / "1.png")
    _img(root / "test" / "good" / "0.png")
    _img(root / "test" / "crack" / "0.png")
    _img(root / "test" / "hole_000.png")
    _img(root / "test" / "hole_001.png")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert (len(ds.train), len(ds.test)) == (1, 2)
    told = [r.getMessage() for r in caplog.records if "directly in it are not read" in r.getMessage()]
    assert len(told) == 2, told
    assert any(m.startswith(f"{root / 'test'}: 2 image(s)") and m.endswith("e.g. hole_000.png") for m in told), told
    assert any(m.startswith(f"{root / 'train'}: 1 image(s)") for m in told), told


@pytest.mark.parametrize("name", ["{}-mask", "mask_{}", "MASK-{}", "{}-gt", "{}-Label"])
def test_masks_named_by_other_datasets_conventions_are_read_in_ground_truth_and_beside(tmp_path, caplog, name):
    """Masks named <stem>-mask.png or mask_<stem>.png (other datasets' layouts) were not read: every image of
    the type was scored without its mask, the pixel metrics skipping it. They pair now, in ground_truth and
    beside their image, and nothing is warned."""
    root = tmp_path / "part"
    _img(root / "train" / "good" / "0.png")
    _img(root / "test" / "crack" / "000.png")
    _img(root / "ground_truth" / "crack" / f"{name.format('000')}.png", 255, (16, 16))
    _img(root / "test" / "dent" / "a b é.png")
    _img(root / "test" / "dent" / f"{name.format('a b é')}.png", 255, (16, 16))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert [(s.path.name, s.mask_path.name if s.mask_path else None) for s in ds.test] == [
        ("000.png", f"{name.format('000')}.png"), ("a b é.png", f"{name.format('a b é')}.png")]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]


def test_a_ground_truth_folder_that_holds_no_mask_of_a_type_is_told_in_one_line(tmp_path, caplog):
    """A ground_truth folder promises masks; a defect type with no folder under it (ground_truth/cracks for
    test/crack) or an empty one left its images without masks, said at INFO only. One warning line each now,
    naming an example image (and the folders ground_truth does hold)."""
    root = tmp_path / "part"
    _img(root / "train" / "good" / "0.png")
    for kind in ("crack", "dent", "hole", "stain"):
        _img(root / "test" / kind / "000.png")
    _img(root / "ground_truth" / "cracks" / "000_mask.png", 255, (16, 16))
    (root / "ground_truth" / "dent").mkdir()
    _img(root / "ground_truth" / "hole" / "000_mask.png", 255, (16, 16))
    _img(root / "ground_truth" / "stain" / "sub" / "000_mask.png", 255, (16, 16))  # nested: its own one line
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert [s.mask_path is not None for s in ds.test] == [False, False, True, False]
    told = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # cracks, naming no test/<type>, is named in the crack line alone (tests/data/test_mask_lines.py)
    assert len(told) == 3 and "sub-folder(s) holding images are not read" in told.pop(1), told
    assert told[0].startswith(f"{root / 'ground_truth' / 'dent'}: no mask for 1 of the 1 image(s) of "
                              f"{root / 'test' / 'dent'} (pixel metrics skip them), e.g. 000.png: a mask is named "
                              f"<image stem>.<ext>, <image stem>{{_mask|"), told
    assert told[1] == (f"{root / 'ground_truth'}: no folder for defect type(s) crack: their 1 image(s) have no mask "
                       f"(pixel metrics skip them), e.g. {root / 'test' / 'crack' / '000.png'}; the folder holds "
                       f"cracks, dent, hole, stain (cracks: naming no test/<defect type>, not read)"), told


def test_masks_of_the_same_name_in_several_defect_folders_are_told_apart_in_a_warning(tmp_path, caplog):
    """Masks of several defect types share names (000_mask.png in each): a warning about them named the first in
    full and then "also e.g. 000_mask.png, 000_mask.png, 000_mask.png", which named none. Each is named by its
    folder too when they lie in several folders; those of one folder keep their bare names."""
    root = tmp_path / "part"
    _img(root / "train" / "good" / "0.png")
    for kind in ("crack", "dent", "hole", "stain"):
        _img(root / "test" / kind / "000.png")
        _img(root / "ground_truth" / kind / "000_mask.png", 255, (8, 16))  # another aspect: ignored, told
    ds = load_dataset(root)
    with caplog.at_level(logging.WARNING):
        assert load_masks(ds.test, 16, 16) == [None] * 4
    (told,) = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert told.endswith("; also e.g. dent/000_mask.png, hole/000_mask.png, stain/000_mask.png"), told
    from inspector.data.datasets import also_named

    assert also_named([tmp_path / "a.png", tmp_path / "b.png"]) == "; also e.g. b.png"
    assert also_named([tmp_path / "a.png"]) == ""


@pytest.mark.parametrize("layout, inner", [("mvtec", "train"), ("mvtec", "test"), ("mvtec", "ground_truth"),
                                           ("btad", "train"), ("btad", "test")])
def test_a_folder_inside_a_dataset_points_at_the_dataset(layout, inner, tmp_path, monkeypatch):
    """A newcomer's ``--data data/brick/train`` (or ``test``, ``ground_truth``): one level too deep, the images
    one level further down. It was "no images found" alone; the line now names the dataset to pass, relative as
    given (the one level too high case names the sub-folder: test_a_dataset_one_level_down_is_pointed_at)."""
    good, bad = ("good", "crack") if layout == "mvtec" else ("ok", "ko")
    root = tmp_path / "data" / "part"
    _img(root / "train" / good / "0.png")
    _img(root / "test" / good / "0.png")
    _img(root / "test" / bad / "0.png")
    _img(root / "ground_truth" / bad / "0_mask.png", 255, (16, 16))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        load_dataset(Path("data/part") / inner)
    assert str(caught.value).startswith(f"data/part/{inner}: no images found; ")
    assert str(caught.value).endswith(f"; it is the {inner} folder of the dataset data/part: pass data/part")


def test_a_folder_beside_no_dataset_gets_no_such_hint(tmp_path):
    (tmp_path / "data" / "empty" / "train").mkdir(parents=True)
    _img(tmp_path / "data" / "other.png")  # a folder of images above: no MVTec/BTAD dataset
    with pytest.raises(DataError) as caught:
        load_dataset(tmp_path / "data" / "empty" / "train")
    assert "pass" not in str(caught.value)
