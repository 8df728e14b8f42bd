"""`inspector run`: bad configuration → one clear line each; --check; the example config documents every key."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import socket
import typing
from pathlib import Path

import pytest
import yaml

from pipeline_support import base_config, free_port, slow_recorder_disk, write_folder, write_video
from inspector.cli import main
from inspector.client import Subscriber
from inspector.errors import ConfigError
from inspector.pipeline.config import DaemonConfig, daemon_config
from inspector.artifacts.model_card import sha256_file
from inspector.artifacts.thresholds import ModelBinding, Thresholds, write_thresholds

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def video(tmp_path) -> Path:
    return write_video(tmp_path / "v.avi", [False, True, False])


def run_cli(tmp_path: Path, cfg: dict, capsys, *extra: str) -> tuple[int, str, str]:
    path = tmp_path / "inspector.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main(["run", "--config", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_check_ok(tiny_model, endpoint, video, tmp_path, capsys):
    code, out, err = run_cli(tmp_path, base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}]),
                             capsys, "--check")
    assert code == 0, err
    assert "ok model" in out and "ok camera 'c'" in out and "configuration OK" in out


def test_unknown_key_suggests(tiny_model, endpoint, video, tmp_path, capsys):
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "sorce": str(video)}])
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    line = one_error_line(err)
    assert code == 2 and "cameras[0]: unknown key 'sorce'" in line and "did you mean 'source'" in line


def test_missing_model(endpoint, video, tmp_path, capsys):
    cfg = base_config(tmp_path / "nope.onnx", endpoint, [{"name": "c", "source": str(video)}])
    code, _, err = run_cli(tmp_path, cfg, capsys)
    line = one_error_line(err)
    assert code == 2 and "model.path" in line and "nope.onnx not found" in line


def test_calibration_for_another_model(tiny_model, endpoint, video, tmp_path, capsys):
    cal = write_thresholds(Thresholds(model=ModelBinding("other", "ab" * 32, "fp16", "tensorrt"),
                                      image_threshold=0.2, pixel_threshold=0.2), tmp_path / "cal.yaml")
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}])
    cfg["thresholds"] = {"calibration": str(cal)}
    code, _, err = run_cli(tmp_path, cfg, capsys)
    line = one_error_line(err)
    assert code == 2 and "another model" in line and f"inspector calibrate {tiny_model}" in line


def test_matching_calibration_is_used(tiny_model, endpoint, video, tmp_path, capsys):
    cal = write_thresholds(Thresholds(model=ModelBinding("tiny", sha256_file(tiny_model)), image_threshold=0.125,
                                      pixel_threshold=0.1), tmp_path / "cal.yaml")
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}])
    cfg["thresholds"] = {"calibration": str(cal)}
    code, out, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 0, err
    assert "threshold 0.125 from" in out


def test_no_threshold_at_all(tiny_model, endpoint, video, tmp_path, capsys):
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}])
    cfg["thresholds"] = {}
    code, _, err = run_cli(tmp_path, cfg, capsys)
    line = one_error_line(err)
    assert code == 2 and "no calibration file" in line and "inspector calibrate" in line


def test_port_in_use(tiny_model, video, tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        code, _, err = run_cli(tmp_path, base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}]),
                               capsys)
    line = one_error_line(err)
    assert code == 2 and "cannot bind" in line and "in use" in line


def test_missing_video_and_gstreamer_without_support(tiny_model, endpoint, tmp_path, capsys):
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(tmp_path / "missing.avi")}])
    code, _, err = run_cli(tmp_path, cfg, capsys)
    assert code == 2 and "camera 'c'" in one_error_line(err) and "missing.avi not found" in err
    from inspector.pipeline.sources import has_gstreamer

    if not has_gstreamer():
        cfg["cameras"] = [{"name": "g", "source": "videotestsrc ! videoconvert ! appsink"}]
        code, _, err = run_cli(tmp_path, cfg, capsys)
        assert code == 2 and "no GStreamer support" in one_error_line(err)


@pytest.mark.parametrize("name, make, said", [
    ("cam.avi", os.mkfifo, "is a FIFO (named pipe), not a video or image file"),
    ("cam.png", os.mkfifo, "is a FIFO (named pipe), not a video or image file"),
    ("cam", os.mkfifo, "is a FIFO (named pipe), not a video or image file"),
    ("cam.ts", lambda p: socket.socket(socket.AF_UNIX).bind(str(p)), "is a socket, not a video or image file"),
    # a link loop and a broken link: "no such file or folder" / "not found" of a name listed there
    ("cam.png", lambda p: (p.symlink_to(p.with_name("b.png")), p.with_name("b.png").symlink_to(p)),
     "a symbolic link loop (too many levels of symbolic links), not a video or image file"),
    ("cam.avi", lambda p: (p.symlink_to(p.with_name("b.avi")), p.with_name("b.avi").symlink_to(p)),
     "a symbolic link loop (too many levels of symbolic links), not a video or image file"),
    ("cam.png", lambda p: p.symlink_to(p.with_name("deleted.png")), "broken symbolic link (its target"),
])
def test_a_camera_source_that_is_a_special_file_is_named_for_what_it_is(name, make, said, tiny_model, endpoint,
                                                                       tmp_path, capsys):
    """A FIFO or socket where a recording was configured: it is there, so "video file … not found" (a video's
    name) or "no such file or folder" (any other) sent people looking for a missing file. One line, exit 2."""
    make(tmp_path / name)
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(tmp_path / name)}])
    code, _, err = run_cli(tmp_path, cfg, capsys)
    line = one_error_line(err)
    assert code == 2 and "camera 'c'" in line and said in line and "not found" not in line, line


@pytest.mark.parametrize("kind, make, said", [
    ("folder", lambda p: write_video(p, [False]), "is a file, not a folder"),
    ("file", lambda p: p.mkdir(), "is a folder, not a video or image file"),
])
def test_a_camera_of_an_explicit_type_on_the_other_kind_of_path_says_so(kind, make, said, tiny_model, endpoint,
                                                                       tmp_path, capsys, caplog):
    """``type: folder`` on a file (or ``type: file`` on a folder): said "folder not found" / "video file … not
    found" of a path that is there. A file is refused at start (exit 2); a folder camera fails when it opens
    (exit 1, its 'failed' line)."""
    make(tmp_path / "src.avi")
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "type": kind, "source": str(tmp_path / "src.avi")}])
    code, _, err = run_cli(tmp_path, cfg, capsys)
    line = one_error_line(err) if code == 2 else caplog.text
    assert code == (1 if kind == "folder" else 2) and said in line and "not found" not in line, (code, line)


def test_bad_values(tiny_model, endpoint, video, tmp_path, capsys):
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}, {"name": "c", "source": str(video)}])
    code, _, err = run_cli(tmp_path, cfg, capsys)
    assert code == 2 and "duplicate camera name" in one_error_line(err)
    cfg = base_config(tiny_model, endpoint, [{"name": "c\n", "source": str(video)}])  # '$' let it through
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and "must be 1-64 letters" in one_error_line(err)
    cfg = base_config(tiny_model, "localhost:5556", [{"name": "c", "source": str(video)}])
    code, _, err = run_cli(tmp_path, cfg, capsys)
    assert code == 2 and "not a ZeroMQ endpoint" in one_error_line(err)


@pytest.mark.parametrize("names", [("Cam", "cam"), ("line1", "LINE1"), ("cam", "cam.")])
def test_camera_names_sharing_a_folder_on_case_insensitive_disks(names, tiny_model, endpoint, video, tmp_path,
                                                                 capsys):
    # On exFAT, SMB or macOS 'Cam' and 'cam' (and on FAT/exFAT/Windows 'cam.' and 'cam') are one recorder
    # folder: the two cameras' same-numbered recordings would collide and evidence be lost.
    cfg = base_config(tiny_model, endpoint, [{"name": n, "source": str(video)} for n in names])
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    line = one_error_line(err)
    assert code == 2 and f"'{names[0]}'" in line and f"'{names[1]}'" in line and "one recorder folder" in line


def _leaf_keys(cls, prefix="") -> set[str]:
    keys = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if typing.get_origin(tp) is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            tp = typing.get_args(tp)[0]
        keys.add(prefix + f.name)
        if dataclasses.is_dataclass(tp):
            keys |= _leaf_keys(tp, prefix + f.name + ".")
    return keys


def _yaml_keys(data, prefix="") -> set[str]:
    keys = set()
    if isinstance(data, list):
        data = data[0]
    for k, v in data.items():
        keys.add(prefix + k)
        if isinstance(v, (dict, list)) and v and isinstance(v[0] if isinstance(v, list) else v, dict):
            keys |= _yaml_keys(v, prefix + k + ".")
    return keys


def test_example_config_documents_every_key():
    data = yaml.safe_load((REPO / "inspector.example.yaml").read_text())
    cfg = daemon_config(data, base_dir=REPO)  # valid as it stands
    assert len(cfg.cameras) == 2
    assert _leaf_keys(DaemonConfig) == _yaml_keys(data)


# -- a stop request during start-up is orderly -----------------------------------------------------------------
@pytest.mark.parametrize("where", ["config", "setup"])
def test_signal_during_startup_stops_in_order(tiny_model, endpoint, video, tmp_path, capsys, caplog, monkeypatch,
                                              where):
    """SIGTERM while the config is read (before the daemon exists) or while it binds and loads: exit 0 with a
    log line and the final 'stopped' line, never the default action (a silent death)."""
    import signal

    import inspector.pipeline.config as config_module
    from inspector.pipeline.daemon import Daemon

    def signalled(real):
        def wrapper(*args, **kwargs):
            signal.raise_signal(signal.SIGTERM)  # delivered to the handler before the next bytecode
            return real(*args, **kwargs)
        return wrapper

    if where == "config":
        monkeypatch.setattr(config_module, "load_daemon_config", signalled(config_module.load_daemon_config))
    else:
        monkeypatch.setattr(Daemon, "setup", signalled(Daemon.setup))
    caplog.set_level("INFO")
    summary = tmp_path / "summary.json"
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}], summary_json=str(summary))
    code, out, err = run_cli(tmp_path, cfg, capsys)
    assert code == 0 and "Traceback" not in err, err
    assert "stopped: 0 frames inspected" in out
    assert "SIGTERM during start-up" in caplog.text
    assert json.loads(summary.read_text())["totals"].get("inferred_frames", 0) == 0  # final stats, as for any run
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored after the command


# -- an endpoint already served is refused, whatever the transport -----------------------------------------------
@pytest.mark.parametrize("transport", ["tcp", "ipc", "ipc-abstract", "inproc"])
def test_endpoint_already_served_is_refused(tmp_path, transport):
    import zmq

    from inspector.errors import ConfigError
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.publish import Publisher

    endpoint = {"tcp": "tcp://127.0.0.1:*", "ipc": f"ipc://{tmp_path}/d.sock",
                "ipc-abstract": f"ipc://@inspector-test-{tmp_path.name}", "inproc": "inproc://served"}[transport]
    context = zmq.Context()  # inproc names are per context: both daemons share one here
    first = Publisher(PublishSection(endpoint=endpoint), context)
    try:
        with pytest.raises(ConfigError, match="publish.endpoint"):
            Publisher(PublishSection(endpoint=first.endpoint), context)
    finally:
        first.close()
        context.term()


def test_stale_ipc_socket_file_is_reused(tmp_path):
    """A socket file left by a crashed daemon (nobody listening) does not block a new start."""
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.publish import Publisher

    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    pub = Publisher(PublishSection(endpoint=f"ipc://{path}"))
    pub.close()


@pytest.mark.parametrize("section, make, expected", [
    ({"recorder": {"enabled": True, "dir": "{file}"}}, "file", "recorder.dir: {file} exists and is not a folder"),
    ({"summary_json": "{folder}"}, "folder", "summary_json: {folder} is a folder, not a file name"),
    ({"summary_json": "{file}/summary.json"}, "file", "summary_json: {file} is a file, not a folder"),
])
def test_check_refuses_outputs_the_run_could_not_write(section, make, expected, tiny_model, endpoint, video,
                                                       tmp_path, capsys):
    """Accepted before, they lost the recordings or the summary at run time (an error logged, exit 0)."""
    paths = {"file": tmp_path / "notes.txt", "folder": tmp_path / "results"}
    paths["file"].write_text("the user's")
    paths["folder"].mkdir()
    fill = {k: str(v) for k, v in paths.items()}
    key, value = next(iter(section.items()))
    value = ({k: v.format(**fill) if isinstance(v, str) else v for k, v in value.items()} if isinstance(value, dict)
             else value.format(**fill))
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}], **{key: value})
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and one_error_line(err) == f"error: {tmp_path / 'inspector.yaml'}: " + expected.format(**fill)
    assert paths["file"].read_text() == "the user's" and not any(paths["folder"].iterdir())


def test_check_refuses_an_inproc_endpoint_no_subscriber_could_reach(tiny_model, video, tmp_path, capsys):
    """inproc:// reaches only sockets of the daemon's own ZeroMQ context: --check said OK and the run published every
    event to no one."""
    cfg = base_config(tiny_model, "inproc://events", [{"name": "c", "source": str(video)}])
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and one_error_line(err) == (
        f"error: {tmp_path / 'inspector.yaml'}: publish.endpoint: inproc://events can be reached only from inside this process, so no subscriber "
        "could connect; use ipc://PATH or tcp://HOST:PORT")


_KERNEL_FS = pytest.mark.skipif(not os.path.exists("/proc/self/mountinfo") or not os.path.ismount("/proc"),
                                reason="needs Linux's /proc")


@_KERNEL_FS
@pytest.mark.parametrize("section, expected", [
    ({"recorder": {"enabled": True, "dir": "/proc/inspector-recordings"}},
     "recorder.dir: /proc/inspector-recordings is on a proc file system of the kernel, which keeps no files"),
    ({"summary_json": "/proc/sys/vm/drop_caches"},
     "summary_json: /proc/sys/vm/drop_caches is on a proc file system of the kernel, which keeps no files"),
])
def test_check_refuses_outputs_on_a_kernel_file_system(section, expected, tiny_model, endpoint, video, tmp_path,
                                                       capsys):
    """access(2) tells a root user that /proc and /sys are writable, so --check passed a recorder.dir there (every
    recording then failed: mkdir gives ENOENT) and a summary_json over a kernel setting (drop_caches)."""
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}], **section)
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and one_error_line(err) == f"error: {tmp_path / 'inspector.yaml'}: " + expected


@_KERNEL_FS
def test_only_a_path_on_a_kernel_file_system_is_refused(tmp_path):
    """The file system is that of the nearest existing folder: a "proc" folder elsewhere, or /procedures, is not
    /proc."""
    from inspector.outputs import folder_problem

    assert folder_problem("/proc/x") is not None
    assert folder_problem(tmp_path / "proc" / "x") is None
    assert folder_problem("/procedures-that-do-not-exist/x") is None


def test_check_refuses_an_mqtt_state_file_the_run_could_not_write(tiny_model, endpoint, video, tmp_path, capsys):
    """publish.mqtt.state_file naming a folder passed --check and the run said OK, but at shutdown the bridge's
    undelivered final counts were 'not kept in <folder> (Is a directory)': lost, told in a warning only."""
    pytest.importorskip("paho.mqtt")
    (tmp_path / "state").mkdir()
    mqtt = {"url": "mqtt://127.0.0.1:1", "state_file": str(tmp_path / "state")}
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}], publish={"mqtt": mqtt})
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and one_error_line(err) == f"error: {tmp_path / 'inspector.yaml'}: publish.mqtt.state_file: {tmp_path / 'state'} is a folder, " \
                                               f"not a file name"


def _not_a_file(place: Path, kind: str) -> None:
    """Put at ``place`` something no file can be written as: a folder, a FIFO, a dangling link, or a file where
    its folder should be (``under-a-file``: ``place``'s parent is a file)."""
    place.parent.mkdir(parents=True, exist_ok=True)
    if kind == "folder":
        place.mkdir()
    elif kind == "fifo":
        os.mkfifo(place)
    elif kind == "dangling-link":
        place.symlink_to(place.parent / "gone" / "counts.json")
    else:
        place.parent.rmdir()
        place.parent.write_text("a file, not a folder\n")


_NOT_A_FILE = {"folder": "is a folder, not a file name", "fifo": "is not a regular file",
               "dangling-link": "is a symbolic link to", "under-a-file": "is a file, not a folder"}


@pytest.mark.parametrize("kind", list(_NOT_A_FILE))
def test_check_refuses_what_is_at_the_mqtt_bridges_default_state_path(tiny_model, endpoint, video, tmp_path,
                                                                      capsys, monkeypatch, kind):
    """With no publish.mqtt.state_file, the bridge keeps its undelivered final counts in
    $XDG_STATE_HOME/inspector/mqtt-bridge-<box>.json; --check looked only at a configured state_file, so a folder
    there passed --check and the run, and the counts of an outage were lost at shutdown (one warning)."""
    pytest.importorskip("paho.mqtt")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    place = tmp_path / "state" / "inspector" / "mqtt-bridge-b1.json"
    _not_a_file(place, kind)
    mqtt = {"url": f"mqtt://127.0.0.1:{free_port()}", "box": "b1"}
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}], publish={"mqtt": mqtt})
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"error: {tmp_path / 'inspector.yaml'}: publish.mqtt.state_file: "), err
    assert _NOT_A_FILE[kind] in line and "its default place" in line, line
    assert str(place if kind != "under-a-file" else place.parent) in line, line


