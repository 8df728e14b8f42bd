"""Daemon settings at their edges (scripts/config_sweep.py found these): refused by ``run --check`` in one line,
or handled at run time, never a crash or a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from pipeline_support import base_config

ROOT = Path(__file__).resolve().parents[2]  # the checkout under test, not an installed copy

# The inference stage stays inside ONNX Runtime's run far longer than shutdown_timeout_s: a model that slow is
# real (a large model on a small CPU), made here by repeating the real run for 4 s (same method, real session).
SLOW_MODEL = textwrap.dedent("""
    import sys, time
    from inspector.backends.onnxruntime import OnnxRuntimeBackend
    from inspector.cli import main
    real = OnnxRuntimeBackend._run
    def slow(self, batch):
        self.runs = getattr(self, "runs", 0) + 1
        end = time.monotonic() + (4.0 if self.runs > 1 else 0.0)  # the first run is the load's probe
        result = real(self, batch)
        while time.monotonic() < end:
            result = real(self, batch)
        return result
    OnnxRuntimeBackend._run = slow
    sys.exit(main(sys.argv[1:]))
""")


def test_a_stage_still_running_after_shutdown_timeout_ends_the_run_with_exit_1(tiny_model, tmp_path):
    # A stage that did not stop within shutdown_timeout_s was left inside ONNX Runtime while the publisher's
    # socket was closed under it and the interpreter tore the libraries down: the run died of SIGABRT
    # ('terminate called without an active exception', exit -6) instead of exit 1 with its failures told.
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock",
                      [{"name": "c", "source": "synthetic", "max_frames": 2,
                        "synthetic": {"texture": "procedural", "size": 64, "pool": 2}}],
                      shutdown_timeout_s=1.0, summary_json=str(tmp_path / "summary.json"))
    cfg["model"]["warmup_runs"] = 0
    cfg["batching"] = {"max_batch": 1}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_MODEL)
    start = time.monotonic()
    p = subprocess.run([sys.executable, str(script), "run", "--config", str(tmp_path / "cfg.yaml")],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-2000:]
    assert "Traceback" not in out and "terminate" not in out
    # the closing line names the config file, the stage and its model, and the setting that bounded the wait
    told = f"{tmp_path / 'cfg.yaml'}: inference (model {tiny_model}) did not stop within 1 s (shutdown_timeout_s)"
    assert told in json.loads((tmp_path / "summary.json").read_text())["failures"], out[-2000:]
    assert told in p.stdout.splitlines()[-1], p.stdout
    assert time.monotonic() - start < 40


def _check(tmp_path: Path, cfg: dict, timeout: float = 60) -> tuple[int, str, float]:
    """``inspector run --check`` of ``cfg`` in its own process: (exit code, stdout + stderr, seconds)."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "inspector", "run", "--config", str(path), "--check"],
                       capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return p.returncode, p.stdout + p.stderr, time.monotonic() - start


def test_more_threads_or_replicas_than_cores_are_capped_at_the_cores(tiny_model, tmp_path):
    # model.threads 1024 (within its declared range) on 2 cores: ONNX Runtime's 1024 spinning intra-op threads
    # meet on a barrier after every operator, and `run --check` alone took 139 s (replicas 256: as long, 256
    # sessions). More threads than cores never runs faster: the cores are used, with a warning naming the key.
    from inspector.backends.ort_replicas import usable_cores

    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock",
                      [{"name": "c", "source": "synthetic", "max_frames": 2,
                        "synthetic": {"texture": "procedural", "size": 64, "pool": 2}}])
    cfg["model"].update(threads=1024, replicas=256)
    code, out, took = _check(tmp_path, cfg)
    assert code == 0 and "Traceback" not in out, out[-2000:]
    cores = usable_cores()
    assert f"model.threads: 1024 exceeds the {cores} usable core(s) of this machine; using {cores}" in out
    assert f"model.replicas: 256 exceeds the {cores} usable core(s)" in out
    assert took < 30


