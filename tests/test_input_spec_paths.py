"""Every path that feeds a model preprocesses an engine exactly like the ONNX graph it was built from.

The bug this guards (issue 16): ``inspector predict x.plan`` resized with
``square`` although the engine's model was trained with ``shorter_side_crop``,
because predict looked for the resize policy at the top of the engine card
instead of in the model card it embeds. The rule now: one resolver
(:func:`inspector.artifacts.input_spec`) and every path reads
``backend.input_spec`` (the daemon: the same resolver on its model file).

TensorRT is the faithful fake of ``tests/fake_tensorrt.py``: its "engine" is the
ONNX graph run by ONNX Runtime, so an FP32 engine gives the ONNX graph's scores.
Each path runs for real on both model files; a spy on ``Backend.infer`` records
the batches they feed, which must equal each other and the dataset loader's
images made with the model card's policy.
"""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest

import inspector.backends.cuda as cuda_mod
from fake_tensorrt import TRT10, FakeCuda, make_fake_trt
from inspector.backends.base import Backend
from inspector.contract import RESIZE_POLICIES
from inspector.data.datasets import Sample, load_batch
from tiny_graphs import write_exported

H, W = 32, 48  # model input; the images are 80x40 (portrait), so the two policies differ


@pytest.fixture()
def fake_trt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_trt(TRT10, []))

    def open_fake(api="cuda-python", device=0):
        FakeCuda.current = FakeCuda(device)
        return FakeCuda.current

    monkeypatch.setattr(cuda_mod, "open_cuda", open_fake)
    FakeCuda.memory.clear()


@pytest.fixture()
def fed(monkeypatch):
    """Batches given to any backend, per backend name: ``{"onnxruntime": [rows], "tensorrt": [rows]}``."""
    seen: dict[str, list[np.ndarray]] = {}
    real_infer = Backend.infer

    def spy(self, batch):
        seen.setdefault(self.name, []).extend(np.array(batch))
        return real_infer(self, batch)

    monkeypatch.setattr(Backend, "infer", spy)
    return seen


def _models(tmp_path, policy):
    """An FP32 ONNX graph whose card says ``policy`` (and box_linear), and a fake FP32 engine built from it."""
    from inspector.deploy.engine_build import BuildOptions, build_engine

    onnx_path = write_exported(tmp_path / "export", height=H, width=W, fp16=False)
    card_path = onnx_path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["input"].update(resize=policy, downscale="box_linear")
    card_path.write_text(json.dumps(card))
    plan = tmp_path / "engines" / "tiny.plan"
    build_engine(onnx_path, plan, BuildOptions(max_batch=4))
    return onnx_path, plan


def _dataset(tmp_path):
    """A folder dataset of portrait images: train/good, test/good, test/crack."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for sub, n in (("train/good", 3), ("test/good", 3), ("test/crack", 2)):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)
            img[:20] = 255  # bright band at the top: cropped away by shorter_side_crop, kept by square
            cv2.imwrite(str(root / sub / f"{i}.png"), img)
    return root


def _expected(paths, policy):
    images, _, _ = load_batch([Sample(p, 0, "good") for p in paths], H, W, policy, None, "box_linear")
    return list(images)


def _as_set(rows):
    return sorted(r.tobytes() for r in rows)


@pytest.mark.parametrize("policy", RESIZE_POLICIES)
def test_each_path_preprocesses_engine_and_onnx_alike(policy, fake_trt, fed, tmp_path, capsys):
    from inspector.evaluation.bench import run_benchmark
    from inspector.evaluation.calibrate import calibrate
    from inspector.cli import main
    from inspector.evaluation.verify import verify

    onnx_path, plan = _models(tmp_path, policy)
    data = _dataset(tmp_path)
    good = sorted((data / "test" / "good").glob("*.png"))
    want = _as_set(_expected(good, policy))
    other = _as_set(_expected(good, next(p for p in RESIZE_POLICIES if p != policy)))
    assert want != other  # the images make the policies differ, so the test can fail

    outputs = {}
    for model in (onnx_path, plan):
        fed.clear()
        assert main(["predict", str(model), str(data / "test" / "good")]) == 0
        outputs[model.suffix] = capsys.readouterr().out
        (name, rows), = fed.items()
        assert _as_set(rows) == want, f"predict {model.name} ({name}) did not resize with {policy}"
    assert outputs[".onnx"] == outputs[".plan"]  # same graph, same input → same scores

    for model in (onnx_path, plan):
        fed.clear()
        calibrate(model, good_dir=data / "test" / "good", allow_few_good=True)  # 3 images
        (name, rows), = fed.items()
        # each image once, then its highest good images again at each batch size (calibrate.batch_guard)
        assert set(_as_set(rows)) == set(want) and len(rows) > len(want), \
            f"calibrate {model.name} did not resize with {policy}"

    fed.clear()
    verify(plan, onnx_path, data, report_path=tmp_path / "v.json")
    test_images = sorted((data / "test").glob("*/*.png"))
    want_test = _as_set(_expected(test_images, policy))
    assert _as_set(fed["tensorrt"]) == _as_set(fed["onnxruntime"]) == want_test

    for model in (onnx_path, plan):
        fed.clear()
        run_benchmark(model, [2], duration_s=0.01, warmup=1, data=data)
        (name, rows), = fed.items()
        assert set(_as_set(rows)) <= set(want_test), f"bench {model.name} did not resize with {policy}"


@pytest.mark.parametrize("policy", RESIZE_POLICIES)
def test_daemon_reads_the_engine_card_like_the_model_card(policy, fake_trt, tmp_path):
    from inspector.artifacts import input_spec, model_card_of, read_card
    from inspector.pipeline.config import daemon_config
    from inspector.pipeline.daemon import Daemon

    onnx_path, plan = _models(tmp_path, policy)
    specs = {}
    for model in (onnx_path, plan):
        cfg = daemon_config({"model": {"path": str(model)}, "thresholds": {"image": 0.5},
                             "cameras": [{"name": "c", "source": str(tmp_path)}],
                             "publish": {"endpoint": f"ipc://{tmp_path}/{model.suffix[1:]}.sock"}})
        daemon = Daemon(cfg)
        daemon.setup()
        try:
            specs[model.suffix] = (daemon.spec, daemon.policy, daemon.downscale, daemon.bit_depth)
        finally:
            daemon.publisher.close()
            daemon.integrations.close()
    assert specs[".onnx"] == specs[".plan"]
    assert specs[".plan"][1:3] == (policy, "box_linear")
    assert input_spec(read_card(plan)).with_max_batch(None) == input_spec(model_card_of(read_card(plan)))
