"""AST student variants on ONE trained flow: retrain only the student, fixed epochs, no flow noise.

    python benchmarks/ast_student_retrain.py --run-root RUN_ROOT --datasets kolektorsdd,elpv/mono \
        --epochs 8 --set student_blocks=4 --set student_blocks=6 [--name NAME]

(Session 6 used it for a ``student_padding`` option, zeros vs replicate, since removed.)
For each dataset, loads the AST run ``RUN_ROOT/<dataset>/ast`` (read-only), keeps its
trained backbone and flow, and for each ``--set`` builds the model with that config change,
draws a fresh student (seed 0), trains the student phase for ``--epochs`` epochs with the
run's own recipe (training loop's ``fit``: Adam, cached targets, precise BN) on the run's
own seeded train/validation split, and scores the test split with the run's own scoring:
image AUROC (``likely_defect`` left out), pixel AUROC where masks exist, and the share of
good images whose peak feature cell lies on the outermost ring of cells (a border
artefact shows as a share well above the ring's share of cells).

Every variant gets the same flow, the same seed and the same epochs, so the differences
between its rows are the student change alone. JSON to ``benchmarks/results/<--name>.json``.
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
from bench_quality import SHARED, load_test, metrics_for  # noqa: E402
from diagnose_ast import border_stats, run  # noqa: E402
from rescore_parts import data_path  # noqa: E402


def parse_set(text: str) -> dict:
    key, _, value = text.partition("=")
    return {key: int(value) if value.isdigit() else value}


def student_variant(trained, overrides: dict):
    """The trained backbone and flow in a model built with ``overrides``, with a fresh student (seed 0)."""
    from inspector.models.registry import build_model

    config = replace(trained.config, **overrides, teacher_weights="random")
    config.validate("model")
    torch.manual_seed(0)
    model = build_model(config)
    kept = {k: v for k, v in trained.state_dict().items() if not k.startswith("student.")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if unexpected or any(not k.startswith("student.") for k in missing):
        raise RuntimeError(f"{overrides} changes more than the student: {unexpected or missing}")
    return model


def train_student(model, run_config, train_imgs, val_imgs, epochs: int) -> dict:
    from inspector.training.loop import fit

    cfg = replace(run_config.train, epochs=epochs, time_budget_s=None, threads=1)
    phase = [p for p in model.training_phases(cfg) if p.name == "student"][0]
    best = {}
    state = {}

    def on_best(epoch: int, val: float) -> None:
        best.update(epoch=epoch, val_loss=val)
        state.update({k: v.clone() for k, v in model.student.state_dict().items()})

    result = fit(model, phase, train_imgs, val_imgs, on_best, progress_label="student")
    model.student.load_state_dict(state)  # the best epoch, as the training loop keeps it
    return {**best, "history": result.history}


def main(argv: list[str] | None = None) -> Path:
    from inspector.training.checkpoint import load_model
    from inspector.training.loop import load_training_images

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-root", type=Path, required=True)
    ap.add_argument("--datasets", default="kolektorsdd,elpv/mono,elpv/poly")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--set", action="append", required=True, help="key=value, one variant each")
    ap.add_argument("--data-root", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="ast-student-retrain")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    torch.set_num_threads(1)
    rows = []
    for name in args.datasets.split(","):
        data = data_path(args.run_root, args.data_root, name)
        trained, config, _ = load_model(args.run_root / name.replace("/", "_") / "ast")
        config = replace(config, data=replace(config.data, path=str(data)))
        train_imgs, val_imgs, _ = load_training_images(config)
        test = load_test(data, tuple(config.model.image_size), config.data.resize)
        keep = np.array([t != "likely_defect" for t in test["types"]])
        for text in args.set:
            overrides = parse_set(text)
            t0 = time.process_time()
            model = student_variant(trained, overrides)
            fitted = train_student(model, config, train_imgs, val_imgs, args.epochs)
            model.eval()
            scores, maps, lows = run(model, test["images"])
            row = metrics_for(scores, maps, test)
            good = lows[keep & (test["labels"] == 0)]
            row["border_good"] = border_stats(good)
            row["cpu_s"] = round(time.process_time() - t0, 1)
            rows.append({"dataset": name, "overrides": overrides, "epochs": args.epochs,
                         "best_epoch": fitted["epoch"], "best_val_loss": fitted["val_loss"], **row})
            print(f"{name:14} {text:28} img {row['image_auroc']:.3f} px {row['pixel_auroc'] or 0:.3f} "
                  f"val {fitted['val_loss']:.4f} (ep {fitted['epoch']}) peak-on-ring good "
                  f"{row['border_good']['peak_on_ring_share']:.2f} (ring {row['border_good']['ring_cells_share']:.2f})"
                  f" | {row['cpu_s']} cpu-s", flush=True)
    path = write_result(args.name, {"epochs": args.epochs, "rows": rows}, args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
