"""feature_imitation: teacher-fed sub-blocks, independent pyramid groups, importance search, torch = ORT."""

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from inspector.errors import ConfigError
from inspector.models.feature_imitation.importance import keep_top_k, search_weights
from inspector.models.feature_imitation.model import EQUAL_WEIGHTS_NOTE
from tiny_models import build_tiny, uint8_images

pytestmark = pytest.mark.usefixtures("one_thread")
make = functools.partial(build_tiny, "feature_imitation")  # make(preset, size, **config): tiny, seeded


@pytest.mark.parametrize("preset", ["offline", "paper"])
def test_each_subblock_receives_the_teachers_previous_feature(preset):
    model = make(preset)
    x = model.normalize(uint8_images())
    seen = {}
    hooks = [block.register_forward_pre_hook(lambda m, args, key=(g, j): seen.__setitem__(key, args[0]))
             for g, group in enumerate(model.students) for j, block in enumerate(group)]
    with torch.no_grad():
        model.module_maps(uint8_images())
        for g in range(len(model.sizes)):
            feats = model.teacher(model._scaled(x, g))
            for j, level in enumerate(model.outputs):
                assert torch.equal(seen[(g, j)], feats[level - 1]), (g, j)
    for h in hooks:
        h.remove()


def test_a_subblocks_map_ignores_what_the_earlier_subblock_outputs():
    model = make()
    with torch.no_grad():
        before = model.module_maps(uint8_images())
        # The earlier sub-block of every group now outputs noise: a chained student would change.
        hooks = [group[0].register_forward_hook(lambda m, a, out: torch.randn_like(out) * 100)
                 for group in model.students]
        after = model.module_maps(uint8_images())
    for h in hooks:
        h.remove()
    n = len(model.outputs)
    changed = [not torch.equal(before[i], after[i]) for i in sorted(before)]
    assert changed == [j == 0 for _ in model.sizes for j in range(n)]


def test_subblocks_mirror_the_teacher_stage_with_fresh_weights():
    model = make("paper")
    teacher_layer2 = model.teacher.body.layer2
    student = model.students[0][1]  # paper levels: layer1, layer2, layer3
    assert [tuple(p.shape) for p in student.parameters()] == [tuple(p.shape) for p in teacher_layer2.parameters()]
    assert [type(m).__name__ for m in student.modules()][1:] == [type(m).__name__ for m in teacher_layer2.modules()]
    assert not torch.equal(next(student.parameters()), next(teacher_layer2.parameters()))
    assert all(p.requires_grad for p in student.parameters())


def test_pyramid_groups_are_independent():
    model = make().train()
    groups = list(model.students)
    assert len(groups) == len(model.config.scales) == 2
    ptrs = [{p.data_ptr() for p in g.parameters()} for g in groups]
    assert not ptrs[0] & ptrs[1]  # no shared parameter
    targets = model.teacher_targets(uint8_images(4))
    n = len(model.outputs)
    # The loss of scale 0 alone: no gradient reaches the scale-1 group.
    loss0 = sum(model.distance(targets[n + j], groups[0][j](targets[j])).mean() for j in range(n))
    loss0.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in groups[0].parameters() if p.ndim > 1)
    assert all(p.grad is None for p in groups[1].parameters())
    # Changing the scale-1 group leaves the scale-0 maps as they were.
    model.eval()
    with torch.no_grad():
        before = model.module_maps(uint8_images())
        for p in groups[1].parameters():
            p.add_(1.0)
        after = model.module_maps(uint8_images())
    assert all(torch.equal(before[i], after[i]) for i in range(n))
    assert not any(torch.equal(before[i], after[i]) for i in range(n, 2 * n))


def test_scaled_sizes_keep_the_aspect_ratio():
    from inspector.models.feature_imitation.model import scaled_size

    assert scaled_size((416, 160), 0.5) == (208, 80)
    assert scaled_size((256, 256), 1.5) == (384, 384)
    assert scaled_size((64, 96), 0.25) == (32, 32)  # never below 32


def test_each_scale_sees_its_own_input_size():
    model = make("paper", size=(64, 64))
    assert model.sizes == ((32, 32), (64, 64), (96, 96))  # paper 128/256/384 at 256, here at 64
    with torch.no_grad():
        maps = model.named_level_maps(uint8_images(1, size=(64, 64)))
    assert maps["0.5x:layer1"].shape[-1] * 3 == maps["1.5x:layer1"].shape[-1]
    assert maps["1x:layer2"].shape[-2:] == (8, 8)


def test_paper_map_is_the_mean_of_quarter_squared_distances_in_unit_range():
    model = make("paper", size=(64, 64), smoothing_sigma=0)
    batch = uint8_images(2, size=(64, 64))
    with torch.no_grad():
        _, amap = model(batch)
        maps = model.module_maps(batch)
    expected = sum(torch.nn.functional.interpolate(m, size=(64, 64), mode="bilinear") for m in maps.values())
    torch.testing.assert_close(amap, expected / len(maps))
    assert all((m >= 0).all() and (m <= 1).all() for m in maps.values())


