"""A run saved before a setting existed is read alike by every path that scores it.

The fault: a checkpoint whose config predates ``data.downscale`` was trained with
INTER_AREA. The torch backend (so ``predict``/``calibrate`` on the run) and the
export's sidecar knew it, but ``inspector evaluate`` read the config with today's
default (``halving``): on images that are not an integer multiple of the model input
the same image scored differently in evaluate than in predict and the daemon
(0.54 vs 0.25 on the field-check brick model). The rule now lives in one place:
``DataConfig.WRITTEN_BEFORE``, applied by :func:`inspector.models.checkpoint.load_model`.

Real parts: a real (untrained) checkpoint rewritten the way an old version saved it,
PNG files of an odd size through OpenCV, the ``evaluate`` and ``predict`` commands.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch
import yaml

from tiny_models import untrained_run


@pytest.fixture(scope="module")
def old_run(tiny_dataset, tmp_path_factory):
    """A run folder whose checkpoint and config.yaml lack ``data.downscale`` (saved before the key existed)."""
    run = untrained_run("reduced_student", tiny_dataset, tmp_path_factory)
    payload = torch.load(run / "best.pt", weights_only=True)
    payload["config"]["data"].pop("downscale")
    torch.save(payload, run / "best.pt")
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else None
    if config is not None:
        config["data"].pop("downscale", None)
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


@pytest.fixture(scope="module")
def odd_dataset(tiny_dataset, tmp_path_factory):
    """The tiny dataset with its test images enlarged to 101x93: shrinking them to 64x64 is not an integer
    factor, so ``area`` and ``halving`` give different pixels."""
    root = tmp_path_factory.mktemp("odd") / "brick"
    shutil.copytree(tiny_dataset, root)
    for path in sorted((root / "test").glob("*/*.png")) + sorted((root / "ground_truth").glob("*/*.png")):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        interp = cv2.INTER_NEAREST if "ground_truth" in path.parts else cv2.INTER_CUBIC
        assert cv2.imwrite(str(path), cv2.resize(img, (101, 93), interpolation=interp))
    return root


def test_old_run_scores_alike_in_evaluate_and_predict(old_run, odd_dataset, tmp_path, capsys):
    from inspector.backends import load_backend
    from inspector.cli import main
    from inspector.models.checkpoint import load_model

    out = tmp_path / "eval"
    assert main(["evaluate", str(old_run), "--data", str(odd_dataset), "--out", str(out),
                 "--no-plots", "--no-per-level"]) == 0
    saved = np.load(out / "scores.npz")
    evaluated = {str(f): float(s) for f, s in zip(saved["files"], saved["scores"])}
    capsys.readouterr()
    images = sorted(evaluated)
    assert main(["predict", str(old_run), "--backend", "torch", *images]) == 0
    predicted = {p: float(s) for p, s in (line.split("\t") for line in capsys.readouterr().out.splitlines())}
    assert set(predicted) == set(evaluated)
    for path in images:  # predict prints 6 decimals
        assert predicted[path] == pytest.approx(evaluated[path], abs=2e-6, rel=1e-5), path

    assert load_model(old_run)[1].data.downscale == "area"  # what it was trained with
    with load_backend(old_run, "torch") as backend:
        assert backend.input_spec.downscale == "area"


def test_an_old_run_resumed_goes_on_training_as_it_began(old_run, tmp_path, monkeypatch):
    """``train --resume`` read the run's config with today's defaults: an old run went on training on pixels
    shrunk by ``halving`` after epochs on ``area``'s. The resumed run keeps what it was trained with."""
    from inspector.cli import main
    from inspector.training import loop

    run = tmp_path / "run"
    shutil.copytree(old_run, run)
    seen = []
    monkeypatch.setattr(loop, "train", lambda config, out, resume: seen.append(config) or {"phases": []})
    assert main(["train", "--out", str(run), "--resume", "--epochs", "1"]) == 0
    assert seen and seen[0].data.downscale == "area"
