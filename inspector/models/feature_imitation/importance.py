"""Module-importance search (Hu & Lai §II-A-4, eq. 7–10): softmax weights per module on defects.

After training, the student weights are fixed; one learnable logit ω̂_i per module
(scale × level) gives w = softmax(ω̂) and the map φ = Σ w_i φ_i (eq. 7, 8), fitted by
gradient descent on a pixel cross-entropy against ground-truth masks (eq. 9, 10).
The k modules of highest weight are kept (Table V); the others get weight 0 and are
not computed by the exported graph.

Two choices the paper leaves open, made here:

* Cross-entropy needs a probability, but module maps are in the model's map units
  (quantile-normalised on the offline preset). So the probability is
  σ(a·(φ − b)) with a scalar scale a > 0 and offset b learned along (Platt scaling);
  they are discarded afterwards: only the softmax weights are kept.
* Defect pixels are a few percent of a validation set; positives are weighted by
  n_negative / n_positive so that the weights are not chosen to call everything good.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from inspector.errors import ConfigError
from inspector.contract import DEFAULT_BATCH

log = logging.getLogger(__name__)
SEARCH_DOWNSAMPLE = 4  # maps and masks are compared at 1/4 of the input size: memory, not accuracy


def search_weights(maps: torch.Tensor, masks: torch.Tensor, steps: int = 300, lr: float = 0.05) -> torch.Tensor:
    """Softmax module weights (M,) from module maps (N, M, h, w) FP32 and masks (N, h, w) in [0, 1].

    Raises ConfigError when the masks hold no defect pixel or no good pixel.
    """
    positives = float(masks.sum())
    negatives = float(masks.numel()) - positives
    if positives <= 0 or negatives <= 0:
        raise ConfigError("model.importance_data: the validation set needs both defect pixels "
                          "(defect images with masks) and good pixels")
    logits = torch.zeros(maps.shape[1], requires_grad=True)
    spread = float(maps.std().clamp_min(1e-6))
    log_scale = torch.tensor(float(np.log(4.0 / spread)), requires_grad=True)
    offset = torch.tensor(float(maps.mean()), requires_grad=True)
    optimizer = torch.optim.Adam([logits, log_scale, offset], lr=lr)
    pos_weight = torch.tensor(negatives / positives)
    for _ in range(steps):
        optimizer.zero_grad()
        phi = torch.einsum("m,nmhw->nhw", logits.softmax(0), maps)
        loss = F.binary_cross_entropy_with_logits(log_scale.exp() * (phi - offset), masks, pos_weight=pos_weight)
        loss.backward()
        optimizer.step()
    return logits.detach().softmax(0)


def keep_top_k(weights: torch.Tensor, k: int | None) -> torch.Tensor:
    """``weights`` with all but the ``k`` largest set to 0 and the rest renormalised (k None: all kept)."""
    if k is None or k >= len(weights):
        return weights / weights.sum()
    kept = torch.zeros_like(weights)
    top = weights.topk(k).indices
    kept[top] = weights[top]
    return kept / kept.sum()


@torch.no_grad()
def module_map_stack(model, images: np.ndarray, batch_size: int = DEFAULT_BATCH) -> torch.Tensor:
    """Every module's map for uint8 images (N, H, W, 3), upsampled and pooled: (N, M, H/4, W/4) FP32."""
    h, w = images.shape[1] // SEARCH_DOWNSAMPLE, images.shape[2] // SEARCH_DOWNSAMPLE
    out = []
    model.eval()
    for i in range(0, len(images), batch_size):
        maps = model.module_maps(torch.from_numpy(images[i:i + batch_size]).to(model.normalize.mean.device))
        out.append(torch.cat([F.interpolate(maps[m].float(), size=(h, w), mode="bilinear", align_corners=False)
                              for m in sorted(maps)], dim=1).cpu())
    return torch.cat(out)


def search_from_dataset(model, root: str, data_config) -> dict:
    """Load the test split of dataset ``root`` (good images and defects with masks), search, install weights.

    Images are read as the training data are (``data_config``: resize, bit depth, downscale).
    Returns the summary recorded in the run summary. ConfigError if no defect has a mask.
    """
    from inspector.data.datasets import load_batch, load_dataset, load_masks

    dataset = load_dataset(root)
    samples = [s for s in dataset.test if s.label == 0 or s.mask_path is not None]
    if not any(s.label == 1 for s in samples):
        raise ConfigError(f"model.importance_data: {root} has no defect image with a ground-truth mask")
    h, w = model.config.image_size
    images, kept, _ = load_batch(samples, h, w, data_config.resize, data_config.bit_depth, data_config.downscale)
    masks = load_masks(kept, h, w, data_config.resize)
    usable = [i for i, m in enumerate(masks) if m is not None]
    images = images[usable]
    target = torch.from_numpy(np.stack([masks[i] for i in usable]).astype(np.float32)).unsqueeze(1)
    target = F.avg_pool2d(target, SEARCH_DOWNSAMPLE).squeeze(1)  # fraction of defect pixels per cell
    maps = module_map_stack(model, images)
    weights = search_weights(maps, target, model.config.importance_steps, model.config.importance_lr)
    final = keep_top_k(weights, model.config.importance_topk)
    model.set_module_weights(final, searched=True)
    log.info("module importance: %s", ", ".join(f"{n}={float(v):.3f}" for n, v in zip(model.module_names, final)))
    return {"data": str(root), "images": len(images), "defects": int(sum(kept[i].label for i in usable)),
            "softmax_weights": dict(zip(model.module_names, [round(float(v), 4) for v in weights])),
            "kept": [model.module_names[i] for i in model.kept]}
