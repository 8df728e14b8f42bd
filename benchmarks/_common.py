"""Helpers shared by benchmark scripts: machine description, timing stats, JSON output."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """CPU model, cores and library versions, recorded with every result."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("numpy", "torch", "onnx", "onnxruntime", "cv2", "zmq", "tensorrt"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "versions": versions}


def percentiles(samples_ms: list[float]) -> dict:
    """n, p50, p90, p99, max, mean; percentiles are nearest-rank (:mod:`inspector.percentile`)."""
    from inspector.percentile import percentile

    s = sorted(samples_ms)
    return {"n": len(s), "p50": percentile(s, 50), "p90": percentile(s, 90), "p99": percentile(s, 99),
            "max": s[-1], "mean": statistics.fmean(s)}


def time_calls(fn, warmup: int = 3, runs: int = 20, min_seconds: float = 0.0) -> list[float]:
    """Call ``fn`` after warm-up; return per-call wall times in ms."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def is_result_of(name: str):
    """A test of a file's first bytes: True for a result :func:`write_result` wrote as ``name`` (a JSON object
    whose ``benchmark`` is ``name``), the only file a benchmark replaces (:func:`inspector.outputs.claim_file`)."""
    import json

    def own(raw: bytes) -> bool:
        data = json.loads(raw)
        return isinstance(data, dict) and data.get("benchmark") == name
    return own


def claim_result(path: Path, name: str) -> bool:
    """Whether ``path`` holds an earlier ``name`` result, which a benchmark may replace (False: the name is free);
    ``ConfigError`` (one line) for anything else there, which is kept: a user's own ``cost.json`` in ``--out`` was
    overwritten without a word (README "Outputs"). Call it before the work where the name is known early."""
    from inspector.errors import ConfigError
    from inspector.outputs import claim_file

    return claim_file(path, is_result_of(name), ConfigError, command=f"benchmarks ({name})", option="--out",
                      noun=f"'{name}' benchmark result")


def claim_result_or_exit(name: str, out_dir: Path | str | None = None) -> None:
    """:func:`claim_result` for ``<out_dir>/<name>.json`` at a script's start, before its work: anything else at
    the name is one line on stderr and exit 2 (the CLI's rule for a user's error)."""
    claim_out_or_exit(Path(out_dir or RESULTS) / f"{name}.json", name)


def claim_out_or_exit(path: Path | str | None, name: str) -> Path | None:
    """A script's ``--out`` FILE ``path`` claimed at its start, before its work (:func:`claim_result`: an earlier
    ``name`` result there is replaced, anything else kept): one line on stderr and exit 2 for anything else there.
    Returns the path (None: no ``--out`` given). THE claim of every benchmark and experiment script that writes
    a file; tests/test_benchmark_outputs.py checks that every script with an ``--out`` makes it."""
    from inspector.errors import ConfigError

    if path is None:
        return None
    try:
        claim_result(Path(path), name)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return Path(path)


def out_option(name: str, argv: list[str] | None = None) -> Path | None:
    """For a script that reads ``sys.argv`` by hand: the file of its ``--out PATH`` or ``--out=PATH`` (None: not
    given), claimed (:func:`claim_out_or_exit`). Call it first, before the imports and work that take minutes."""
    argv = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(argv):
        if arg.startswith("--out="):
            return claim_out_or_exit(arg.split("=", 1)[1], name)
        if arg == "--out":
            if i + 1 >= len(argv):
                print("error: --out needs a file name", file=sys.stderr)
                raise SystemExit(2)
            return claim_out_or_exit(argv[i + 1], name)
    return None


def write_out(path: Path | str | None, name: str, payload) -> Path | None:
    """Write ``payload`` (a dict; a list goes in as ``rows``) to the ``--out`` file ``path`` (None: nothing) whole,
    with ``benchmark: name``, which tells it as this script's next time (:func:`claim_out_or_exit`); claimed once
    more, so a file put there during the run is kept (one line, exit 2). Returns ``path``."""
    from inspector.config import write_json

    if path is None:
        return None
    claim_out_or_exit(path, name)
    body = payload if isinstance(payload, dict) else {"rows": payload}
    return write_json(Path(path), {**body, "benchmark": name})


def claim_folder_or_exit(path: Path | str) -> Path:
    """A script's ``--out`` FOLDER of files it writes one by one (tiles, masks): new or empty, else one line on
    stderr and exit 2; files written into a folder that holds others replaced some and mixed with the rest."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        what = "is not a folder" if not path.is_dir() else "already holds files"
        print(f"error: --out {path}: {what}; give a new or empty folder", file=sys.stderr)
        raise SystemExit(2)
    return path


