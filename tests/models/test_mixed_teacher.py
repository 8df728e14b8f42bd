"""MixedTeacher: per-image combination, tap shapes, frozen teachers, loss weighting, train → export → ORT."""

import dataclasses
import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inspector.models.base import OFFLINE_TEACHER
from inspector.models.common import combine_levels
from inspector.models.mixed_teacher.model import EFFICIENTNET_TAPS, PRESETS
from tiny_models import SIZE, build_tiny, uint8_images

pytestmark = pytest.mark.usefixtures("one_thread")
make = functools.partial(build_tiny, "mixed_teacher")  # make(preset, size, **config): tiny, seeded


@pytest.mark.parametrize("preset", ["offline", "paper"])
def test_an_images_score_and_map_do_not_depend_on_its_batch(preset):
    model = make(preset)
    batch = uint8_images(4)
    batch[1] = 0  # a flat image: its E is far from the others', a batch-wide min/max would leak
    batch[2, :, :48] = 255
    with torch.no_grad():
        scores, maps = model(batch)
        for i in range(4):
            score, amap = model(batch[i:i + 1])
            torch.testing.assert_close(score, scores[i:i + 1], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(amap, maps[i:i + 1], rtol=1e-5, atol=1e-5)


def test_combined_map_is_r_times_e_minus_its_own_minimum():
    model = make(combination="paper")
    batch = uint8_images(2)
    with torch.no_grad():
        resnet, efficientnet = model.level_maps(batch)
        combined = model.combined_map(batch)
    r = combine_levels(resnet, SIZE, "sum")
    e = combine_levels(efficientnet, SIZE, "sum")
    lo, hi = e.amin(dim=(1, 2, 3), keepdim=True), e.amax(dim=(1, 2, 3), keepdim=True)
    paper = r * (hi - lo) * (e - lo) / (hi - lo + 1e-12)  # paper eq. 11, full form
    torch.testing.assert_close(combined, paper, rtol=1e-5, atol=1e-7)
    assert (combined >= 0).all()
    assert (combined.flatten(1) == 0).any(dim=1).all()  # each image reaches 0 where its own E is minimal


def test_offline_combination_sums_the_normalised_level_maps():
    model = make()
    assert model.config.combination == "sum" and model.config.map_normalization == "quantile"
    model.level_norm.shift.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    model.level_norm.scale.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    batch = uint8_images(2)
    with torch.no_grad():
        named = model.named_level_maps(batch)
        combined = model.combined_map(batch)
        raw = [lvl for part in model.level_maps(batch) for lvl in part]
    assert list(named) == list(model.level_names) and len(named) == 4
    assert "resnet:blocks.1" not in model.config.map_levels  # the stride-4 level is left out of the map
    summed = [named[n].clamp_min(0) for n in model.config.map_levels]  # each level only adds evidence
    torch.testing.assert_close(combine_levels(summed, SIZE, "sum"), combined)
    torch.testing.assert_close(raw[1], named["resnet:blocks.2"])


@pytest.mark.parametrize("preset", ["offline", "paper"])
def test_every_tap_matches_its_declared_feature_info(preset):
    model = make(preset)
    h, w = SIZE
    x = model.network_input(uint8_images(2))
    with torch.no_grad():
        raw = [teacher(x) for teacher in model.teachers]
        pooled = model.teacher_features(x)
        students = model.student_features(x)
    for teacher, outputs in zip(model.teachers, raw):  # every declared tap of every extractor
        assert len(outputs) == len(teacher.feature_info)
        for tap, feature in zip(teacher.feature_info, outputs):
            assert tuple(feature.shape) == (2, tap.channels, h // tap.stride, w // tap.stride), tap
    expected_taps = {"resnet": PRESETS[preset].resnet_taps, "efficientnet": EFFICIENTNET_TAPS}
    for part in ("resnet", "efficientnet"):
        taps = model.teacher_taps(part)
        assert tuple(t.name for t in taps) == expected_taps[part]
        pool = model.routes[part].pool
        assert len(pooled[part]) == len(students[part]) == len(taps)
        for tap, k, t, s in zip(taps, pool, pooled[part], students[part]):
            assert tuple(t.shape) == (2, tap.channels, h // (tap.stride * k), w // (tap.stride * k)), tap
            assert s.shape == t.shape, tap
    eff = model.teacher_taps("efficientnet")
    assert [(t.channels, t.stride) for t in eff] == [(112, 16), (320, 32)]
    assert model.student_efficientnet.feature_info == eff
    resnet_strides = [t.stride * k for t, k in zip(model.teacher_taps("resnet"), model.routes["resnet"].pool)]
    assert resnet_strides == ([4, 8, 16] if preset == "paper" else [4, 8])


def test_efficientnet_student_is_one_conv_bn_silu_per_stage_without_pooling():
    model = make("paper")
    student = model.student_efficientnet
    assert len(student.stages) == 7  # blocks.0 .. blocks.6
    for layer in [student.stem, *student.stages]:
        assert [type(m).__name__ for m in layer] == ["Conv2d", "BatchNorm2d", "SiLU"]
        assert layer[0].kernel_size == (3, 3)
    assert student.stem[0].stride == (2, 2) and student.stem[0].out_channels == 32
    assert [layer[0].stride[0] for layer in student.stages] == [1, 2, 2, 2, 1, 2, 1]
    assert [layer[0].out_channels for layer in student.stages] == [16, 24, 40, 80, 112, 192, 320]


@pytest.mark.parametrize("preset", ["offline", "paper"])
def test_train_mode_keeps_both_teachers_in_eval(preset):
    model = make(preset).train()
    assert len(model.teachers) == (1 if preset == "offline" else 2)  # offline: one network serves both parts
    assert model.student_resnet.training and model.student_efficientnet.training
    assert not model.teachers.training
    for teacher in model.teachers:
        assert not teacher.training and all(not m.training for m in teacher.modules())
        assert all(not p.requires_grad for p in teacher.parameters())
    names = {f"{t['role']}:{t['backbone']}" for t in model.describe()["teachers"]}
    expected = {"offline": {f"resnet_part:{OFFLINE_TEACHER}", f"efficientnet_part:{OFFLINE_TEACHER}"},
                "paper": {"resnet_part:resnet18", "efficientnet_part:efficientnet_b0"}}[preset]
    assert names == expected
    # a training step must not move the teachers' BatchNorm statistics
    before = {k: v.clone() for k, v in model.teachers.state_dict().items()}
    model.loss(uint8_images(2)).backward()
    for k, v in model.teachers.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_loss_weights_efficientnet_levels_by_alpha():
    model = make()
    batch = uint8_images(2)
    with torch.no_grad():
        resnet, efficientnet = model.level_maps(batch)
    r = sum(float(m.mean()) for m in resnet)
    e = sum(float(m.mean()) for m in efficientnet)
    assert r > 0 and e > 0
    for alpha in (0.0, 0.1, 1.0):
        model.config = dataclasses.replace(model.config, alpha=alpha)
        with torch.no_grad():
            assert float(model.loss(batch)) == pytest.approx(r + alpha * e, rel=1e-5)
    # the training loop's cached-targets path computes the same loss
    targets = model.teacher_targets(batch)
    assert len(targets) == len(resnet) + len(efficientnet)
    with torch.no_grad():
        assert float(model.loss_with_targets(batch, targets)) == pytest.approx(float(model.loss(batch)), rel=1e-6)
    # α = 0: the EfficientNet student gets no gradient at all
    model.config = dataclasses.replace(model.config, alpha=0.0)
    model.zero_grad(set_to_none=True)
    model.loss(batch).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.student_efficientnet.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.student_resnet.parameters())
    assert make().config.alpha == 0.1


def test_sidecar_identity_names_both_teachers_and_the_offline_substitution():
    offline, paper = make("offline").describe(), make("paper").describe()
    assert [t["role"] for t in offline["teachers"]] == ["resnet_part", "efficientnet_part"]
    subs = {s["part"]: (s["paper"], s["used"]) for s in offline["substitutions"]}
    assert subs["efficientnet"] == ("efficientnet_b0", OFFLINE_TEACHER)
    assert paper["substitutions"] == [] and paper["alpha"] == 0.1
    json.dumps(offline)  # sidecar-ready


def test_shared_teacher_equals_two_separate_teachers():
    """Offline, one extractor feeds both parts; two separate copies of that teacher give the same map."""
    from inspector.models.backbones.weights import locate_weights

    try:
        located = locate_weights(OFFLINE_TEACHER, None)
    except Exception as exc:  # the package with the weights is not installed
        pytest.skip(f"{OFFLINE_TEACHER} weights unavailable: {exc}")
    path = str(located[0])
    shared = make(teacher_weights=path)
    separate = make(teacher_weights=path, efficientnet_weights=path)
    assert len(shared.teachers) == 1 and len(separate.teachers) == 2
    separate.student_resnet.load_state_dict(shared.student_resnet.state_dict())
    separate.student_efficientnet.load_state_dict(shared.student_efficientnet.state_dict())
    batch = uint8_images(2)
    with torch.no_grad():
        a, b = shared(batch), separate(batch)
    torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_train_export_and_onnxruntime_match_torch(tiny_dataset, tmp_path):
    from inspector.artifacts.checkpoint import read_checkpoint
    from inspector.training.checkpoint import load_model
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    run_dir = tmp_path / "mt"
    config = load_run_config(base={
        "model": {"name": "mixed_teacher", "image_size": [64, 64], "smoothing_sigma": 1.0},
        "data": {"path": str(tiny_dataset)},
        "train": {"epochs": 2, "batch_size": 4, "threads": 1},
    })
    summary = train(config, run_dir)
    assert summary["phases"][0]["epochs_run"] == 2
    history = json.loads((run_dir / "history.json").read_text())
    assert all(np.isfinite(h["val_loss"]) and h["val_loss"] > 0 for h in history)
    payload = read_checkpoint(run_dir)
    weights = {t["weights"] for t in payload["model"]["teachers"]}
    assert weights and "random" not in weights  # trained on the real (offline) ImageNet teacher
    model, _, _ = load_model(run_dir)
    batch = uint8_images(3, size=(64, 64), seed=1)
    with torch.no_grad():
        ref_score, ref_map = model(batch)
    assert torch.isfinite(ref_map).all() and ref_map.shape == (3, 1, 64, 64)

    if importlib.util.find_spec("inspector.deploy") is None:
        pytest.skip("inspector.deploy is not in this checkout yet: train part checked, export part skipped")
    import onnxruntime as ort

    from inspector.deploy import export_run
    from inspector.artifacts.model_card import read_sidecar, sidecar_path_for

    result = export_run(run_dir, tmp_path / "export" / "mt")
    fp32 = Path(result["fp32"])
    sidecar = read_sidecar(sidecar_path_for(fp32))
    assert sidecar["model"]["name"] == "mixed_teacher" and set(sidecar["graphs"]) >= {"fp32", "fp16"}
    assert [t["role"] for t in sidecar["teachers"]] == ["resnet_part", "efficientnet_part"]
    assert {s["used"] for s in sidecar["model"]["description"]["substitutions"]} == {OFFLINE_TEACHER}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(fp32), sess_options=options, providers=["CPUExecutionProvider"])
    outputs = {o.name: i for i, o in enumerate(session.get_outputs())}
    got = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    score, amap = got[outputs.get("score", 0)], got[outputs.get("anomaly_map", 1)]
    scale = float(ref_map.abs().max())
    assert np.abs(amap - ref_map.numpy()).max() <= 1e-4 * max(scale, 1.0)
    assert np.abs(score - ref_score.numpy()).max() <= 1e-4 * max(scale, 1.0)
    ops = {node.op_type for node in __import__("onnx").load(str(fp32)).graph.node}
    assert "If" not in ops and "Loop" not in ops
    # the daemon's backend takes both graphs as they are (sidecar, sha256, I/O contract)
    from inspector.backends.onnxruntime import OnnxRuntimeBackend

    for precision, tolerance in (("fp32", 1e-4), ("fp16", 5e-2)):
        with OnnxRuntimeBackend(result[precision], threads=1) as backend:
            out = backend.infer(batch.numpy())
        assert np.isfinite(out.maps).all()
        assert np.abs(out.maps - ref_map.numpy()).max() <= tolerance * max(scale, 1.0), precision
