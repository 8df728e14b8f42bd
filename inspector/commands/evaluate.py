"""`inspector evaluate RUN --data DIR`: metrics table, metrics.json and plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.commands.argtypes import int_range, out_folder, refuse_folder_in_images
from inspector.contract import DEFAULT_BATCH


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on a test set",
                       description="Score the test split of a dataset; write metrics.json and plots.")
    p.add_argument("run", help="training run folder (or a checkpoint file)")
    p.add_argument("--data", help="dataset root (default: the run's training data, from RUN/config.yaml)")
    p.add_argument("--out", type=out_folder(),
                   help="output folder (default: RUN/eval for the run's own data set, RUN/eval-<data folder name> "
                        "for another; an earlier evaluation there is replaced, nothing else)")
    p.add_argument("--batch-size", type=int_range(1, 4096), default=DEFAULT_BATCH,  # = evaluate_dataset's
                   help="images per inference call (default %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="skip PNG plots")
    p.add_argument("--no-per-level", action="store_true",
                   help="skip the per-level image AUROC (a second pass of the model over the test set)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from inspector.evaluation.diagnostics import format_diagnostics
    from inspector.evaluation.eval_folder import CARD, claim_evaluation_folder, default_eval_folder, evaluated_data
    from inspector.evaluation.evaluate import evaluate_dataset, format_table
    from inspector.models.checkpoint import load_model
    from inspector.artifacts.run_config import run_data_path

    model, config, payload = load_model(args.run)
    run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
    trained_on = run_data_path(run_dir, config)  # config.yaml: valid from any directory
    data = args.data or trained_on
    out = Path(args.out) if args.out else default_eval_folder(run_dir, data, trained_on)

    def scorer(batch):
        with torch.inference_mode():
            score, amap = model(torch.from_numpy(batch))
        return score.numpy(), amap.numpy()

    refuse_folder_in_images("out", out, [str(data)])  # the data set from config.yaml is not on the command line
    replaced = CARD in claim_evaluation_folder(out)  # before any work: only an earlier evaluation is replaced
    earlier = evaluated_data(out) if replaced else None  # which data set it scored: said in the last line alone
    levels = None if args.no_per_level else level_scorer(model)
    metrics = evaluate_dataset(scorer, data, config.model.image_size,
                               config.data.resize, out, plots=not args.no_plots, batch_size=args.batch_size,
                               bit_depth=config.data.bit_depth, level_scorer=levels,
                               downscale=config.data.downscale, trained=payload.get("data"), tell_replaced=False)
    print(format_table(metrics))
    print(format_diagnostics(metrics))
    written = [out / CARD] + ([] if args.no_plots else [out / "report.html"])
    of = f", of {earlier}" if earlier not in (None, metrics["data"]) else ""  # another data set's: which
    for path in written:  # the last line says an earlier evaluation was replaced (the rule of every output)
        print(f"wrote {path}" + (f" (replaced the earlier evaluation{of})" if replaced and path == written[-1] else ""))
    return 0


def level_scorer(model):
    """Per-level image scores (each level map's maximum) of a torch model, or None if it has no levels."""
    import torch

    from inspector.models.base import AnomalyModel

    if getattr(type(model), "named_level_maps", None) in (None, AnomalyModel.named_level_maps):
        return None  # the base class only declares it

    def scorer(batch):
        with torch.inference_mode():
            maps = model.named_level_maps(torch.from_numpy(batch))
        return {name: m.flatten(1).amax(dim=1).float().numpy() for name, m in maps.items()}

    return scorer
