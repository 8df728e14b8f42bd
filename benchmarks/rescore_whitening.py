"""Residual whitening, scored without retraining: is t − s better judged by its Mahalanobis distance?

    python benchmarks/rescore_whitening.py --run-root runs/s21 --datasets kolektorsdd,elpv/mono,elpv/poly \
        [--data-root ../shared/data] --name rescore-whitening

Reads the reduced_student runs that ``bench_quality.py --run-root RUN_ROOT`` left. Hypothesis: the
student's residual r = t − s on good images (standardised teacher, ``distance: standardized_mse``)
is correlated across channels, so the squared error (mean over channels of r²) weighs some normal
directions of variation as heavily as a defect's. Per level, fit the residual's mean μ and covariance
Σ on the run's training + validation images (positions pooled), shrink Σ toward its mean variance
(``(1 − λ)Σ + λ·mean(diag Σ)·I``) and score each position by (r − μ)ᵀ Σ⁻¹ (r − μ) / C instead.
Variants: ``base`` (the checkpoint as trained: reproduces its quality row), ``white{λ}`` (every
level whitened), ``white{λ}-fine`` (the stride-8 level only). The map normalisation is refitted on
the validation images for each variant, as ``rescore_parts.py`` does; the weights are shared, so the
differences are the scoring rule alone. JSON to ``benchmarks/results/<--name>.json``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402
from bench_quality import SHARED, level_aurocs, load_test, metrics_for, score_with_levels  # noqa: E402

VARIANTS = {"base": (None, None), "white0.1": (0.1, None), "white0.3": (0.3, None), "white0.3-fine": (0.3, (0,))}


@torch.no_grad()
def residuals(model, images: np.ndarray, batch_size: int = 16) -> list[torch.Tensor]:
    """Per compared level, t − s over ``images`` (uint8 (N, H, W, 3)): FP32 (N, C_l, h_l, w_l)."""
    batches = []
    for i in range(0, len(images), batch_size):
        x = model.network_input(torch.from_numpy(images[i:i + batch_size]))
        batches.append([t.float() - s.float() for t, s in zip(model.teacher_features(x), model.student_features(x))])
    return [torch.cat(level) for level in zip(*batches)]


def whitening(r: torch.Tensor, shrink: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ (C,), W (C, C)) with ‖W(r − μ)‖² = (r − μ)ᵀ Σ_λ⁻¹ (r − μ), from residuals (N, C, h, w)."""
    flat = r.permute(0, 2, 3, 1).reshape(-1, r.shape[1]).double()
    mu = flat.mean(0)
    cov = torch.cov((flat - mu).T)
    cov = (1 - shrink) * cov + shrink * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
    return mu.float(), torch.linalg.cholesky(torch.linalg.inv(cov)).T.float()


def whitened_level_maps(model, fits: list):
    """A ``level_maps`` replacement: the levels in ``fits`` (μ, W) whitened, the others squared error."""
    def level_maps(images: torch.Tensor) -> list[torch.Tensor]:
        x = model.network_input(images)
        maps = []
        for fit, t, s in zip(fits, model.teacher_features(x), model.student_features(x)):
            r = t.float() - s.float()
            if fit is not None:
                mu, w = fit
                r = torch.einsum("dc,nchw->ndhw", w, r - mu[None, :, None, None])
            maps.append(r.pow(2).mean(1, keepdim=True))
        return model.level_norm(maps)
    return level_maps


def rescore(model, fit_residuals: list[torch.Tensor], val: np.ndarray, test: dict, shrink, levels) -> dict:
    chosen = range(len(fit_residuals)) if levels is None else levels
    fits = [whitening(r, shrink) if shrink is not None and i in chosen else None
            for i, r in enumerate(fit_residuals)]
    model.level_maps = whitened_level_maps(model, fits)
    with torch.inference_mode():
        model.calibrate_maps(torch.from_numpy(val))
    scores, maps, peaks = score_with_levels(model, test["images"])
    return {**metrics_for(scores, maps, test), "level_image_auroc": level_aurocs(peaks, test)}


def main(argv: list[str] | None = None) -> Path:
    from inspector.training.checkpoint import load_model
    from inspector.training.loop import load_training_images

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-root", type=Path, required=True, help="bench_quality.py's --run-root")
    ap.add_argument("--datasets", default="kolektorsdd,elpv/mono,elpv/poly")
    ap.add_argument("--data-root", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="rescore-whitening")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    torch.set_num_threads(1)
    rows = []
    for name in args.datasets.split(","):
        data = args.data_root / name
        model, config, _ = load_model(args.run_root / name.replace("/", "_") / "reduced_student")
        model.eval()
        test = load_test(data, tuple(config.model.image_size), config.data.resize)
        train, val, _ = load_training_images(replace(config, data=replace(config.data, path=str(data))))
        fit_residuals = residuals(model, np.concatenate([train, val]))
        for variant, (shrink, levels) in VARIANTS.items():
            row = rescore(model, fit_residuals, val, test, shrink, levels)
            rows.append({"dataset": name, "variant": variant, **row})
            lv = " ".join(f"{k} {v:.3f}" for k, v in row["level_image_auroc"].items())
            print(f"{name:18} {variant:14} img {row['image_auroc']:.3f} px {row['pixel_auroc'] or 0:.3f} | {lv}",
                  flush=True)
    path = write_result(args.name, {"variants": {k: {"shrink": s, "levels": l} for k, (s, l) in VARIANTS.items()},
                                    "rows": rows}, args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
