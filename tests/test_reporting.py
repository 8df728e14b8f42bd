"""The HTML report: sections present, every image inline and decodable, and it renders in Chromium."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser

import cv2
import numpy as np
import pytest

from inspector.evaluation import reports as reporting


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs, self.h2, self._in_h2 = [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.srcs.append(attrs.get("src", ""))
        if tag in ("link", "script") and (attrs.get("href") or attrs.get("src")):
            self.srcs.append(attrs.get("href") or attrs.get("src"))  # nothing external may be referenced
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        self._in_h2 = False if tag == "h2" else self._in_h2

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)


def parse(html_text: str) -> _Images:
    p = _Images()
    p.feed(html_text)
    return p


def assert_inline_pngs(srcs: list[str]) -> list[np.ndarray]:
    decoded = []
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        img = cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[0] > 8 and img.shape[1] > 8
        decoded.append(img)
    return decoded


def _heartbeats(n: int = 6) -> list[dict]:
    beats = []
    for i in range(1, n + 1):
        lat = {s: {"n": 10, "mean": 1.0 * i, "p50": 1.0 * i, "p90": 2.0 * i, "p99": 3.0 * i, "max": 4.0 * i}
               for s in ("preprocessed", "inferred", "total")}
        beats.append({"type": "stats", "uptime_s": 0.5 * i, "final": False,
                      "data": {"totals": {"inferred_frames": 10 * i}, "latency_ms": lat}})
    return beats


def test_latency_timeline_throughput_per_window():
    tl = reporting.latency_timeline(_heartbeats(4) + [{"final": True, "uptime_s": 9, "data": {}}])
    assert tl["t"] == [0.5, 1.0, 1.5, 2.0]  # the final (cumulative) stats are not a window
    assert tl["fps"] == pytest.approx([20.0, 20.0, 20.0, 20.0])
    assert tl["stages"]["inferred"]["p99"] == [3.0, 6.0, 9.0, 12.0]


def test_overlay_panels_split_at_threshold():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    maps = rng.random((6, 16, 16)).astype(np.float32)
    scores = [0.1, 0.9, 0.2, 0.8, 0.4, 0.6]
    labels = [0, 0, 1, 1, 1, 0]
    panels = reporting.overlay_panels(images, maps, scores, labels, [f"i{i}" for i in range(6)], threshold=0.5)
    assert [c.split(":")[1].split()[0] for c, _ in panels["detected"]] == ["i3"]
    assert [c.split(":")[1].split()[0] for c, _ in panels["missed"]] == ["i4", "i2"]  # nearest misses first
    assert [c.split(":")[1].split()[0] for c, _ in panels["false alarm"]] == ["i1", "i5"]
    png = cv2.imdecode(np.frombuffer(panels["detected"][0][1], np.uint8), cv2.IMREAD_COLOR)
    assert png.shape == (32, 64, 3)  # image | overlay


def _full_report(tmp_path):
    from inspector.evaluation.metrics import evaluate_scores
    from inspector.evaluation.plots import plot_roc, plot_score_histogram
    from inspector.artifacts.calibration_data import CalibrationData, GoodImages
    from inspector.artifacts.thresholds import ModelBinding, Thresholds, score_stats

    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(0, 1, 20), rng.normal(3, 1, 10)]
    labels = np.r_[np.zeros(20), np.ones(10)].astype(bool)
    metrics = evaluate_scores(scores, labels, ["good"] * 20 + ["hole"] * 5 + ["crack"] * 5)
    fpr, tpr = np.linspace(0, 1, 5), np.linspace(0, 1, 5) ** 0.5
    roc = plot_roc({"image": (fpr, tpr, metrics["image_auroc"])}, tmp_path / "roc.png")
    hist = plot_score_histogram(scores, labels, tmp_path / "hist.png", threshold=1.5)
    thresholds = Thresholds(model=ModelBinding("rs", "a" * 64), image_threshold=1.5, pixel_threshold=1.2,
                            rule="false_alarm_rate=0.01",
                            data=CalibrationData(good=GoodImages("validation split", "data/x", n=20)),
                            score_stats=score_stats(scores[:20]))
    images = rng.integers(0, 255, (30, 32, 32, 3), dtype=np.uint8)
    panels = reporting.overlay_panels(images, rng.random((30, 32, 32)), scores, labels,
                                      [f"img{i}" for i in range(30)], 1.5)
    final = {"latency_ms": {"total": {"n": 60, "mean": 5, "p50": 4, "p90": 6, "p99": 9, "max": 12}},
             "totals": {"inferred_frames": 60, "fps": 20.0}}
    events = [{"camera": "c", "frame_id": 3, "decision": "NG", "score": 2.0, "source": {"injected": "hole"},
               "regions": [{}], "latency_ms": {"total": 4.2}}]
    sections = [
        reporting.metrics_section(metrics),
        reporting.figures_section("Plots", [("ROC", roc), ("Histogram", hist.read_bytes())]),
        reporting.calibration_section(thresholds, ["target finer than 1/20"]),
        reporting.overlays_section(panels),
        reporting.daemon_section(final, _heartbeats(), {"injected_defects": 1, "defect_events_received": 1}, events),
    ]
    n_panels = sum(len(v) for v in panels.values())
    return reporting.write_report(tmp_path / "report.html", "test <report>", sections), n_panels


def test_report_has_sections_and_valid_inline_images(tmp_path):
    path, n_panels = _full_report(tmp_path)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "test &lt;report&gt;" in text  # escaped
    p = parse(text)
    assert p.h2 == ["Metrics", "Plots", "Calibration", "Defects detected and missed", "Daemon run"]
    images = assert_inline_pngs(p.srcs)
    assert 3 <= n_panels and len(images) == 2 + n_panels + 1  # ROC + histogram, overlays, latency chart
    for needle in ("image AUROC", "hole", "target finer than 1/20", "p99", "Defect events (1)", "injected_defects",
                   "a" * 64):
        assert needle in text


def test_evaluation_report_from_an_eval_folder(exported_model, tiny_dataset, tmp_path):
    from inspector.backends import load_backend
    from inspector.evaluation.evaluate import evaluate_dataset

    backend = load_backend(exported_model)

    def scorer(batch):
        r = backend.infer(batch)
        return r.scores.copy(), r.maps.copy()

    spec = backend.input_spec
    evaluate_dataset(scorer, tiny_dataset, (spec.height, spec.width), "square", tmp_path / "eval")
    path = reporting.evaluation_report(tmp_path / "eval")
    p = parse(path.read_text())
    assert p.h2 == ["Metrics", "Score distribution", "Plots", "Overlays"]
    assert len(assert_inline_pngs(p.srcs)) >= 2 + 4  # ROC, histogram, overlays
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n_images"] == 10


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    path, _ = _full_report(tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1280,2000", path.resolve().as_uri()],
                   check=True, timeout=120, capture_output=True)
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2000, 1280)
    header = img[:40, :600]
    assert header.mean() < 80  # the dark header bar was drawn (not a blank page)
    body = img[200:1900]
    assert body.std() > 20  # tables and inline images rendered, not an empty page