@pytest.mark.parametrize("key", ["summary_json", "publish.mqtt.state_file"])
def test_check_refuses_a_dangling_link_as_an_output_file(tiny_model, endpoint, video, tmp_path, capsys, key):
    """A link to a file in a folder that does not exist passed --check; written in place at shutdown (summary_json)
    it failed (No such file or directory), or, its folder there, made a file wherever the link pointed."""
    if key.startswith("publish"):
        pytest.importorskip("paho.mqtt")
    link = tmp_path / "out.json"
    _not_a_file(link, "dangling-link")
    sections = {"publish": {"mqtt": {"url": f"mqtt://127.0.0.1:{free_port()}", "box": "b1",
                                     "state_file": str(link)}}} if key.startswith("publish") else {key: str(link)}
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}], **sections)
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and one_error_line(err) == (f"error: {tmp_path / 'inspector.yaml'}: {key}: {link} is a symbolic link to "
                                                 f"{tmp_path / 'gone' / 'counts.json'}, which does not exist"), err


def test_a_choice_written_as_a_number_is_told_to_be_quoted(tiny_model, endpoint, video, tmp_path, capsys):
    """YAML reads ``protocol: 5`` as the number 5: the line said "'5' is not one of ['5', '3.1.1'] (did you mean
    '5'?)"."""
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}],
                      publish={"mqtt": {"url": "mqtt://127.0.0.1:1", "protocol": 5}})
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and one_error_line(err).endswith("publish.mqtt.protocol: 5 is read as a number; write it in "
                                                      "quotes: \"5\""), err


