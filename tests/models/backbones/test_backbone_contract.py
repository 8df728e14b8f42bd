"""Contract tests: declared taps (channels, stride) match real outputs; truncation; eval/frozen; export."""

from __future__ import annotations

import functools
import io
import math

import numpy as np
import pytest
import torch

from inspector.errors import ModelError
from inspector.models.backbones import (
    BACKBONES,
    BasicBlock,
    FeatureExtractor,
    available_taps,
    build_backbone,
    build_classifier,
)

ALL_TAPS = [(name, tap.name) for name in BACKBONES for tap in available_taps(name)]
# Odd, non-square input: every tap must be ceil(size / stride) for every backbone.
INPUT_HW = (67, 75)


@functools.lru_cache(maxsize=None)
def _all_tap_outputs(name: str):
    """One random-weights extractor per backbone with every tap, run once on a fixed input."""
    torch.manual_seed(0)
    extractor = build_backbone(name, [t.name for t in available_taps(name)], weights="random")
    x = torch.randn(2, 3, *INPUT_HW)
    with torch.no_grad():
        outputs = extractor(x)
    return extractor, dict(zip((t.name for t in extractor.feature_info), outputs))


@pytest.mark.parametrize("name,tap", ALL_TAPS, ids=[f"{n}:{t}" for n, t in ALL_TAPS])
def test_declared_tap_matches_output(name, tap):
    extractor, outputs = _all_tap_outputs(name)
    info = {t.name: t for t in extractor.feature_info}[tap]
    out = outputs[tap]
    assert out.shape[0] == 2
    assert out.shape[1] == info.channels
    assert tuple(out.shape[2:]) == tuple(math.ceil(s / info.stride) for s in INPUT_HW)


def test_tap_tables():
    assert [(t.name, t.channels, t.stride) for t in available_taps("resnet18")] == [
        ("stem", 64, 4), ("layer1", 64, 4), ("layer2", 128, 8), ("layer3", 256, 16), ("layer4", 512, 32)
    ]
    strides = [2, 4, 8, 16, 16, 32, 32]
    b0 = [(f"blocks.{i}", c, s) for i, (c, s) in enumerate(zip([16, 24, 40, 80, 112, 192, 320], strides))]
    assert [(t.name, t.channels, t.stride) for t in available_taps("efficientnet_b0")] == b0
    assert [(t.name, t.channels, t.stride) for t in available_taps("efficientnet_lite0")] == b0
    b5 = {t.name: (t.channels, t.stride) for t in available_taps("efficientnet_b5")}
    assert [b5[f"blocks.{i}"][0] for i in range(7)] == [24, 40, 64, 128, 176, 304, 512]
    assert b5["blocks36"] == (304, 32)  # AST: 304 x 24 x 24 at 768 x 768


def _kept_steps(net: torch.nn.Module, tap: str) -> tuple[str, ...]:
    after = {p.tap.name: p.after for p in net.feature_taps()}[tap]
    steps = net.feature_steps()
    return steps[: steps.index(after) + 1]


TRUNCATIONS = [
    ("resnet18", "layer2", ("layer3.", "layer4.", "fc.")),
    ("efficientnet_b0", "blocks.4", ("features.6.", "features.7.", "features.8.", "classifier.")),
    ("efficientnet_b5", "blocks36", ("features.7.", "features.8.", "classifier.")),
    ("efficientnet_lite0", "blocks.4", ("_blocks.11.", "_blocks.15.", "_conv_head.", "_bn1.", "_fc.")),
]


@pytest.mark.parametrize("name,tap,gone", TRUNCATIONS, ids=[t[0] for t in TRUNCATIONS])
def test_truncated_after_deepest_tap(name, tap, gone):
    extractor = build_backbone(name, [tap], weights="random")
    keys = list(extractor.body.state_dict())
    assert not [k for k in keys if k.startswith(gone)]
    full = BACKBONES[name]()
    kept = _kept_steps(full, tap)
    assert all(any(k == s or k.startswith(s + ".") for s in kept) for k in keys)
    # Every kept step still has all its parameters and buffers (nothing needed was pruned).
    for step in kept:
        assert extractor.body.get_submodule(step).state_dict().keys() == full.get_submodule(step).state_dict().keys()
    params = {n for n, _ in extractor.named_parameters()}
    assert not any(n.startswith("body." + g) for n in params for g in gone)


def test_b5_blocks36_is_first_36_blocks():
    extractor = build_backbone("efficientnet_b5", ["blocks36"], weights="random")
    blocks = [m for m in extractor.body.modules() if type(m).__name__ == "MBConv"]
    assert len(blocks) == 36
    assert extractor.feature_info[0].channels == 304