def _numeric_leaves(cls, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted key, declared Range) of every numeric setting of the daemon; cameras → cameras.0."""
    import dataclasses
    import typing

    from inspector.config import field_range
    from inspector.pipeline.config import CameraSection

    out, hints = [], typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out += _numeric_leaves(tp, key + ".")
        elif typing.get_args(tp)[:1] == (CameraSection,):
            out += _numeric_leaves(CameraSection, key + ".0.")
        elif field_range(f) is not None and {int, float} & {tp, *typing.get_args(tp)}:
            out.append((key, field_range(f)))
    return out


def _edge_cases() -> list:
    """Each numeric setting at the top of its declared range (the bottom edges are small counts and short
    times, which the runs of the other tests cover); not the camera's device index."""
    from inspector.pipeline.config import DaemonConfig

    cases = []
    for key, rng in _numeric_leaves(DaemonConfig):
        if rng.le is not None and key not in ("cameras.0.source", "thresholds.uncertain_band"):
            cases.append(pytest.param(key, rng.le, id=f"{key}={rng.le:g}"))
    return cases


def _set(cfg: dict, key: str, value) -> None:
    node = cfg
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[leaf] = value


@pytest.mark.parametrize("key, value", _edge_cases())
def test_every_setting_at_its_declared_edge_is_refused_in_one_line_or_checks_quickly(tiny_model, tmp_path, key,
                                                                                     value):
    # The sweep's rule (scripts/config_sweep.py): a value inside the declared range either fails the config's
    # own cross-checks in one line naming the key, or `run --check` (model loaded, sources opened, socket
    # bound) passes within seconds. model.threads 1024 passed load and then took 139 s in --check.
    from inspector.errors import ConfigError
    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline.config import daemon_config

    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock",
                      [{"name": "c", "source": "synthetic", "max_frames": 2,
                        "synthetic": {"texture": "procedural", "size": 64, "pool": 2}}],
                      recorder={"enabled": True, "dir": str(tmp_path / "rec")})
    _set(cfg, key, int(value) if float(value).is_integer() and not key.endswith(("_s", "_ms")) else value)
    start = time.monotonic()
    try:  # the recorder on, so its settings are read (off, they are refused as doing nothing)
        make_daemon(daemon_config(cfg, tmp_path)).check()
    except ConfigError as exc:
        assert key.split(".")[-1] in str(exc) and "\n" not in str(exc)
        return
    assert time.monotonic() - start < 10, f"{key}={value}: --check took {time.monotonic() - start:.0f} s"


@pytest.mark.parametrize("value", [1e-9, 0.5, 0.999])
def test_a_shutdown_timeout_below_a_second_is_refused_in_one_line(value):
    # shutdown_timeout_s 1e-9 passed --check; every offline run then ended 'inference did not stop within
    # 1e-09 s' with its queued frames uninspected (0 of 9) and died of SIGABRT.
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    cfg = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5}, "shutdown_timeout_s": value,
           "cameras": [{"name": "c", "source": "synthetic", "max_frames": 4}]}
    with pytest.raises(ConfigError, match=r"shutdown_timeout_s: .* is out of range \[1, 3600\]"):
        daemon_config(cfg)


def test_max_batch_above_what_the_cameras_queue_warms_only_the_sizes_they_fill(tiny_model, endpoint):
    # batching.max_batch 1024 (its declared top) on one camera holding 8 frames warmed every power of two up to
    # 1024, twice each: 50 s and 1.9 GB of ONNX Runtime arena at 64 px before the first frame, for batches that
    # the camera's queue never fills (the run did not end within 40 s). Sizes up to what the queues hold are
    # warmed; the run ends promptly with every frame inspected.
    from pipeline_support import by_type, run_to_end

    cfg = base_config(tiny_model, endpoint,
                      [{"name": "c", "source": "synthetic", "mode": "offline", "max_frames": 6,
                        "synthetic": {"texture": "procedural", "size": 64, "pool": 2, "defect_rate": 1.0}}],
                      batching={"max_batch": 1024, "queue_size": 4})
    cfg["model"]["warmup_runs"] = 2
    start = time.monotonic()
    daemon, code, events = run_to_end(cfg)
    assert code == 0, daemon.failures
    assert len(by_type(events, "result", "c")) == 6
    assert daemon.inference.warmup["sizes"] == [1, 2, 3, 4]
    assert daemon.inference.pool.max_batch == 1024  # a batch may still grow that large within max_wait_ms
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("max_batch, model_max, side, refused", [
    (1024, None, 1024, True),  # 2 × 3 GiB of uint8 frames
    (64, None, 1024, False),  # 2 × 192 MiB
    (1024, 8, 1024, False),  # a static batch of 8 caps the buffers
    (1024, None, 64, False),  # the tiny model: 2 × 12 MiB
])
def test_input_buffers_beyond_their_memory_budget_are_refused_in_one_line(max_batch, model_max, side, refused):
    # The daemon preallocates two (max_batch, H, W, 3) uint8 input buffers whatever batches come: max_batch
    # 1024 on a 1024 px model asked for 6 GiB before the model's own activations.
    from inspector.contract import InputSpec
    from inspector.pipeline.daemon import input_buffers_problem

    problem = input_buffers_problem(max_batch, InputSpec(side, side, max_batch=model_max))
    assert (problem is not None) == refused
    if refused:
        assert problem == "1024 frames of 1024x1024x3 need 2 input buffers of 3072 MiB (at most 1024 MiB in " \
                          "all); at most 170 fit"


