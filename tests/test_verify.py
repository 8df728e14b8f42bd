"""The precision gate on ONNX Runtime backends: passes a faithful FP16 graph, fails NaN, drift and flips."""

from __future__ import annotations

import json
import math
import os

import pytest

from inspector.cli import main
from inspector.errors import InspectorError
from inspector.artifacts.model_card import sha256_file
from inspector.artifacts.thresholds import ModelBinding, Thresholds, write_thresholds
from inspector.artifacts.engine_card import verify_report_path
from inspector.evaluation.verify import Tolerances, _Accumulator, judge, verify
from tiny_graphs import write_exported

SIZE = 64


@pytest.fixture()
def good(tmp_path):
    return write_exported(tmp_path / "good", height=SIZE, width=SIZE)


def _candidate(tmp_path, **variant):
    fp32 = write_exported(tmp_path / "bad", height=SIZE, width=SIZE, **variant)
    return fp32.with_name("tiny.fp16.onnx")


def test_faithful_fp16_graph_passes(good, tiny_dataset):
    fp16 = good.with_name("tiny.fp16.onnx")
    report = verify(fp16, good, tiny_dataset)
    assert report["passed"] and report["failures"] == []
    assert report["candidate"]["precision"] == "fp16"
    assert report["tolerances"] == {"score": 0.02, "map": 0.05}
    assert report["metrics"]["images"] == 10  # the test split: 4 good + 6 defective
    assert report["decision"]["checked"] is False
    on_disk = json.loads(verify_report_path(fp16).read_text())
    assert on_disk["passed"] is True and verify_report_path(fp16).name == "tiny.fp16.verify.json"


def test_nan_candidate_fails(good, tiny_dataset, tmp_path):
    report = verify(_candidate(tmp_path, nan=True), good, tiny_dataset)
    assert not report["passed"]
    assert report["failures"][0].startswith("candidate produced NaN/Inf on 10 image(s)")
    written = json.loads(verify_report_path(_candidate(tmp_path, nan=True)).read_text())
    assert written["passed"] is False  # NaN metrics are written as JSON null, the file stays valid JSON


def test_drifting_candidate_fails_on_score_and_map(good, tiny_dataset, tmp_path):
    report = verify(_candidate(tmp_path, map_scale=1.1), good, tiny_dataset)
    assert not report["passed"]
    assert any(f.startswith("score difference 0.1") for f in report["failures"])
    assert any(f.startswith("map difference") for f in report["failures"])
    # looser tolerances accept the same candidate
    assert verify(_candidate(tmp_path, map_scale=1.1), good, tiny_dataset,
                  score_tolerance=0.2, map_tolerance=0.2)["passed"]


