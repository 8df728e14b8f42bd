"""`inspector data synth|info` through the CLI entry point."""

from __future__ import annotations

from inspector.cli import main


def test_synth_then_info(tmp_path, capsys):
    out = tmp_path / "brick"
    args = ["data", "synth", "--out", str(out), "--size", "64", "--train", "3", "--test-good", "2",
            "--test-defect", "6", "--seed", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "train 3, test 8" in printed and "fold 1" in printed
    assert main(["data", "info", str(out)]) == 0
    assert "layout: mvtec" in capsys.readouterr().out
    assert main(["data", "info", str(out), "--json"]) == 0
    assert '"n_train": 3' in capsys.readouterr().out

    assert main(args) == 2  # non-empty --out without --force
    assert "folder exists and is not empty (use --force" in capsys.readouterr().err
    assert main(args + ["--force", "--defects", "hole"]) == 0
    assert sorted(p.name for p in (out / "test").iterdir()) == ["good", "hole"]


def test_info_errors(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "dataset folder not found" in err and "Traceback" not in err
