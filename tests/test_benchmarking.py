"""`inspector bench` on ONNX Runtime backends: per-batch throughput, latency percentiles, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

import inspector.backends as backends
from inspector.backends.base import Backend, InferenceResult, InputSpec
from inspector.evaluation.bench import bench_batch, format_results, make_batch, parse_batches, percentiles, run_benchmark
from inspector.cli import main
from inspector.errors import ConfigError
from tiny_graphs import write_exported


def test_parse_batches():
    assert parse_batches("1,4,8") == [1, 4, 8]
    assert parse_batches(" 8, 1,8 ") == [8, 1]
    for bad in ("", "1,x", "0", "-2"):
        with pytest.raises(ConfigError, match="^batches: ") as err:
            parse_batches(bad)
        assert err.value.field == "batches"


def test_percentiles():
    stats = percentiles(list(range(1, 101)))
    assert stats["p50"] == 50 and stats["p99"] == 99  # nearest rank (inspector.percentile): real samples
    assert stats["max"] == 100 and stats["min"] == 1 and stats["mean"] == pytest.approx(50.5)
    assert percentiles([]) == {}


class _Fake(Backend):
    name = "fake"

    def __init__(self, max_batch=None):
        self.calls = []
        self._spec = InputSpec(8, 8, max_batch=max_batch)

    @property
    def input_spec(self):
        return self._spec

    def _run(self, batch):
        self.calls.append(batch.shape[0])
        n = batch.shape[0]
        return InferenceResult(np.zeros(n, np.float32), np.zeros((n, 1, 8, 8), np.float32),
                               {"h2d": 0.1, "compute": 1.0, "d2h": 0.2})


def test_bench_batch_warms_up_then_measures():
    fake = _Fake()
    result = bench_batch(fake, make_batch(fake.input_spec, 3), duration_s=0.05, warmup=4, min_iterations=7)
    assert fake.calls[:4] == [3, 3, 3, 3] and len(fake.calls) == 4 + result["iterations"]
    assert result["iterations"] >= 7 and result["batch"] == 3
    assert result["images_per_s"] == pytest.approx(3 * result["batches_per_s"])
    assert set(result["stages_ms"]) == {"h2d", "compute", "d2h"}
    assert result["stages_ms"]["compute"]["p99"] == pytest.approx(1.0)
    assert {"mean", "p50", "p90", "p99", "max", "min"} <= set(result["latency_ms"])


def test_make_batch_tiles_real_images():
    spec = InputSpec(4, 4)
    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    batch = make_batch(spec, 5, images)
    assert batch.shape == (5, 4, 4, 3) and np.array_equal(batch[2], images[0]) and batch.flags.c_contiguous
    random = make_batch(spec, 3)
    assert random.dtype == np.uint8 and np.array_equal(random, make_batch(spec, 3))  # seeded


def test_batch_above_the_engine_maximum_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(backends, "load_backend", lambda *a, **k: _Fake(max_batch=4))
    with pytest.raises(ConfigError, match=r"batch size\(s\) \[8\] exceed the model's maximum 4"):
        run_benchmark(tmp_path / "m.plan", [1, 8], duration_s=0.01)


def test_onnxruntime_benchmark_writes_json(tmp_path, tiny_dataset):
    model = write_exported(tmp_path / "export", height=64, width=64)
    out = tmp_path / "results" / "ort.json"
    report = run_benchmark(model, [1, 2], duration_s=0.2, warmup=2, data=tiny_dataset, json_path=out,
                           options={"threads": 1})
    data = json.loads(out.read_text())
    assert data["model"]["backend"] == "onnxruntime" and data["model"]["precision"] == "fp32"
    assert data["model"]["sha256"] and data["environment"]["onnxruntime"]
    assert [r["batch"] for r in data["results"]] == [1, 2]
    for r in data["results"]:
        assert r["iterations"] >= 5 and r["images_per_s"] > 0 and r["latency_ms"]["p99"] >= r["latency_ms"]["p50"]
        assert "compute" in r["stages_ms"]
    assert data["settings"]["inputs"].startswith("images from")
    table = format_results(report)
    assert "img/s" in table and "compute p50" in table


def test_cli_bench(tmp_path, capsys):
    model = write_exported(tmp_path / "export", fp16=True)
    out = tmp_path / "bench.json"
    assert main(["bench", str(model.with_name("tiny.fp16.onnx")), "--batch", "1,3", "--duration", "0.1",
                 "--warmup", "1", "--json", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "(onnxruntime, fp16)" in printed and f"wrote {out}" in printed
    assert [r["batch"] for r in json.loads(out.read_text())["results"]] == [1, 3]
    assert main(["bench", str(model), "--batch", "0"]) == 2


@pytest.mark.parametrize("command", ["bench", "verify", "calibrate"])
def test_a_folder_of_only_unreadable_images_is_one_line_naming_it(tmp_path, capsys, command):
    """``bench --data`` of images none of which decodes timed random frames and reported them as "images from
    DATA" (exit 0); verify said "no reference image could be read" without naming the folder. Each command that
    reads a folder of images now says, naming it, that none could be read (datasets.none_readable)."""
    from tiny_graphs import write_exported

    model = str(write_exported(tmp_path / "export", fp16=False))
    broken = tmp_path / "parts"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)) * (i + 1))
    argv = {"bench": ["bench", model, "--data", str(broken), "--duration", "0.1", "--batch", "1"],
            "verify": ["verify", model, "--reference", model, "--data", str(broken)],
            "calibrate": ["calibrate", model, "--good-dir", str(broken), "--out", str(tmp_path / "c.yaml")]}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {broken}: none of the 3 ") and \
        err.endswith("could be read (see the warnings above)"), err
