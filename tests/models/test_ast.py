"""AST: flow invertibility and log-determinant, positional encoding, permutations, two-phase training, export."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inspector.models.ast.flow import ConditionalFlow, soft_clamp
from inspector.models.ast.positional import positional_encoding
from inspector.models.registry import build_model, parse_model_config

SIZE = 64
SMALL = {"flow_hidden": 16, "student_hidden": 16}


def make(**extra):
    cfg = parse_model_config({"name": "ast", "image_size": [SIZE, SIZE], "teacher_weights": "random",
                              **SMALL, **extra})
    torch.manual_seed(0)
    return build_model(cfg).eval()


def images(n=3, seed=0, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)


def wake(flow: ConditionalFlow, gamma: float = 1.0) -> ConditionalFlow:
    """Give every subnet a non-zero γ (weights keep their random init): the flow leaves the identity."""
    with torch.no_grad():
        for name, p in flow.named_parameters():
            if name.endswith("gamma"):
                p.fill_(gamma)
    return flow


def cond_for(h, w, dtype=torch.float32):
    return positional_encoding(32, h, w).to(dtype)


# --------------------------------------------------------------------------- the flow

def test_inverse_reconstructs_the_input():
    torch.manual_seed(0)
    flow = wake(ConditionalFlow(12, 32, 24, kernels=(3, 3, 3, 5), alpha=3.0, seed=0))
    x = torch.randn(2, 12, 7, 9, generator=torch.Generator().manual_seed(0)) * 2
    cond = cond_for(7, 9)
    with torch.no_grad():
        z, logdet = flow(x, cond)
        back = flow.inverse(z, cond)
    assert (z - x).abs().max() > 0.1  # the flow really transforms
    assert (back - x).abs().max() < 1e-4
    assert logdet.shape == (2, 1, 7, 9) and logdet.abs().max() > 0.1


def test_model_flow_inverse_on_real_features(awake_model):
    model = awake_model
    feats = model.features(images(2))
    with torch.no_grad():
        z, _ = model.teacher_z(feats, with_logdet=True)
        back = model.flow.inverse(z, model.positional)
    assert (back - feats).abs().max() < 1e-4


def test_logdet_matches_numerical_jacobian():
    torch.manual_seed(0)
    flow = wake(ConditionalFlow(4, 32, 6, kernels=(3, 3, 3, 5), alpha=3.0, seed=3), gamma=2.0).double()
    cond = cond_for(3, 3, torch.float64)
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    n, eps = x.numel(), 1e-6
    steps = torch.eye(n, dtype=torch.float64).view(n, 4, 3, 3) * eps
    with torch.no_grad():  # central differences, all 2n perturbed inputs in one batch
        out, _ = flow(torch.cat([x + steps, x - steps]), cond)
        jacobian = ((out[:n] - out[n:]) / (2 * eps)).view(n, n).T
        _, logdet = flow(x, cond)
    sign, numeric = torch.linalg.slogdet(jacobian)
    assert sign != 0  # permutations may flip the sign; log|det J| is what the flow tracks
    assert abs(float(numeric) - float(logdet.sum())) < 1e-5
    assert abs(float(logdet.sum())) > 0.5  # a non-trivial Jacobian was checked


def test_gamma_zero_makes_every_coupling_the_identity():
    flow = ConditionalFlow(10, 32, 8, seed=0)
    assert all(float(b.subnet1.gamma.detach()) == 0 == float(b.subnet2.gamma.detach()) for b in flow.blocks)
    x = torch.randn(2, 10, 4, 5)
    with torch.no_grad():
        z, logdet = flow(x, cond_for(4, 5))
    expected = x
    for block in flow.blocks:  # at initialisation only the permutations act
        expected = expected.index_select(1, block.permutation)
    torch.testing.assert_close(z, expected, rtol=0, atol=0)
    assert float(logdet.abs().max()) == 0.0


def test_soft_clamp_is_bounded_and_fp16_safe():
    s = torch.tensor([-1e6, -3.0, -0.01, 0.0, 0.01, 3.0, 1e6])
    out = soft_clamp(s, 3.0)
    assert out.abs().max() < 3.0 and out[3] == 0
    torch.testing.assert_close(out[[2, 4]], s[[2, 4]] * (2 / math.pi), rtol=1e-4, atol=1e-7)
    for const in (3.0 * 2 / math.pi, 1 / 3.0):
        assert math.isfinite(float(torch.tensor(const, dtype=torch.float16)))


def test_positional_encoding_layout():
    enc = positional_encoding(32, 5, 7)[0]
    assert enc.shape == (32, 5, 7)
    cols, rows = torch.arange(7.0), torch.arange(5.0)
    for i in range(8):
        freq = math.exp(-math.log(1e4) * 2 * i / 16)
        torch.testing.assert_close(enc[2 * i], torch.sin(cols * freq).expand(5, 7))
        torch.testing.assert_close(enc[2 * i + 1], torch.cos(cols * freq).expand(5, 7))
        torch.testing.assert_close(enc[16 + 2 * i], torch.sin(rows * freq)[:, None].expand(5, 7))
        torch.testing.assert_close(enc[16 + 2 * i + 1], torch.cos(rows * freq)[:, None].expand(5, 7))


# --------------------------------------------------------------------------- the model

def test_permutations_are_persisted_and_restored():
    model = make(permutation_seed=5)
    state = model.state_dict()
    keys = [k for k in state if k.endswith("permutation")]
    assert len(keys) == 4
    other = make(permutation_seed=6)
    assert any(not torch.equal(state[k], other.state_dict()[k]) for k in keys)
    other.load_state_dict(state)
    for k in keys:
        assert torch.equal(other.state_dict()[k], state[k])
    wake(model.flow)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(other(images(2))[1], model(images(2))[1], rtol=0, atol=0)


def test_feature_and_positional_sizes_match_the_tap():
    model = make()
    feats = model.features(images(1))
    assert feats.shape[1:] == (112, SIZE // 16, SIZE // 16)
    assert model.positional.shape == (1, 32, SIZE // 16, SIZE // 16)
    assert "positional" not in model.state_dict()  # rebuilt from the config, not carried


@pytest.fixture(scope="module")
def awake_model():
    """One model with a non-identity flow; tests switch inference settings on copies of its config."""
    model = make()
    wake(model.flow, gamma=0.1)
    return model


@pytest.mark.parametrize("extra", [{}, {"score_source": "likelihood"}])
def test_per_image_independence(awake_model, extra):
    base = awake_model.config
    awake_model.config = replace(base, **extra)  # inference settings are read at forward time
    try:
        batch = images(4)
        with torch.no_grad():
            scores, maps = awake_model(batch)
            alone = [awake_model(batch[i:i + 1]) for i in range(4)]
    finally:
        awake_model.config = base
    torch.testing.assert_close(scores, torch.cat([a[0] for a in alone]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(maps, torch.cat([a[1] for a in alone]), rtol=1e-5, atol=1e-5)
    assert maps.shape == (4, 1, SIZE, SIZE) and torch.isfinite(maps).all()


def test_likelihood_source_matches_the_flow_nll(awake_model):
    model = awake_model
    base = model.config
    batch = images(2)
    try:
        model.config = replace(base, score_source="likelihood", likelihood_map="nll")
        with torch.no_grad():
            z, logdet = model.teacher_z(model.features(batch), with_logdet=True)
            nll = 0.5 * z.pow(2).sum(1, keepdim=True) - logdet
            low = model.low_res_map(batch)
            model.config = replace(base, score_source="likelihood", likelihood_map="z_norm")
            z_norm = model.low_res_map(batch)
            loss = model.flow_loss(batch)
    finally:
        model.config = base
    torch.testing.assert_close(low, nll)
    torch.testing.assert_close(z_norm, 0.5 * z.pow(2).sum(1, keepdim=True))
    torch.testing.assert_close(loss, nll.mean(), rtol=1e-5, atol=1e-5)  # the loss is the same NLL


def test_student_map_is_non_negative_and_student_absent_from_likelihood_path(awake_model):
    model = awake_model
    base = model.config
    with torch.no_grad():
        _, amap = model(images(2))
    assert (amap >= 0).all()
    calls = []
    hook = model.student.register_forward_hook(lambda *a: calls.append(1))
    try:
        model.config = replace(base, score_source="likelihood")
        with torch.no_grad():
            model(images(1))
    finally:
        model.config = base
        hook.remove()
    assert not calls


def test_phases_train_the_flow_then_the_student():
    model = make().train()
    from inspector.training.config import TrainConfig

    teacher, student = model.training_phases(TrainConfig(optimizer="adam", lr=1e-3))
    assert (teacher.name, student.name) == ("teacher", "student")
    assert {id(p) for p in teacher.parameters} == {id(p) for p in model.flow.parameters()}
    assert {id(p) for p in student.parameters} == {id(p) for p in model.student.parameters()}
    batch = images(2)
    opt = torch.optim.Adam(teacher.parameters, lr=1e-2)
    first = float(teacher.loss(batch).detach())
    for _ in range(3):
        opt.zero_grad()
        teacher.loss(batch).backward()
        opt.step()
    assert float(teacher.loss(batch).detach()) < first
    # the student's loss leaves the flow without gradients
    model.zero_grad(set_to_none=True)
    student.loss(batch).backward()
    assert all(p.grad is None for p in model.flow.parameters())
    assert any(p.grad is not None for p in model.student.parameters())
    # cached targets give the same loss as the plain one
    for phase in (teacher, student):
        model.eval()
        targets = phase.targets(batch)
        assert all(not t.requires_grad for t in targets)
        torch.testing.assert_close(phase.loss_with_targets(batch, targets), phase.loss(batch))


def test_fp16_networks_keep_the_flow_state_in_fp32():
    """Subnets and student in FP16; flow state, clamp, exp, distances in FP32 (the exported FP16 layout).

    (The whole-model FP16 forward is covered for every model by test_models.py.)
    """
    model = make()
    wake(model.flow, gamma=0.1)
    feats = torch.randn(2, 112, SIZE // 16, SIZE // 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref_z, ref_logdet = model.teacher_z(feats, with_logdet=True)
        model.set_compute_dtype(torch.float16)
        z, logdet = model.teacher_z(feats.half(), with_logdet=True)
        z_s = model.student_z(feats.half())
    assert z.dtype == logdet.dtype == z_s.dtype == model.positional.dtype == torch.float32
    assert next(model.flow.parameters()).dtype == torch.float16
    torch.testing.assert_close(z, ref_z, rtol=0.02, atol=0.02)
    torch.testing.assert_close(logdet, ref_logdet, rtol=0.02, atol=0.05)


def test_paper_preset_defaults():
    cfg = parse_model_config({"name": "ast", "preset": "paper", "teacher_weights": "random"})
    assert cfg.image_size == (768, 768) and cfg.backbone == "efficientnet_b5" and cfg.tap == "blocks36"
    assert cfg.flow_hidden == 1024 and cfg.student_hidden == 1024 and cfg.score == "mean"
    from inspector.models.backbones import available_taps

    tap = {t.name: t for t in available_taps("efficientnet_b5")}["blocks36"]
    assert (tap.channels, tap.stride) == (304, 32)
    offline = parse_model_config({"name": "ast"})
    assert offline.image_size == (256, 256) and offline.tap == "blocks.4"
    assert (cfg.features, offline.features) == ("raw", "raw") and make().standardize is None


def test_bad_config_is_rejected():
    from inspector.errors import ConfigError

    with pytest.raises(ConfigError, match="coupling_kernels"):
        parse_model_config({"name": "ast", "coupling_kernels": [3, 4]})
    with pytest.raises(ConfigError, match="score_source"):
        parse_model_config({"name": "ast", "score_source": "teacher"})
    with pytest.raises(ConfigError, match=r"model.features: 'whitened' is not one of \['raw', 'standardized'\]"):
        parse_model_config({"name": "ast", "features": "whitened"})
    with pytest.raises(ConfigError, match="feature_pool: must be odd"):
        parse_model_config({"name": "ast", "feature_pool": 2})


def test_feature_pool_averages_each_position_over_its_neighbourhood_without_the_padding():
    plain, pooled = make(), make(feature_pool=3)
    batch = images(2)
    raw = plain.features(batch)
    ones = torch.ones_like(raw[:, :1])
    expected = F.avg_pool2d(raw, 3, 1, 1) / F.avg_pool2d(ones, 3, 1, 1)  # a corner averages its 4 cells, not 9
    torch.testing.assert_close(pooled.features(batch), expected)
    assert plain.config.feature_pool == 1  # the presets leave the tap as it is


# --------------------------------------------------------------------------- training and export

def _ast_run_config(tiny_dataset, **model):
    from inspector.training.config import load_run_config

    return load_run_config(base={
        "model": {"name": "ast", "image_size": [SIZE, SIZE], "smoothing_sigma": 1.0, **SMALL, **model},
        "data": {"path": str(tiny_dataset)},
        "train": {"epochs": 1, "batch_size": 4},
    })


@pytest.fixture(scope="module")
def ast_run(tiny_dataset, tmp_path_factory) -> Path:
    """1 epoch per phase; the student phase is interrupted (Ctrl-C) once, then the run is resumed."""
    from inspector.models.ast.model import AstModel
    from inspector.artifacts.checkpoint import read_checkpoint
    from inspector.training.loop import train

    run_dir = tmp_path_factory.mktemp("runs") / "ast"
    # its buffers and the neighbourhood average go through export too
    config = _ast_run_config(tiny_dataset, features="standardized", feature_pool=3)
    assert config.train.optimizer == "adam" and config.train.lr == 2e-4 and config.train.weight_decay == 1e-5

    def ctrl_c(*args):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AstModel, "student_loss", ctrl_c)
        mp.setattr(AstModel, "student_loss_from_targets", ctrl_c)
        first = train(config, run_dir)
    assert [(p["name"], p["interrupted"]) for p in first["phases"]] == [("teacher", False), ("student", True)]
    interrupted = read_checkpoint(run_dir)
    assert interrupted["completed_phases"] == ["teacher"]
    flow_after_phase_1 = {k: v for k, v in interrupted["state_dict"].items() if k.startswith("flow.")}

    second = train(config, run_dir, resume=True)
    assert [(p["name"], p["interrupted"]) for p in second["phases"]] == [("student", False)]
    done = read_checkpoint(run_dir)
    assert done["phase"] == "student" and done["completed_phases"] == ["teacher", "student"]
    for key, value in flow_after_phase_1.items():  # phase 1 was not re-run: the flow is untouched
        assert torch.equal(done["state_dict"][key], value), key
    return run_dir


def test_two_phase_training_with_resume(ast_run):
    import json

    from inspector.training.checkpoint import load_model

    history = json.loads((ast_run / "history.json").read_text())
    assert [(h["phase"], h["epoch"]) for h in history] == [("teacher", 1), ("student", 1)]
    assert all(math.isfinite(h["val_loss"]) for h in history)
    model, _, _ = load_model(ast_run)
    gammas = [float(b.subnet1.gamma.detach()) for b in model.flow.blocks]
    assert any(g != 0 for g in gammas), "the flow was trained in phase 1"
    with torch.no_grad():
        score, amap = model(images(2))
    assert torch.isfinite(score).all() and (amap >= 0).all()


def test_standardized_features_are_standardised_with_the_training_images(ast_run):
    from dataclasses import replace as replace_config

    from inspector.training.checkpoint import load_model
    from inspector.training.loop import load_training_images

    model, config, _ = load_model(ast_run)
    assert config.model.features == "standardized"
    train_imgs, _, _ = load_training_images(config)
    assert len(train_imgs) <= 128  # all of them were fitted
    with torch.no_grad():
        feats = model.features(torch.from_numpy(train_imgs)).double()
        raw = model.tap(torch.from_numpy(train_imgs)).double()  # the backbone's tap, neighbourhood-averaged
    mean, std = feats.mean(dim=(0, 2, 3)), feats.std(dim=(0, 2, 3), unbiased=False)
    assert mean.abs().max() < 1e-4 and (std - 1).abs().max() < 1e-3
    assert (raw.std(dim=(0, 2, 3)) - 1).abs().max() > 0.1  # the raw features are not unit-variance already
    # the buffers are what makes it so: an identity standardisation gives the raw features back
    identity = replace_config(config.model, features="raw")
    plain = build_model(identity).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("standardize.")})
    with torch.no_grad():
        torch.testing.assert_close(plain.features(torch.from_numpy(train_imgs)).double(), raw)


def _graph_ops(model_proto) -> set[str]:
    ops = set()

    def walk(graph):
        for node in graph.node:
            ops.add(node.op_type)
            for attr in node.attribute:
                if attr.g is not None and len(attr.g.node):
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model_proto.graph)
    return ops


def test_export_parity_and_no_if_nodes(ast_run, tmp_path):
    exporting = pytest.importorskip("inspector.deploy", reason="inspector.deploy not written yet")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from inspector.training.checkpoint import load_model

    result = exporting.export_run(ast_run, tmp_path / "ast")
    model, _, _ = load_model(ast_run)
    batch = images(2)
    with torch.no_grad():
        ref_score, ref_map = model(batch)
    for key in ("fp32", "fp16"):
        if not result.get(key):
            continue
        path = Path(result[key])
        ops = _graph_ops(onnx.load(str(path)))
        assert "If" not in ops and "Loop" not in ops, f"{key}: control flow in the graph"
        if key == "fp16":
            continue  # FP16 parity is the exporter's test; ORT's CPU provider lacks some FP16 kernels
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {session.get_inputs()[0].name: batch.numpy()}
        score, amap = session.run(None, feeds)[:2]
        torch.testing.assert_close(torch.from_numpy(score), ref_score, rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(torch.from_numpy(amap), ref_map, rtol=1e-3, atol=1e-4)


def test_quantile_normalisation_by_config_is_fitted_and_in_the_forward():
    """The student map alone, normalised by config: the normalised map is what is scored."""
    model = make(map_normalization="quantile", position_normalization="shrunk", smoothing_sigma=0,
                 score_source="student")
    val = images(8, seed=1)
    model.calibrate_maps(val)
    assert not model.level_norm.is_identity()
    batch = images(2)
    with torch.no_grad():
        score, amap, levels = model.forward_with_levels(batch)
        (name, low), = model.named_level_maps(batch).items()
        raw = model.low_res_map(batch)
    torch.testing.assert_close(levels[name], low)
    torch.testing.assert_close(low, model.level_norm([raw])[0])
    assert not torch.allclose(low, raw)
    assert (amap >= 0).all() and score.shape == (2,)


def test_offline_default_sums_both_parts_each_normalised_and_clamped(awake_model):
    """Offline: student map + flow 0.5·‖z‖², each quantile-normalised on good images, clamped at 0, summed.

    Units do not matter: the likelihood map in other units (×1000 + 7) gives the same score
    once refitted, so neither part can drown the other (benchmarks/README.md, Session 6).
    """
    cfg = awake_model.config
    assert (cfg.score_source, cfg.likelihood_map, cfg.map_normalization) == ("both", "z_norm", "quantile")
    model = awake_model
    val, batch = images(8, seed=1), images(3, seed=2)
    model.calibrate_maps(val)
    with torch.no_grad():
        score, amap, levels = model.forward_with_levels(batch)
        student, likelihood = model.low_res_maps(batch)
        feats = model.features(batch)
        z, _ = model.teacher_z(feats, with_logdet=False)
    torch.testing.assert_close(likelihood, 0.5 * z.pow(2).sum(1, keepdim=True))
    torch.testing.assert_close(student, (z - model.student_z(feats)).pow(2).mean(1, keepdim=True))
    parts = [model.level_norm.level(i, m).clamp_min(0) for i, m in enumerate((student, likelihood))]
    expected, _ = model.finish(F.interpolate(parts[0] + parts[1], size=(SIZE, SIZE), mode="bicubic",
                                             align_corners=False).clamp_min(0))
    torch.testing.assert_close(score, expected)
    assert set(levels) == {"blocks.4:student", "blocks.4:likelihood"} and (amap >= 0).all()
    base = model.config
    try:  # inference settings switched on the built model: the part keeps its own constants
        model.config = replace(base, score_source="likelihood")
        with torch.no_grad():
            (alone,) = model.normalized_maps(batch)
    finally:
        model.config = base
    torch.testing.assert_close(alone, model.level_norm.level(1, likelihood))

    nll = type(model).negative_log_likelihood
    try:
        type(model).negative_log_likelihood = staticmethod(lambda z, logdet: nll(z, logdet) * 1000 + 7)
        model.calibrate_maps(val)
        with torch.no_grad():
            rescaled, _ = model(batch)
    finally:
        type(model).negative_log_likelihood = staticmethod(nll)
        model.level_norm.reset()
    torch.testing.assert_close(rescaled, score, rtol=1e-4, atol=1e-6)


def test_both_parts_need_quantile_normalisation():
    from inspector.errors import ConfigError

    with pytest.raises(ConfigError, match="score_source.*map_normalization: quantile"):
        parse_model_config({"name": "ast", "score_source": "both", "map_normalization": "none"})
