"""Glance: the Global-Net cannot see its patch, stains stay inside their mask, phases train through the loop."""

import json

import pytest
import torch

from inspector.models.glance import grid
from inspector.models.glance.stains import add_stains
from inspector.models.registry import build_model, parse_model_config

SIZE = 64


def make(**extra):
    cfg = parse_model_config({"name": "glance", "image_size": [SIZE, SIZE], "teacher_weights": "random", **extra})
    torch.manual_seed(0)
    return build_model(cfg).eval()


def images(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, SIZE, SIZE, 3), dtype=torch.uint8, generator=g)


def features(model, imgs, positions=None):
    with torch.no_grad():
        patches, context, mask = model.windows(model.normalize(imgs), positions)
        return model.local_features(patches), model.global_features(context, mask)


@pytest.mark.parametrize("positions", [None, torch.tensor([[0, 0], [14, 22], [32, 32]])],
                         ids=["inference_grid", "training_positions"])
def test_global_feature_is_blind_to_its_patch_and_sees_its_context(positions):
    model = make()
    base = images()
    pos = grid.grid_positions(SIZE, SIZE, 32, 16) if positions is None else positions
    k = len(pos)
    z_l, z_g = features(model, base, positions)
    for i, (top, left) in enumerate(pos.tolist()):
        inside = base.clone()
        inside[0, top:top + 32, left:left + 32] = 255 - inside[0, top:top + 32, left:left + 32]
        z_l2, z_g2 = features(model, inside, positions)
        assert torch.equal(z_g2[i], z_g[i]), f"patch {i} at {(top, left)} leaks into its global feature"
        assert not torch.allclose(z_l2[i], z_l[i])  # the Local-Net does see it
        assert torch.equal(z_g2[k:], z_g[k:])  # the other image of the batch is untouched
    # A change just outside the patch (inside the context) must move the global feature.
    top, left = pos[-1].tolist()
    ring = base.clone()
    ring[0, max(top - 4, 0):top, :] = 255 - ring[0, max(top - 4, 0):top, :]
    ring[0, :, max(left - 4, 0):left] = 255 - ring[0, :, max(left - 4, 0):left]
    _, z_g3 = features(model, ring, positions)
    assert not torch.allclose(z_g3[k - 1], z_g[k - 1])


def test_context_mask_hides_patch_and_padding():
    pos = torch.tensor([[0, 0], [16, 16]])
    mask = grid.context_mask(pos, SIZE, SIZE, 32, 96)  # pooled by 2: 48x48 windows, patch at 16..32
    assert mask.shape == (2, 1, 48, 48)
    assert (mask[:, :, 16:32, 16:32] == 0).all()
    assert (mask[0, :, :16, :] == 0).all() and (mask[0, :, :, :16] == 0).all()  # above/left of the image
    assert mask[1, :, 8:16, 8:16].eq(1).all()  # inside the image, around the patch


def test_stains_change_patches_only_inside_the_stain():
    g = torch.Generator().manual_seed(1)
    patches = torch.randn(64, 3, 32, 32, generator=g)
    low, high = torch.full((3,), -2.0), torch.full((3,), 2.5)
    stained, mask = add_stains(patches, low, high, (0.1, 0.3), generator=g)
    changed = (stained != patches).any(dim=1, keepdim=True)
    assert not (changed & (mask == 0)).any(), "a pixel outside the stain changed"
    assert (mask.flatten(1).sum(1) > 0).all(), "every patch gets a stain"
    area = mask.flatten(1).mean(1)
    assert area.max() < 0.5 and area.min() > 0.005  # small stains, as the paper asks
    inside = stained.permute(0, 2, 3, 1)[mask[:, 0] > 0]
    assert inside.min() >= -2.0 and inside.max() <= 2.5  # the colour is drawn in the given range
    assert changed.sum() > 0.9 * mask.sum()  # inside the stain the patch really changes


def test_scores_map_puts_patch_scores_at_patch_centres():
    scores = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    amap = grid.scores_to_map(scores, (SIZE, SIZE), 32, 16)
    assert amap.shape == (1, 1, SIZE, SIZE)
    for i in range(3):
        for j in range(3):
            assert amap[0, 0, 16 + 16 * i, 16 + 16 * j] == scores[0, 0, i, j]
    assert amap[0, 0, 0, 0] == scores[0, 0, 0, 0] and amap[0, 0, -1, -1] == scores[0, 0, -1, -1]


