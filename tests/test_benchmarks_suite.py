"""The benchmark suite's summary generation (from hand-made result JSONs) and the FLOP counter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import summary  # noqa: E402

MACHINE = {"cpu": "Test CPU 9000", "cores": 2, "python": "3.11.7", "versions": {"onnxruntime": "1.31.1"}}


def write(folder: Path, name: str, payload: dict) -> None:
    (folder / f"{name}.json").write_text(json.dumps({"benchmark": name, "machine": MACHINE, **payload}))


def backend_entry(torch_ips: float, ort_ips: float, ort_p50: float) -> dict:
    lat = lambda p50: {"n": 10, "p50": p50, "p90": p50 * 1.1, "p99": p50 * 1.5, "max": p50 * 2}  # noqa: E731
    return {"batches": {"1": {"torch": {"iterations": 10, "images_per_s": torch_ips, "latency_ms": lat(50.0)},
                              "onnxruntime": {"iterations": 12, "images_per_s": ort_ips, "latency_ms": lat(ort_p50)}}}}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    write(tmp_path, "suite", {"quick": True, "started": "t0", "finished": "t1", "machine": {**MACHINE, "gpu": None},
                              "steps": {"backends": {"status": "ok", "seconds": 3.0},
                                        "live": {"status": "skipped", "reason": "bench_live.py not found",
                                                 "seconds": 0.0}}})
    write(tmp_path, "backends", {"settings": {"size": [256, 256]}, "results": {"stfpm": backend_entry(11.0, 22.0, 40.0),
                                             "reduced_student": backend_entry(15.0, 31.0, 30.0),
                                             "mixed_teacher": backend_entry(4.0, 9.0, 91.0)}})
    write(tmp_path, "daemon", {"bare_backend": {"fps": 12.16}, "runs": [
        {"cameras": 2, "frames": 400, "events_received": 400, "throughput_fps": 10.75, "ratio_to_bare": 0.884,
         "mean_batch": 8.0, "drops": {}, "stages_ms": {"inferred": {"p50": 1382.0, "p99": 2127.6}}}]})
    write(tmp_path, "cost", {"settings": {"memory": "peak RSS growth"}, "points": [
        {"model": "reduced_student", "backend": "onnxruntime", "size": 384, "batch": 1, "gflops_per_image": 1.4389,
         "latency_ms": {"p50": 123.45, "p99": 150.0}, "ms_per_image": 123.45, "rss_growth_mib": 77.5, "runs": 5}]})
    write(tmp_path, "precision", {"runs": [{"dataset": "synthetic", "model": "reduced_student", "precisions": {
        "fp32": {"metrics": {"image_auroc": 0.9, "pixel_auroc": 0.95, "aupro": 0.8}, "speed": {}},
        "int8": {"metrics": {"image_auroc": 0.85, "pixel_auroc": 0.94, "aupro": 0.7}, "image_size": [128, 128],
                 "speed": {"1": {"iterations": 7, "images_per_s": 44.4, "latency_ms": {"p50": 22.5, "p99": 30.0}}}}},
        "skipped": {"fp16": "no GPU"}}]})
    summary.write_summary(tmp_path)
    return tmp_path


def section(text: str, title: str) -> str:
    """The body of the section whose heading starts with ``title``."""
    body = text.split(f"## {title}", 1)[1].split("\n", 1)[1]  # drop the rest of the heading line
    return body.split("\n## ", 1)[0]


def test_machine_at_top(results: Path) -> None:
    text = (results / "SUMMARY.md").read_text()
    assert text.index("Test CPU 9000 (2 cores)") < text.index("## 1.")
    assert "GPU: none" in text and "onnxruntime 1.31.1" in text


def test_tables_hold_the_numbers(results: Path) -> None:
    text = (results / "SUMMARY.md").read_text()
    backends = section(text, "1.")
    assert "| reduced_student | 256x256 | onnxruntime | fp32 | 1 | 31.00 | 30.00 | 45.00 | 12 |" in backends
    assert "| reduced_student | 128x128 | onnxruntime | int8 | 1 | 44.40 | 22.50 | 30.00 | 7 |" in backends
    claims = section(text, "2.")
    assert "1.33×" in claims  # stfpm 40 ms / reduced student 30 ms
    assert "3.03×" in claims  # mixed teacher 91 ms / reduced student 30 ms
    pipeline = section(text, "3.")
    assert "| 2 | 400 | 400 | 10.75 | 12.16 | 0.88 | 8.00 | 0 | 0 | yes |" in pipeline
    assert "1382.0 / 2127.6" in pipeline
    accuracy = section(text, "5.")
    assert "| synthetic | reduced_student | int8 (onnxruntime) | 0.850 | 0.940 | 0.700 | -0.050 |" in accuracy
    assert "skipped: no GPU" in accuracy
    cost = section(text, "6.")
    assert "| reduced_student | onnxruntime | 384×384 | 1 | 1.44 | 123.45 | 150.00 | 123.45 | 77.50 | 5 |" in cost


def test_missing_sections_say_skipped(results: Path) -> None:
    text = (results / "SUMMARY.md").read_text()
    assert section(text, "4.").strip() == "skipped: bench_live.py not found"  # reason from suite.json
    (results / "cost.json").unlink()
    text = summary.render(results)
    assert section(text, "6.").strip() == "skipped: no result file (cost.json)"


def test_empty_folder_renders(tmp_path: Path) -> None:
    text = summary.render(tmp_path)
    assert text.count("skipped:") == 8 and "## Machine" in text


def test_quality_table_puts_each_model_beside_the_knn_reference(tmp_path: Path) -> None:
    row = lambda model, auroc, **extra: {"model": model, "image_size": [416, 160],  # noqa: E731
                                         "metrics": {"image_auroc": auroc, "pixel_auroc": None, "aupro": None},
                                         **extra}
    write(tmp_path, "quality", {"time_cap_s": 180.0, "likely_defect": "excluded", "datasets": [
        {"dataset": "elpv/mono", "kind": "real", "complete": False, "results": [
            row("knn_reference", 0.80),
            row("stfpm", 0.85, level_image_auroc={"blocks.2": 0.7, "blocks.3": 0.9},
                train={"epochs": [12], "stop_reason": "student: patience", "seconds": 99.0},
                vs_knn={"difference": 0.05, "ci95": [-0.0123, 0.11], "share_above_zero": 0.9, "rounds": 2000}),
            row("ast", 0.75, train={"epochs": [3, 4], "stop_reason": "time cap", "seconds": 180.0})]}]})
    text = section(summary.render(tmp_path), "7.")
    lines = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| elpv")}
    assert "incomplete" in lines["stfpm"]
    assert "| 0.850 |" in lines["stfpm"] and "| yes |" in lines["stfpm"] and "blocks.2 0.70, blocks.3 0.90" in lines["stfpm"]
    assert "| +0.050 [-0.012, +0.110] |" in lines["stfpm"]
    assert "| no |" in lines["ast"] and "| 3,4 |" in lines["ast"]
    assert "| – |" in lines["knn_reference"]


def test_flop_counter_matches_hand_count() -> None:
    torch = pytest.importorskip("torch")
    from bench_cost import count_flops

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),              # 8×16×16 outputs × 3·3·3 MACs
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=4),     # 8×16×16 outputs × (8/4)·3·3 MACs
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),                             # 5 outputs × 8 MACs
    )
    macs = 8 * 16 * 16 * 27 + 8 * 16 * 16 * 18 + 5 * 8
    assert count_flops(net, torch.zeros(1, 3, 16, 16)) == 2 * macs
    assert count_flops(net, torch.zeros(2, 3, 16, 16)) == 2 * 2 * macs  # hooks are removed after each count


def test_live_point_counts_per_camera_drops() -> None:
    from bench_live import drops_start, summarize_point

    stats = {"totals": {"mean_batch": 2.5, "status_dropped": 0},
             "cameras": {"cam0": {"dropped_live": 3, "captured": 7}, "cam1": {"dropped_live": 1}}}
    point = summarize_point(2, 10.0, 10, 0, [5.0, 7.0, 9.0], stats)
    assert point["dropped"] == point["dropped_live"] == 4 and point["drop_fraction"] == 0.2
    assert point["offered_fps"] == 20.0 and point["e2e_ms"]["p50"] == 7.0
    quiet = summarize_point(2, 5.0, 10, 0, [1.0], {"totals": {}, "cameras": {}})
    assert drops_start([point, quiet], 0.0)["offered_fps"] == 20.0
    assert drops_start([quiet], 0.0) is None


def test_meta_comparer_rows_sit_beside_knn_and_the_per_domain_models(tmp_path: Path) -> None:
    metrics = lambda img, px: {"image_auroc": img, "pixel_auroc": px}  # noqa: E731
    fold = {"held_out": "kolektorsdd", "kind": "real", "n_train_good": 223, "train": {"seconds": 150.0},
            "results": [{"k": k, "fraction": k / 223, "meta_comparer": metrics(0.5 + k / 100, 0.8),
                         "knn_reference": metrics(0.6, 0.9)} for k in (1, 2, 5, 20)]}
    write(tmp_path, "meta_comparer", {"settings": {"ks": [1, 5, 20], "time_cap_s": 150, "max_test": 240,
                                                   "knn": "same K"}, "folds": [fold]})
    write(tmp_path, "quality", {"datasets": [{"dataset": "kolektorsdd", "results": [
        {"model": "reduced_student", "metrics": {"image_auroc": 0.85}}]}]})
    text = section(summary.render(tmp_path), "8.")
    main_rows = [line for line in text.split("AUC against")[0].splitlines() if line.startswith("| kolektorsdd")]
    assert [line.split("|")[2].strip() for line in main_rows] == ["1", "5", "20"]  # K = 2 is in the sweep only
    assert "| 0.700 | 0.600 |" in main_rows[2] and "reduced_student 0.850" in main_rows[2]
    sweep = [line for line in text.split("AUC against")[1].splitlines() if line.startswith("| kolektorsdd")]
    assert len(sweep) == 4 and "| 0.9% | 2 |" in sweep[1]


def test_the_machine_section_names_files_measured_on_another_host(tmp_path):
    write(tmp_path, "backends", {"results": {}})
    other = {**MACHINE, "cpu": "Other CPU 1"}
    (tmp_path / "quality.json").write_text(json.dumps({"benchmark": "quality", "machine": other, "datasets": []}))
    (tmp_path / "daemon.json").write_text(json.dumps({"benchmark": "daemon", "machine": other, "runs": []}))
    lines = summary.render(tmp_path).splitlines()
    assert "- CPU: Test CPU 9000 (2 cores)" in lines
    assert "- Measured on Other CPU 1 instead: daemon.json, quality.json" in lines


# ---------------------------------------------------------------- the suite's fixed-name outputs (README "Outputs")
def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent)}
    return subprocess.run([sys.executable, "-m", "inspector", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("name", ["suite.json", "SUMMARY.md", "cost.json"])
def test_bench_suite_keeps_a_users_file_at_its_names_and_refuses_before_any_work(tmp_path, name):
    """``inspector bench --suite --out DIR`` overwrote DIR's suite.json / SUMMARY.md / <step>.json, whoever wrote
    them; now one line, exit 2, before any step (nothing else appears in DIR) and the file kept."""
    mine = b'{"my": "notes"}\n' if name.endswith(".json") else b"# My summary\n"
    (tmp_path / name).write_bytes(mine)
    proc = run_cli("bench", "--suite", "--quick", "--out", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / name}: exists and is not a"), lines
    assert "replaces only its own files: --out another name, or move it" in lines[0]
    assert "===" not in proc.stdout  # no step began
    assert (tmp_path / name).read_bytes() == mine and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_the_suite_replaces_its_own_earlier_outputs_and_says_so(tmp_path, capsys):
    import run_all

    assert run_all.main(["--steps", "tensorrt", "--out", str(tmp_path)]) == 0  # skipped at once: no work
    first = json.loads((tmp_path / "suite.json").read_text())
    assert first["benchmark"] == "suite" and summary.is_summary((tmp_path / "SUMMARY.md").read_bytes())
    capsys.readouterr()
    assert run_all.main(["--steps", "tensorrt", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"replaced the earlier suite's suite.json, SUMMARY.md in {tmp_path}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SUMMARY.md", "suite.json"]  # no temporaries left


def test_a_step_result_of_another_benchmark_is_not_the_suites_own(tmp_path, capsys):
    """Known by content: a cost.json whose ``benchmark`` is another name (a renamed daemon result) is kept."""
    import run_all

    (tmp_path / "cost.json").write_text(json.dumps({"benchmark": "daemon", "runs": []}))
    assert run_all.main(["--steps", "cost", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a 'cost' benchmark result written by 'inspector bench --suite'" in err[0]
    assert json.loads((tmp_path / "cost.json").read_text())["benchmark"] == "daemon"


def test_summary_script_keeps_a_hand_written_summary(tmp_path, capsys):
    (tmp_path / "SUMMARY.md").write_text("# Notes on the plant's benchmarks\n")
    assert summary.main(["--results", str(tmp_path)]) == 2
    assert "is not a benchmark summary" in capsys.readouterr().err
    assert (tmp_path / "SUMMARY.md").read_text() == "# Notes on the plant's benchmarks\n"
    (tmp_path / "SUMMARY.md").unlink()
    assert summary.main(["--results", str(tmp_path)]) == 0 and summary.main(["--results", str(tmp_path)]) == 0


def test_a_benchmark_script_keeps_a_users_file_at_its_result_name(tmp_path):
    """The suite's step scripts claim their result before their work (bench_cost here: it would time models)."""
    (tmp_path / "cost.json").write_text("user data\n")
    proc = subprocess.run([sys.executable, str(BENCH / "bench_cost.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(BENCH.parent)})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert (tmp_path / "cost.json").read_text() == "user data\n"
