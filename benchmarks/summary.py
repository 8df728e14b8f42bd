"""Generate ``SUMMARY.md`` from the benchmark JSON files of one results folder (never edit it by hand).

    python benchmarks/summary.py [--results benchmarks/results]

The machine comes first (from ``suite.json``, written by ``run_all.py``, or
from any result file), then one table per section. A section whose result file
is missing says ``skipped: <reason>`` — the reason ``run_all.py`` recorded for
its step, or that the file is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PAPER = {"rs_over_stfpm_speed": 1.3, "mt_over_rs_latency": 3.0}


class Skipped(Exception):
    """A section cannot be written; the message says why."""


# ------------------------------------------------------------------------------------------ helpers
def fmt(value, digits: int = 2) -> str:
    """A table cell: numbers rounded, None as '–'."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def table(headers: list[str], rows: list[list]) -> list[str]:
    """A Markdown table (cells through :func:`fmt`)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return out


def get(d: dict | None, *keys, default=None):
    """``d[k1][k2]…`` or ``default`` where any level is missing."""
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


class Results:
    """The JSON files of one results folder plus the suite's step statuses."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.suite = self._read("suite") or {}
        self.used: dict[str, str | None] = {}  # result files the sections read (load/optional) → their CPU

    def _read(self, name: str) -> dict | None:
        path = self.folder / f"{name}.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"warning: {path}: not readable JSON ({exc})", file=sys.stderr)
            return None

    def load(self, name: str, step: str | None = None) -> dict:
        """Result ``name`` or :class:`Skipped` with the suite's reason for ``step`` (default: ``name``)."""
        data = self._read(name)
        if data is not None:
            self._use(name, data)
            return data
        raise Skipped(self.reason(step or name, f"no result file ({name}.json)"))

    def optional(self, name: str) -> dict | None:
        data = self._read(name)
        if data is not None:
            self._use(name, data)
        return data

    def _use(self, name: str, data: dict) -> None:
        self.used[name] = get(data, "machine", "cpu")

    def reason(self, step: str, fallback: str) -> str:
        info = get(self.suite, "steps", step) or {}
        if info.get("status") in ("skipped", "failed") and info.get("reason"):
            return f"{info['status']}: {info['reason']}" if info["status"] == "failed" else info["reason"]
        return fallback

    def machine(self) -> dict:
        if self.suite.get("machine"):
            return self.suite["machine"]
        for path in sorted(self.folder.glob("*.json")):
            data = self._read(path.stem) or {}
            if isinstance(data.get("machine"), dict):
                return data["machine"]
        return {}