def test_check_refuses_max_batch_whose_buffers_overflow_the_budget(tiny_model, tmp_path, monkeypatch):
    # The same rule through `run --check` (one line naming the key, exit 2): the tiny model's 64 px frames fit
    # any max_batch, so the budget is lowered (an environment without the memory, same code path).
    from inspector.errors import ConfigError
    from inspector.integrations.runtime import make_daemon
    from inspector.pipeline import daemon as daemon_module
    from inspector.pipeline.config import daemon_config

    monkeypatch.setattr(daemon_module, "_BUFFER_BUDGET_MIB", 1)
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock",
                      [{"name": "c", "source": "synthetic", "max_frames": 2,
                        "synthetic": {"texture": "procedural", "size": 64, "pool": 2}}],
                      batching={"max_batch": 1024})
    with pytest.raises(ConfigError, match=r"^batching\.max_batch: 1024 frames of 64x64x3 need 2 input buffers "
                                          r"of 12 MiB \(at most 1 MiB in all\); at most 42 fit$"):
        make_daemon(daemon_config(cfg, tmp_path)).check()


@pytest.mark.parametrize("size, pool", [(4096, 2), (64, 4096)])
def test_a_synthetic_camera_opens_at_once_and_makes_only_the_frames_it_draws(size, pool):
    # The pool (2 × pool frames of size² px) was generated at open, ~0.1 s per MiB: synthetic.size 4096 or
    # pool 4096 (both their declared tops) kept `run --check` over 30 s before it could answer. Frames are now
    # made when first drawn, frames above 1024 px generated at 1024 and scaled up (a 4096 px defect took
    # 25-70 s to make), and each depends on (seed, index) only.
    from inspector.pipeline.config import daemon_config
    from inspector.pipeline.sources import SyntheticSource

    cam = daemon_config({"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5},
                         "cameras": [{"name": "c", "source": "synthetic", "max_frames": 3,
                                      "synthetic": {"texture": "procedural", "size": size, "pool": pool,
                                                    "defect_rate": 1.0}}]}).cameras[0]
    start = time.monotonic()
    src = SyntheticSource(cam)
    src.open()
    assert time.monotonic() - start < 2
    frames = [src.read() for _ in range(3)]
    assert time.monotonic() - start < 45
    assert all(f.image.shape == (size, size, 3) and f.meta["injected"] for f in frames)
    again = SyntheticSource(cam)
    again.open()
    for frame in frames:
        same = again.read()
        assert same.meta["injected"] == frame.meta["injected"] and (same.image == frame.image).all()


def test_a_long_unknown_texture_is_refused_in_one_short_line_naming_the_key(tiny_model, tmp_path):
    # synthetic.texture of 5,000 characters: Path.is_dir() raised ENAMETOOLONG, and the CLI's OSError line
    # echoed the whole name (5,027 characters, neither key nor camera named). Refused as an unknown texture,
    # with the echoed value clipped in its middle so the key and the reason stay on a short line.
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock",
                      [{"name": "c", "source": "synthetic", "max_frames": 2,
                        "synthetic": {"texture": "x" * 5000, "size": 64, "pool": 2}}])
    code, out, _ = _check(tmp_path, cfg)
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert code == 2 and "Traceback" not in out and len(errors) == 1, out[-2000:]
    head = f"error: {tmp_path / 'cfg.yaml'}: "  # the file the camera is configured in (a config per line)
    assert errors[0].startswith(head + "cameras[0], camera 'c': synthetic.texture: " + "x" * 60 + "…[5000 chars]…")
    assert errors[0].endswith("x: texture is neither a folder of images nor one of brick, grass, gravel")
    assert len(errors[0]) - len(head) < 300


