"""model.teacher: offline single-teacher models on EfficientNet-Lite1/Lite2 (random weights, tiny inputs)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from inspector.deploy import export_model, graph_paths
from inspector.errors import ConfigError
from inspector.models.backbones import available_taps
from inspector.models.registry import build_model, parse_model_config

SIZE = 64


def make(name: str, teacher: str):
    cfg = parse_model_config({"name": name, "image_size": [SIZE, SIZE], "teacher": teacher,
                              "teacher_weights": "random"})
    torch.manual_seed(0)
    return build_model(cfg).eval()


def images(n: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (n, SIZE, SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["reduced_student", "stfpm"])
@pytest.mark.parametrize("teacher", ["efficientnet_lite1", "efficientnet_lite2"])
def test_student_follows_the_teachers_channels_at_the_same_strides(one_thread, name, teacher):
    model = make(name, teacher)
    assert model.teacher.backbone_name == teacher
    x = model.network_input(images(1))
    teacher_feats, student_feats = model.teacher(x), model.student(x)  # every tap (offline: no pooling)
    assert [t.shape for t in teacher_feats] == [s.shape for s in student_feats]
    # the same taps sit at the same strides as Lite0's, only the channels differ
    lite0 = {t.name: t.stride for t in available_taps("efficientnet_lite0")}
    assert [SIZE // lite0[t.name] for t in model.teacher.feature_info] == [f.shape[-1] for f in teacher_feats]
    wide = {t.name: t.channels for t in available_taps(teacher)}
    assert [f.shape[1] for f in teacher_feats] == [wide[t.name] for t in model.teacher.feature_info]


def test_lite2_is_wider_and_lite1_deeper_than_lite0():
    channels = {n: [t.channels for t in available_taps(n)] for n in ("efficientnet_lite0", "efficientnet_lite2")}
    assert channels["efficientnet_lite2"] == [16, 24, 48, 88, 120, 208, 352]
    blocks = {n: len(make("reduced_student", n).teacher.body._blocks)
              for n in ("efficientnet_lite0", "efficientnet_lite1")}
    # taps up to blocks.6 keep every block: Lite0 16 blocks, Lite1/Lite2 21 (stages 2-6 one deeper)
    assert blocks == {"efficientnet_lite0": 16, "efficientnet_lite1": 21}


def test_paper_preset_refuses_a_teacher_choice():
    with pytest.raises(ConfigError, match=r"model\.teacher: only the offline preset"):
        parse_model_config({"name": "reduced_student", "preset": "paper", "teacher": "efficientnet_lite2"})
    with pytest.raises(ConfigError, match="did you mean 'efficientnet_lite2'"):
        parse_model_config({"name": "reduced_student", "teacher": "efficientnet_lite3"})


def test_lite2_teacher_exports_one_graph_with_fp16_parity(one_thread, tmp_path):
    model = make("reduced_student", "efficientnet_lite2")
    with torch.no_grad():
        want_score, want_map = model(images())
    export_model(model, tmp_path / "rs-lite2", precisions=["fp32", "fp16"])
    paths = graph_paths(tmp_path / "rs-lite2")
    batch = images().numpy()
    for precision, tol in (("fp32", 1e-4), ("fp16", 0.05)):
        session = ort.InferenceSession(str(paths[precision]), providers=["CPUExecutionProvider"])
        score, amap = session.run(None, {session.get_inputs()[0].name: batch})
        scale = float(want_map.abs().max())
        assert np.abs(amap - want_map.numpy()).max() <= tol * scale, precision
        assert np.allclose(score, want_score.numpy(), rtol=tol, atol=tol * scale), precision


@pytest.mark.parametrize("name", ["reduced_student", "stfpm", "mixed_teacher"])
def test_a_checkpoint_that_names_no_teacher_reloads_on_lite0_and_new_runs_get_the_default(name):
    """Checkpoints from before ``teacher`` was saved were trained on Lite0: a new default must not rebuild
    them on another network (whose weights would not load); the paper preset takes no teacher at all."""
    from inspector.models.base import OFFLINE_TEACHER, OFFLINE_TEACHER_BEFORE
    from inspector.models.checkpoint import _saved_run_config

    assert _saved_run_config({"model": {"name": name}}).model.teacher == OFFLINE_TEACHER_BEFORE
    assert _saved_run_config({"model": {"name": name, "preset": "paper"}}).model.teacher is None
    chosen = _saved_run_config({"model": {"name": name, "teacher": "efficientnet_lite2"}}).model
    assert chosen.teacher == "efficientnet_lite2"
    assert parse_model_config({"name": name}).teacher == OFFLINE_TEACHER


def test_an_ast_checkpoint_that_names_no_backbone_reloads_on_lite0():
    from inspector.models.base import OFFLINE_TEACHER, OFFLINE_TEACHER_BEFORE
    from inspector.models.checkpoint import _saved_run_config

    assert _saved_run_config({"model": {"name": "ast"}}).model.backbone == OFFLINE_TEACHER_BEFORE
    assert _saved_run_config({"model": {"name": "ast", "preset": "paper"}}).model.backbone == "efficientnet_b5"
    assert parse_model_config({"name": "ast"}).backbone == OFFLINE_TEACHER
