"""Run the whole benchmark suite in one go and write ``SUMMARY.md`` beside the JSON results.

    python benchmarks/run_all.py [--quick] [--out benchmarks/results/]     # or: inspector bench --suite

Steps, in order (each writes ``<out>/<step>.json``; ``suite.json`` records every
step's status, seconds and, when it did not run, why):

* ``models``     — parameters and GFLOPs per image of every registered model;
* ``backends``   — torch eager vs ONNX Runtime FP32, batch 1 and 8 (``bench_backends.py``);
* ``tensorrt``   — only with a GPU (otherwise recorded as skipped);
* ``daemon``     — pipeline overhead, 1/2/4/8 offline synthetic cameras (``bench_daemon.py``);
* ``live``       — latency under live load and where drops start (``bench_live.py``);
* ``training_synthetic`` / ``training_kolektorsdd`` — equal-budget training + accuracy (``bench_training.py``);
* ``precision``  — the trained runs exported, quantized to INT8 (Q/DQ) and scored + timed on
  ONNX Runtime per precision;
* ``mixed_teacher`` / ``ast`` — their own studies (full suite only: they train for minutes);
* ``quality``    — every model's default recipe on every real dataset vs a kNN reference
  (``bench_quality.py``; ``--quick``: synthetic data, one epoch);
* ``cost``       — latency and memory vs resolution and batch (``bench_cost.py``).

A step whose script is missing or whose data is absent is recorded as
``skipped: <reason>``; a step that fails is recorded as failed and the suite
goes on. ``--quick`` (tiny budgets, few frames, small inputs) targets < 5 min on
an idle 2-core CPU; the full suite takes much longer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _common import RESULTS, is_result_of, machine  # noqa: E402

KOLEKTOR = REPO.parent / "shared" / "data" / "kolektorsdd"
MODELS = ("stfpm", "reduced_student", "mixed_teacher", "ast")


class StepSkipped(Exception):
    """A step cannot run here; the message is the reason recorded in the summary."""


# ------------------------------------------------------------------------------------------ plumbing
def gpu_name() -> str | None:
    """The first NVIDIA GPU's name (nvidia-smi), or None."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return names[0] if out.returncode == 0 and names else None


def script(name: str) -> Path:
    """Path of a benchmark script, or StepSkipped when it is not there."""
    path = HERE / name
    if not path.is_file():
        raise StepSkipped(f"{name} not found")
    return path


def run_script(name: str, args: list[str], ctx) -> None:
    """Run ``benchmarks/<name>`` with ``args``; raise RuntimeError with its last error line on failure."""
    cmd = [sys.executable, str(script(name)), *map(str, args)]
    print(f"$ {' '.join(cmd)}", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr[-4000:])
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(f"{name} exited {proc.returncode}: {lines[-1][:300] if lines else 'no error output'}")


@contextlib.contextmanager
def collected(result: str, ctx):
    """Run a script that writes ``benchmarks/results/<result>.json`` (no --out), then move it into the suite's folder.

    When the suite writes elsewhere, a file already at the default place (e.g.
    from a standalone run) is kept aside and put back afterwards, so it is never lost.
    """
    src, dst = RESULTS / f"{result}.json", ctx.out / f"{result}.json"
    if src.resolve() == dst.resolve():
        yield
        return
    backup = src.with_name(f".{result}.json.suite-backup")
    if src.is_file():
        shutil.move(str(src), str(backup))
    try:
        yield
        if not src.is_file():
            raise RuntimeError(f"the step wrote no {src}")
        shutil.move(str(src), str(dst))
    finally:
        if backup.is_file():
            shutil.move(str(backup), str(src))


def threads(ctx) -> list[str]:
    return ["--threads", str(ctx.threads)] if ctx.threads else []


# ------------------------------------------------------------------------------------------ steps
def step_models(ctx) -> None:
    """Parameters and GFLOPs per image of every registered model at 256×256."""
    from bench_cost import model_facts
    from _common import write_result

    rows = [model_facts(name, [256, 256]) for name in ctx.models]
    write_result("models", {"flops": "2 x MACs of Conv2d + Linear layers (forward hooks)", "models": rows}, ctx.out)