def test_every_error_clips_a_value_echoed_whole_and_keeps_its_reason():
    # The general rule (inspector.errors.InspectorError): any run of more than LONG_RUN characters without a
    # space is a value echoed whole; its middle is cut, the message's words around it stay. Before, only a
    # message over 500 characters was cut, at its end: the reason was what was lost.
    from inspector.errors import ConfigError, DataError
    from inspector.textline import LONG_RUN

    msg = str(DataError(f"camera 'c': '{'v' * 10_000}' is not a texture (choose brick, grass, gravel)"))
    assert msg == f"camera 'c': '{'v' * 60}…[10000 chars]…{'v' * 60}' is not a texture (choose brick, grass, gravel)"
    path = "/srv/" + "deep/" * ((LONG_RUN - 10) // 5) + "f.png"  # a real installation's path stays whole
    assert str(ConfigError(f"{path}: not found")) == f"{path}: not found"


def test_a_graph_damaged_since_export_is_named_not_its_calibration(tiny_model, tmp_path):
    """A graph cut short by a copy, its sidecar and calibration as exported: ``run --check`` said the
    calibration was "made for another model" and told the user to calibrate the broken file again. The graph's
    own check against its sidecar comes first now: one line naming the graph, exit 2."""
    import shutil

    from inspector.artifacts.model_card import sha256_file
    from inspector.artifacts.thresholds import ModelBinding, Thresholds, score_stats, write_thresholds

    folder = tmp_path / "model"
    folder.mkdir()
    graph = folder / tiny_model.name
    shutil.copy(tiny_model.with_suffix(".json"), folder / tiny_model.with_suffix(".json").name)
    calibration = write_thresholds(Thresholds(
        model=ModelBinding(name=tiny_model.stem, sha256=sha256_file(tiny_model), precision="fp32",
                           backend="onnxruntime"),
        image_threshold=0.2, pixel_threshold=0.2, rule="false_alarm_rate=0.01", uncertain_band=None,
        score_stats=score_stats([0.1, 0.15, 0.12])), tmp_path / "cal.yaml")
    graph.write_bytes(tiny_model.read_bytes()[: tiny_model.stat().st_size // 2])
    cfg = base_config(graph, f"ipc://{tmp_path}/p.sock", [{"name": "c", "source": "synthetic", "max_frames": 2,
                                                            "synthetic": {"texture": "procedural", "size": 64}}])
    cfg["thresholds"] = {"calibration": str(calibration)}
    code, out, _ = _check(tmp_path, cfg)
    assert code == 2, out[-2000:]
    lines = [line for line in out.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in out, out[-2000:]
    assert lines[0].startswith(f"error: {graph}: sha256 ") and "does not match its sidecar" in lines[0], lines
    assert "calibrat" not in lines[0]


@pytest.mark.parametrize("source, said", [
    ("http://[::1/snap.jpg", "no valid host (Invalid IPv6 URL)"),
    ("rtsp://op:s3cret@[cam1]/stream", "no valid host ('cam1' does not appear to be an IPv4 or IPv6 address)"),
    ("rtsp://op:s3cret@10.0.0.5:99999/stream", "the port must be 1-65535, got '99999'"),
    ("http://10.0.0.5:0/snap.jpg", "the port must be 1-65535, got '0'"),
    ("http://10.0.0.5:-1/snap.jpg", "the port must be 1-65535, got '-1'")])
def test_a_camera_url_whose_host_or_port_cannot_be_used_is_refused_in_one_line(source, said):
    # urlsplit's ValueError (an unclosed or non-IP '[…]' host, a port past 65535) came out of 'run --check' as a
    # traceback; port 0 was opened as FFmpeg's default port (554) and -1 failed as 'Servname not supported'
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    scheme = source.split(":", 1)[0]
    cfg = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5}, "cameras": [{"name": "c", "source": source}]}
    with pytest.raises(ConfigError) as err:
        daemon_config(cfg)
    assert str(err.value).endswith(f"cameras[0].source: the {scheme}:// address: {said}")  # no password


@pytest.mark.parametrize("url", ["mqtt://[::1", "mqtt://op:s3cret@[broker]:1883"])
def test_an_mqtt_url_whose_host_cannot_be_split_is_one_line(url, tmp_path):
    # 'subscribe mqtt://[::1' and publish.mqtt.url 'mqtt://[::1' were urlsplit's ValueError: tracebacks
    from inspector.errors import ConfigError
    from inspector.pipeline.integration_config import MqttSection

    with pytest.raises(ConfigError, match=r"^publish\.mqtt\.url: .*: no valid host \(") as err:
        MqttSection(url=url).validate("publish.mqtt")
    out = subprocess.run([sys.executable, "-m", "inspector", "subscribe", url, "--timeout", "1"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1 and "no valid host (" in out.stderr, out.stderr
    assert "s3cret" not in str(err.value) + out.stderr


@pytest.mark.parametrize("section", ["metrics", "dashboard"])
@pytest.mark.parametrize("listen", ["[::1", "[cam1]:9108", "[::1:9108"])
def test_a_listen_address_with_brackets_that_hold_no_ipv6_address_is_refused(section, listen):
    # '[::1' was read as host ':' port 1 (the dashboard then asked for a token_file: 'listens on : (not
    # loopback)'), '[cam1]:9108' as the host name cam1 ('cannot listen … Name or service not known')
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    cfg = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5}, section: {"listen": listen},
           "cameras": [{"name": "c", "source": "synthetic"}]}
    with pytest.raises(ConfigError, match=rf"{section}\.listen: '.*' is not host:port"):
        daemon_config(cfg)
    cfg[section]["listen"] = "[::1]:9108"  # an IPv6 loopback address in brackets is taken
    daemon_config(cfg)


@pytest.mark.parametrize("key, value", [
    ("cameras", [{"name": "c", "source": ""}]), ("cameras", [{"name": "c", "source": "", "type": "folder"}]),
    ("cameras", [{"name": "c", "source": "synthetic", "synthetic": {"texture": ""}}]),
    ("recorder", {"enabled": True, "dir": ""}), ("summary_json", ""), ("thresholds", {"calibration": ""}),
    ("metrics", {"token_file": ""}), ("dashboard", {"token_file": ""}),
    ("publish", {"curve": {"allowed_clients_dir": ""}}),
    ("publish", {"mqtt": {"url": "mqtts://broker:8883", "ca_file": ""}}),
    ("publish", {"mqtt": {"url": "mqtt://broker:1883", "username": "u", "password_file": ""}})])
def test_an_empty_path_setting_is_refused_as_empty(key, value):
    # Path('') is '.': a camera source '' read the config's own folder as a folder camera, recorder.dir ''
    # recorded into it, summary_json '' failed at shutdown; each is now one line naming the setting
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    cfg = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5}, "cameras": [{"name": "c", "source": "synthetic"}]}
    cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=r"\.(source|texture|dir|summary_json|calibration|token_file|"
                                          r"allowed_clients_dir|ca_file|password_file): empty; give "):
        daemon_config(cfg)