def test_relative_paths_of_every_file_setting_are_taken_from_the_configs_folder(tmp_path):
    """As the config's documentation says of every path: metrics.token_file and publish.mqtt.state_file were
    taken from the working directory, so a daemon checked in its config's folder read another token, or kept
    its state elsewhere, once started by a service manager in another folder."""
    from inspector.pipeline.config import load_daemon_config

    cfg_path = tmp_path / "box" / "inspector.yaml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(yaml.safe_dump({
        "model": {"path": "m.onnx"}, "cameras": [{"name": "c", "source": "synthetic"}],
        "metrics": {"listen": "127.0.0.1:9108", "token_file": "metrics.token"},
        "dashboard": {"listen": "127.0.0.1:8080", "token_file": "dash.token"},
        "publish": {"mqtt": {"url": "mqtt://broker", "state_file": "state/mqtt.json", "password_file": "mqtt.pw"}}}))
    cfg = load_daemon_config(cfg_path)
    folder = str(cfg_path.parent)
    assert cfg.metrics.token_file == f"{folder}/metrics.token" and cfg.dashboard.token_file == f"{folder}/dash.token"
    assert cfg.publish.mqtt.state_file == f"{folder}/state/mqtt.json"
    assert cfg.publish.mqtt.password_file == f"{folder}/mqtt.pw"