def step_backends(ctx) -> None:
    models = ",".join(m for m in ctx.models if m != "ast" or not ctx.quick)
    duration, rounds = ("1", "2") if ctx.quick else ("12", "4")
    with collected("backends", ctx):
        run_script("bench_backends.py", ["--models", models, "--duration", duration, "--rounds", rounds,
                                         "--name", "backends", *threads(ctx)], ctx)


def step_tensorrt(ctx) -> None:
    if not ctx.gpu:
        raise StepSkipped("no GPU (TensorRT FP16/INT8 need one)")
    raise StepSkipped(f"GPU {ctx.gpu} present but the suite has no TensorRT step yet: "
                      "use `inspector build` then `inspector bench ENGINE --json`")


def step_daemon(ctx) -> None:
    extra = ["--quick", "--frames", "16"] if ctx.quick else []
    run_script("bench_daemon.py", ["--cameras", "1", "2", "4", "8", *extra, *threads(ctx),
                                   "--out", ctx.out / "daemon.json"], ctx)


def step_live(ctx) -> None:
    run_script("bench_live.py", [*(["--quick"] if ctx.quick else []), *threads(ctx), "--out", ctx.out], ctx)


def synthetic_data(ctx) -> Path:
    """A synthetic texture dataset (MVTec layout) under the run root, generated once."""
    from inspector.data.synth import synthesize

    size, counts = (128, (24, 8, 12)) if ctx.quick else (256, (160, 40, 60))
    root = ctx.run_root / "data" / f"grass-{size}-{'-'.join(map(str, counts))}"
    if not (root / "manifest.json").is_file():
        synthesize(root, texture="grass", size=size, n_train=counts[0], n_test_good=counts[1],
                   n_test_defect=counts[2], seed=0, overwrite=True)
    return root


def training(ctx, name: str, data: Path, size: str) -> None:
    budget = "8" if ctx.quick else "300"
    runs = "5" if ctx.quick else "30"
    with collected(name, ctx):
        run_script("bench_training.py", ["--data", data, "--models", "stfpm,reduced_student", "--budget", budget,
                                         "--size", size, "--runs", runs, "--name", name,
                                         "--run-root", ctx.run_root / "training", *threads(ctx)], ctx)
    ctx.trained[name] = {"data": data, "size": size}


def step_training_synthetic(ctx) -> None:
    size = 128 if ctx.quick else 256
    training(ctx, "training_synthetic", synthetic_data(ctx), f"{size}x{size}")


def step_training_kolektorsdd(ctx) -> None:
    if not KOLEKTOR.is_dir():
        raise StepSkipped(f"{KOLEKTOR} not found")
    training(ctx, "training_kolektorsdd", KOLEKTOR, "224x96" if ctx.quick else "448x192")


def ort_scorer(backend):
    """An evaluate_dataset scorer on an ONNX Runtime backend (outputs copied: buffers are reused)."""
    def scorer(batch):
        result = backend.infer(batch)
        return result.scores.copy(), result.maps.copy()
    return scorer


def score_graph(graph: Path, data: Path, ctx, out_dir: Path) -> dict:
    """Accuracy (image/pixel AUROC, AUPRO) and batch-1/8 speed of one ONNX graph on ONNX Runtime."""
    from inspector.backends import load_backend
    from inspector.evaluation.bench import bench_batch, make_batch
    from inspector.evaluation.evaluate import evaluate_dataset

    with load_backend(graph, "onnxruntime", threads=ctx.threads) as backend:
        spec = backend.input_spec
        metrics = evaluate_dataset(ort_scorer(backend), data, (spec.height, spec.width), spec.resize, out_dir,
                                   plots=False, downscale=spec.downscale)
        duration = 1.0 if ctx.quick else 8.0
        speed = {str(n): bench_batch(backend, make_batch(spec, n), duration, warmup=2 if ctx.quick else 5)
                 for n in (1, 8)}
    for s in speed.values():
        s.pop("stages_ms", None)
    return {"graph": graph.name, "image_size": [spec.height, spec.width],
            "metrics": {k: metrics.get(k) for k in ("image_auroc", "pixel_auroc", "aupro")},
            "speed": speed}