def test_decision_flip_at_the_calibrated_threshold(good, tiny_dataset, tmp_path):
    baseline = verify(good.with_name("tiny.fp16.onnx"), good, tiny_dataset)
    refs = sorted(w["reference"] for w in baseline["worst_images"])
    threshold = refs[len(refs) // 2]  # a real reference score: ×1.005 puts it just below the threshold
    candidate = _candidate(tmp_path, map_scale=1.01)  # within tolerance, but scores move across the threshold
    thresholds = Thresholds(ModelBinding("tiny", sha256_file(good)), image_threshold=threshold * 1.005,
                            pixel_threshold=threshold)  # calibrated on the FP32 reference
    path = write_thresholds(thresholds, tmp_path / "calibration" / "tiny.yaml")
    report = verify(candidate, good, tiny_dataset, threshold_file=path)
    assert report["threshold_source"] == str(path)
    assert report["decision"]["checked"] and report["decision"]["flips"]
    assert not report["passed"] and any("decision flip" in f for f in report["failures"])
    # far from every score: no flip, and the FP16 graph passes with the check on
    report = verify(good.with_name("tiny.fp16.onnx"), good, tiny_dataset, threshold=100.0)
    assert report["passed"] and report["decision"]["flips"] == [] and report["decision"]["ng_reference"] == 0


@pytest.mark.parametrize("argv, match", [
    (["--threshold-file", "{other}"], "calibration was made for another model (sha256 000000000000…), not "),
    (["--threshold-file", "{own}", "--threshold", "0.5"], "--threshold: give --threshold 0.5 or --threshold-file"),
])
def test_a_threshold_of_another_model_is_one_line(good, tiny_dataset, tmp_path, capsys, argv, match):
    """``verify --threshold-file`` with the calibration of another model (or with --threshold too, which made the
    file silently ignored): one line, exit 2, no report. The gate used to check flips at that other model's
    threshold and pass, exit 0; predict and the daemon refuse such a file (thresholds.load_thresholds)."""
    files = {}
    for name, sha in (("other", "0" * 64), ("own", sha256_file(good))):
        files[name] = write_thresholds(Thresholds(ModelBinding(name, sha), image_threshold=1.0, pixel_threshold=1.0),
                                       tmp_path / f"{name}.yaml")
    report = tmp_path / "report.json"
    args = [a.format(**files) for a in argv]
    assert main(["verify", str(good.with_name("tiny.fp16.onnx")), "--reference", str(good), "--data",
                 str(tiny_dataset), "--report", str(report), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and err.count("\n") == 0, err
    assert not report.exists()


def test_reference_must_be_fp32_and_same_model(good, tiny_dataset, tmp_path):
    with pytest.raises(InspectorError, match="reference must be the FP32 graph"):
        verify(good, good.with_name("tiny.fp16.onnx"), tiny_dataset)
    other = write_exported(tmp_path / "small", height=32, width=32)
    with pytest.raises(InspectorError, match="not the same model"):
        verify(good.with_name("tiny.fp16.onnx"), other, tiny_dataset)


def _acc(cand, ref, map_diff=0.0):
    acc = _Accumulator()
    for i, (c, r) in enumerate(zip(cand, ref)):
        acc.names.append(f"img{i}")
        acc.cand_scores.append(c)
        acc.ref_scores.append(r)
        acc.map_p99.append(map_diff)
        acc.map_max.append(map_diff)
        if not math.isfinite(c):
            acc.nonfinite.append(f"img{i}")
    acc.ref_map_absmax = 1.0
    return acc


def test_judge_rules():
    tol = Tolerances(score=0.05, map=0.05)
    assert judge(_acc([1.0, 2.0], [1.0, 2.0]), tol, 1.5)["passed"]
    verdict = judge(_acc([1.0, 2.2], [1.0, 2.0]), tol, None)
    assert not verdict["passed"] and verdict["metrics"]["score_rel_diff"] == pytest.approx(0.1)
    verdict = judge(_acc([1.49, 2.0], [1.51, 2.0]), tol, 1.5)
    assert verdict["decision"]["flips"] == [{"image": "img0", "candidate": 1.49, "reference": 1.51}]
    assert not judge(_acc([1.0, 2.0], [1.0, 2.0], map_diff=0.06), tol, None)["passed"]
    verdict = judge(_acc([math.nan, 2.0], [1.0, 2.0]), tol, 1.5)
    assert not verdict["passed"] and "NaN/Inf on 1 image(s), e.g. img0" in verdict["failures"][0]
    assert Tolerances.for_precision("fp16") == Tolerances(0.02, 0.05)
    assert Tolerances.for_precision("int8", score=0.3) == Tolerances(0.3, 0.15)


def test_cli_exit_codes(good, tiny_dataset, tmp_path, capsys):
    assert main(["verify", str(good.with_name("tiny.fp16.onnx")), "--reference", str(good),
                 "--data", str(tiny_dataset), "--limit", "4", "--report", str(tmp_path / "r.json")]) == 0
    assert "PASS" in capsys.readouterr().out and (tmp_path / "r.json").is_file()
    assert main(["verify", str(_candidate(tmp_path, nan=True)), "--reference", str(good),
                 "--data", str(tiny_dataset)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and "✗ candidate produced NaN/Inf" in out
    assert main(["verify", str(tmp_path / "missing.onnx"), "--reference", str(good), "--data", str(tiny_dataset)]) == 2


def test_a_full_disk_found_while_writing_the_report_is_one_line(good, tiny_dataset, tmp_path):
    """A full disk is found when the data is written, not when the file is opened: write()/close() raise
    naming no file, which the CLI took for a bug of its own and showed as a traceback. Now any command's
    storage error (full disk or quota, I/O error, read-only device, file too large) is one line, exit 2.
    The disk fills up at 200 bytes here: a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored: EFBIG, as ENOSPC)."""
    import subprocess
    import sys
    from pathlib import Path

    code = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
from inspector.cli import main
sys.exit(main(sys.argv[1:]))
"""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", code, "verify", str(good.with_name("tiny.fp16.onnx")), "--reference",
                          str(good), "--data", str(tiny_dataset), "--limit", "2", "--report", str(tmp_path / "r.json")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    # the file is named (write() names none: it said "inspector verify: cannot write its output: File too large")
    assert res.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'r.json'}: File too large"