@pytest.mark.parametrize("make, said", [("file", "exists and is not a folder"), ("link", "is a symbolic link")])
def test_a_camera_folder_the_recorder_cannot_keep_recordings_in_costs_that_cameras_recordings_only(
        make, said, tiny_model, endpoint, video, tmp_path, capsys, caplog):
    """<recorder.dir>/<camera> a file or a symbolic link (recordings written through it were never counted nor
    pruned by a later run's retention, which does not follow links): never written into, told by --check and
    at the start of the run, and that camera's defects counted as lost; the camera is still inspected (a
    recorder problem on one camera stopped every camera before)."""
    rec = tmp_path / "rec"
    rec.mkdir()
    (tmp_path / "elsewhere").mkdir()
    if make == "file":
        (rec / "c").write_text("the user's")
    else:
        (rec / "c").symlink_to(tmp_path / "elsewhere")
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}], thresholds={"image": 0.0},
                      recorder={"enabled": True, "dir": str(rec), "min_free_bytes": 0},
                      summary_json=str(tmp_path / "summary.json"))
    for extra in (["--check"], []):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            code, out, err = run_cli(tmp_path, cfg, capsys, *extra)
        # --check passes; the run lost the camera's recordings, offline: evidence lost, exit 1 naming the recorder
        assert code == (1 if not extra else 0) and "Traceback" not in err, err
        assert any(f"{rec / 'c'} {said}" in r.getMessage() and "'c'" in r.getMessage() for r in caplog.records)
    assert "recording(s) lost (recorder folder unusable 3)" in out.splitlines()[-1].split("failures: ")[-1], out
    assert json.loads((tmp_path / "summary.json").read_text())["totals"]["recorder.unusable"] == 3
    assert not any((tmp_path / "elsewhere").iterdir()) and [p.name for p in rec.iterdir()] == ["c"]