def _sections_off_by_default(cls=None, path=()):
    """(dotted path, section class) of every daemon-config section that declares a switch (``_switch``), found by
    walking the config dataclasses, so a new one is tested without editing this file."""
    import dataclasses
    import typing

    from inspector.pipeline.config import DaemonConfig

    cls = cls or DaemonConfig
    for name, tp in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(tp):
            if getattr(tp, "_switch", None):
                yield ".".join((*path, name)), tp
            yield from _sections_off_by_default(tp, (*path, name))


def _nested(dotted: str, leaf: dict) -> dict:
    for part in reversed(dotted.split(".")):
        leaf = {part: leaf}
    return leaf


@pytest.mark.parametrize("where, section", list(_sections_off_by_default()), ids=lambda v: getattr(v, "__name__", v))
def test_a_setting_of_a_section_left_off_is_refused_not_ignored(where, section):
    # recorder: {dir: /data/ng} (no enabled: true) recorded no defect and run --check said "configuration OK";
    # likewise the MQTT bridge's settings without a url, the metrics' and dashboard's without listen
    import dataclasses

    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    switch, how = section._switch
    assert how.startswith(switch) and not section().enabled  # off by default, or the rule is not needed
    other = next(f for f in dataclasses.fields(section) if f.name != switch)
    value = other.default if other.default is not dataclasses.MISSING else other.default_factory()
    value = value if not dataclasses.is_dataclass(value) else {dataclasses.fields(value)[0].name:
                                                               getattr(value, dataclasses.fields(value)[0].name)}
    base = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5}, "cameras": [{"name": "c", "source": "synthetic"}]}
    given = f"{where}.{other.name}" + (f".{next(iter(value))}" if isinstance(value, dict) else "")
    with pytest.raises(ConfigError) as err:
        daemon_config({**base, **_nested(where, {other.name: value})})
    said = str(err.value).replace("config.", "")  # the root's name, as a config built without a file has it
    assert said == (f"{given}: does nothing while {where} is off ({where}.{switch} is not set); "
                    f"set {where}.{how}, or leave {given} out"), said
    # written off on purpose (a section kept for later, as the example config does) is the user's choice
    off = {"enabled": False} if switch == "enabled" else {switch: ""}
    loaded = daemon_config({**base, **_nested(where, {**off, other.name: value})})
    for part in where.split("."):
        loaded = getattr(loaded, part)
    assert loaded.enabled is False


