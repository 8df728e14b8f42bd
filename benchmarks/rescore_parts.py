"""Score combinations of a trained model's parts, from ONE trained model per dataset and model.

    python benchmarks/rescore_parts.py --run-root runs/bench/quality \
        --datasets kolektorsdd,elpv/mono,elpv/poly --models glance,ast,feature_imitation

Reads the run folders that ``bench_quality.py`` left under ``RUN_ROOT/<dataset>/<model>``
(the same weights as its quality rows), rebuilds each model with every variant of
:data:`VARIANTS` (config changes that only touch how the parts are normalised and
combined after training, never the trained weights), fits the map normalisation on
the run's own validation images (seeded split, as the training loop does) and
reports image AUROC (``bench_quality.metrics_for``: likely_defect left out), pixel
AUROC where masks exist, and the per-part image AUROC (max of the part's map).
``base`` is the checkpoint as trained: it reproduces the quality row.

Since the weights are shared by all variants of a model, the differences between
its rows are the combination rules alone, with no training noise.

JSON to ``benchmarks/results/<--name>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402
from bench_quality import REAL, SHARED, level_aurocs, load_test, metrics_for, score_with_levels  # noqa: E402

Q = {"map_normalization": "quantile", "position_normalization": "none"}
QP = {"map_normalization": "quantile", "position_normalization": "shrunk"}
VARIANTS = {
    "glance": {"base": {}, "quantile": Q, "quantile+position": QP,
               "quantile+lambda0.5": {**Q, "score_lambda": 0.5},
               "quantile+position+lambda0.5": {**QP, "score_lambda": 0.5}},
    "ast": {"base": {}, "student": {"score_source": "student", "map_normalization": "none"}, "max": {"score": "max"}, "mean": {"score": "mean"}, "quantile": Q, "quantile+position": QP,
            "quantile+position+max": {**QP, "score": "max"},
            "both+quantile": {**Q, "score_source": "both"}, "both+quantile+position": {**QP, "score_source": "both"},
            "both-z_norm+quantile": {**Q, "score_source": "both", "likelihood_map": "z_norm"},
            "both-z_norm+quantile+position": {**QP, "score_source": "both", "likelihood_map": "z_norm"}},
    "feature_imitation": {"base": {}, "quantile": Q, "quantile+position": QP},
    "stfpm": {"base": {}, "quantile-no-position": Q, "pool3": {"residual_pool": 3}, "pool5": {"residual_pool": 5}},
    # Session 6: PatchCore's 3x3 neighbourhood before the teacher/student comparison (model.residual_pool),
    # and the kNN reference's levels (strides 8+16: blocks.6 dropped) with and without it.
    "reduced_student": {"base": {}, "pool3": {"residual_pool": 3}, "pool5": {"residual_pool": 5},
                        "levels8+16": {"levels": ("blocks.2", "blocks.4")},
                        "levels8+16+pool3": {"levels": ("blocks.2", "blocks.4"), "residual_pool": 3},
                        # Session 9: KolektorSDD's stride-8 level falls as training goes on (learning_curve.py)
                        "levels16+32": {"levels": ("blocks.4", "blocks.6")},
                        "levels8+32": {"levels": ("blocks.2", "blocks.6")}},
    "mixed_teacher": {"base": {}, "pool3": {"residual_pool": 3}, "pool5": {"residual_pool": 5}},
}


def variant_model(model, overrides: dict):
    """The trained weights in a model built with ``overrides`` to its config (new buffers identity)."""
    from inspector.models.registry import build_model

    config = replace(model.config, **overrides, teacher_weights="random")
    config.validate("model")
    other = build_model(config)
    # level_norm is refit on the validation images; its shape follows the compared levels.
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("level_norm.")}
    state = _standardization_by_level(state, model, other)
    missing, unexpected = other.load_state_dict(state, strict=False)
    # A variant that compares fewer levels leaves their (teacher-fitted) standardisation unused.
    norm_only = (all(k.startswith("level_norm.") for k in missing)
                 and all(k.startswith(("level_norm.", "standardize.")) for k in unexpected))
    if not norm_only:
        raise RuntimeError(f"variant {overrides} changes trained weights: {missing + unexpected}")
    return other.eval()


def _standardization_by_level(state: dict, model, other) -> dict:
    """``state`` with the teacher standardisation buffers (``standardize.mean{i}``, ``inv_std{i}``, one per
    compared level) re-indexed from ``model``'s compared levels to ``other``'s (a variant comparing fewer)."""
    old, new = list(getattr(model, "level_names", ())), list(getattr(other, "level_names", ()))
    if old == new or not new:
        return state
    out = {k: v for k, v in state.items() if not k.startswith("standardize.")}
    for key, value in state.items():
        if key.startswith("standardize."):
            stem = key.split(".", 1)[1].rstrip("0123456789")
            name = old[int(key[len("standardize." + stem):])]
            if name in new:
                out[f"standardize.{stem}{new.index(name)}"] = value
    return out


def validation_images(config, data: Path) -> np.ndarray:
    """The run's validation images, split and decoded as the training loop does."""
    from inspector.training.loop import load_training_images

    run = replace(config, data=replace(config.data, path=str(data)))
    return load_training_images(run)[1]


def rescore(model, val: np.ndarray, test: dict) -> dict:
    t0 = time.process_time()
    with torch.inference_mode():
        model.calibrate_maps(torch.from_numpy(val))
    scores, maps, peaks = score_with_levels(model, test["images"])
    row = metrics_for(scores, maps, test)
    row["level_image_auroc"] = level_aurocs(peaks, test)
    row["cpu_s"] = round(time.process_time() - t0, 1)
    return row


def data_path(run_root: Path, data_root: Path, name: str) -> Path:
    if name == "synthetic-grass":
        return next((run_root / "data").glob("grass-*"))
    return data_root / name


def main(argv: list[str] | None = None) -> Path:
    from inspector.training.checkpoint import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-root", type=Path, required=True, help="bench_quality.py's --run-root")
    ap.add_argument("--datasets", default=",".join(REAL))
    ap.add_argument("--models", default="glance,ast,feature_imitation")
    ap.add_argument("--variants", default="", help="comma list of variant names (default: all of the model's)")
    ap.add_argument("--data-root", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="rescore-parts")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    torch.set_num_threads(1)
    wanted = {v for v in args.variants.split(",") if v}
    results = []
    for name in args.datasets.split(","):
        data = data_path(args.run_root, args.data_root, name)
        for model_name in args.models.split(","):
            run = args.run_root / name.replace("/", "_") / model_name
            model, config, _ = load_model(run)
            test = load_test(data, tuple(config.model.image_size), config.data.resize)
            val = validation_images(config, data)
            for variant, overrides in VARIANTS[model_name].items():
                if wanted and variant not in wanted:
                    continue
                row = rescore(variant_model(model, overrides), val, test)
                results.append({"dataset": name, "model": model_name, "variant": variant,
                                "overrides": overrides, **row})
                levels = " ".join(f"{k} {v:.3f}" for k, v in row["level_image_auroc"].items())
                print(f"{name:12} {model_name:17} {variant:24} img {row['image_auroc']:.3f} "
                      f"px {row['pixel_auroc'] or 0:.3f} | {levels} | {row['cpu_s']} cpu-s", flush=True)
    path = write_result(args.name, {"variants": VARIANTS, "rows": results}, args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