@pytest.mark.parametrize("port", ["99999", "65536", "-5", "5556x", ""])
def test_tcp_port_out_of_range_is_refused(port, tiny_model, video, tmp_path, capsys):
    # libzmq keeps 16 bits of the port: tcp://127.0.0.1:99999 bound port 34463 and --check said "ok
    # publishing on tcp://127.0.0.1:34463"; a subscriber given :99999 connected to 34463 too, another daemon's.
    endpoint = f"tcp://127.0.0.1:{port}" if port else "tcp://127.0.0.1"
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}])
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and "publish.endpoint" in one_error_line(err)
    with pytest.raises(ConfigError, match="TCP port|no port"):
        Subscriber(endpoint)


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:*", "tcp://127.0.0.1:0"])
def test_ephemeral_tcp_port_binds(endpoint, tiny_model, video, tmp_path, capsys):
    code, out, _ = run_cli(tmp_path, base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}]),
                           capsys, "--check")
    assert code == 0 and "ok publishing on tcp://127.0.0.1:" in out


@pytest.mark.parametrize("port", ["99999", "0", "abc"])
def test_mqtt_port_out_of_range_is_one_line(port, tiny_model, endpoint, video, tmp_path, capsys):
    # urlsplit(...).port raised ValueError past 65535: a traceback from 'run --check' and 'subscribe mqtt://…';
    # port 0 was read as "no port" and silently became 1883.
    pytest.importorskip("paho.mqtt.client")
    url = f"mqtt://127.0.0.1:{port}"
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}])
    cfg["publish"]["mqtt"] = {"url": url}
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and "publish.mqtt.url" in one_error_line(err)
    assert main(["subscribe", url]) == 2
    assert "1-65535" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("linked", [False, True])
def test_recording_into_a_folder_cameras_folder_is_refused(linked, tiny_model, endpoint, tmp_path, capsys):
    # <recorder.dir>/<camera> was the folder a folder camera reads: its recordings and heat maps (.png) were
    # inspected as that camera's frames and NG ones recorded again, the folder growing for the whole run.
    folder = write_folder(tmp_path / "line" / "cam", [False] * 2)
    if linked:  # the same folder by another name
        (tmp_path / "alias").symlink_to(tmp_path / "line")
        folder = tmp_path / "alias" / "cam"
    cfg = base_config(tiny_model, endpoint, [{"name": "cam", "source": str(folder), "loop": True}])
    cfg["recorder"] = {"enabled": True, "dir": str(tmp_path / "line"), "min_free_bytes": 0}
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and "recorder.dir" in one_error_line(err)
    cfg["recorder"]["dir"] = str(tmp_path / "recordings")
    assert run_cli(tmp_path, cfg, capsys, "--check")[0] == 0


@pytest.mark.parametrize("source, said", [("htp://127.0.0.1:9/x", "'http'"), ("rtps://u:secret@cam/x", "'rtsp'")])
def test_a_url_scheme_ffmpeg_never_opens_is_refused_at_start(source, said, tiny_model, endpoint, tmp_path, capsys):
    # A typo in the scheme can never open: 'run' started and retried the camera for ever ('cannot open url').
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": source}])
    code, _, err = run_cli(tmp_path, cfg, capsys)  # a real run, not --check: refused before it starts
    line = one_error_line(err)
    assert code == 2 and "cameras[0].source" in line and said in line and "secret" not in err


