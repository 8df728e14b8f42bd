"""Every script under benchmarks/ that writes an ``--out`` claims it before its work, as the CLI and
``bench --suite --out`` do (:func:`inspector.outputs.claim_file`, benchmarks/_common.py ``claim_out_or_exit``):
a file there that is not an earlier result of the script is kept, and the script says so in one line and
exits 2. Research scripts wrote over whatever their ``--out`` named, a user's file included.

Each script is run as ``__main__`` in this process (runpy: the libraries it imports are imported once for all)
with a foreign file where its ``--out`` points and dummy values for its required arguments: it must stop at the
claim, before reading any of them. A script added with an ``--out`` and not listed here fails the test.
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
FOREIGN = '{"notes": "a colleague\'s file"}\n'

# script → (what --out names: a file, a folder of <name>.json results, or a folder of files; the result's name in
# the folder; the required arguments, dummies: the claim comes first)
FILE, RESULTS, FOLDER = "file", "results", "folder"
SCRIPTS = {
    "ablate_levers.py": (FILE, None, ["x", "8", "8", "1", "a"]),
    "bench_daemon.py": (FILE, None, []),
    "bench_event_cost.py": (FILE, None, []),
    "bench_levers.py": (FILE, None, []),
    "bench_replicas.py": (FILE, None, []),
    "diagnose_ast.py": (FILE, None, ["--run-root", "x"]),
    "diagnose_students.py": (FILE, None, ["x", "y"]),
    "profile_daemon.py": (FILE, None, []),
    "scale_policy_knn.py": (FILE, None, ["x"]),
    "experiments/s35_norm_fit_images.py": (FILE, None, ["x", "y"]),
    "experiments/s35_tta_flips.py": (FILE, None, ["x", "y"]),
    "experiments/s36_calibration_part.py": (FILE, None, ["x", "y"]),
    "experiments/s36_norm_fit_split.py": (FILE, None, ["x", "y"]),
    "experiments/s37_knn_train_part.py": (FILE, None, ["x"]),
    "experiments/s37_residual_scale.py": (FILE, None, ["x", "y"]),
    "experiments/s45_mono_misses.py": (FILE, None, ["--data", "x", "--run", "y"]),
    "experiments/s45_hot_path_checks.py": (FILE, None, []),
    "ast_student_retrain.py": (RESULTS, "ast-student-retrain", ["--run-root", "x", "--set", "a=1"]),
    "bench_cost.py": (RESULTS, "cost", []),
    "bench_feature_imitation.py": (RESULTS, "feature_imitation_pyramid", ["--run", "x", "--data", "y"]),
    "bench_glance_lambda.py": (RESULTS, "glance-lambda", ["--run-root", "x"]),
    "bench_live.py": (RESULTS, "live", []),
    "bench_meta_comparer.py": (RESULTS, "meta_comparer", []),
    "bench_quality.py": (RESULTS, "quality", []),
    "cost_teachers.py": (RESULTS, "cost-teachers", []),
    "learning_curve.py": (RESULTS, "learning-curve", []),
    "receptive_field.py": (RESULTS, "receptive-field", []),
    "replay_stop_rule.py": (RESULTS, "replay-stop-rule", ["x.json"]),
    "rescore_ensemble.py": (RESULTS, "rescore-ensemble", ["--run-roots", "x"]),
    "rescore_metrics.py": (RESULTS, "rescore-metrics", ["--runs", "x", "--dataset", "y"]),
    "rescore_parts.py": (RESULTS, "rescore-parts", ["--run-root", "x"]),
    "rescore_whitening.py": (RESULTS, "rescore-whitening", ["--run-root", "x"]),
    "run_all.py": (RESULTS, "suite", []),
    "make_varied_tiles.py": (FOLDER, None, ["--src", "x"]),
}
# --out NAME, a result under benchmarks/results (soak.py): the same claim, tested with a name of its own
NAMED = {"soak.py"}


# a script's own --out: an argparse option or _common.out_option (an --out it passes to `inspector train` in a
# subprocess, as the s45 range sweep does, is that command's, which claims it)
OWN_OUT = re.compile(r"""add_argument\(\s*["']--out["']|out_option\(""")


def _scripts_with_out() -> set[str]:
    return {str(p.relative_to(BENCH)) for p in BENCH.rglob("*.py")
            if p.name != "_common.py" and OWN_OUT.search(p.read_text(encoding="utf-8"))}


def test_every_script_with_an_out_is_listed():
    assert _scripts_with_out() == set(SCRIPTS) | NAMED


def _run_main(script: Path, argv: list[str]) -> int | str | None:
    """``script`` run as ``__main__`` with ``argv``; its exit code (None: it returned). sys.path and sys.argv
    are put back, whatever it inserted."""
    saved_path, saved_argv = list(sys.path), sys.argv
    sys.argv = [str(script), *argv]
    sys.path.insert(0, str(script.parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return exc.code
    finally:
        sys.path[:], sys.argv = saved_path, saved_argv
    return None


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_script_keeps_a_foreign_file_at_its_out(script, tmp_path, capsys):
    kind, name, required = SCRIPTS[script]
    if kind == FILE:
        out = kept = tmp_path / "mine.json"
    else:
        out = tmp_path / "out"
        out.mkdir()
        kept = out / (f"{name}.json" if kind == RESULTS else "mine.json")
    kept.write_text(FOREIGN)
    option = [f"--out={out}"] if script == "ablate_levers.py" else ["--out", str(out)]
    code = _run_main(BENCH / script, [*required, *option])
    err = capsys.readouterr().err.strip()
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(out) in err, err
    assert kept.read_text() == FOREIGN
    if kind == FOLDER:
        assert sorted(p.name for p in out.iterdir()) == ["mine.json"]


def test_a_named_result_keeps_a_foreign_file(capsys):
    name = f"test-foreign-{id(capsys)}"
    kept = BENCH / "results" / f"{name}.json"
    kept.write_text(FOREIGN)
    try:
        code = _run_main(BENCH / "soak.py", ["--out", name])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and str(kept) in err, (code, err)
        assert kept.read_text() == FOREIGN
    finally:
        kept.unlink()


def test_write_out_replaces_its_own_earlier_result_and_keeps_a_file_put_there_meanwhile(tmp_path, capsys):
    sys.path.insert(0, str(BENCH))
    try:
        from _common import claim_out_or_exit, write_out
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "r.json"
    assert claim_out_or_exit(out, "levers") == out  # free
    write_out(out, "levers", {"fps": 1.0})
    assert claim_out_or_exit(out, "levers") == out  # its own: replaced
    write_out(out, "levers", [1, 2])
    assert '"rows"' in out.read_text() and '"benchmark": "levers"' in out.read_text()
    out.write_text(FOREIGN)  # a file put there while the script ran
    with pytest.raises(SystemExit) as exc:
        write_out(out, "levers", {"fps": 2.0})
    assert exc.value.code == 2 and out.read_text() == FOREIGN
    assert capsys.readouterr().err.count("\n") == 1


CLAIMS = {"claim_result_or_exit", "claim_out_or_exit", "out_option", "claim_folder_or_exit", "claim_suite_outputs"}
WRITES = {"write_result", "write_out"}


def _called(path: Path) -> set[str]:
    import ast

    calls = (n.func for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Call))
    return {f.id if isinstance(f, ast.Name) else f.attr for f in calls if isinstance(f, (ast.Name, ast.Attribute))}


def test_every_script_that_writes_a_result_claims_it_first_too():
    """The scripts without an ``--out`` (a result under benchmarks/results, by a fixed name or ``--name``) claim it
    at their start as well: write_result's own claim comes after the work, and refused a user's file with a
    traceback once the minutes of work were done. Read from the source: running them would need real results'
    names in benchmarks/results."""
    scripts = [p for p in BENCH.rglob("*.py") if p.name != "_common.py"]
    unclaimed = sorted(str(p.relative_to(BENCH)) for p in scripts if _called(p) & WRITES and not _called(p) & CLAIMS)
    assert unclaimed == []