def write_result(name: str, payload: dict, out_dir: Path | None = None) -> Path:
    """Write ``<out_dir>/<name>.json`` (machine and time added) through the package's one JSON writer;
    ``ConfigError`` (one line), nothing written, where another file holds the name (:func:`claim_result`)."""
    from inspector.config import write_json

    claim_result(Path(out_dir or RESULTS) / f"{name}.json", name)
    payload = {"benchmark": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **payload}
    return write_json(Path(out_dir or RESULTS) / f"{name}.json", payload)


def parse_size(text: str) -> list[int]:
    h, w = text.lower().split("x")
    return [int(h), int(w)]


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ort_session(path: Path, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def time_alternating(sessions: dict, size: list[int], rounds: int, per_round: int) -> dict[str, list[float]]:
    """Batch-1 latency (ms) of each session, timed in alternating rounds after a warm-up."""
    image = np.random.default_rng(0).integers(0, 256, (1, size[0], size[1], 3), dtype=np.uint8)
    feeds = {name: {s.get_inputs()[0].name: image} for name, s in sessions.items()}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for name, s in sessions.items():
        for _ in range(3):
            s.run(None, feeds[name])
    for _ in range(rounds):
        for name, s in sessions.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                s.run(None, feeds[name])
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def add_dataset_arguments(ap, kolektor: Path, textures: tuple[str, ...]) -> None:
    """The dataset options :func:`benchmark_datasets` reads: --quick, --datasets, --texture, --synth-size,
    --kolektor, --kolektor-size; call :func:`resolve_common_arguments` after parsing."""
    ap.add_argument("--quick", action="store_true", help="small synthetic set, small sizes, short budgets")
    ap.add_argument("--datasets", default="synthetic,kolektorsdd", help="comma list: synthetic, kolektorsdd")
    ap.add_argument("--texture", default="grass", choices=textures)
    ap.add_argument("--synth-size", type=int, default=None, help="synthetic image side (default 256, quick 128)")
    ap.add_argument("--kolektor", default=str(kolektor))
    ap.add_argument("--kolektor-size", default=None, help="HxW (default 448x192, quick 224x96)")


def add_run_arguments(ap, name: str) -> None:
    """--threads, --rounds, --seed, --run-root (default runs/bench/<name>), --name (default ``name``)."""
    ap.add_argument("--threads", type=int, default=None, help="torch/ORT threads (default: all cores)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating timing rounds (5 runs each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-root", default=f"runs/bench/{name}")
    ap.add_argument("--name", default=name, help="result file benchmarks/results/<name>.json")


def resolve_common_arguments(args) -> None:
    """After parsing: the --quick-dependent sizes and rounds, --datasets as a list (in place); --threads set
    for torch."""
    args.synth_size = args.synth_size or (128 if args.quick else 256)
    args.kolektor_size = args.kolektor_size or ("224x96" if args.quick else "448x192")
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.rounds = args.rounds or (4 if args.quick else 10)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def benchmark_datasets(args, run_root: Path) -> list[dict]:
    """The datasets a model benchmark runs on (``args.datasets``: synthetic and/or kolektorsdd): name, path,
    model input size [h, w]; a synthetic set is made once under ``run_root/data``, a missing KolektorSDD is
    skipped with a line on stderr."""
    import sys

    out = []
    if "synthetic" in args.datasets:
        from inspector.data.synth import synthesize

        root = run_root / "data" / f"{args.texture}-{args.synth_size}"
        counts = (40, 10, 18) if args.quick else (160, 40, 60)
        if not (root / "manifest.json").is_file():
            synthesize(root, texture=args.texture, size=args.synth_size, n_train=counts[0],
                       n_test_good=counts[1], n_test_defect=counts[2], seed=args.seed, overwrite=True)
        out.append({"name": f"synthetic-{args.texture}", "path": str(root), "size": [args.synth_size] * 2,
                    "counts": dict(zip(("train", "test_good", "test_defect"), counts))})
    if "kolektorsdd" in args.datasets:
        if Path(args.kolektor).is_dir():
            out.append({"name": "kolektorsdd", "path": str(args.kolektor), "size": parse_size(args.kolektor_size)})
        else:
            print(f"skipping kolektorsdd: {args.kolektor} not found", file=sys.stderr)
    return out


def coreset_knn_scores(fit: list, test: list) -> np.ndarray:
    """PatchCore-style baseline image scores: the distance of each test patch to a greedy 10% coreset of the
    ``fit`` patches (at most 100,000 sampled, chosen in a 32-d random projection), max over the image.

    ``fit`` / ``test``: per level, float tensors (N, C, H, W); levels 1 and 2 are 3x3-pooled and concatenated
    at level 1's size. Returns (N_test,) float32. Seeded (0), so a rerun gives the same numbers.
    """
    import torch
    import torch.nn.functional as F

    def embed(levels):
        a = F.avg_pool2d(levels[1], 3, 1, 1)
        b = F.interpolate(F.avg_pool2d(levels[2], 3, 1, 1), size=a.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([a, b], 1)
    bank = torch.cat([embed(levels) for levels in fit])
    bank = bank.permute(0, 2, 3, 1).reshape(-1, bank.shape[1])
    g = torch.Generator().manual_seed(0)
    if len(bank) > 100_000:
        bank = bank[torch.randperm(len(bank), generator=g)[:100_000]]
    core = bank[_greedy_coreset(bank @ (torch.randn(bank.shape[1], 32, generator=g) / 32 ** 0.5),
                                max(1, len(bank) // 10))]
    emb = embed(test)
    n, c = emb.shape[:2]
    q = emb.permute(0, 2, 3, 1).reshape(-1, c)
    dist = torch.cat([torch.cdist(q[i:i + 20000], core).amin(1) for i in range(0, len(q), 20000)])
    return dist.view(n, -1).amax(1).numpy()


def _greedy_coreset(p, k: int) -> list[int]:
    """Farthest-point selection of ``k`` rows of ``p`` (M, D), starting from row 0."""
    import torch

    sel = [0]
    d = torch.cdist(p, p[:1]).squeeze(1)
    for _ in range(k - 1):
        i = int(d.argmax())
        sel.append(i)
        d = torch.minimum(d, torch.cdist(p, p[i:i + 1]).squeeze(1))
    return sel


def downscale_costs(frame: np.ndarray, hw: tuple[int, int], methods: tuple[str, ...] | None = None,
                    rounds: int = 10, per_round: int = 4) -> dict:
    """ms per call of ``resize_image(frame → hw)`` for each downscale method: {method: {p50_ms, min_ms}}.

    One OpenCV thread, as in the daemon's batcher; the methods are interleaved round by round so
    a change of machine load falls on all of them alike.
    """
    import cv2

    from inspector.data.images import DOWNSCALE_METHODS, resize_image

    methods = methods or DOWNSCALE_METHODS
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    times: dict[str, list[float]] = {m: [] for m in methods}
    try:
        for m in methods:  # one untimed call each: first-call allocations are not the steady cost
            resize_image(frame, hw[0], hw[1], downscale=m)
        for _ in range(rounds):
            for m in methods:
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    resize_image(frame, hw[0], hw[1], downscale=m)
                    times[m].append((time.perf_counter() - t0) * 1e3)
    finally:
        cv2.setNumThreads(threads)
    return {m: {"p50_ms": round(float(np.median(v)), 3), "min_ms": round(float(np.min(v)), 3)}
            for m, v in times.items()}