@pytest.mark.parametrize("source, typed", [("rtsp//192.0.2.1/stream", "'rtsp//…'"),
                                           ("rtsp:/u:secret@cam/x", "'rtsp:/…'"),
                                           ("http:/127.0.0.1:9/x.mjpg", "'http:/…'"),
                                           ("https//cam/snap.jpg", "'https//…'"),
                                           ("RTSP:cam/x", "'RTSP:…'")])
def test_a_camera_url_with_a_mistyped_separator_is_told_as_a_url(source, typed, tiny_model, endpoint, tmp_path,
                                                                  capsys):
    # A newcomer's 'rtsp//cam' or 'http:/cam' was taken for a file path beside the config and told "cannot tell
    # what source '<config folder>/rtsp/cam' is (no such file or folder …)", its '//' folded away: no word of a URL.
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": source}])
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    line = one_error_line(err)
    assert code == 2 and "cameras[0].source" in line and typed in line and "://" in line, line
    assert "secret" not in err and str(tmp_path) + "/rtsp" not in line


def test_a_gstreamer_pipeline_naming_a_uri_is_a_pipeline(tiny_model, endpoint, tmp_path, capsys):
    # 'rtspsrc location=rtsp://… ! … ! appsink' was taken for an FFmpeg URL ('://' before '!'): never opened,
    # retried for ever. It is a pipeline (refused in one line where this OpenCV has no GStreamer).
    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.sources import has_gstreamer, source_type

    pipeline = "rtspsrc location=rtsp://127.0.0.1:9/x ! decodebin ! videoconvert ! appsink"
    assert source_type(CameraSection(name="g", source=pipeline)) == "gstreamer"
    if not has_gstreamer():
        code, _, err = run_cli(tmp_path, base_config(tiny_model, endpoint, [{"name": "g", "source": pipeline}]),
                               capsys)
        assert code == 2 and "no GStreamer support" in one_error_line(err)


