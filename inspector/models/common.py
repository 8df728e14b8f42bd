"""Building blocks shared by the student-teacher models (MODELS.md, "Shared building blocks").

Everything here is part of the exported graph, so it is written for export:
static shapes, no data-dependent Python control flow, and FP32 for the numerically
sensitive steps (normalisation, distances, reductions, smoothing) even when the
networks themselves run in FP16.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# 1e-12 underflows in FP16; features are compared after normalisation, so a
# larger epsilon costs nothing measurable.
NORM_EPS = 1e-6
SCORE_REDUCTIONS = ("max", "mean", "sum", "topk")


class ImageNormalize(nn.Module):
    """uint8 (N, H, W, 3) RGB → float32 (N, 3, H, W), /255 and ImageNet mean/std."""

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
        # Folding /255 into mean/std saves one elementwise op in the graph.
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("inv_std", 1.0 / std, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        return (x - self.mean) * self.inv_std


def level_distance(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Per-pixel 0.5·‖t̂ − ŝ‖² of channel-normalised features, in FP32: (N, 1, h, w) in [0, 2]."""
    t = F.normalize(teacher.float(), dim=1, eps=NORM_EPS)
    s = F.normalize(student.float(), dim=1, eps=NORM_EPS)
    return 0.5 * (t - s).pow(2).sum(dim=1, keepdim=True)