def test_run_check_refuses_a_recorder_dir_without_enabled_in_one_line(tiny_model, tmp_path):
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock", [{"name": "c", "source": "synthetic", "max_frames": 2}],
                      recorder={"dir": "rec"})
    code, out, _ = _check(tmp_path, cfg)
    lines = [line for line in out.splitlines() if line.startswith("error")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out, out[-2000:]
    assert lines[0] == (f"error: {tmp_path / 'cfg.yaml'}: recorder.dir: does nothing while recorder is off "
                        f"(recorder.enabled is not set); set recorder.enabled: true, or leave recorder.dir out"), lines
    assert not (tmp_path / "rec").exists()


@pytest.mark.parametrize("setting, value, said, own_source", [
    ("genicam", {"exposure_us": 500.0}, "genicam.exposure_us", "genicam://Aravis-Fake-GV01"),
    ("synthetic", {"texture": "brick", "size": 64}, "synthetic.size", "synthetic"),
    ("live_decoder", "ffmpeg", "live_decoder", "rtsp://10.0.0.5:554/s"),
    ("stale_after_s", 3.0, "stale_after_s", "http://10.0.0.5/snapshot.jpg")])
@pytest.mark.parametrize("source", ["line1/images", "line1.mp4", 0, "v4l2src ! videoconvert ! appsink"])
def test_a_camera_setting_its_source_never_reads_is_refused_not_ignored(setting, value, said, own_source, source):
    # genicam: {exposure_us: 500} on a folder camera, synthetic: {size: 64} on a video file, live_decoder: ffmpeg on
    # a device: each ignored without a word while run --check said "configuration OK"
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    def config(src, **extra):
        return {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5},
                "cameras": [{"name": "c", "source": src, **extra,
                             "type": "folder" if src == "line1/images" else "auto"}]}

    with pytest.raises(ConfigError) as err:
        daemon_config(config(source, **{setting: value}))
    said_first = f"config.cameras[0].{said}: does nothing on camera 'c', whose source is "
    assert str(err.value).startswith(said_first), err.value
    assert str(err.value).endswith(" only; leave it out") and "\n" not in str(err.value)
    daemon_config(config(own_source, **{setting: value}))  # where it is read, it is taken
    defaults = {"genicam": {"trigger": "off"}, "synthetic": {"size": 256}, "live_decoder": "opencv",
                "stale_after_s": 10.0}
    daemon_config(config(source, **{setting: defaults[setting]}))  # its default written, as the example does


@pytest.mark.parametrize("source", ["rtsp://10.0.0.5:554/s", "udp://0.0.0.0:5000", "srt://10.0.0.5:9000"])
def test_stale_after_s_on_a_stream_url_is_refused_not_ignored(source):
    """stale_after_s is read by http(s) snapshot cameras only (a picture answered again: http_sources); on an
    rtsp/udp/srt stream it was taken without a word and never read."""
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    scheme = source.split(":")[0]
    base = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5}}
    with pytest.raises(ConfigError, match=rf"^config\.cameras\[0\]\.stale_after_s: does nothing on camera 'c', "
                                          rf"whose source is an {scheme}:// URL; it is for http\(s\) snapshot"):
        daemon_config({**base, "cameras": [{"name": "c", "source": source, "stale_after_s": 3.0}]})
    for own in ("http://10.0.0.5/snapshot.jpg", "HTTPS://10.0.0.5/snapshot.jpg"):
        daemon_config({**base, "cameras": [{"name": "c", "source": own, "stale_after_s": 3.0}]})