def precision_run(ctx, dataset: str, data: Path, model: str) -> dict:
    """Export a trained run, quantize it to INT8 Q/DQ on its training images, score both graphs."""
    from inspector.deploy import export_run
    from inspector.deploy.quantize import default_int8_path, quantize_model

    run_dir = ctx.run_root / "training" / dataset / model
    base = ctx.run_root / "precision" / dataset / model
    fp32 = Path(export_run(run_dir, base, precisions=("fp32",))["fp32"])
    quantize_model(fp32, data, max_images=16 if ctx.quick else 128, check_images=0)  # both graphs are scored below
    graphs = {"fp32": fp32, "int8": default_int8_path(fp32)}
    precisions = {p: score_graph(g, data, ctx, base.parent / f"eval-{model}-{p}") for p, g in graphs.items()}
    return {"dataset": dataset.removeprefix("training_"), "model": model, "precisions": precisions,
            "skipped": {"fp16": "FP16 graphs are for TensorRT; none on this machine" if not ctx.gpu
                        else "FP16 runs through TensorRT (no TensorRT step in the suite yet)"}}


def step_precision(ctx) -> None:
    """FP32 vs INT8 (ORT Q/DQ) accuracy and speed of the runs trained by the training steps."""
    from _common import write_result

    if not ctx.trained:
        raise StepSkipped("no trained runs (the training steps did not run)")
    try:
        import inspector.deploy.quantize  # noqa: F401
    except ImportError as exc:
        raise StepSkipped(f"inspector.deploy.quantize not importable ({exc})") from None
    models = ["reduced_student"] if ctx.quick else ["stfpm", "reduced_student"]
    datasets = ["training_synthetic"] if ctx.quick else list(ctx.trained)
    runs = [precision_run(ctx, d, Path(ctx.trained[d]["data"]), m) for d in datasets if d in ctx.trained
            for m in models]
    write_result("precision", {"settings": {"quick": ctx.quick, "backend": "onnxruntime", "int8": "Q/DQ static, "
                                            "calibrated on the training images"}, "runs": runs}, ctx.out)


def step_mixed_teacher(ctx) -> None:
    if ctx.quick:
        raise StepSkipped("--quick (trains 2 models on 2 datasets)")
    with collected("mixed_teacher", ctx):
        run_script("bench_mixed_teacher.py", ["--run-root", ctx.run_root / "mixed_teacher", *threads(ctx)], ctx)


def step_ast(ctx) -> None:
    if ctx.quick:
        raise StepSkipped("--quick (trains AST in two phases per dataset)")
    with collected("ast", ctx):
        run_script("bench_ast.py", ["--run-root", ctx.run_root / "ast", *threads(ctx)], ctx)


def step_quality(ctx) -> None:
    """Every model's default recipe on every real dataset vs the kNN reference (bench_quality.py)."""
    run_script("bench_quality.py", [*(["--quick"] if ctx.quick else []), *threads(ctx), "--out", ctx.out,
                                    "--run-root", ctx.run_root / "quality"], ctx)


def step_cost(ctx) -> None:
    run_script("bench_cost.py", [*(["--quick"] if ctx.quick else []), *threads(ctx), "--out", ctx.out], ctx)


STEPS = {
    "models": step_models,
    "backends": step_backends,
    "tensorrt": step_tensorrt,
    "daemon": step_daemon,
    "live": step_live,
    "training_synthetic": step_training_synthetic,
    "training_kolektorsdd": step_training_kolektorsdd,
    "precision": step_precision,
    "mixed_teacher": step_mixed_teacher,
    "ast": step_ast,
    "quality": step_quality,
    "cost": step_cost,
}


# ------------------------------------------------------------------------------------------ driver
class Context:
    """What the steps share: options, output folder, GPU, trained runs."""

    def __init__(self, args) -> None:
        self.quick, self.threads = args.quick, args.threads
        self.out = Path(args.out).resolve()
        self.run_root = Path(args.run_root).resolve()
        self.models = [m for m in MODELS]
        self.gpu = gpu_name()
        self.trained: dict[str, dict] = {}


