import numpy as np
import pytest

from inspector.evaluation.evaluate import score_images


def test_score_images_copies_outputs_of_scorers_that_reuse_buffers():
    scores, maps = np.zeros(2, np.float32), np.zeros((2, 1, 4, 4), np.float32)

    def reusing_scorer(batch):  # like ONNX Runtime's IO binding: same arrays every call
        scores[:] = batch[:, 0, 0, 0]
        maps[:] = batch[:, 0, 0, 0].reshape(2, 1, 1, 1)
        return scores, maps

    images = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1).repeat(3, axis=3)
    got_scores, got_maps = score_images(reusing_scorer, images, batch_size=2)
    np.testing.assert_array_equal(got_scores, [0, 1, 2, 3])
    assert got_maps.shape == (4, 4, 4) and got_maps[1].max() == 1 and got_maps[3].min() == 3


def test_format_table_with_undefined_metrics():
    """A test set with only good images: AUROC, AUPRO and F1 are undefined (None) and shown as such."""
    from inspector.evaluation.evaluate import format_table

    metrics = {"image_auroc": None, "pixel_auroc": None, "aupro": None, "f1_max": None, "threshold_f1": None,
               "n_images": 8, "n_good": 8, "n_defect": 0, "per_defect_type": {}}
    table = format_table(metrics)
    assert "—" in table.splitlines()[1] and "0 defective" in table
    assert "image AUROC, F1-max, pixel AUROC and AUPRO undefined: no defective test images" in table