@pytest.mark.parametrize("model, said", [
    ({"path": "m.onnx", "cuda_graphs": True}, "model.cuda_graphs: does nothing on ONNX Runtime"),
    ({"path": "m.onnx", "device": 1}, "model.device: does nothing on ONNX Runtime"),
    ({"path": "m.onnx", "backend": "onnxruntime", "cuda": "pycuda"}, "model.cuda: does nothing on ONNX Runtime"),
    ({"path": "m.plan", "threads": 2}, "model.threads: does nothing on a TensorRT engine"),
    ({"path": "m.onnx", "backend": "tensorrt", "replicas": 2}, "model.replicas: does nothing on a TensorRT engine"),
    ({"path": "m.engine", "spinning": False}, "model.spinning: does nothing on a TensorRT engine"),
    ({"path": "m.onnx", "spinning": False, "spin_us": 50}, "model.spin_us: does nothing with spinning: false"),
    ({"path": "m.onnx", "spinning": False, "spin_after_run": True},
     "model.spin_after_run: does nothing with spinning: false")])
def test_a_model_setting_its_backend_never_reads_is_refused_not_ignored(model, said):
    # cuda_graphs: true on an .onnx graph, threads on a TensorRT engine, spin_us with spinning off: each handed to
    # no backend (Daemon._default_backend) while run --check said "configuration OK"
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    base = {"thresholds": {"image": 0.5}, "cameras": [{"name": "c", "source": "synthetic"}]}
    with pytest.raises(ConfigError) as err:
        daemon_config({**base, "model": model})
    assert str(err.value).startswith(f"config.{said}") and str(err.value).endswith("; leave it out"), err.value
    on_its_backend = {"path": "m.plan" if "ONNX Runtime" in said else "m.onnx",
                      **{k: v for k, v in model.items() if k not in ("path", "backend")}}
    if "spinning: false" not in said:  # read by the backend that runs it
        daemon_config({**base, "model": on_its_backend})
    defaults = {"path": model["path"], "spinning": True, "cuda_graphs": False, "threads": None}
    daemon_config({**base, "model": defaults})  # defaults written out, as the example config does
    with pytest.raises(ConfigError, match=r"drift\.window: does nothing without thresholds\.calibration"):
        daemon_config({**base, "model": {"path": "m.onnx"}, "drift": {"window": 100}})  # its image threshold alone
    daemon_config({**base, "model": {"path": "m.onnx"}, "drift": {"enabled": False, "window": 100}})
    with pytest.raises(ConfigError, match="wait_for_subscribers_timeout_s: does nothing with wait_for_subscribers: 0"):
        daemon_config({**base, "model": {"path": "m.onnx"}, "publish": {"wait_for_subscribers_timeout_s": 60.0}})
    daemon_config({**base, "model": {"path": "m.onnx"},
                   "publish": {"wait_for_subscribers": 1, "wait_for_subscribers_timeout_s": 60.0}})


def test_payloads_on_results_without_result_events_is_refused_not_ignored():
    """postprocess.payloads_on_results: true with publish.results left off (its default): no v1/result event is sent
    on any transport (PublishWorker: an OK frame sends nothing), so the payloads the user asked for never came while
    run --check said "configuration OK". With results on it is read; written out false it is accepted."""
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    base = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5}, "cameras": [{"name": "c", "source": "synthetic"}]}
    with pytest.raises(ConfigError, match=r"^config\.postprocess\.payloads_on_results: does nothing with "
                                          r"publish\.results: false .*; leave it out$"):
        daemon_config({**base, "postprocess": {"payloads_on_results": True}})
    assert daemon_config({**base, "postprocess": {"payloads_on_results": True},
                          "publish": {"results": True}}).postprocess.payloads_on_results
    daemon_config({**base, "postprocess": {"payloads_on_results": False}, "publish": {"results": False}})