def standardized_distance(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Per-pixel mean over channels of (t − s)², FP32: (N, 1, h, w); t already standardised per channel."""
    return (teacher.float() - student.float()).pow(2).mean(dim=1, keepdim=True)


def configured_distance(kind: str, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """The per-pixel level map (N, 1, h, w) FP32 of ``model.distance``: standardised MSE or cosine-style."""
    if kind == "standardized_mse":
        return standardized_distance(teacher, student)
    return level_distance(teacher, student)


def local_average(features: torch.Tensor, size: int) -> torch.Tensor:
    """PatchCore's local neighbourhood aggregation: ``size``×``size`` average, stride 1, FP32.

    (N, C, h, w) → (N, C, h, w). Border positions average only the positions inside
    the map (``count_include_pad=False``), so edges are not darkened. ``size`` 1 is the
    identity. Roth et al., "Towards Total Recall in Industrial Anomaly Detection"
    (CVPR 2022) §3.1 use p = 3.
    """
    if size == 1:
        return features
    return F.avg_pool2d(features.float(), size, stride=1, padding=size // 2, count_include_pad=False)


def pooled_distance(kind: str, teacher: torch.Tensor, student: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`configured_distance` of the locally averaged features (:func:`local_average`), (N, 1, h, w) FP32.

    Averaging before the distance keeps a residual that is coherent over ``size``×``size``
    positions (a defect) and shrinks one that is uncorrelated between neighbours (the
    student's noise on good texture) about ``size``²-fold in squared norm; blurring the
    finished map instead averages ‖r‖², which keeps that noise.
    """
    return configured_distance(kind, local_average(teacher, size), local_average(student, size))


def ensemble_maps(kind: str, teacher: torch.Tensor, students: list[torch.Tensor],
                  size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(regression error, predictive variance) of a student ensemble at one level, each (N, 1, h, w) FP32.

    Bergmann et al., "Uninformed Students" (CVPR 2020) §3.3: the error is the distance of the
    ensemble MEAN μ = mean_i s_i to the teacher, e = d(t, μ) (:func:`pooled_distance`), and
    the variance is v = mean over channels of mean_i (s_i − μ)² (the paper's ‖·‖² up to the
    channel count, the same units as ``standardized_mse``). Averaging M students shrinks the
    part of each student's error that is idiosyncratic to its training run (initialisation,
    batch order) while a defect, where every student fails alike, keeps its error; v flags
    positions where the students disagree. ``students``: M tensors (N, C, h, w); ``size``:
    the ``residual_pool`` local average, applied before both terms.
    """
    pooled = torch.stack([local_average(s.float(), size) for s in students])
    mean = pooled.mean(dim=0)
    error = configured_distance(kind, local_average(teacher.float(), size), mean)
    variance = (pooled - mean).pow(2).mean(dim=0).mean(dim=1, keepdim=True)
    return error, variance


# The offline students' hard-loss quantile. EfficientAD's 0.999 trains on 0.1 % of the errors and
# lost 0.08 image AUROC on a texture; 0.9 (the top 10 %) raised reduced_student on every set but
# one run, at 12 epochs and two seeds (benchmarks/README.md, "Session 8"). 0.97 (the top 3 %), with
# the validation loss the plain mean (ModelConfig.validation_loss), each set to its own stop: KolektorSDD
# 0.951 → 0.956, ELPV mono 0.946 → 0.953, poly 0.910 → 0.911, unaligned tiles 0.968 → 0.966; 0.99 lost
# KolektorSDD (0.949) ("Session 46"). mixed_teacher's and stfpm's offline default too since "Session 47"
# (mixed_teacher every set up, mono 0.947 → 0.953; stfpm mono 0.941 → 0.951, KolektorSDD and poly level or up);
# AST's student takes it as an option.
OFFLINE_HARD_QUANTILE = 0.97


def hard_mse(teacher: torch.Tensor, student: torch.Tensor, quantile: float) -> torch.Tensor:
    """EfficientAD's hard-feature loss: mean of the squared errors at or above their ``quantile`` in the batch.

    Batzner et al. (WACV 2024) §3.2, q = 0.999 there: the student stops spending
    capacity on the easy bulk of the texture. ``quantile`` 0 is the plain mean.
    ``teacher``/``student``: any equal shapes; returns a scalar (float32).
    """
    err = (teacher.float() - student.float()).pow(2)
    if quantile <= 0:
        return err.mean()
    hard = err >= quantile_threshold(err.detach().flatten(), quantile)
    return (err * hard).sum() / hard.sum()  # the masked mean, without gathering the selected elements


def quantile_threshold(values: torch.Tensor, quantile: float) -> torch.Tensor:
    """The smallest order statistic of 1-D ``values`` at or above their linearly interpolated ``quantile``.

    ``values >= result`` selects exactly what ``values >= torch.quantile(values, quantile)``
    does (ties aside), by one selection (``kthvalue``, linear time) instead of a sort:
    torch.quantile sorts every batch's errors, which made the offline reduced student's
    CPU training step about 1.2× slower than with this (benchmarks/README.md, "Session 9"),
    and it refuses more than 16M elements.
    """
    position = quantile * (values.numel() - 1)
    return values.kthvalue(math.ceil(position - 1e-9) + 1).values


class FeatureStandardization(nn.Module):
    """Per-channel (x − mean)/std of each teacher level; constants are buffers, so they are in the graph.

    Identity until :meth:`fit`. EfficientAD standardises the teacher's output with the
    channel mean/std over the training images, so that every channel counts alike in
    the student's squared error instead of the few with the largest range.
    """

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        for i, c in enumerate(channels):
            self.register_buffer(f"mean{i}", torch.zeros(1, c, 1, 1))
            self.register_buffer(f"inv_std{i}", torch.ones(1, c, 1, 1))
        self.levels = len(channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        # FP32 even when the teacher runs in FP16: 1/std can exceed what FP16 holds comfortably.
        return [(f.float() - getattr(self, f"mean{i}")) * getattr(self, f"inv_std{i}") for i, f in enumerate(feats)]

    @torch.no_grad()
    def fit(self, sums: list[torch.Tensor], sq_sums: list[torch.Tensor], counts: list[int]) -> None:
        """From per-level channel sums Σx and Σx² (C,) over ``counts`` positions."""
        for i, (s1, s2, n) in enumerate(zip(sums, sq_sums, counts)):
            mean = s1 / n
            var = (s2 / n - mean.pow(2)).clamp_min(0.0)
            getattr(self, f"mean{i}").copy_(mean.view(1, -1, 1, 1))
            # A dead channel (std ≈ 0) must not become a 10⁶× amplifier of noise.
            getattr(self, f"inv_std{i}").copy_((1.0 / var.sqrt().clamp_min(1e-3)).view(1, -1, 1, 1))


def upsample(level_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (align_corners=False) upsampling of a (N, 1, h, w) map to ``size``."""
    return F.interpolate(level_map, size=size, mode="bilinear", align_corners=False)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian truncated at 2σ each side (length 4σ+1)."""
    radius = int(math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


class GaussianSmoothing(nn.Module):
    """2-D Gaussian blur of a (N, 1, H, W) map as two 1-D convolutions (σ = 0 disables).

    Reflect padding keeps the border from being darkened by zeros; the authors'
    code blurs rows only, which MODELS.md tells us not to copy.
    """

    def __init__(self, sigma: float = 4.0) -> None:
        super().__init__()
        self.sigma = float(sigma)
        kernel = gaussian_kernel1d(sigma) if sigma > 0 else torch.ones(1)
        self.radius = (kernel.numel() - 1) // 2
        self.register_buffer("kernel_h", kernel.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("kernel_v", kernel.view(1, 1, -1, 1), persistent=False)

    def forward(self, amap: torch.Tensor) -> torch.Tensor:
        if self.sigma <= 0:
            return amap
        r = self.radius
        x = F.pad(amap, (r, r, 0, 0), mode="reflect")
        x = F.conv2d(x, self.kernel_h)
        x = F.pad(x, (0, 0, r, r), mode="reflect")
        return F.conv2d(x, self.kernel_v)


def reduce_score(amap: torch.Tensor, how: str, topk_fraction: float = 0.01) -> torch.Tensor:
    """Per-image score (N,) from a (N, 1, H, W) map: max, mean, sum, or topk.

    ``topk``: the mean of the ``topk_fraction`` highest map values (at least one).
    A single peak on a good image (a border, a bright structure) moves it far less
    than the max, while a defect covering that many pixels still does.
    """
    flat = amap.flatten(1)
    if how == "topk":
        k = max(1, int(round(flat.shape[1] * topk_fraction)))  # static: a constant in the graph
        return flat.topk(k, dim=1).values.mean(dim=1)
    if how == "max":
        return flat.amax(dim=1)
    if how == "mean":
        return flat.mean(dim=1)
    if how == "sum":
        return flat.sum(dim=1)
    raise ValueError(f"unknown score reduction '{how}' (choose from {SCORE_REDUCTIONS})")


def combine_levels(level_maps: list[torch.Tensor], size: tuple[int, int], how: str) -> torch.Tensor:
    """Upsample every level map to ``size`` and combine them by 'sum' or 'product'."""
    combined = upsample(level_maps[0], size)
    for level_map in level_maps[1:]:
        up = upsample(level_map, size)
        combined = combined * up if how == "product" else combined + up
    return combined


class LevelNormalization(nn.Module):
    """Per-level map normalisation ``((m_l − offset_l(p))·gain_l(p) − shift_l)·scale_l``, constants as graph buffers.

    Identity until :meth:`fit` is called. ``fit`` implements EfficientAD's map
    normalisation (Batzner et al., WACV 2024, §3.4 and anomalib's ``map_norm_quantiles``):
    the ``low`` (0.9) and ``high`` (0.995) quantiles of each level's map over
    validation images go to 0 and ``target`` (0.1), so levels of different
    reliability and range speak in the same units before they are summed.

    ``shapes`` (one (h, w) per level, the level maps' static size) adds a per-position
    z-score first (see :func:`position_statistics`): where good images systematically
    score higher or vary more at some positions (an aligned product's structures, the
    border), each position is measured against its own normal range before the
    quantiles are taken.
    """

    def __init__(self, levels: int, shapes: list[tuple[int, int]] | None = None) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(levels))
        self.register_buffer("scale", torch.ones(levels))
        self.positional = shapes is not None
        for i, (h, w) in enumerate(shapes or ()):
            self.register_buffer(f"offset{i}", torch.zeros(1, 1, h, w))
            self.register_buffer(f"gain{i}", torch.ones(1, 1, h, w))

    def forward(self, level_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.level(i, m) for i, m in enumerate(level_maps)]

    def level(self, i: int, level_map: torch.Tensor) -> torch.Tensor:
        """Level ``i``'s map (N, 1, h_i, w_i) normalised alone (models that compute a subset of levels)."""
        if self.positional:
            level_map = (level_map - getattr(self, f"offset{i}")) * getattr(self, f"gain{i}")
        return (level_map - self.shift[i]) * self.scale[i]

    @torch.no_grad()
    def fit(self, level_maps: list[torch.Tensor], low: float = 0.9, high: float = 0.995,
            target: float = 0.1) -> None:
        """``level_maps[l]``: that level's raw maps over the validation images, FP32 (N, 1, h_l, w_l)."""
        for i, m in enumerate(level_maps):
            m = m.detach().float()
            if self.positional:
                offset, gain = getattr(self, f"offset{i}"), getattr(self, f"gain{i}")
                mean, inv_std = position_statistics(m)
                offset.copy_(mean.to(offset.device))
                gain.copy_(inv_std.to(gain.device))
                m = (m - mean) * inv_std
            flat = m.flatten()
            if flat.numel() > 8_000_000:  # torch.quantile's input limit is 16M elements
                flat = flat[torch.linspace(0, flat.numel() - 1, 8_000_000, device=flat.device).long()]
            q_low, q_high = torch.quantile(flat, torch.tensor([low, high], device=flat.device))
            self.shift[i] = q_low
            self.scale[i] = target / torch.clamp(q_high - q_low, min=1e-12)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint written before its model had per-position buffers (their config may name
        # position_normalization while the model ignored it) loads with them at the identity,
        # which is exactly what that model computed.
        for i in range(len(self.shift) if self.positional else 0):
            for name, fill in ((f"offset{i}", 0.0), (f"gain{i}", 1.0)):
                if prefix + name not in state_dict and prefix + "shift" in state_dict:
                    state_dict[prefix + name] = torch.full_like(getattr(self, name), fill)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def reset(self) -> None:
        """Back to the identity, so that maps collected for :meth:`fit` are the raw ones."""
        self.shift.zero_()
        self.scale.fill_(1.0)
        for i in range(len(self.shift) if self.positional else 0):
            getattr(self, f"offset{i}").zero_()
            getattr(self, f"gain{i}").fill_(1.0)

    def is_identity(self) -> bool:
        offsets_zero = all(not getattr(self, f"offset{i}").any() and (getattr(self, f"gain{i}") == 1).all()
                           for i in range(len(self.shift))) if self.positional else True
        return bool((self.shift == 0).all() and (self.scale == 1).all() and offsets_zero)


MIN_POSITION_IMAGES = 8
MAX_POSITION_GAIN = 8.0


def position_statistics(maps: torch.Tensor, sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position (mean, 1/std) of good-image maps, shrunk toward the global ones: each (1, 1, h, w).

    ``maps``: one level's maps over N validation images (N, 1, h, w), FP32. The
    per-position mean μ(p) and variance, Gaussian-smoothed (σ in level pixels), are
    blended with the global mean and std by the James–Stein factor
    w = max(0, 1 − v_noise / v_between) (Efron & Morris 1975), where v_noise is the
    sampling variance of one position's mean (mean per-position variance / N) and
    v_between the variance of μ(p) across positions. Unaligned textures, whose μ(p)
    varies only by noise, get w ≈ 0: one global affine map, which the quantile
    normalisation that follows absorbs, so the rule falls back to global statistics.

    Two guards keep a small validation set from producing wild constants:
    - below :data:`MIN_POSITION_IMAGES` images a per-position variance is too noisy
      (its relative standard error √(2/(N−1)) exceeds ½), so the rule is global;
    - the per-position gain is at most :data:`MAX_POSITION_GAIN` × the global one. A
      position where the few good images happened to agree must not get an unbounded
      gain: it would turn FP16 rounding into large score shifts and make the
      calibrated threshold (fitted on the same images) too low for new good parts.
    """
    n = maps.shape[0]
    if n < MIN_POSITION_IMAGES:
        return torch.zeros_like(maps[:1]), torch.ones_like(maps[:1])
    mu_g, sd_g = maps.mean(), maps.std().clamp_min(1e-12)
    mu, var = maps.mean(dim=0, keepdim=True), maps.var(dim=0, keepdim=True)
    noise = var.mean() / n
    between = (mu - mu.mean()).pow(2).mean()
    w = (1 - noise / between.clamp_min(1e-12)).clamp(0.0, 1.0)
    if min(mu.shape[-2:]) > 2 * math.ceil(2 * sigma):  # reflect padding needs the map larger than the kernel
        blur = GaussianSmoothing(sigma).to(maps.device)
        mu, var = blur(mu), blur(var)
    mean = w * mu + (1 - w) * mu_g
    std = w * var.clamp_min(0).sqrt() + (1 - w) * sd_g
    # Offsets relative to the global mean keep the quantile shift in the map's own units.
    return mean - mu_g, (sd_g / std.clamp_min(1e-12)).clamp(max=MAX_POSITION_GAIN)


def freeze(module: nn.Module) -> nn.Module:
    """Freeze a teacher: no gradients, eval mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()
