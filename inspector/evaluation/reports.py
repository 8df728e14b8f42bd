"""Self-contained HTML reports: one file, every image inline as a base64 data URI.

A report is a list of :class:`Section` objects rendered by :func:`write_report`.
Builders for the usual sections:

* :func:`metrics_section` — the metrics table of :func:`inspector.evaluation.metrics.evaluate_scores`;
* :func:`figures_section` — PNG files or bytes (ROC, score histogram, …);
* :func:`overlay_panels` + :func:`figures_section` — heat-map overlays of detected and missed defects
  and false alarms at a given threshold;
* :func:`calibration_section` — a calibration file (thresholds, rule, binding, score statistics);
* :func:`daemon_section` — a daemon run: events received vs injected, per-stage latency p50/p99 over
  time and throughput (from the ``v1/stats`` heartbeats), the final latency table.

:func:`evaluation_report` builds a report from an ``inspector evaluate`` output folder.
matplotlib (the ``train`` extra) is imported only to draw the daemon charts.
"""

from __future__ import annotations

import base64
import html
import json
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from inspector import __version__
from inspector.outputs import write_whole

STAGES = ("queued", "preprocessed", "batched", "inferred", "postprocessed", "published", "total")


@dataclass
class Section:
    title: str
    body: str  # HTML
    anchor: str = ""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png: bytes | str | Path, mime: str = "image/png") -> str:
    """A ``data:`` URI for PNG bytes or a PNG file."""
    data = png if isinstance(png, (bytes, bytearray)) else Path(png).read_bytes()
    return f"data:{mime};base64,{base64.b64encode(bytes(data)).decode('ascii')}"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:
            return "—"
        return f"{value:.{digits}f}" if abs(value) >= 10 ** -digits or value == 0 else f"{value:.3g}"
    return esc(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _fmt(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
    """A table cell that is already HTML."""


def _kv_cell(value: Any) -> str:
    if isinstance(value, _Raw):
        return value
    if isinstance(value, float) and value == value:
        return f"{value:.6g}"  # thresholds differ in the 4th–6th digit between precisions
    return _fmt(value)


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{_kv_cell(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


# ---------------------------------------------------------------------------------------- sections
def metrics_section(metrics: dict, title: str = "Metrics", note: str = "") -> Section:
    from inspector.evaluation.metrics import mask_coverage

    rows = [("all", metrics.get("image_auroc"), metrics.get("pixel_auroc"), metrics.get("aupro"),
             metrics.get("n_images"))]
    for name, m in sorted((metrics.get("per_defect_type") or {}).items()):
        rows.append((name, m.get("image_auroc"), m.get("pixel_auroc"), m.get("aupro"), m.get("n")))
    body = table(["", "image AUROC", "pixel AUROC", "AUPRO (FPR ≤ 0.3)", "images"], rows, "metrics")
    f1, thr = metrics.get("f1_max"), metrics.get("threshold_f1")
    counts = f"{metrics.get('n_good', '—')} / {metrics.get('n_defect', '—')}"
    extra = [("good / defective test images", _Raw(esc(counts))),
             ("F1-max (image)", f1), ("at threshold", thr)]
    coverage = mask_coverage(metrics)
    if coverage:  # the row "all" of the pixel metrics may cover some defect types only
        extra.append(("pixel metrics", _Raw(esc(coverage))))
    if metrics.get("skipped_images"):
        extra.append(("skipped images (unreadable, or refused as overlays)", len(metrics["skipped_images"])))
    if metrics.get("left_out"):  # ambiguous labels (ELPV's likely_defect): their own rows only, as on the console
        left = ", ".join(f"{name} {n}" for name, n in metrics["left_out"].items())
        extra += [("left out of 'all' (ambiguous label)", _Raw(esc(left))),
                  ("image AUROC with them as defects", metrics.get("image_auroc_with_left_out"))]
    if any((metrics.get("fitted_images") or {}).values()):
        extra.append(("test images the model was fitted on", sum(metrics["fitted_images"].values())))
    body += key_values(extra)
    # the lines evaluate warned of (test images unlike the training images): the console is gone by then
    body += "".join(f'<p class="warn">⚠ {esc(w)}</p>' for w in metrics.get("warnings") or [])
    if note:
        body = f"<p>{esc(note)}</p>" + body
    return Section(title, body, "metrics")


def diagnostics_section(metrics: dict, title: str = "Score distribution") -> Section | None:
    """Good vs defective image scores, their overlap and the per-level image AUROC
    (:mod:`inspector.evaluation.diagnostics`); None for metrics written before they existed."""
    dist = metrics.get("score_distribution")
    if not dist:
        return None
    keys = ("count", "mean", "std", "min", "p5", "p50", "p95", "max")
    rows = [(name, *[(dist[name] or {}).get(k) for k in keys]) for name in ("good", "defect") if dist.get(name)]
    body = table(["images", *keys], rows, "metrics")
    ov = dist.get("overlap")
    if ov:
        body += key_values([("defective below the good p95", ov["defect_below_good_p95"]),
                            ("defective at or below the good max", ov["defect_below_good_max"]),
                            ("good above the defective p5", ov["good_above_defect_p5"]),
                            ("separation (Cohen's d)", ov["separation"])])
    elif dist.get("good"):
        body = ("<p>No defective test images: only the spread of good-image scores is known. A wide spread "
                "means a weak model; a narrow one, a threshold question.</p>" + body)
    levels = metrics.get("per_level") or {}
    if levels:
        body += "<p>Image AUROC of each level's map alone (which levels carry the signal):</p>"
        body += table(["level", "image AUROC"], list(levels.items()), "metrics")
    return Section(title, body, "score-distribution")


def figures_section(title: str, figures: Sequence[tuple[str, bytes | str | Path]], note: str = "",
                    anchor: str = "", width: int | None = None) -> Section:
    """Images (PNG bytes or files) with captions, laid out in a grid."""
    style = f' style="max-width:{width}px"' if width else ""
    cells = "".join(f'<figure><img src="{data_uri(img)}" alt="{esc(cap)}"{style}><figcaption>{esc(cap)}</figcaption>'
                    "</figure>" for cap, img in figures)
    body = (f"<p>{esc(note)}</p>" if note else "") + (f'<div class="grid">{cells}</div>' if figures
                                                     else "<p><em>nothing to show</em></p>")
    return Section(title, body, anchor or title.lower().replace(" ", "-"))


def overlay_panels(images: np.ndarray, maps: np.ndarray, scores, labels, names: Sequence[str], threshold: float,
                   k: int = 4) -> dict[str, list[tuple[str, bytes]]]:
    """PNG panels (image | heat-map overlay) of defects detected and missed at ``threshold`` and false alarms.

    Detected: the ``k`` highest-scored defects; missed: the ``k`` highest-scored defects below the
    threshold (the near misses); false alarms: the ``k`` highest-scored good images at or above it.
    One colour scale for all panels (the range of all maps).
    """
    from inspector.visual import encode_png, heatmap_overlay

    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).astype(bool).reshape(-1)
    flagged = scores >= threshold
    vmin, vmax = float(np.min(maps)), float(np.max(maps))
    groups = {
        "detected": np.flatnonzero(labels & flagged)[np.argsort(-scores[labels & flagged], kind="stable")][:k],
        "missed": np.flatnonzero(labels & ~flagged)[np.argsort(-scores[labels & ~flagged], kind="stable")][:k],
        "false alarm": np.flatnonzero(~labels & flagged)[np.argsort(-scores[~labels & flagged], kind="stable")][:k],
    }
    out: dict[str, list[tuple[str, bytes]]] = {}
    for kind, idx in groups.items():
        out[kind] = [(f"{kind}: {names[i]} score {scores[i]:.5g} (threshold {threshold:.5g})",
                      encode_png(np.hstack([images[i], heatmap_overlay(images[i], maps[i], vmin, vmax)])))
                     for i in idx]
    return out


def overlays_section(panels: dict[str, list[tuple[str, bytes]]], counts: dict[str, int] | None = None,
                     title: str = "Defects detected and missed") -> Section:
    parts = []
    for kind, figs in panels.items():
        n = f" ({counts[kind]} in all)" if counts and kind in counts else ""
        cells = "".join(f'<figure><img class="panel" src="{data_uri(png)}" alt="{esc(cap)}">'
                        f'<figcaption>{esc(cap)}</figcaption>'
                        "</figure>" for cap, png in figs)
        parts.append(f"<h3>{esc(kind.capitalize())}{esc(n)}</h3>"
                     + (f'<div class="grid">{cells}</div>' if figs else "<p><em>none</em></p>"))
    note = "<p>Each panel: the image and its anomaly map as a heat-map overlay (one colour scale for all).</p>"
    return Section(title, note + "".join(parts), "overlays")


def calibration_section(thresholds, warnings: Sequence[str] = (), title: str = "Calibration",
                        extra: Sequence[tuple[str, Any]] = ()) -> Section:
    """A :class:`inspector.artifacts.thresholds.Thresholds` as tables (``warnings``: else the file's own)."""
    from inspector.config import to_dict

    t, model, data = thresholds, thresholds.model, thresholds.data
    rows = [("model file", model.name), ("precision / backend", f"{model.precision} / {model.backend}"),
            ("sha256", _Raw(f"<code>{esc(model.sha256)}</code>")), ("rule", t.rule),
            ("image threshold", t.image_threshold), ("pixel threshold", t.pixel_threshold),
            ("uncertain band", list(t.uncertain_band) if t.uncertain_band else "none")]
    if data.good is not None:
        rows.append(("good images scored", f"{data.good.n} from {data.good.source} ({data.good.root})"))
    if data.defects is not None:
        rows.append(("defective images scored", data.defects.n))
    for key, rule in (("image rule", data.image_rule), ("pixel rule", data.pixel_rule)):
        if rule is not None:
            shown = {k: v for k, v in to_dict(rule).items() if k != "rule_text"}
            rows.append((key, _Raw(f"{esc(rule.rule_text or '')}<br><small>"
                                   f"{esc(json.dumps(_rounded(shown), default=str))}</small>")))
    rows += list(extra)
    body = key_values(rows)
    if t.score_stats is not None:
        stats = to_dict(t.score_stats)
        body += "<h3>Good-image scores</h3>" + table(list(stats), [list(stats.values())])
    warnings = list(warnings) or list(data.warnings or ())
    if warnings:
        body += "".join(f'<p class="warn">⚠ {esc(w)}</p>' for w in warnings)
    return Section(title, body, "calibration")


def _rounded(obj: Any, digits: int = 6) -> Any:
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    return obj


# ---------------------------------------------------------------------------------------- daemon
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def latency_timeline(stats: Sequence[dict]) -> dict[str, Any]:
    """Per-window stage p50/p99 and throughput from ``v1/stats`` heartbeats (header dicts, in order).

    Each heartbeat's ``data.latency_ms`` holds the window since the previous one; throughput is the
    growth of ``totals.inferred_frames`` over the growth of ``uptime_s``.
    """
    heartbeats = [s for s in stats if not s.get("final")]
    t, fps, per_stage = [], [], {}
    last_n, last_t = 0, 0.0
    for hb in heartbeats:
        up = float(hb.get("uptime_s", 0.0))
        data = hb.get("data") or {}
        n = int((data.get("totals") or {}).get("inferred_frames", 0))
        t.append(up)
        fps.append((n - last_n) / (up - last_t) if up > last_t else 0.0)
        last_n, last_t = n, up
        for stage, summary in (data.get("latency_ms") or {}).items():
            if summary.get("n"):
                entry = per_stage.setdefault(stage, {"t": [], "p50": [], "p99": []})
                entry["t"].append(up)
                entry["p50"].append(summary["p50"])
                entry["p99"].append(summary["p99"])
    return {"t": t, "fps": fps, "stages": per_stage}


def latency_chart(timeline: dict[str, Any]) -> bytes:
    """PNG: per-stage p50 (solid) and p99 (dashed) over time (log scale), and throughput below."""
    fig = _figure(9.0, 6.5)
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    colors = {}
    for i, stage in enumerate([s for s in STAGES if s in timeline["stages"]]
                              + [s for s in timeline["stages"] if s not in STAGES]):
        e = timeline["stages"][stage]
        line, = ax.plot(e["t"], e["p50"], "-o", markersize=3, linewidth=1.5, label=f"{stage} p50",
                        color=f"C{i % 10}")
        colors[stage] = line.get_color()
        ax.plot(e["t"], e["p99"], "--", linewidth=1, color=colors[stage], label=f"{stage} p99")
    ax.set_yscale("log")
    ax.set(ylabel="latency per window (ms, log)", title="Per-stage latency: p50 (solid) and p99 (dashed)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax2.plot(timeline["t"], timeline["fps"], "-o", markersize=3, color="black")
    ax2.set(xlabel="daemon uptime (s)", ylabel="frames / s", title="Throughput (inferred frames per second)")
    ax2.grid(True, alpha=0.3)
    return _png(fig)


def daemon_section(final_stats: dict, heartbeats: Sequence[dict], counts: dict[str, Any] | None = None,
                   events: Sequence[dict] = (), title: str = "Daemon run") -> Section:
    """Events received vs injected (``counts``), latency/throughput charts, final latency table, events."""
    parts = []
    if counts:
        parts.append(key_values(list(counts.items())))
    timeline = latency_timeline(heartbeats)
    if timeline["stages"]:
        parts.append(f'<figure><img src="{data_uri(latency_chart(timeline))}" alt="latency and throughput">'
                     f"<figcaption>{len(timeline['t'])} heartbeats of v1/stats</figcaption></figure>")
    latency = (final_stats or {}).get("latency_ms") or {}
    if latency:
        rows = [(stage, s.get("n"), s.get("mean"), s.get("p50"), s.get("p90"), s.get("p99"), s.get("max"))
                for stage, s in latency.items() if s.get("n")]
        parts.append("<h3>Latency over the whole run (ms)</h3>"
                     + table(["stage", "n", "mean", "p50", "p90", "p99", "max"], rows, "latency"))
    totals = (final_stats or {}).get("totals") or {}
    if totals:
        keep = [(k, v) for k, v in sorted(totals.items()) if isinstance(v, (int, float))]
        parts.append("<h3>Counters</h3>" + key_values(keep))
    drift = (final_stats or {}).get("drift") or {}
    if drift:
        rows = [(cam, d.get("n"), d.get("mean"), d.get("shift_std"), d.get("above_p99"), d.get("flagged"))
                for cam, d in drift.items()]
        parts.append("<h3>Normal-score drift (OK frames vs calibration)</h3>"
                     + table(["camera", "n", "mean", "shift (σ)", "share above p99", "flagged"], rows))
    if events:
        rows = [(e.get("camera"), e.get("frame_id"), e.get("decision"), e.get("score"),
                 (e.get("source") or {}).get("injected") or "—", len(e.get("regions") or []),
                 (e.get("latency_ms") or {}).get("total")) for e in events]
        parts.append(f"<h3>Defect events ({len(events)})</h3>"
                     + table(["camera", "frame", "decision", "score", "injected", "regions", "latency ms"], rows,
                             "events"))
    return Section(title, "".join(parts) or "<p><em>no data</em></p>", "daemon")


# ---------------------------------------------------------------------------------------- rendering
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
header{background:#1d2733;color:#fff;padding:18px 32px}header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;color:#b8c4d0;font-size:13px}
nav{padding:8px 32px;background:#e3e8ee;font-size:13px}nav a{margin-right:16px;color:#1d4f91}
main{padding:8px 32px 40px}section{background:#fff;border-radius:8px;padding:12px 20px;margin:16px 0;
box-shadow:0 1px 3px rgba(0,0,0,.08)}h2{margin:6px 0 12px;font-size:19px}h3{font-size:15px;margin:16px 0 8px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #d5dbe2;padding:4px 10px;
text-align:right}th{background:#eef1f5}td:first-child,th:first-child{text-align:left}
table.kv th{text-align:left;width:240px}table.kv td{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figure img{max-width:100%;border:1px solid #d5dbe2}
img.panel{height:192px;max-width:none;image-rendering:pixelated}
figcaption{font-size:12px;color:#55606c;max-width:420px}.warn{color:#8a5300;background:#fff4e0;padding:6px 10px;
border-radius:4px}.ok{color:#1b6e2a}.bad{color:#a31a1a}code{font-size:11px}
"""


def render(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = f"inspector {__version__} · {platform.node()} · Python {platform.python_version()} · {stamp}"
    nav = "".join(f'<a href="#{esc(s.anchor or i)}">{esc(s.title)}</a>' for i, s in enumerate(sections))
    body = "".join(f'<section id="{esc(s.anchor or i)}"><h2>{esc(s.title)}</h2>{s.body}</section>'
                   for i, s in enumerate(sections))
    sub = f"<p>{esc(subtitle)}</p>" if subtitle else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
            f"<body><header><h1>{esc(title)}</h1>{sub}<p>{esc(meta)}</p></header><nav>{nav}</nav>"
            f"<main>{body}</main></body></html>\n")


def write_report(path: str | Path, title: str, sections: Sequence[Section], subtitle: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, render(title, sections, subtitle).encode("utf-8"))  # never half a report
    return path


def evaluation_report(eval_dir: str | Path, out: str | Path | None = None, title: str = "Evaluation",
                      subtitle: str | None = None) -> Path:
    """``report.html`` for an ``inspector evaluate`` folder (metrics.json, roc.png, score_histogram.png,
    overlays/*.png); returns its path. ``subtitle``: the folder as shown (default ``eval_dir``; evaluate writes
    the report in a staging folder before moving it in)."""
    eval_dir = Path(eval_dir)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    sections = [metrics_section(metrics)]
    diagnostics = diagnostics_section(metrics)
    if diagnostics is not None:
        sections.append(diagnostics)
    plots = [(name, eval_dir / f) for name, f in (("ROC", "roc.png"), ("Score histogram", "score_histogram.png"))
             if (eval_dir / f).is_file()]
    sections.append(figures_section("Plots", plots, anchor="plots"))
    overlays = sorted((eval_dir / "overlays").glob("*.png")) if (eval_dir / "overlays").is_dir() else []
    groups = {"missed": [], "false_alarm": [], "top_defect": []}
    for p in overlays:
        for kind in groups:
            if p.name.startswith(kind + "_"):
                groups[kind].append((p.stem, p))
    figs = [f for kind in ("top_defect", "missed", "false_alarm") for f in groups[kind]]
    sections.append(figures_section("Overlays", figs, anchor="overlays",
                                    note="Best-caught defect, lowest-scored defects (missed first at any "
                                         "threshold) and highest-scored good images, with heat-map overlays."))
    return write_report(out or eval_dir / "report.html", title, sections,
                        subtitle=str(eval_dir) if subtitle is None else subtitle)
