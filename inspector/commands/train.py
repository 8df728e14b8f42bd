"""`inspector train`: train a model on good images into a run folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

from inspector.commands.argtypes import float_range, int_range, out_folder
from inspector.errors import ConfigError


NO_META_RESUME = "--resume: not supported for meta_comparer (train again, with --time-budget)"
RUN_FILES = ("config.yaml", "history.json", "summary.json", "resume.pt")  # what a run writes besides best.pt


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an anomaly model on good images",
                       description="Train a student-teacher model on the good images of a dataset.")
    p.add_argument("--config", help="run config YAML (sections: model, data, train); not with --resume, which "
                                    "goes on with the run's own config")
    from inspector.models import model_package_names  # no torch: --help stays fast

    p.add_argument("--model", metavar="NAME",
                   help=f"model name: {', '.join(model_package_names())} (default reduced_student)")
    p.add_argument("--preset", choices=["offline", "paper"], help="offline (default) or paper teacher")
    p.add_argument("--data", action="append",
                   help="dataset root (MVTec/BTAD category folder or a folder of good images); "
                        "meta_comparer: repeat it, one per source domain (a dataset folder or synth:brick|grass|gravel)")
    p.add_argument("--out", required=True, type=out_folder(), help="run folder to create")
    p.add_argument("--epochs", type=int_range(1, 100_000),
                   help="train exactly N epochs, no early stop (default: until the validation loss stops "
                        "improving, see train.patience/min_delta/max_epochs); with --resume, extends a run")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="where to train (default auto: cuda when available, else cpu); sets train.device")
    p.add_argument("--time-budget", type=float_range(0, 10**7, lo_open=True), metavar="SECONDS", help="stop after this much training time (> 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out where it stopped (resume.pt: the weights, optimiser and schedule "
                        "after its last epoch; best.pt where there is none; finished phases are skipped; "
                        "a finished run is extended when --epochs/--set train.max_epochs allows more epochs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set model.image_size=[256,256]")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    """Numbers the user typed: 0 is an error, never a silent 'not given'."""
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs: must be ≥ 1, got {args.epochs}")
    if args.time_budget is not None and not args.time_budget > 0:
        raise ConfigError(f"--time-budget: must be > 0 seconds, got {args.time_budget:g}")


def run(args: argparse.Namespace) -> int:
    """Train; on SIGINT/SIGTERM keep the best checkpoint and history, exit 130/143."""
    from inspector.interrupts import sigterm_as_interrupt

    _check_args(args)
    detail, out = "", Path(args.out)
    had = (out.exists(), (out / "config.yaml").exists(), [p for p in out.parents if not os.path.lexists(p)])
    with sigterm_as_interrupt() as interrupt:
        try:
            code = _train(args)
        except KeyboardInterrupt as exc:  # outside the epoch loop (which catches its own): loading, building
            detail = getattr(exc, "detail", "")
            interrupt.signum = interrupt.signum or getattr(exc, "exit_code", 130) - 128
        except Exception:  # an error (a full disk at the first best.pt): the same command must run again as it is
            if not args.resume and not (out / "best.pt").exists():
                _remove_unsaved_start(out, *had)
            raise
    if interrupt.signum is not None:
        if not args.resume and not (out / "best.pt").exists():
            _remove_unsaved_start(out, *had)
        print(_stopped_line(interrupt.name, detail, out, args.model), flush=True)
        return interrupt.exit_code
    return code


def _remove_unsaved_start(out: Path, folder_was_there: bool, config_was_there: bool,
                          parents_made: Sequence[Path] = ()) -> None:
    """Take back what a training stopped or failed before its first checkpoint wrote: its config.yaml (and the run
    folder and the ``parents_made`` above it, deepest first, when it made them and left them empty). The line then
    says "start it again" (or names the error, e.g. a full disk at best.pt), and the same command was refused: the
    config.yaml left behind made the folder one "a new run would overwrite". Nothing that was there before goes,
    nor anything of a training that holds the folder now (its lock, :mod:`inspector.training.run_lock`)."""
    from inspector.folder_lock import FolderBusy, lock_folder

    try:
        fd = lock_folder(out, create=False) if out.is_dir() else None
    except (FolderBusy, OSError):
        return
    try:
        if not config_was_there:
            (out / "config.yaml").unlink(missing_ok=True)
        if not folder_was_there and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
            for parent in parents_made:  # deepest first; one that holds something now is kept, with those above
                parent.rmdir()
    except OSError:
        pass  # the line still says nothing was saved; a new start's refusal names what is in the way
    finally:
        if fd is not None:
            os.close(fd)


def _stopped_line(signal_name: str, detail: str, out: Path, model: str | None) -> str:
    """The one line of a training stopped by a signal: what the run folder holds now, and how to go on.
    Stopped before its first checkpoint (e.g. while the meta-comparer extracts its domains' features) it
    used to print a bare 'interrupted', leaving an empty run folder behind: now it says nothing was saved."""
    if (out / "best.pt").exists():
        return (f"training stopped by {signal_name}{detail}; best checkpoint and history.json are in {out}; "
                f"{resume_hint(out, model)}")
    return f"training stopped by {signal_name}{detail}, before its first checkpoint; nothing saved; start it again"


def resume_hint(out: str | Path, model: str | None = None) -> str:
    """What to type to go on with the interrupted run in ``out`` (meta_comparer has no --resume)."""
    import shlex

    if model == "meta_comparer":
        return "meta_comparer cannot resume: train it again (with --time-budget)"
    return f"to continue: inspector train --out {shlex.quote(str(out))} --resume"


def _train(args: argparse.Namespace) -> int:
    from inspector.config import apply_overrides
    from inspector.training.config import load_run_config

    base: dict = {"model": {}, "data": {}, "train": {}}
    if args.model:
        base["model"]["name"] = args.model
    if args.preset:
        base["model"]["preset"] = args.preset
    if args.data:
        base["data"]["path"] = args.data[0]
    if args.epochs is not None:
        base["train"]["epochs"] = args.epochs
    if args.device:
        base["train"]["device"] = args.device
    if args.time_budget is not None:
        base["train"]["time_budget_s"] = args.time_budget
    out = Path(args.out)
    from inspector.training.run_lock import refuse_if_held

    refuse_if_held(out)  # before anything about its files, which a training running there is writing
    if args.resume:
        return _resume(args, base, out)
    config = load_run_config(args.config, args.overrides, base={k: v for k, v in base.items() if v})
    if not config.data.path:
        raise ConfigError("data.path: no dataset given (use --data DIR)")
    if (out / "best.pt").exists():
        raise ConfigError(f"{out}: already holds a trained run; choose another --out or add --resume")
    taken = [name for name in RUN_FILES if (out / name).exists() or (out / name).is_symlink()]
    if taken:  # e.g. --out the folder of the user's own config.yaml: it was replaced without a word
        raise ConfigError(f"{out}: holds {', '.join(taken)}, which a new run would overwrite, and no best.pt to "
                          f"resume; choose another --out or move them")
    from inspector.data.datasets import not_good_images_problem

    if config.model.name != "meta_comparer" and (why := not_good_images_problem(config.data.path)):
        raise ConfigError(why)
    if len(args.data or []) > 1 and config.model.name != "meta_comparer":
        raise ConfigError(f"--data: given {len(args.data)} times; only --model meta_comparer trains on "
                          f"several domains")
    if config.model.name == "meta_comparer":
        from inspector.training.meta_comparer import train_meta_comparer

        summary = train_meta_comparer(config, args.data or [config.data.path], out)
        _print_summary(summary, out)
        return 0
    from inspector.training.loop import train  # torch: only once the config is known to be valid

    summary = train(config, out)
    _print_summary(summary, out)
    return 0


def _resume(args: argparse.Namespace, base: dict, out: Path) -> int:
    """Continue the run in ``out`` with its own config; CLI values override its data and train sections."""
    from inspector.artifacts.checkpoint import read_checkpoint
    from inspector.artifacts.run_config import saved_data_path
    from inspector.config import apply_overrides
    from inspector.models.checkpoint import as_written
    from inspector.training.config import resolve_run_config

    if args.model == "meta_comparer":
        raise ConfigError(NO_META_RESUME)
    if args.config:  # a resumed run trains on as its checkpoint says; the file's settings changed nothing
        raise ConfigError(f"--config: does nothing with --resume (the run in {out} goes on with its own "
                          f"config); leave it out, and give a change with --set KEY=VALUE or a flag")
    if not (out / "best.pt").exists():
        raise ConfigError(f"{out}: nothing to resume (no best.pt)")
    # the run's own config, with settings added since it was saved filled in as it was trained (an old run
    # resumed with today's defaults went on training on other pixels: data.downscale halving, not area);
    # CLI values still override it
    raw = as_written(read_checkpoint(out)["config"])
    # the checkpoint's data.path is relative to where training was started; the run's config.yaml names it
    # relative to the run folder (the file rule), so a resume from another directory finds the data too
    if saved_data_path(out):
        raw["data"] = {**(raw.get("data") or {}), "path": saved_data_path(out)}
    saved_model = dict(raw.get("model") or {})
    for section, values in base.items():
        raw[section] = {**raw.get(section, {}), **values}
    raw = apply_overrides(raw, args.overrides)
    if saved_model.get("name") == "meta_comparer":  # --resume without --model: the run says what it is
        raise ConfigError(f"{out}: {NO_META_RESUME}")
    _check_same_model(saved_model, raw.get("model") or {}, out)
    # only what this invocation gives is checked: the run's own settings went on as they were trained
    config = resolve_run_config(raw, given=apply_overrides(base, args.overrides))
    from inspector.training.loop import train

    summary = train(config, out, resume=True)
    _print_summary(summary, out)
    return 0


def _check_same_model(saved: dict, wanted: dict, out: Path) -> None:
    """A resumed run keeps its model: other weights' shapes (a wider student, another input size) cannot
    load its checkpoint, and other scoring settings would make one run of two models. ConfigError naming
    the first changed key, with the run's value."""
    for key, value in wanted.items():
        if key not in saved or saved[key] != value:
            was = f"the run has {saved[key]!r}" if key in saved else "not set in the run"
            raise ConfigError(f"{out}: --resume cannot change model.{key} ({was}, asked {value!r}); "
                              f"train a new run with another --out instead")


def _print_summary(summary: dict, out: Path) -> None:
    from inspector.data.datasets import MIN_DEPENDABLE_VALIDATION

    data = summary.get("data") or {}
    if "n_train" in data:  # which good images did what: calibrate takes the held-out ones by default
        held, skipped = data.get("n_calibration", 0), data.get("skipped") or []
        # the warning naming unreadable images scrolled away above the progress bars: the count stays in view
        print(f"good images: {data['n_train']} trained on, {data['n_val']} validated on"
              + (f", {held} kept out of both for calibrate" if held else "")
              + (f", {len(skipped)} left out as unreadable (e.g. {Path(skipped[0]).name})" if skipped else ""))
        if data["n_val"] < MIN_DEPENDABLE_VALIDATION:  # said beside the count, not as a warning that scrolls away
            print(f"  few to validate on: the early stop and the maps' normalisation rest on {data['n_val']} "
                  f"image(s); add good images ({MIN_DEPENDABLE_VALIDATION} or more to validate on) for a "
                  f"dependable model")
    for phase in summary["phases"]:
        if not phase["best_epoch"]:  # stopped before its first validated epoch: there is no best to name
            print(f"{phase['name']}: no epoch finished in {phase['seconds']} s")
        else:
            print(f"{phase['name']}: {phase['epochs_run']} epoch{'' if phase['epochs_run'] == 1 else 's'} in "
                  f"{phase['seconds']} s, best epoch {phase['best_epoch']} val loss {phase['best_val_loss']:.5f}")
        print(f"  stopped: {phase.get('stop_detail') or phase.get('stop_reason', '')}")
    print(f"run saved to {out} (best.pt, config.yaml, history.json, summary.json)")