# ------------------------------------------------------------------------------------------ sections
def machine_section(res: Results) -> list[str]:
    m = res.machine()
    versions = m.get("versions") or {k: v for k, v in m.items() if k in ("onnxruntime", "torch", "numpy")}
    lines = ["## Machine", "",
             f"- CPU: {m.get('cpu', 'unknown')} ({m.get('cores', m.get('cpus', '?'))} cores)",
             f"- GPU: {m.get('gpu') or 'none'}",
             f"- Python {m.get('python', '?')}; " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    lines += host_lines(res, m.get("cpu"))
    if res.suite:
        lines.append(f"- Suite run: {res.suite.get('started', '?')} → {res.suite.get('finished', '?')}"
                     f"{' (--quick)' if res.suite.get('quick') else ''}; 1-min load average before/after: "
                     f"{fmt(get(res.suite, 'load_average_before_after'))}")
    return lines


def host_lines(res: Results, cpu: str | None) -> list[str]:
    """One line per other CPU that a result file the sections read (``res.used``) was measured on (files
    from several sessions may come from different hosts, and their timings do not compare across hosts)."""
    by_cpu: dict[str, list[str]] = {}
    for name, other in sorted(res.used.items()):
        if other and other != cpu:
            by_cpu.setdefault(other, []).append(f"{name}.json")
    return [f"- Measured on {other} instead: {', '.join(files)}" for other, files in sorted(by_cpu.items())]


def steps_section(res: Results) -> list[str]:
    steps = get(res.suite, "steps") or {}
    if not steps:
        raise Skipped("no suite.json (results not produced by run_all.py)")
    rows = [[name, s.get("status"), s.get("seconds"), s.get("reason") or ""] for name, s in steps.items()]
    return table(["step", "status", "seconds", "note"], rows)


def backends_section(res: Results) -> list[str]:
    lines = []
    models = res.optional("models")
    if models:
        rows = [[m["model"], "x".join(map(str, m["image_size"])), m["parameters"], m["gflops_per_image"]]
                for m in models.get("models", [])]
        lines += table(["model", "input", "parameters", "GFLOPs / image"], rows) + [""]
    rows = backend_rows(res.optional("backends")) + precision_speed_rows(res.optional("precision"))
    if not rows:
        raise Skipped(res.reason("backends", "no result file (backends.json)"))
    lines += table(["model", "input", "backend", "precision", "batch", "images/s", "p50 ms", "p99 ms", "runs"], rows)
    tensorrt = get(res.suite, "steps", "tensorrt")
    if tensorrt and tensorrt.get("status") != "ok":
        lines += ["", f"TensorRT FP16/INT8: {tensorrt.get('reason', 'skipped')}"]
    return lines


def backend_rows(data: dict | None) -> list[list]:
    """Rows of bench_backends.py's torch-vs-ORT figures."""
    rows = []
    size = "x".join(map(str, get(data, "settings", "size") or [])) or None
    for model, res in (get(data, "results") or {}).items():
        for batch, per in res.get("batches", {}).items():
            for backend in ("torch", "onnxruntime"):
                r = per.get(backend)
                if r:
                    rows.append([model, size, backend, "fp32", int(batch), r["images_per_s"],
                                 get(r, "latency_ms", "p50"),
                                 get(r, "latency_ms", "p99"), r.get("iterations")])
    return rows


def precision_speed_rows(data: dict | None) -> list[list]:
    """ONNX Runtime rows per precision from run_all.py's precision step."""
    rows = []
    for run in get(data, "runs") or []:
        for precision, per in run.get("precisions", {}).items():
            size = "x".join(map(str, per.get("image_size") or [])) or None
            for batch, r in (per.get("speed") or {}).items():
                rows.append([run["model"], size, "onnxruntime", precision, int(batch), r.get("images_per_s"),
                             get(r, "latency_ms", "p50"), get(r, "latency_ms", "p99"), r.get("iterations")])
    return rows


def ort_p50(backends: dict | None, model: str, batch: str = "1") -> float | None:
    return get(backends, "results", model, "batches", batch, "onnxruntime", "latency_ms", "p50")


def claims_section(res: Results) -> list[str]:
    backends = res.optional("backends")
    rows = []
    stfpm, rs, mt = (ort_p50(backends, m) for m in ("stfpm", "reduced_student", "mixed_teacher"))
    if stfpm and rs:
        rows.append(["reduced student vs STFPM speed (ORT, batch 1, STFPM p50 ÷ RS p50)",
                     f"~{PAPER['rs_over_stfpm_speed']}× (≈30% faster)", f"{stfpm / rs:.2f}×", "backends.json"])
    acc = accuracy_claim(res.optional("training_synthetic"))
    if acc:
        rows.append(acc)
    if mt and rs:
        rows.append(["MixedTeacher vs reduced student latency (ORT, batch 1, MT p50 ÷ RS p50)",
                     f"~{PAPER['mt_over_rs_latency']}× slower", f"{mt / rs:.2f}×", "backends.json"])
    for entry in get(res.optional("mixed_teacher"), "datasets") or []:
        ratio = get(entry, "comparison", "onnxruntime_latency_ratio_mixed_over_reduced")
        rows.append([f"MixedTeacher vs reduced student latency, {get(entry, 'dataset', 'name')} input",
                     f"~{PAPER['mt_over_rs_latency']}× slower", f"{fmt(ratio)}×", "mixed_teacher.json"])
    if not rows:
        raise Skipped(res.reason("backends", "needs backends.json (stfpm, reduced_student, mixed_teacher)"))
    return table(["claim", "paper", "measured", "source"], rows)


def accuracy_claim(data: dict | None) -> list | None:
    """'similar texture accuracy': image AUROC of STFPM and the reduced student on the synthetic texture."""
    by = {r["model"]: get(r, "metrics", "image_auroc") for r in get(data, "results") or []}
    if by.get("stfpm") is None or by.get("reduced_student") is None:
        return None
    return ["reduced student vs STFPM texture accuracy (image AUROC, synthetic texture, equal budget)",
            "similar", f"RS {by['reduced_student']:.3f} vs STFPM {by['stfpm']:.3f}", "training_synthetic.json"]


def pipeline_section(res: Results) -> list[str]:
    data = res.load("daemon")
    if "frame_settings" not in data:  # one frame setting, one bare figure (before issue 17)
        return _pipeline_rows(data.get("runs", []), get(data, "bare_backend", "fps"))
    lines = []
    for name, setting in data["frame_settings"].items():
        lines += [f"Frames: {setting.get('frames')}; bare = {setting.get('bare')}.", ""]
        lines += _pipeline_rows(setting.get("runs", []), None)
        same = [r for r in setting.get("runs", []) if r.get("ratio_to_bare_same_settings") is not None]
        if same:  # bench_daemon after issue 17's warm-up round: bare also at the daemon's own spinning setting
            lines += ["", "Pipeline ÷ bare with the daemon's own backend settings (spinning "
                          f"{get(same[0], 'backend_settings', 'spinning')}), by cameras: "
                          + ", ".join(f"{r['cameras']}: {r['ratio_to_bare_same_settings']}" for r in same)]
        cpu_rows = [[r["cameras"], get(r, "cpu", "wall_s")] + [f"{k} {v}" for k, v in
                                                               get(r, "cpu", "percent_of_one_core").items()]
                    for r in setting.get("runs", []) if get(r, "cpu", "percent_of_one_core")]
        if cpu_rows:
            lines += ["", "CPU per role, % of one core over the run (v1/stats cpu_s):", ""]
            lines += [f"- {row[0]} camera(s), {row[1]} s: " + ", ".join(row[2:]) for row in cpu_rows]
        per_event = [r for r in setting.get("runs", []) if get(r, "cpu", "ms_per_event")]
        if per_event:
            lines += ["", "CPU ms per event per role (load-insensitive), and bare CPU per frame ÷ the daemon's "
                          "total per event:", ""]
            lines += [f"- {r['cameras']} camera(s): " + ", ".join(f"{k} {v}" for k, v in r["cpu"]["ms_per_event"].items())
                      + f"; bare ÷ daemon CPU {fmt(r.get('cpu_ratio_bare_to_daemon'), 3)}"
                      + (f", bare ÷ inference role CPU {fmt(r['inference_cpu_ratio'], 3)}"
                         if r.get("inference_cpu_ratio") is not None else "") for r in per_event]
        if setting.get("resize_ms_per_frame"):
            lines += ["", f"Resize ms per frame, by downscale method: {setting['resize_ms_per_frame']}"]
        mixed_runs = setting.get("mixed") or []
        for mixed in mixed_runs if isinstance(mixed_runs, list) else [mixed_runs]:
            lines += ["", f"Mixed run ({mixed['seconds']} s, live camera at {mixed['live_fps']} FPS + 3 offline): "
                          f"inspections {mixed['inspections']}, live share {mixed['live_share']}, live inspected "
                          f"fraction {mixed['live_inspected_fraction']}, live e2e p50 / p99 "
                          f"{get(mixed, 'live_e2e_ms', 'p50')} / {get(mixed, 'live_e2e_ms', 'p99')} ms"]
        lines.append("")
    return lines


def _pipeline_rows(runs: list[dict], bare_all) -> list[str]:
    rows, stage_rows = [], []
    for r in runs:
        bare = r.get("bare_fps", bare_all)
        drops = sum((r.get("drops") or {}).values())
        lost = r["frames"] - (r.get("events_received") or 0)
        rows.append([r["cameras"], r["frames"], r.get("events_received"), r["throughput_fps"], bare,
                     r.get("ratio_to_bare"), r.get("mean_batch"), drops, lost,
                     "yes" if drops == 0 and lost == 0 else "NO"])
        stage_rows.append([r["cameras"]] + [f"{fmt(v.get('p50'), 1)} / {fmt(v.get('p99'), 1)}"
                                            for v in r.get("stages_ms", {}).values()])
    stages = list((runs or [{}])[0].get("stages_ms", {}))
    lines = table(["cameras", "frames", "events", "pipeline fps", "bare fps", "pipeline ÷ bare", "mean batch",
                   "dropped", "frames without event", "0 drops"], rows)
    lines += ["", "Per-stage latency, p50 / p99 ms:", ""] + table(["cameras"] + stages, stage_rows)
    return lines


def live_section(res: Results) -> list[str]:
    data = res.load("live")
    rows = [[p["cameras"], p["fps_per_camera"], p["offered_fps"], p["frames_offered"], p["events_received"],
             p["dropped"], p["drop_fraction"], get(p, "e2e_ms", "p50"), get(p, "e2e_ms", "p99"),
             get(p, "e2e_ms", "max"), get(p, "e2e_ms", "n")] for p in data.get("points", [])]
    lines = [f"Bare backend capacity: {fmt(get(data, 'bare_backend', 'fps'))} frames/s at batch "
             f"{fmt(get(data, 'bare_backend', 'batch'))}.", ""]
    lines += table(["cameras", "FPS each", "offered FPS", "frames", "events", "dropped", "drop fraction",
                    "e2e p50 ms", "e2e p99 ms", "e2e max ms", "n"], rows)
    start = data.get("drops_start")
    lines += ["", f"Drops start at: {start['cameras']} cameras × {start['fps_per_camera']} FPS "
                  f"= {start['offered_fps']} FPS offered" if start else "Drops start at: no drops in the sweep"]
    return lines


def accuracy_section(res: Results) -> list[str]:
    rows = []
    for name in ("training_kolektorsdd", "training_synthetic"):
        data = res.optional(name)
        for r in get(data, "results") or []:
            rows.append(accuracy_row(name.removeprefix("training_"), r["model"], "fp32 (torch)", r.get("metrics"),
                                     None, get(r, "train", "seconds")))
    for entry in get(res.optional("mixed_teacher"), "datasets") or []:
        for r in entry.get("results", []):
            rows.append(accuracy_row(get(entry, "dataset", "name"), r["model"], "fp32 (torch)", r.get("metrics"),
                                     None, get(r, "train", "wall_s")))
    for entry in get(res.optional("ast"), "datasets") or []:
        m = get(entry, "ast", "score_sources", "student_teacher", "metrics")
        rows.append(accuracy_row(get(entry, "dataset", "name"), "ast", "fp32 (torch)", m, None,
                                 get(entry, "ast", "train", "wall_s")))
    rows += precision_accuracy_rows(res.optional("precision"))
    if not rows:
        raise Skipped(res.reason("accuracy", "no result files (training_*.json, precision.json)"))
    return table(["dataset", "model", "precision", "image AUROC", "pixel AUROC", "AUPRO", "Δ image AUROC vs fp32",
                  "train s"], rows)


def accuracy_row(dataset, model, precision, metrics, delta, seconds) -> list:
    metrics = metrics or {}
    three = lambda v: None if v is None else f"{v:.3f}"  # noqa: E731  (AUROC differences show at the 3rd digit)
    return [dataset, model, precision, three(metrics.get("image_auroc")), three(metrics.get("pixel_auroc")),
            three(metrics.get("aupro")), three(delta), seconds]


def precision_accuracy_rows(data: dict | None) -> list[list]:
    rows = []
    for run in get(data, "runs") or []:
        ref = get(run, "precisions", "fp32", "metrics", "image_auroc")
        for precision, per in run.get("precisions", {}).items():
            m = per.get("metrics") or {}
            delta = None if ref is None or m.get("image_auroc") is None else m["image_auroc"] - ref
            rows.append(accuracy_row(run.get("dataset"), run["model"], f"{precision} (onnxruntime)", m, delta, None))
        for precision, why in (run.get("skipped") or {}).items():
            rows.append([run.get("dataset"), run["model"], precision, f"skipped: {why}", "", "", "", ""])
    return rows


def cost_section(res: Results) -> list[str]:
    data = res.load("cost")
    rows = [[p["model"], p["backend"], f"{p['size']}×{p['size']}", p["batch"], p.get("gflops_per_image"),
             get(p, "latency_ms", "p50"), get(p, "latency_ms", "p99"), p.get("ms_per_image"), p.get("rss_growth_mib"),
             p.get("runs")] for p in data.get("points", [])]
    note = get(data, "settings", "memory") or "peak RSS growth"
    return [f"Memory: {note}.", ""] + table(["model", "backend", "input", "batch", "GFLOPs / image", "p50 ms",
                                             "p99 ms", "ms / image", "memory MiB", "runs"], rows)


def quality_section(res: Results) -> list[str]:
    """Per dataset: every model with its default recipe next to the kNN reference of the same run."""
    data = res.load("quality")
    three = lambda v: None if v is None else f"{v:.3f}"  # noqa: E731
    rows = []
    for entry in data.get("datasets", []):
        knn = next((get(r, "metrics", "image_auroc") for r in entry["results"] if r["model"] == "knn_reference"), None)
        for r in entry["results"]:
            m = r.get("metrics") or {}
            levels = ", ".join(f"{k} {v:.2f}" for k, v in (r.get("level_image_auroc") or {}).items() if v is not None)
            beats = None if r["model"] == "knn_reference" or knn is None else m.get("image_auroc", 0) >= knn
            size = "×".join(map(str, r.get("image_size", [])))
            label = f"{entry['dataset']} ({entry.get('kind', '')}{'' if entry.get('complete', True) else ', incomplete'})"
            rows.append([label, r["model"], size,
                         three(m.get("image_auroc")), three(m.get("image_auroc_with_likely")),
                         three(m.get("pixel_auroc")), three(m.get("aupro")), beats, versus_knn(r.get("vs_knn")),
                         levels or "–",
                         ",".join(map(str, get(r, "train", "epochs") or [])) or "–", get(r, "train", "stop_reason"),
                         get(r, "train", "seconds")])
    cap = data.get("time_cap_s")
    stopped = any(not entry.get("complete", True) for entry in data.get("datasets", []))
    note = (f"Default recipes, one run (`bench_quality.py`{' --quick' if data.get('quick') else ''}); "
            + (f"training capped at {fmt(cap)} s per run for every model and dataset; " if cap
               else "no time cap: every model trained to its own stop; ")
            + (f"{data['jobs']} datasets at a time; " if data.get("jobs", 1) > 1 else "")
            + ("an incomplete dataset lists the models measured before the run was stopped; " if stopped else "")
            + f"ELPV `likely_defect` {data.get('likely_defect', '')}.")
    return [note, ""] + table(["dataset", "model", "input", "image AUROC", "img AUROC incl. likely", "pixel AUROC",
                               "AUPRO", "≥ kNN", "− kNN (95 % paired bootstrap)", "per-level image AUROC", "epochs",
                               "stop", "train s"], rows)


def versus_knn(gap: dict | None) -> str:
    """A model's image AUROC minus the same run's kNN reference's and its 95 % interval (``bench_quality``)."""
    if not gap:
        return "–"
    low, high = gap["ci95"]
    return f"{gap['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"


def _meta_budget(data: dict) -> str:
    """The comparer's training budget: a step budget (current runs) or a wall-clock cap (older runs)."""
    steps = get(data, "settings", "step_budget")
    if steps is None:
        return f"at most {fmt(get(data, 'settings', 'time_cap_s'))} s"
    cut = [f["held_out"] for f in data.get("folds", []) if get(f, "train", "budget_reached") is False]
    return (f"at most {steps} steps (early stopping, patience {get(data, 'settings', 'patience')})"
            + (f"; cut short by the wall-clock safety cap: {', '.join(cut)}" if cut else ""))


def _meta_train_cell(fold: dict) -> str:
    """Steps and wall seconds of a fold's training (older runs: seconds only)."""
    steps, seconds = get(fold, "train", "steps"), get(fold, "train", "seconds")
    return f"{fmt(seconds)}" if steps is None else f"{steps} steps, {fmt(seconds)} s"


def meta_comparer_section(res: Results) -> list[str]:
    """Leave-one-domain-out rows at K = 1/5/20 beside kNN on the same K images, then the fraction sweep."""
    data = res.optional("meta_comparer")
    if data is None:
        return ["not run yet (`benchmarks/bench_meta_comparer.py`)."]
    three = lambda v: None if v is None else f"{v:.3f}"  # noqa: E731
    quality = {e["dataset"]: e for e in get(res.optional("quality"), "datasets", default=[]) or []}
    ks = set(get(data, "settings", "ks", default=[1, 5, 20]))
    rows, sweep = [], []
    for fold in data.get("folds", []):
        per_domain = ", ".join(f"{r['model']} {r['metrics']['image_auroc']:.3f}"
                               for r in get(quality.get(fold["held_out"]), "results", default=[]) or []
                               if get(r, "metrics", "image_auroc") is not None) or "–"
        n_good = fold["n_train_good"]
        for r in fold["results"]:
            mc, knn = r["meta_comparer"], r["knn_reference"]
            cells = [three(mc.get("image_auroc")), three(knn.get("image_auroc")),
                     three(mc.get("pixel_auroc")), three(knn.get("pixel_auroc"))]
            if r["k"] in ks or (r["k"] == n_good and any(k > n_good for k in ks)):
                rows.append([f"{fold['held_out']} ({fold['kind']})", r["k"], *cells,
                             _meta_train_cell(fold), per_domain])
            sweep.append([fold["held_out"], f"{100 * r['fraction']:.1f}%", r["k"], cells[0], cells[1]])
    note = (f"One run (`bench_meta_comparer.py`{' --quick' if data.get('quick') else ''}): a comparer per held-out "
            f"domain, trained on all the others (3 synthetic textures + the other real sets) for "
            f"{_meta_budget(data)}; at most {get(data, 'settings', 'max_test')} test images "
            f"per domain; input: bench_quality's size × {get(data, 'settings', 'scale', default=1)} for both methods; "
            f"kNN: {get(data, 'settings', 'knn')}. Per-domain models: `quality.json` (trained on the "
            f"full good set of that domain, another run).")
    return ([note, ""] + table(["held-out domain", "K", "meta img AUROC", "kNN img AUROC", "meta px AUROC",
                                "kNN px AUROC", "training", "per-domain models (img AUROC)"], rows)
            + ["", "AUC against the fraction of the target's normal images used as references (paper Fig. 3/4):", ""]
            + table(["held-out domain", "fraction", "K", "meta img AUROC", "kNN img AUROC"], sweep))


SECTIONS = [
    ("Suite steps", steps_section),
    ("1. Backends per model", backends_section),
    ("2. Paper claims checked", claims_section),
    ("3. Pipeline overhead (offline, synthetic cameras)", pipeline_section),
    ("4. Latency under live load", live_section),
    ("5. Accuracy", accuracy_section),
    ("6. Cost growth", cost_section),
    ("7. Detection quality on real data (default recipes vs kNN reference)", quality_section),
    ("8. Meta-comparer on unseen domains (leave one domain out, K references)", meta_comparer_section),
]


HEADER = ["# Benchmark summary", "",
          "Generated by `benchmarks/summary.py` from the JSON files beside it — do not edit by hand.", ""]


def is_summary(raw: bytes) -> bool:
    """Whether a file's first bytes are a SUMMARY.md this module wrote (its header): the only SUMMARY.md it
    replaces (:func:`inspector.outputs.claim_file`)."""
    return raw.startswith("\n".join(HEADER).encode("utf-8"))


def render(folder: Path) -> str:
    """The whole SUMMARY.md text for ``folder``."""
    res = Results(folder)
    lines = list(HEADER)
    body = []
    for title, section in SECTIONS:
        body += ["", f"## {title}", ""]
        try:
            body += section(res)
        except Skipped as why:
            body.append(f"skipped: {why}")
    # after the sections: the machine section names the files they read that another host measured
    return "\n".join(lines + machine_section(res) + body) + "\n"


def write_summary(folder: str | Path) -> Path:
    """Write ``folder/SUMMARY.md``; return its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"error: results folder {folder} does not exist")
    from inspector.errors import ConfigError
    from inspector.outputs import claim_file, write_whole

    path = folder / "SUMMARY.md"
    # a hand-written SUMMARY.md (notes, another tool's) was overwritten without a word: replace only our own
    claim_file(path, is_summary, ConfigError, command="benchmarks summary", option="--results",
               noun="benchmark summary")
    write_whole(path, render(folder).encode("utf-8"))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(RESULTS), help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    from inspector.errors import ConfigError

    try:
        print(f"wrote {write_summary(args.results)}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