def test_outputs_follow_requested_order_and_match_single_tap(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "r18.pth"
    torch.save(build_classifier("resnet18", weights="random").state_dict(), path)
    both = build_backbone("resnet18", ["layer3", "stem"], weights=path)
    assert [t.name for t in both.feature_info] == ["layer3", "stem"]
    single = build_backbone("resnet18", ["stem"], weights=path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        layer3, stem = both(x)
        (stem_only,) = single(x)
    assert layer3.shape[1] == 256 and stem.shape[1] == 64
    torch.testing.assert_close(stem, stem_only)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "efficientnet_lite0"])
def test_extractor_is_built_in_eval_mode_and_trains_as_a_student(name):
    """Built in eval mode; a random-init extractor is an ordinary trainable module (the STFPM student)."""
    taps = [t.name for t in available_taps(name)][1:3]
    extractor = build_backbone(name, taps, weights="random")
    assert isinstance(extractor, FeatureExtractor)
    assert not any(m.training for m in extractor.modules())
    extractor.train()
    assert all(m.training for m in extractor.modules())
    loss = sum(o.square().mean() for o in extractor(torch.randn(2, 3, 32, 32)))
    loss.backward()
    grads = [p.grad for p in extractor.parameters()]
    assert grads and all(g is not None for g in grads)
    # The owner freezes a teacher: eval again and no gradients.
    extractor.requires_grad_(False).eval()
    with torch.no_grad():
        a = extractor(torch.ones(1, 3, 32, 32))
        b = extractor(torch.ones(1, 3, 32, 32))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_unknown_backbone_and_tap_suggest():
    with pytest.raises(ModelError, match="did you mean 'resnet18'"):
        build_backbone("resnet81", ["layer1"], weights="random")
    with pytest.raises(ModelError, match="did you mean 'layer1'"):
        build_backbone("resnet18", ["layr1"], weights="random")
    with pytest.raises(ModelError, match="did you mean 'blocks.4'"):
        build_backbone("efficientnet_b0", ["block.4"], weights="random")
    with pytest.raises(ModelError, match="non-empty"):
        build_backbone("resnet18", [], weights="random")
    with pytest.raises(ModelError, match="non-empty"):
        build_backbone("resnet18", "layer1", weights="random")


def test_basic_block_is_torchvision_shaped():
    block = BasicBlock(64, 128, stride=2, downsample=torch.nn.Sequential(
        torch.nn.Conv2d(64, 128, 1, 2, bias=False), torch.nn.BatchNorm2d(128)))
    assert sorted(block.state_dict()) == sorted([
        *(f"{m}.{p}" for m in ("bn1", "bn2", "downsample.1")
          for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")),
        "conv1.weight", "conv2.weight", "downsample.0.weight",
    ])
    assert block.conv1.bias is None and block.conv1.stride == (2, 2)
    assert block(torch.randn(1, 64, 16, 16)).shape == (1, 128, 8, 8)
    assert BasicBlock(64, 64)(torch.randn(1, 64, 8, 8)).shape == (1, 64, 8, 8)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0"])
def test_half_forward_has_no_nan(name):
    extractor = build_backbone(name, [t.name for t in available_taps(name)], weights="random").half()
    with torch.no_grad():
        outputs = extractor(torch.randn(1, 3, 32, 32).half())
    assert all(o.dtype == torch.float16 and torch.isfinite(o).all() for o in outputs)


def _export(module, x, dynamo: bool):
    import onnx

    if dynamo:
        pytest.importorskip("onnxscript")
        return torch.onnx.export(module, (x,), dynamo=True, verbose=False).model_proto
    buffer = io.BytesIO()
    torch.onnx.export(module, (x,), buffer, dynamo=False, opset_version=17)
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")
@pytest.mark.parametrize(
    "name,taps,dynamo",
    [
        ("efficientnet_lite0", ["blocks.1", "blocks.3"], False),
        ("efficientnet_lite0", ["blocks.1", "blocks.3"], True),
        ("resnet18", ["stem", "layer2"], False),
        ("efficientnet_b0", ["blocks.2"], False),
    ],
    ids=["lite0-legacy", "lite0-dynamo", "resnet18-legacy", "b0-legacy"],
)
def test_onnx_export_matches_eager(name, taps, dynamo):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    extractor = build_backbone(name, taps, weights="random")
    x = torch.randn(1, 3, 67, 74)  # odd height: exercises the SAME padding of strided convs
    with torch.no_grad():
        expected = extractor(x)
    model = _export(extractor, x, dynamo)
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"If", "Loop"}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert len(outputs) == len(taps)
    for got, want in zip(outputs, expected):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4 * float(want.abs().max()))
