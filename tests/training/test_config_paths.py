"""The path rule for training configs: in a file → against the file's folder; on the command line → cwd."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inspector.training.config import load_run_config, save_run_config


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_paths_in_a_config_file_resolve_against_its_folder(tmp_path, monkeypatch):
    cfg = _write(tmp_path / "configs" / "brick.yaml",
                 {"data": {"path": "../data/brick"}, "model": {"teacher_weights": "weights/lite0.pth"}})
    for cwd in (tmp_path, tmp_path / "configs"):
        monkeypatch.chdir(cwd)
        config = load_run_config(cfg.relative_to(cwd))  # any working directory: same meaning
        assert Path(config.data.path).resolve() == (tmp_path / "data" / "brick").resolve()
        assert Path(config.model.teacher_weights).resolve() == (tmp_path / "configs/weights/lite0.pth").resolve()


def test_command_line_paths_stay_relative_to_the_working_directory(tmp_path, monkeypatch):
    cfg = _write(tmp_path / "configs" / "brick.yaml", {"data": {"path": "../data/brick"}})
    monkeypatch.chdir(tmp_path)
    assert load_run_config(cfg, base={"data": {"path": "data/other"}}).data.path == "data/other"
    assert load_run_config(cfg, ["data.path=mine"]).data.path == "mine"
    absolute = load_run_config(_write(tmp_path / "abs.yaml", {"data": {"path": str(tmp_path / "x")}}))
    assert absolute.data.path == str(tmp_path / "x")
    assert load_run_config(_write(tmp_path / "r.yaml", {"model": {"teacher_weights": "random"}})) \
        .model.teacher_weights == "random"  # a keyword, not a file


def test_saved_config_is_relative_to_its_own_folder_and_reloads_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_run_config(base={"data": {"path": "data/brick"}})
    saved = tmp_path / "runs" / "rs" / "config.yaml"
    saved.parent.mkdir(parents=True)
    save_run_config(config, saved)
    assert yaml.safe_load(saved.read_text())["data"]["path"] == "../../data/brick"
    monkeypatch.chdir(saved.parent)  # from elsewhere, the saved file still names the same folder
    again = load_run_config(saved.name)
    assert Path(again.data.path).resolve() == (tmp_path / "data" / "brick").resolve()


def test_a_resolved_path_is_shortened_only_where_it_names_the_same_folder(tmp_path, monkeypatch):
    from inspector.config import resolve_path

    (tmp_path / "data" / "brick").mkdir(parents=True)
    (tmp_path / "runs" / "rs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    # what `inspector evaluate RUN` logs for a saved run: the path a user would type, not runs/rs/../../data/brick
    assert resolve_path("../../data/brick", "runs/rs") == "data/brick"
    # through a symlinked run folder, `..` leaves the link's target: the lexical short form would name another folder
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    (tmp_path / "elsewhere" / "data" / "brick").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere" / "deep")
    kept = resolve_path("../data/brick", "link")
    assert kept == "link/../data/brick" and Path(kept).resolve() == (tmp_path / "elsewhere/data/brick").resolve()
    assert resolve_path("../../missing", "runs/rs") == "runs/rs/../../missing"  # not there: nothing to check it by


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("1E-1", 0.1), ("+2.5e-3", 2.5e-3), ("1", 1)])
def test_yaml_1_2_floats_in_files_and_overrides(tmp_path, text, value):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"train:\n  weight_decay: {text}\n")
    assert load_run_config(cfg).train.weight_decay == value
    assert load_run_config(overrides=[f"train.weight_decay={text}"]).train.weight_decay == value


def test_evaluate_finds_the_runs_data_from_any_directory(trained_run, tiny_dataset, tmp_path, monkeypatch, capsys):
    """A run trained with a relative --data: `inspector evaluate RUN` from elsewhere uses config.yaml's path."""
    import shutil

    import torch

    from inspector.cli import main
    from inspector.training.checkpoint import load_model

    project = tmp_path / "project"
    shutil.copytree(tiny_dataset, project / "data" / "brick")
    run = project / "runs" / "rs"
    run.mkdir(parents=True)
    payload = torch.load(trained_run / "best.pt", weights_only=True)
    payload["config"]["data"]["path"] = "data/brick"  # as `inspector train --data data/brick` in project/
    torch.save(payload, run / "best.pt")
    monkeypatch.chdir(project)
    save_run_config(load_model(run)[1], run / "config.yaml")
    monkeypatch.chdir(tmp_path)  # elsewhere: the checkpoint's cwd-relative path would not resolve
    assert main(["evaluate", str(run), "--no-plots"]) == 0, capsys.readouterr().err
    assert (run / "eval" / "metrics.json").is_file()
