"""Paths in config files expand environment variables as a shell does (``$NAME``, ``${NAME}``), not only ``~``:
``summary_json: ${HOME}/x.json`` wrote into a folder literally named ``${HOME}`` beside the config. An unset
variable is one line naming the setting and the variable (inspector.config.expanded_path)."""

import subprocess
import sys

import pytest

from inspector.artifacts.run_config import resolve_file_paths
from inspector.errors import ConfigError
from inspector.pipeline.config import load_daemon_config


def _daemon_config(tmp_path, line: str):
    path = tmp_path / "cfg.yaml"
    path.write_text("model: {path: m.onnx}\nthresholds: {image: 0.5}\n"
                    "cameras: [{name: c, source: synthetic, max_frames: 4}]\n" + line + "\n")
    return path


@pytest.mark.parametrize("written", ["$INSPECTOR_T_DIR/s.json", "${INSPECTOR_T_DIR}/s.json"])
def test_a_daemon_path_expands_environment_variables(tmp_path, monkeypatch, written):
    monkeypatch.setenv("INSPECTOR_T_DIR", str(tmp_path / "out"))
    config = load_daemon_config(_daemon_config(tmp_path, f"summary_json: {written}\nrecorder: {{enabled: true, dir: $INSPECTOR_T_DIR}}"))
    assert config.summary_json == str(tmp_path / "out" / "s.json")
    assert config.recorder.dir == str(tmp_path / "out")


def test_a_run_config_path_expands_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_T_DATA", "/data/parts")
    raw = resolve_file_paths({"data": {"path": "${INSPECTOR_T_DATA}/brick"}}, tmp_path)
    assert raw["data"]["path"] == "/data/parts/brick"
    monkeypatch.delenv("INSPECTOR_T_DATA")
    with pytest.raises(ConfigError, match=r"^data.path: environment variable INSPECTOR_T_DATA is not set"):
        resolve_file_paths({"data": {"path": "${INSPECTOR_T_DATA}/brick"}}, tmp_path)


def test_an_unset_variable_in_a_daemon_path_is_one_line_from_run_check(tmp_path, monkeypatch):
    monkeypatch.delenv("INSPECTOR_T_UNSET", raising=False)
    path = _daemon_config(tmp_path, "recorder: {enabled: true, dir: \"${INSPECTOR_T_UNSET}/rec\"}")
    res = subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(path), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "recorder.dir: environment variable INSPECTOR_T_UNSET is not set" in res.stderr, res.stderr
    assert not (tmp_path / "${INSPECTOR_T_UNSET}").exists()


def test_a_dollar_sign_that_names_no_variable_stays_as_written(tmp_path):
    config = load_daemon_config(_daemon_config(tmp_path, "summary_json: share$/price-$5.json"))
    assert config.summary_json == str(tmp_path / "share$" / "price-$5.json")