def test_without_defects_every_module_keeps_equal_weight_and_the_card_says_so():
    model = make()
    card = model.describe()["module_importance"]
    assert not card["searched"] and card["note"] == EQUAL_WEIGHTS_NOTE
    assert set(card["weights"].values()) == {0.25} and len(card["kept"]) == 4
    assert model.fit_after_training(None) is None


def test_search_favours_the_module_that_marks_the_defects_and_keeps_top_k():
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(6, 16, 16, generator=g) > 0.9).float()
    informative = masks + 0.3 * torch.rand(6, 16, 16, generator=g)
    noise = torch.rand(6, 16, 16, generator=g)
    weights = search_weights(torch.stack([noise, informative, noise.flip(1)], dim=1), masks, steps=200)
    assert weights.argmax() == 1 and abs(float(weights.sum()) - 1) < 1e-5
    kept = keep_top_k(weights, 1)
    assert kept.tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ConfigError, match="defect pixels"):
        search_weights(torch.stack([noise, informative], 1), torch.zeros_like(masks))


def test_search_on_a_dataset_changes_module_weights_only(tiny_dataset):
    from inspector.training.config import DataConfig

    model = make(size=(64, 64), importance_data=str(tiny_dataset), importance_topk=3, importance_steps=20)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = model.fit_after_training(DataConfig(path=str(tiny_dataset)))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"module_weight", "importance_searched"}
    assert len(result["kept"]) == 3 and len(model.kept) == 3
    assert model.describe()["module_importance"]["searched"]
    # A dropped module is not computed, and a reload restores which modules are kept.
    reloaded = make(size=(64, 64))
    reloaded.load_state_dict(model.state_dict())
    assert reloaded.kept == model.kept
    with torch.no_grad():
        torch.testing.assert_close(reloaded(uint8_images(2, size=(64, 64))), model(uint8_images(2, size=(64, 64))))


def test_levels_must_have_a_teacher_feature_before_them():
    with pytest.raises(ConfigError, match="first tap"):
        make(levels=["blocks.0", "blocks.2"])
    with pytest.raises(ConfigError, match="exceeds"):
        make(importance_topk=5)


@pytest.mark.slow
def test_exported_graph_gives_the_same_map_as_torch(tiny_dataset, tmp_path):
    """Trained on the real offline teacher (2 epochs), the top 3 of 4 modules kept, then exported."""
    import onnxruntime as ort

    from inspector.deploy import export_run
    from inspector.training.checkpoint import load_model
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    run_dir = tmp_path / "fi"
    config = load_run_config(base={
        "model": {"name": "feature_imitation", "image_size": [64, 64], "smoothing_sigma": 1.0,
                  "importance_data": str(tiny_dataset), "importance_topk": 3, "importance_steps": 20},
        "data": {"path": str(tiny_dataset)},
        "train": {"epochs": 2, "batch_size": 4, "threads": 1},
    })
    summary = train(config, run_dir)
    assert len(summary["after_training"]["kept"]) == 3
    model, _, _ = load_model(run_dir)
    assert len(model.kept) == 3
    batch = uint8_images(3, size=(64, 64), seed=1)
    with torch.no_grad():
        ref_score, ref_map = model(batch)
    result = export_run(run_dir, tmp_path / "export" / "fi")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(result["fp32"]), sess_options=options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {session.get_inputs()[0].name: batch.numpy()})))
    score, amap = got.get("score", list(got.values())[0]), got.get("anomaly_map", list(got.values())[1])
    scale = max(float(ref_map.abs().max()), 1.0)
    assert np.abs(amap - ref_map.numpy()).max() <= 1e-4 * scale
    assert np.abs(score - ref_score.numpy()).max() <= 1e-4 * scale
    from inspector.backends.onnxruntime import OnnxRuntimeBackend

    for precision, tolerance in (("fp32", 1e-4), ("fp16", 5e-2)):
        with OnnxRuntimeBackend(Path(result[precision]), threads=1) as backend:
            out = backend.infer(batch.numpy())
        assert np.isfinite(out.maps).all()
        assert np.abs(out.maps - ref_map.numpy()).max() <= tolerance * scale, precision


def test_offline_module_maps_are_normalised_per_position():
    """Every (scale, level) module gets per-position constants of its own map's size (the offline rule)."""
    from inspector.models.registry import build_model, parse_model_config

    torch.manual_seed(0)
    model = build_model(parse_model_config({"name": "feature_imitation", "image_size": [64, 96],
                                            "teacher_weights": "random"})).eval()
    g = torch.Generator().manual_seed(0)
    val = torch.randint(0, 256, (8, 64, 96, 3), dtype=torch.uint8, generator=g)
    val[:, 16:32, 40:56] = 255  # a structure every good image has at the same place
    model.calibrate_maps(val)
    with torch.no_grad():
        maps = model.module_maps(val[:2])
    assert len(maps) == 4  # 2 scales x 2 levels
    for i, m in maps.items():
        offset = getattr(model.level_norm, f"offset{i}")
        assert offset.shape[-2:] == m.shape[-2:], model.module_names[i]
        assert offset.abs().sum() > 0  # fitted, not the identity