# -- one daemon per recorder.dir ----------------------------------------------------------------------------------
_HOLD_DIR = """
import sys, time
from inspector.pipeline.recorder import lock_recorder_dir
lock_recorder_dir(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_daemon_on_one_recorder_dir_is_refused_and_a_crashed_ones_lock_is_gone(tiny_model, endpoint,
                                                                                        video, tmp_path, capsys):
    # Two daemons recording in one folder counted each other's recordings: one's retention deleted the other's
    # evidence and max_events/max_bytes were shared. The first holds the folder (flock) for its run; the kernel
    # drops the lock when it dies, crashed or not.
    import os
    import subprocess
    import sys

    rec = tmp_path / "rec"
    rec.mkdir()
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}])
    cfg["recorder"] = {"enabled": True, "dir": str(rec), "min_free_bytes": 0}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    other = subprocess.Popen([sys.executable, "-c", _HOLD_DIR, str(rec)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        for extra in (["--check"], []):
            code, _, err = run_cli(tmp_path, cfg, capsys, *extra)
            line = one_error_line(err)
            assert code == 2 and str(rec) in line and f"pid {other.pid}" in line, line
    finally:
        other.kill()  # SIGKILL: a crash, nothing let go of the lock by hand
        other.wait()
    for _ in range(2):  # free again; and each run lets go of it when it ends
        code, out, err = run_cli(tmp_path, cfg, capsys)
        assert code == 0, err
    assert len(list((rec / "c").glob("*.json"))) >= 2  # both runs recorded
    # the lock is on the folder itself: no lock or counter file that the next run would rewrite among the evidence
    assert [p.name for p in rec.iterdir()] == ["c"]


def test_recordings_a_slow_disk_could_not_write_before_shutdown_are_counted_and_told_once(
        tiny_model, endpoint, tmp_path, capsys, monkeypatch, caplog):
    # A burst of defects queued for the recorder on a slow disk (SD card, network share) when the run ends:
    # what it cannot write within shutdown_timeout_s was lost with no count (400 defects published, 128
    # recorded, the final stats told of no loss). Now every published defect is recorded or counted lost,
    # told in the log and on the last line, and the run fails. The fake: fsync blocking 0.4 s (a slow disk),
    # then the real call, only on the recorder's thread.
    slow_recorder_disk(monkeypatch, 0.4)
    defects = [True] * 8
    video = write_video(tmp_path / "burst.avi", defects)
    rec, summary = tmp_path / "rec", tmp_path / "summary.json"
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}], summary_json=str(summary),
                      shutdown_timeout_s=1.0)
    cfg["recorder"] = {"enabled": True, "dir": str(rec), "min_free_bytes": 0, "queue_size": 100}
    with caplog.at_level(logging.INFO):
        code, out, err = run_cli(tmp_path, cfg, capsys)
    totals = json.loads(summary.read_text())["totals"]
    assert totals["published.defect"] == len(defects)
    kept = totals.get("recorder.written", 0)
    lost = {k: totals[k] for k in ("recorder.dropped", "recorder.errors", "recorder.abandoned") if k in totals}
    assert kept + sum(lost.values()) == len(defects) and kept < len(defects), totals
    assert totals["recorder.abandoned"] >= 1
    assert len(list((rec / "c").glob("*.json"))) >= kept  # the one being written may still have been finished
    assert code == 1 and "Traceback" not in err
    # told once on the last line, with the timeout they were not written within: it was told twice there (a part
    # of the run's own, then the daemon's failure line in other words), and the log said it twice as well
    last = out.strip().splitlines()[-1]
    assert f"{totals['recorder.abandoned']} defect recording(s) lost (unwritten at shutdown" in last, last
    assert last.count("defect recording(s)") == 1 and "shutdown_timeout_s 1 s" in last, last
    assert sum("defect recording(s) lost" in r.getMessage() for r in caplog.records) == 1  # in the log once


def test_recordings_lost_to_a_low_disk_are_told_once_on_the_last_line(tiny_model, tmp_path, capsys, caplog):
    # The disk below recorder.min_free_bytes (a real low-disk skip): the last line told the loss as a part of its
    # own ('; 2 defect recording(s) lost (low disk 2)') and again among its failures, and the log twice too.
    import shutil

    disk = shutil.disk_usage(tmp_path)
    if disk.free >= disk.total:
        pytest.skip("no space in use on this file system: min_free_bytes cannot lie between free and total")
    video = write_video(tmp_path / "two.avi", [True, True])
    rec = tmp_path / "rec"
    cfg = base_config(tiny_model, f"ipc://{tmp_path}/ev.sock", [{"name": "c", "source": str(video)}],
                      thresholds={"image": 0.0},
                      recorder={"enabled": True, "dir": str(rec), "min_free_bytes": (disk.free + disk.total) // 2})
    with caplog.at_level(logging.INFO):
        code, out, err = run_cli(tmp_path, cfg, capsys)
    last = out.strip().splitlines()[-1]
    assert code == 1 and f"recorder (recorder.dir {rec}): 2 defect recording(s) lost (low disk 2)" in last, last
    assert last.count("defect recording(s)") == 1, last
    assert sum("defect recording(s) lost" in r.getMessage() for r in caplog.records) == 1  # in the log once


# -- one camera per source ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sources, said", [
    (["{video}", "{video}"], "file"),
    (["{folder}", "{alias}"], "folder"),  # the same folder by another name
    ([0, "/dev/video0"], "device"),  # a device index is /dev/video<index>
    (["rtsp://u:first@cam.local/live", "rtsp://u:second@CAM.local/live"], "the same URL"),
])
def test_two_cameras_reading_one_source_are_refused(sources, said, tiny_model, endpoint, video, tmp_path, capsys):
    # A device opens once (the second camera failed or retried for ever); a file, folder or stream read by two
    # cameras was inspected twice, each defect published and recorded twice under two names.
    folder = write_folder(tmp_path / "f", [False])
    (tmp_path / "alias").symlink_to(folder)
    names = {"video": video, "folder": folder, "alias": tmp_path / "alias"}
    cams = [{"name": f"c{i}", "source": s.format(**{k: str(v) for k, v in names.items()}) if isinstance(s, str)
             else s} for i, s in enumerate(sources)]
    code, _, err = run_cli(tmp_path, base_config(tiny_model, endpoint, cams), capsys, "--check")
    line = one_error_line(err)
    assert code == 2 and "'c0' and 'c1'" in line and said in line and "first" not in line and "second" not in line


@pytest.mark.parametrize("sources", [["genicam://", "genicam://Aravis-Fake-GV01"],
                                     ["genicam://Aravis-Fake-GV01", "genicam:///"], ["genicam://", "genicam://"]])
def test_an_unnamed_genicam_camera_beside_another_is_refused(sources, tiny_model, endpoint, tmp_path, capsys):
    # genicam:// opens the first camera Aravis lists: it may be the very camera the other one names (one camera
    # read twice, or the second failing for ever on a camera opened once), and a reboot may change which it is.
    cams = [{"name": f"c{i}", "source": s} for i, s in enumerate(sources)]
    code, _, err = run_cli(tmp_path, base_config(tiny_model, endpoint, cams), capsys, "--check")
    line = one_error_line(err)
    assert code == 2 and "'c0'" in line and "'c1'" in line and "name each GenICam camera" in line, line


def test_two_synthetic_cameras_are_fine(tiny_model, endpoint, tmp_path, capsys):
    cams = [{"name": f"c{i}", "source": "synthetic", "max_frames": 1,
             "synthetic": {"texture": "procedural", "size": 32, "pool": 1}} for i in range(2)]
    code, _, err = run_cli(tmp_path, base_config(tiny_model, endpoint, cams), capsys, "--check")
    assert code == 0, err


# -- IPv6 endpoints ---------------------------------------------------------------------------------------------
def _ipv6_loopback_port() -> int:
    """A free TCP port on ::1; skips the test where this host has no IPv6 loopback."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            return s.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback (::1) on this host")


