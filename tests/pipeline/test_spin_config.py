"""model.spin_us: a bounded spin in whole microseconds; anything else is one ConfigError line naming the key."""

import pytest

from inspector.errors import ConfigError
from inspector.pipeline.config import daemon_config

BASE = {"thresholds": {"image": 1.0}, "cameras": [{"name": "c", "source": "synthetic"}]}


@pytest.mark.parametrize("value, message", [(0, "out of range"), (2_000_000, "out of range"),
                                            ("x", "expected an integer")])
def test_bad_spin_us_is_refused_naming_the_key(value, message):
    with pytest.raises(ConfigError, match=rf"model\.spin_us: .*{message}"):
        daemon_config({**BASE, "model": {"path": "m.onnx", "spin_us": value}})


def test_spin_us_defaults_to_onnx_runtimes_own():
    assert daemon_config({**BASE, "model": {"path": "m.onnx"}}).model.spin_us is None
    assert daemon_config({**BASE, "model": {"path": "m.onnx", "spin_us": 200}}).model.spin_us == 200


def test_the_daemon_spins_inside_runs_only_by_default():
    model = daemon_config({**BASE, "model": {"path": "m.onnx"}}).model
    assert (model.spinning, model.spin_after_run) == (True, False)
    assert daemon_config({**BASE, "model": {"path": "m.onnx", "spin_after_run": True}}).model.spin_after_run is True
    with pytest.raises(ConfigError, match=r"model\.spin_after_run"):
        daemon_config({**BASE, "model": {"path": "m.onnx", "spin_after_run": "sometimes"}})