def test_run_check_refuses_an_empty_camera_source_naming_the_config_file(tiny_model, tmp_path):
    # the folder camera on the config's own folder passed --check (it held the config: no images, still 'OK')
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock", [{"name": "c", "source": ""}])
    code, out, _ = _check(tmp_path, cfg)
    lines = [line for line in out.splitlines() if line.startswith("error")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out, out[-2000:]
    assert lines[0].startswith(f"error: {tmp_path / 'cfg.yaml'}: cameras[0].source: empty; "), lines
    from inspector.pipeline.config import daemon_config
    cfg["cameras"][0]["source"] = "synthetic"
    cfg["publish"]["mqtt"] = {"url": "mqtt://127.0.0.1:5841", "state_file": ""}  # '' documented: the default place
    daemon_config(cfg)


def test_recorder_max_bytes_below_any_recording_is_refused():
    # max_bytes 1 passed --check; at run time every recording but the newest was deleted as soon as it was
    # written, told by one warning in the run's log
    from inspector.errors import ConfigError
    from inspector.pipeline.config import daemon_config

    cfg = {"model": {"path": "m.onnx"}, "thresholds": {"image": 0.5}, "cameras": [{"name": "c", "source": "synthetic"}],
           "recorder": {"max_bytes": 1}}
    with pytest.raises(ConfigError, match=r"recorder\.max_bytes: 1 is below the smallest recording \(\d+ bytes"):
        daemon_config(cfg)
    from inspector.pipeline.config import smallest_recording_bytes

    floor = smallest_recording_bytes()
    assert 400 < floor < 1000
    for too_small in (1, floor - 1):
        cfg["recorder"] = {"max_bytes": too_small}
        with pytest.raises(ConfigError, match=rf"recorder\.max_bytes: {too_small} is below the smallest "
                                              rf"recording \({floor} bytes"):
            daemon_config(cfg)
    for taken in (0, floor):  # 0: no limit
        cfg["recorder"] = {"enabled": True, "max_bytes": taken}
        daemon_config(cfg)


def test_run_check_refuses_min_free_beyond_the_disk_and_warns_when_merely_full_now(tiny_model, tmp_path):
    # min_free_bytes above the file system's size passed --check; every defect was then skipped as 'low disk'
    import shutil

    total = shutil.disk_usage(tmp_path).total
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/p.sock",
                      [{"name": "c", "source": "synthetic", "synthetic": {"texture": "procedural", "size": 64}}],
                      recorder={"enabled": True, "dir": str(tmp_path / "rec" / "new"), "min_free_bytes": total + 1})
    code, out, _ = _check(tmp_path, cfg)
    lines = [line for line in out.splitlines() if line.startswith("error")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in out, out[-2000:]
    assert lines[0].startswith(f"error: {tmp_path / 'cfg.yaml'}: recorder.min_free_bytes: {total + 1} is more "
                               f"than the whole file system of {tmp_path / 'rec' / 'new'} holds"), lines
    cfg["recorder"]["min_free_bytes"] = total  # more than is free now (something is on every disk): a warning
    code, out, _ = _check(tmp_path, cfg)
    assert code == 0 and "configuration OK" in out, out[-2000:]
    assert sum("recorder.min_free_bytes" in line and "WARNING" in line for line in out.splitlines()) == 1, out
    assert not (tmp_path / "rec").exists()  # --check makes no folder


@pytest.mark.parametrize("given", ["calibration", "model card", "training config"])
def test_another_inspector_file_given_as_the_daemon_config_is_named_with_where_it_goes(
        exported_model, trained_run, tiny_dataset, tmp_path, capsys, given):
    """A newcomer's `run --config calibration/rs-brick.yaml` said "unknown key 'schema_version' (did you mean
    'summary_json'?)" and a run's config.yaml "unknown key 'data'": nothing said what the file was. Now one line
    names its kind and where it goes in a daemon config (exit 2). Real files made by calibrate, export, train."""
    from inspector.cli import main
    from inspector.evaluation.calibrate import calibrate

    if given == "calibration":
        path = calibrate(exported_model, good_dir=tiny_dataset / "test" / "good", allow_few_good=True,
                         out=tmp_path / "rs.yaml").path
        kind, where = "a calibration file (made by 'inspector calibrate')", "thresholds.calibration"
    elif given == "model card":
        path, kind = exported_model.with_suffix(".json"), "a model card (made by 'inspector export')"
        where = "model.path"
    else:
        path, kind, where = trained_run / "config.yaml", "a training config", "model.path"
    capsys.readouterr()
    assert main(["run", "--config", str(path), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: {kind}, not a daemon config: "), err
    assert where in err[0] and "inspector.example.yaml" in err[0], err