def test_an_ipv6_endpoint_binds_and_a_subscriber_receives_on_it(tiny_model, video, tmp_path, capsys):
    # ZeroMQ resolves tcp:// hosts as IPv4 unless ZMQ_IPV6 is on: 'tcp://[::1]:port' failed to bind ('No such
    # device') and a subscriber given it never connected.
    import queue
    import threading

    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.postprocess import Decider
    from inspector.pipeline.publish import PublishContext, Publisher, PublishWorker
    from inspector.pipeline.telemetry import Counters

    endpoint = f"tcp://[::1]:{_ipv6_loopback_port()}"
    code, out, err = run_cli(tmp_path, base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}]),
                             capsys, "--check")
    assert code == 0 and f"ok publishing on {endpoint}" in out, err
    # another port: libzmq closes the --check socket's listener in its I/O thread, a moment after close()
    endpoint = f"tcp://[::1]:{_ipv6_loopback_port()}"
    publisher = Publisher(PublishSection(endpoint=endpoint, stats_interval_s=3600))
    sub = Subscriber(endpoint, ["v1/stats"])
    try:
        assert publisher.wait_for_subscription(5.0)
        ctx = PublishContext(publisher=publisher, cfg=publisher.cfg, model={"name": "m", "run_id": "r"},
                             decider=Decider(0.9, 0.9), stats=dict)
        PublishWorker(ctx, queue.Queue(), queue.Queue(), threading.Event(), Counters())._publish_stats(final=True)
        event = sub.recv(timeout=5.0)
        assert event is not None and event.type == "stats"
    finally:
        sub.close()
        publisher.close()


@pytest.mark.parametrize("source, what", [
    ("rtsp://op:secret@10.0.0.5/stream1", "a live stream (rtsp://)"),
    ("udp://0.0.0.0:5000", "a live stream (udp://)"),
    ("/dev/video0", "a capture device"),
    (0, "a capture device"),
    ("v4l2src device=/dev/video0 ! videoconvert ! appsink", "a GStreamer pipeline capturing with v4l2src"),
])
def test_check_refuses_offline_mode_on_a_sender_that_never_waits(source, what, tiny_model, endpoint, tmp_path,
                                                                 capsys):
    """A camera stream does not wait to be read: in offline mode its frames backed up in the camera's, the
    kernel's and FFmpeg's buffers and were inspected seconds late while stamped as taken when read."""
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": source, "mode": "offline"}])
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    line = one_error_line(err)
    assert code == 2 and f"cameras[0].mode: offline on {what}" in line and "use mode: live" in line, line
    assert "secret" not in line


@pytest.mark.parametrize("source", ["http://10.0.0.5/recording.mp4", "filesrc location=a.mp4 ! decodebin ! appsink",
                                    "genicam://cam1"])
def test_offline_mode_stays_allowed_where_the_address_does_not_make_a_live_sender(source):
    from inspector.pipeline.config import CameraSection

    CameraSection(name="c", source=source, mode="offline").validate("cameras[0]")


@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("starlette", "uvicorn")),
                    reason="needs the 'dashboard' extra")
@pytest.mark.parametrize("content, why", [(b"\xff\xfe" + b"x" * 30, "secret file is not UTF-8 text (byte 0)"),
                                          (None, "is a folder, not a secret file")])
def test_check_refuses_an_unreadable_token_file_in_one_line(content, why, tiny_model, endpoint, video, tmp_path,
                                                           capsys):
    """The dashboard's token file was read by hand: binary bytes in it ended ``run --check`` with a
    UnicodeDecodeError traceback. Secret files are read by the shared reader (regular, small, UTF-8)."""
    token = tmp_path / "token"
    token.mkdir() if content is None else token.write_bytes(content)
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}],
                      dashboard={"listen": f"127.0.0.1:{free_port()}", "token_file": str(token)})
    code, _, err = run_cli(tmp_path, cfg, capsys, "--check")
    assert code == 2 and one_error_line(err) == f"error: {tmp_path / 'inspector.yaml'}: dashboard.token_file: {token}: {why}"


def test_two_stop_signals_reach_the_publishers_drain_as_a_hurry(tiny_model, endpoint, video, tmp_path, capsys,
                                                               monkeypatch):
    """``inspector run`` hands its publisher's drain the second stop signal (:data:`inspector.lifecycle.HURRY`):
    two SIGTERMs while it closes set the very event the drain follows (``test_publish_drain`` shows the drain
    ending at it). Before, the drain knew no second signal: up to ``publish.drain_s`` (600 s) of waiting."""
    import signal
    import time

    from inspector.pipeline.publish import Publisher

    real_close, seen = Publisher.close, []

    def close(self, drain_s=None, hurry=None):
        if hurry is not None:
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
            seen.append(hurry.wait(5.0))
        return real_close(self, drain_s, hurry)

    monkeypatch.setattr(Publisher, "close", close)
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(video)}])
    code, out, err = run_cli(tmp_path, cfg, capsys)
    assert seen == [True], (seen, err)
    assert "Traceback" not in err and "frames inspected" in out, err


@pytest.mark.parametrize("threshold, said", [(1e6, "(NG 0, OK 3, error 1)"), (-1e6, "(NG 3, OK 0, error 1)")])
def test_the_last_line_tells_the_frames_by_decision(threshold, said, tiny_model, endpoint, tmp_path, capsys):
    # a run on a folder with no subscriber ended "stopped: 3 frames inspected": how many parts were NG was told
    # nowhere a plant engineer looks (the undecodable fourth picture is a part not inspected: decided 'error')
    folder = write_folder(tmp_path / "parts", [False, True, False, False], corrupt=(3,))
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(folder)}])
    cfg["thresholds"] = {"image": threshold}
    code, out, err = run_cli(tmp_path, cfg, capsys)
    last = out.strip().splitlines()[-1]
    assert code == 0 and last.startswith("stopped: ") and last.endswith(f"frames inspected {said}"), (out, err[-2000:])