def test_lambda_mixes_the_two_heads():
    model = make()
    imgs = images()
    with torch.no_grad():
        iad, dad = model.patch_scores(imgs)
        only_iad = make(score_lambda=1.0, smoothing_sigma=0)
        only_iad.load_state_dict(model.state_dict())
        _, amap, levels = only_iad.forward_with_levels(imgs)
    torch.testing.assert_close(levels["iad"], iad)
    assert amap[0, 0, 16, 16] == pytest.approx(float(iad[0, 0, 0, 0]), rel=1e-6)


def test_invalid_grid_settings_name_the_field():
    from inspector.errors import ConfigError

    with pytest.raises(ConfigError, match="grid_stride"):
        make(grid_stride=15)
    with pytest.raises(ConfigError, match="context_size"):
        make(context_size=34)


def test_two_phases_train_through_the_loop_and_the_second_leaves_local_net_alone(tiny_dataset, tmp_path):
    from inspector.training.checkpoint import load_model
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    config = load_run_config(base={
        "model": {"name": "glance", "image_size": [SIZE, SIZE], "smoothing_sigma": 1.0},
        "data": {"path": str(tiny_dataset)}, "train": {"epochs": 1, "batch_size": 4}})
    summary = train(config, tmp_path / "run")
    assert [p["name"] for p in summary["phases"]] == ["local", "global"]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["phase"] for h in history] == ["local", "global"]
    model, _, _ = load_model(tmp_path / "run")
    assert model.standardize.inv_std0.ne(1).any()  # descriptor statistics fitted before the targets were cached
    local_before = {k: v.clone() for k, v in model.local.state_dict().items()}
    phases = model.training_phases(config.train)
    global_params = {id(p) for p in phases[1].parameters}
    assert not global_params & {id(p) for p in model.local.parameters()}
    model.train()
    opt = torch.optim.Adam(phases[1].parameters, lr=1e-2)
    loss = phases[1].loss(images(4))
    loss.backward()
    opt.step()
    for k, v in model.local.state_dict().items():
        assert torch.equal(v, local_before[k])


def _heads_by_index(n_good_val=40, n_test=30, seed=0):
    """Per image: s_IAD pure noise of scale 1000, s_DAD a probability that is high on one patch of a defect."""
    g = torch.Generator().manual_seed(seed)
    n = n_good_val + 2 * n_test
    iad = 1000.0 * torch.rand(n, 1, 3, 3, generator=g)
    dad = 0.3 * torch.rand(n, 1, 3, 3, generator=g)
    defect = torch.arange(n) >= n_good_val + n_test
    where = torch.randint(0, 9, (n,), generator=g)
    hit = 0.5 + 0.5 * torch.rand(n, generator=g)
    dad.view(n, 9)[defect, where[defect]] = hit[defect]
    return iad, dad, defect


def _indexed_images(idx):
    """Images whose first pixel carries their index: the fake heads below look it up."""
    imgs = torch.zeros(len(idx), SIZE, SIZE, 3, dtype=torch.uint8)
    imgs[:, 0, 0, 0] = torch.as_tensor(idx, dtype=torch.uint8)
    return imgs


@pytest.mark.parametrize("normalization,holds", [("quantile", True), ("none", False)])
def test_noisy_head_of_large_scale_does_not_pull_the_combination_below_the_informative_head(normalization, holds):
    """Eq. 13 adds a squared distance (unbounded) to a probability: raw, the noisy IAD head's units win.

    With the offline quantile normalisation (fitted on good validation images) the
    combined score must rank images at least as well as the informative head alone;
    the raw sum (the paper preset's, ``holds=False``) is the fault this guards against.
    """
    from inspector.evaluation.metrics import auroc

    iad, dad, defect = _heads_by_index()
    model = make(map_normalization=normalization)
    model.patch_scores = lambda imgs: (iad[imgs[:, 0, 0, 0].long()], dad[imgs[:, 0, 0, 0].long()])
    model.calibrate_maps(_indexed_images(range(40)))
    test = list(range(40, 100))
    with torch.no_grad():
        combined, _ = model(_indexed_images(test))
        dad_only = (dad[test].flatten(1).amax(dim=1))
    labels = defect[test].long().numpy()
    combined_auroc, dad_auroc = auroc(combined.numpy(), labels), auroc(dad_only.numpy(), labels)
    assert dad_auroc > 0.95  # the informative head does separate
    assert bool(combined_auroc >= dad_auroc - 0.02) is holds, (combined_auroc, dad_auroc)