@pytest.mark.parametrize("left", ["defects", "good"])
def test_a_test_set_of_one_class_says_what_is_undefined_and_what_the_pixel_metrics_cover(trained_run, tiny_dataset,
                                                                                         tmp_path, capsys, left):
    """A test split of defective images alone (no test/good) printed "—" and pixel metrics over the defective
    images' own pixels, with nothing in metrics.json or the report saying no good part was scored. One line
    says so now, on the console (table and log) and in metrics.json's warnings, which the report shows; a split
    of good images alone (the field check evaluate-no-defects) the same."""
    import json
    import shutil

    from inspector.cli import main

    data = tmp_path / "part"
    shutil.copytree(tiny_dataset, data)
    for folder in (data / "test").iterdir():
        if (folder.name == "good") == (left == "defects"):
            shutil.rmtree(folder)
    out = tmp_path / "eval"
    assert main(["evaluate", str(trained_run), "--data", str(data), "--out", str(out), "--no-per-level"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["image_auroc"] is None and metrics["f1_max"] is None
    said = ("image AUROC and F1-max undefined: no good test images were scored (test/good missing, empty or "
            "unreadable: the test set has 0 good and 6 defective image(s)); both need good and defective parts; "
            "the pixel AUROC and AUPRO rest on the defective images' own normal pixels alone" if left == "defects" else
            "image AUROC, F1-max, pixel AUROC and AUPRO undefined: no defective test images were scored")
    (line,) = [w for w in metrics["warnings"] if "undefined" in w]
    assert line.startswith(said), line
    if left == "defects":
        assert metrics["pixel_auroc"] is not None  # defined, and said to cover the defective images alone
    captured = capsys.readouterr()
    assert [ln for ln in captured.out.splitlines() if ln.startswith(said)]  # the table's line
    assert said.replace("'", "&#x27;") in (out / "report.html").read_text()


def test_evaluate_dataset_with_no_readable_test_image_is_a_data_error(tmp_path):
    """Every test image corrupt: one DataError naming the dataset, not numpy's 'need at least one array'."""
    import cv2
    import pytest

    from inspector.errors import DataError
    from inspector.evaluation.evaluate import evaluate_dataset

    root = tmp_path / "part"
    for split in ("train/good", "test/good", "test/crack"):
        (root / split).mkdir(parents=True)
    for i in range(2):
        assert cv2.imwrite(str(root / "train" / "good" / f"{i}.png"), np.full((16, 16), 128, np.uint8))
        (root / "test" / "good" / f"{i}.png").write_bytes(b"not a png")
        (root / "test" / "crack" / f"{i}.png").write_bytes(b"not a png")

    def scorer(batch):
        return batch.mean(axis=(1, 2, 3)), batch[..., 0].astype(np.float32)

    with pytest.raises(DataError, match=r"part: none of the 4 test image\(s\) could be read"):
        evaluate_dataset(scorer, root, (16, 16), "square", tmp_path / "eval", plots=False)


def test_a_test_only_tree_is_evaluated(trained_run, tiny_dataset, tmp_path, capsys):
    """Evaluation needs only the test split, but a tree of test/good + test/<defect> (+ ground_truth) without
    train/ was "no images found". It is read now (no training images: training on it is one line), and the
    evaluation equals the one on the full tree."""
    import json
    import shutil

    from inspector.cli import main
    from inspector.data.datasets import load_dataset
    from inspector.evaluation.calibrate import select_good_images

    only = tmp_path / "only"
    for part in ("test", "ground_truth"):
        shutil.copytree(tiny_dataset / part, only / part)
    ds = load_dataset(only)
    assert ds.train == () and [s.path.name for s in ds.test] == [s.path.name for s in load_dataset(tiny_dataset).test]
    assert main(["evaluate", str(trained_run), "--data", str(only), "--out", str(tmp_path / "a"), "--no-plots"]) == 0
    assert main(["evaluate", str(trained_run), "--data", str(tiny_dataset), "--out", str(tmp_path / "b"),
                 "--no-plots"]) == 0
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "ab")
    assert a["n_images"] == b["n_images"] and a["image_auroc"] == b["image_auroc"] and a["aupro"] == b["aupro"]
    assert select_good_images(only, {})[1]["source"] == "test/good"  # calibrate reads it too
    capsys.readouterr()
    assert main(["train", "--data", str(only), "--out", str(tmp_path / "run")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "training images" in err[0], err


def test_ambiguous_labels_are_left_out_of_the_headline_as_in_the_benchmarks(tmp_path, capsys):
    """ELPV's test/likely_defect (defect probability 2/3) counted as defects in evaluate's 'all' row, its F1
    threshold and its score distribution: on elpv/mono 0.284 where the same scores give 0.253 with them left out,
    as every benchmark quotes it (benchmarks/bench_quality.py). Left out now, and said; their own row stays."""
    import cv2
    import json

    from inspector.evaluation.evaluate import evaluate_dataset, format_table

    root = tmp_path / "cells"
    values = {"train/good": [100, 100], "test/good": [90, 100, 110], "test/crack": [200, 210],
              "test/likely_defect": [10, 20]}  # the ambiguous ones score below every good image
    for split, levels in values.items():
        (root / split).mkdir(parents=True)
        for i, v in enumerate(levels):
            assert cv2.imwrite(str(root / split / f"{i}.png"), np.full((16, 16), v, np.uint8))

    def scorer(batch):
        return batch.mean(axis=(1, 2, 3)).astype(np.float32), batch[..., 0].astype(np.float32)

    m = evaluate_dataset(scorer, root, (16, 16), "square", tmp_path / "eval", plots=False)
    assert m["image_auroc"] == 1.0 and (m["n_images"], m["n_good"], m["n_defect"]) == (5, 3, 2)
    assert m["left_out"] == {"likely_defect": 2} and m["image_auroc_with_left_out"] == pytest.approx(0.5)
    assert m["threshold_f1"] == pytest.approx(200.0)  # not pulled down to an ambiguous image's score
    assert m["per_defect_type"]["likely_defect"] == {"image_auroc": 0.0, "pixel_auroc": None, "aupro": None, "n": 2}
    assert m["score_distribution"]["defect"]["count"] == 2
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["image_auroc"] == 1.0
    assert "left out of 'all' (ambiguous label): likely_defect 2" in format_table(m)
    from inspector.evaluation.reports import metrics_section

    assert "likely_defect 2" in metrics_section(m).body  # the HTML report says it too


def test_test_images_the_model_was_fitted_on_are_told(trained_run, tiny_dataset, tmp_path, caplog):
    """A test split holding images of train/good (a copy slip, a data set split by hand) made every metric
    optimistic without a word; the run records its trained-on images by content, so evaluate says how many."""
    import json
    import logging
    import shutil

    from inspector.cli import main

    leak = tmp_path / "leak"
    shutil.copytree(tiny_dataset, leak)
    for name in ("000.png", "001.png"):
        shutil.copy(tiny_dataset / "train" / "good" / name, leak / "test" / "good" / f"leaked-{name}")
    caplog.set_level(logging.WARNING)
    assert main(["evaluate", str(trained_run), "--data", str(leak), "--out", str(tmp_path / "e"), "--no-plots"]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert sum(metrics["fitted_images"].values()) == 2, metrics["fitted_images"]
    told = [r.getMessage() for r in caplog.records if "fitted on" in r.getMessage()]
    assert len(told) == 1 and told[0].startswith("2 of the 12 test image(s) are images the model was fitted on"), told
    assert main(["evaluate", str(trained_run), "--data", str(tiny_dataset), "--out", str(tmp_path / "f"),
                 "--no-plots"]) == 0
    assert json.loads((tmp_path / "f" / "metrics.json").read_text())["fitted_images"] == {"trained_on": 0,
                                                                                          "validated_on": 0}


def test_evaluating_a_defect_folder_of_the_dataset_names_the_dataset(trained_run, tiny_dataset, tmp_path, capsys):
    """``evaluate RUN --data data/brick/test/hole`` (a folder of images, so no test split) said "no test images
    (expected test/good and test/<defect> folders)" without a word of the dataset around it: one line names it."""
    from inspector.cli import main

    defect = next(d for d in sorted((tiny_dataset / "test").iterdir()) if d.name != "good")
    assert main(["evaluate", str(trained_run), "--data", str(defect), "--out", str(tmp_path / "e"), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {defect}: no test images (expected test/good and test/<defect> folders); it is the "
                   f"test/{defect.name} folder of the dataset {tiny_dataset}: pass {tiny_dataset}"]