def one_line(exc: Exception) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def run_step(name: str, ctx) -> dict:
    """Run one step; its status, seconds and (when not ok) the reason."""
    print(f"\n=== {name}", flush=True)
    t0 = time.monotonic()
    try:
        STEPS[name](ctx)
        status, reason = "ok", None
    except StepSkipped as why:
        status, reason = "skipped", str(why)
    except Exception as exc:  # one failing step must not lose the others
        status, reason = "failed", one_line(exc)
    seconds = round(time.monotonic() - t0, 1)
    print(f"=== {name}: {status}{f' ({reason})' if reason else ''} in {seconds} s", flush=True)
    return {"status": status, "reason": reason, "seconds": seconds}


def write_suite(ctx, suite: dict) -> None:
    from inspector.config import write_json

    write_json(ctx.out / "suite.json", suite)  # whole or not at all: rewritten after every step


# the result file each step writes in --out (tensorrt: none yet); suite.json and SUMMARY.md are written every run
STEP_RESULTS = {name: () if name == "tensorrt" else (f"{name}.json",) for name in STEPS}


def claim_suite_outputs(out: Path, steps: list[str]) -> list[str]:
    """Make sure the suite may write its fixed-name files in ``out`` (suite.json, SUMMARY.md and each chosen
    step's ``<step>.json``), before any work: the names of those that hold an earlier suite's output, which the
    run replaces (said at the end). ``ConfigError`` (one line naming the file) for a folder it cannot write in
    or anything else at a name, e.g. a user's own ``suite.json``: it was overwritten without a word (the rule of
    every output, README "Outputs"; :func:`inspector.outputs.claim_file`). An earlier output is known by its
    content: a JSON object whose ``benchmark`` is the file's name (:func:`_common.write_result`), or the summary's
    generated header (:func:`summary.is_summary`)."""
    from inspector.errors import ConfigError
    from inspector.outputs import claim_file, folder_problem
    from summary import is_summary

    if (why := folder_problem(out)) is not None:
        raise ConfigError(f"--out {out}: cannot write the suite's results there: {why}")
    names = ["suite.json", *(n for step in steps for n in STEP_RESULTS[step]), "SUMMARY.md"]
    replaced = []
    for name in names:
        own = is_summary if name == "SUMMARY.md" else is_result_of(Path(name).stem)
        noun = "benchmark summary" if name == "SUMMARY.md" else f"'{Path(name).stem}' benchmark result"
        if claim_file(out / name, own, ConfigError, command="bench --suite", option="--out", noun=noun):
            replaced.append(name)
    return replaced


def parse_steps(text: str | None) -> list[str]:
    """``--steps a,b`` → the named steps in suite order; unknown names: ConfigError (one line, exit 2)."""
    from inspector.errors import ConfigError

    if not text:
        return list(STEPS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise ConfigError(f"--steps: unknown step(s) {unknown}; choose from {list(STEPS)}")
    return [n for n in STEPS if n in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets, few frames, small inputs (< 5 min target)")
    ap.add_argument("--out", default=str(RESULTS), help="results folder (default benchmarks/results)")
    ap.add_argument("--steps", help=f"comma list of steps to run (default all: {','.join(STEPS)})")
    ap.add_argument("--threads", type=int, help="threads for torch and ONNX Runtime in every step (default: all)")
    ap.add_argument("--run-root", default=str(REPO / "runs" / "bench" / "suite"),
                    help="where trained runs and generated data go (default runs/bench/suite)")
    args = ap.parse_args(argv)
    from inspector.errors import ConfigError

    try:  # before any work (even nvidia-smi): a user's file at one of the suite's names stays as it was
        steps = parse_steps(args.steps)
        replaced = claim_suite_outputs(Path(args.out).resolve(), steps)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ctx = Context(args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    suite = {"benchmark": "suite", "quick": args.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
             "machine": {**machine(), "gpu": ctx.gpu}, "load_average_before_after": [round(os.getloadavg()[0], 2)],
             "steps": {}}
    for name in steps:
        suite["steps"][name] = run_step(name, ctx)
        write_suite(ctx, suite)
    suite["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    suite["load_average_before_after"].append(round(os.getloadavg()[0], 2))
    write_suite(ctx, suite)
    from summary import write_summary

    print(f"\nwrote {write_summary(ctx.out)}")
    if replaced:
        print(f"replaced the earlier suite's {', '.join(replaced)} in {ctx.out}")
    failed = [n for n, s in suite["steps"].items() if s["status"] == "failed"]
    if failed:
        print(f"failed steps: {', '.join(failed)} (see suite.json)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
