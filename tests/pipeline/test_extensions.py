"""The daemon takes its integrations as plug-ins (pipeline/extensions.py): the pipeline never imports them,
and a daemon made without them refuses what it cannot do instead of ignoring it."""

from __future__ import annotations

import pytest

from inspector.errors import ConfigError, SourceError
from inspector.pipeline.config import CameraSection, daemon_config
from inspector.pipeline.daemon import Daemon
from inspector.pipeline.sources import FolderSource, make_source


def test_a_bare_daemon_refuses_a_switched_on_integration(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")  # refused before the model is read: the check runs first
    cfg = daemon_config({"model": {"path": str(model)}, "thresholds": {"image": 0.5},
                         "cameras": [{"name": "c", "source": "synthetic"}],
                         "dashboard": {"listen": "127.0.0.1:8080"}})
    with pytest.raises(ConfigError, match=r"^dashboard: switched on, but this daemon was made without integrations"):
        Daemon(cfg).setup()


def test_a_source_type_comes_from_the_plug_in(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    cam = CameraSection(name="gige", source="genicam://Cam-1")
    with pytest.raises(SourceError, match="camera 'gige': GenICam cameras are an integration"):
        make_source(cam)
    made = []

    def factory(camera, bit_depth):
        made.append((camera.name, bit_depth))
        return FolderSource(CameraSection(name=camera.name, source=str(tmp_path)), bit_depth)

    assert isinstance(make_source(cam, 12, kinds={"genicam": factory}), FolderSource)
    assert made == [("gige", 12)]


def test_the_standard_extensions_provide_genicam_and_the_integrations():
    from inspector.integrations.runtime import EXTENSIONS, Integrations, check_extras, make_daemon

    assert set(EXTENSIONS.source_kinds) == {"genicam"}
    assert EXTENSIONS.check is check_extras and EXTENSIONS.start is Integrations
    cfg = daemon_config({"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5},
                         "cameras": [{"name": "c", "source": "synthetic"}]})
    assert make_daemon(cfg).extensions is EXTENSIONS
