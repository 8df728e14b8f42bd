"""The daemon: wires the workers together and owns the lifecycle.

::

    capture-<cam> ─┐                 (one thread per camera)
    capture-<cam> ─┼─► FrameHub ─► batcher ─► inference ─► postprocess ─► publisher ─► ZeroMQ
                   ┘   (live: newest,          (owns the      (decision,     (owns the     └► recorder
                        offline: block)         backend)       regions)       socket)

Startup checks cheap things first and fails with one line: model file and
sidecar, calibration binding (or an explicit threshold), sources, the publish
endpoint, then loads the backend in its own thread. One stop event: the signal
handlers installed by ``inspector run`` have it set from another thread (see
:mod:`inspector.lifecycle`: setting it in the handler can deadlock). Shutdown is ordered —
capture threads stop, then every stage drains its queue and passes an end
marker downstream, each join bounded by ``shutdown_timeout_s``; a capture thread
blocked inside a silent or stalled network camera's open/read is not waited for — and
the last stats are published. :meth:`Daemon.run` returns 0, or 1 if a worker failed, a
stage did not stop in time, a camera ended in state ``failed`` (a recording that
can never be decoded fails its camera at once), or every camera ended by itself
without one frame inspected. A run that inspected nothing always says so.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
import zmq

from inspector.backends import backend_name, load_backend
from inspector.backends.base import Backend
from inspector.backends.ort_replicas import default_replicas, usable_cores
from inspector.config import not_a_file
from inspector.contract import InputSpec
from inspector.errors import ConfigError, InspectorError
from inspector.events import utc_iso
from inspector.mounts import MountWatch
from inspector.outputs import claim_file, file_problem, folder_problem, read_only_folder, write_whole
from inspector.pipeline.batcher import END, BatchWorker, BufferPool
from inspector.pipeline.capture import CaptureWorker, FrameHub
from inspector.pipeline.config import DaemonConfig, said_of_file
from inspector.pipeline.integration_config import is_bridge_state
from inspector.pipeline.cputime import ThreadCpu
from inspector.pipeline.drift import DriftMonitor
from inspector.pipeline.extensions import NO_EXTENSIONS, Extensions, Running, SourceNamer
from inspector.pipeline.frame_queue import FrameQueue
from inspector.pipeline.infer import InferenceWorker, buffered_batch, usable_max_batch
from inspector.pipeline.postprocess import Decider, PostprocessWorker, encode_payloads
from inspector.pipeline.preprocess import Preprocessor
from inspector.pipeline.publish import PublishContext, Publisher, PublishWorker, StatusUpdate
from inspector.pipeline.recorder import (RecorderDirLock, RecorderWorker, camera_folder_problem, lock_recorder_dir,
                                         recording_losses, release_recorder_dir)
from inspector.pipeline.sources import Source, is_live, make_source, source_type
from inspector.pipeline.stats import DaemonStats
from inspector.pipeline.worker import WorkerContext
from inspector.artifacts import input_spec as card_input_spec, missing_model_hint, model_card_of, read_card
from inspector.artifacts.frame_shapes import frame_shapes
from inspector.artifacts.model_card import sha256_file, split_graph_name, verify_graph
from inspector.pipeline.telemetry import Counters, format_summary
from inspector.redact import redact
from inspector.textline import one_line
from inspector.artifacts.thresholds import Thresholds, batch_coverage_warning, load_thresholds

log = logging.getLogger("inspector.daemon")
BackendFactory = Callable[[], Backend]
_BACKEND_LOAD_TIMEOUT_S = 300.0
_BLOCKED_SOURCE_GRACE_S = 0.5  # on stop, a capture still inside its source after this is left behind
_N_BUFFERS = 2  # input buffers: the batcher fills one while inference reads the other


_BUFFER_BUDGET_MIB = 1024  # the input buffers' share of memory (the synthetic camera's pool has as much)


def input_buffers_problem(max_batch: int, spec: InputSpec) -> str | None:
    """Why ``max_batch`` frames of ``spec`` overflow the input buffers' budget, or None.

    The daemon preallocates ``_N_BUFFERS`` uint8 buffers of (batch, height, width, channels) frames, batch
    being ``max_batch`` capped by the model's static maximum; above ``_BUFFER_BUDGET_MIB`` they would take
    memory the model's own activations (several times a batch's input) need as well. The message says how
    large a batch fits."""
    batch = usable_max_batch(max_batch, spec.max_batch)
    frame = spec.height * spec.width * spec.channels  # bytes: the buffers are uint8
    mib = _N_BUFFERS * batch * frame / 2**20
    if mib <= _BUFFER_BUDGET_MIB:
        return None
    fits = max(1, int(_BUFFER_BUDGET_MIB * 2**20 // (_N_BUFFERS * frame)))
    return (f"{batch} frames of {spec.height}x{spec.width}x{spec.channels} need {_N_BUFFERS} input buffers "
            f"of {mib / _N_BUFFERS:.0f} MiB (at most {_BUFFER_BUDGET_MIB} MiB in all); at most {fits} fit")


def resolve_thresholds(cfg: DaemonConfig, model_sha: str) -> tuple[Decider, Thresholds | None]:
    """The decision rule: the calibration file (bound to the model hash) and/or explicit values."""
    t = cfg.thresholds
    cal = None
    if t.calibration:
        cal = load_thresholds(t.calibration, model_sha, cfg.model.path)
    elif t.image is None:
        raise ConfigError("thresholds: no calibration file and no explicit 'image' threshold; run "
                          f"'inspector calibrate {shlex.quote(str(cfg.model.path))} --data <dir> --out "
                          f"calibration/<model>.yaml' "
                          "and set thresholds.calibration, or set thresholds.image")
    image = t.image if t.image is not None else cal.image_threshold
    pixel = t.pixel if t.pixel is not None else (cal.pixel_threshold if cal else image)
    band = t.uncertain_band if t.uncertain_band is not None else (cal.uncertain_band if cal else None)
    if cal and (t.image is not None or t.pixel is not None):
        log.warning("thresholds: explicit values override the calibration file %s", t.calibration)
    if cal and cal.uncertain_band is not None and t.uncertain_band is None and t.image is not None:
        band = _band_moved(cal, float(t.image))
    if band is not None and not (band[0] <= image <= band[1] and band[0] < band[1]):
        raise ConfigError(f"thresholds.uncertain_band: {list(band)} must contain the image threshold {image}")
    return Decider(float(image), float(pixel), tuple(band) if band else None), cal


def _band_moved(cal: Thresholds, image: float) -> tuple[float, float]:
    """The calibration file's uncertain band moved with an explicit ``thresholds.image``: scaled by image / the
    calibration's threshold, as calibrate makes it ``[t·(1−m), t·(1+m))`` around its threshold
    (:func:`inspector.evaluation.calibrate.uncertain_band`). Kept as it was, the band alone decided (a band
    decides every score: ≥ hi NG), so with ``image: 0.2`` under a band [0.145, 0.436) a score of 0.346 came out
    'uncertain' while its event said 'thr 0.2'. Raises ConfigError (one line) where it cannot be scaled."""
    lo, hi = cal.uncertain_band
    if not cal.image_threshold > 0 or not image > 0:
        raise ConfigError(f"thresholds.image: {image:g} replaces the calibration's image threshold "
                          f"{cal.image_threshold:g}, but its uncertain_band [{lo:g}, {hi:g}] cannot move with it "
                          f"(a threshold ≤ 0); set thresholds.uncertain_band too", field="thresholds.image")
    k = image / cal.image_threshold
    log.warning("thresholds: the calibration's uncertain_band [%g, %g) around %g moves with thresholds.image %g to "
                "[%g, %g) (set thresholds.uncertain_band to choose another)", lo, hi, cal.image_threshold, image,
                lo * k, hi * k)
    return lo * k, hi * k


def check_outputs(cfg: DaemonConfig) -> None:
    """Refuse, in one line, a place the daemon writes to that cannot take it. Found only at run time, a
    recorder folder that is a file disabled recording (evidence lost) and a summary path that is a folder
    lost the summary, while the run still ended "successfully". A summary path holding a file that is no run
    summary is refused too: every run replaces its summary, and that file was lost at shutdown
    (:func:`inspector.outputs.claim_file`, the rule of every command's output)."""
    read_only = cfg.recorder.enabled and read_only_folder(cfg.recorder.dir)
    if cfg.recorder.enabled:
        why = folder_problem(cfg.recorder.dir)
        if why and read_only:
            # a state of the disk, not of the config (a USB disk mounted ro after a power cut, a disk the kernel
            # remounted ro after errors): as when it happens mid-run, it costs the recordings only, told and counted,
            # and recording starts once it is writable. Refused, it stopped every camera's inspection, and a
            # service restarting the daemon never inspected again until someone remounted the disk.
            log.warning("recorder.dir: %s; defects are inspected but not recorded (counted as recorder.unusable) "
                        "until it is writable", why)
        elif why:
            raise ConfigError(f"recorder.dir: {why}", field="recorder.dir")
    if cfg.recorder.enabled:
        _refuse_recording_into_a_source(cfg)
        _check_recorder_disk(cfg.recorder.dir, cfg.recorder.min_free_bytes)
        # A camera folder that is a file, a link or cannot be written in (chattr +i) costs that camera's evidence
        # only: told here, and by the recorder, which records the others (it stopped every camera before)
        for cam in cfg.cameras if not read_only else ():  # read-only: told once above, for all of them
            why = camera_folder_problem(Path(cfg.recorder.dir) / cam.name)
            if why:
                log.warning("recorder.dir: %s; camera '%s' will be inspected but not recorded", why, cam.name)
    # every file the daemon writes by name: a state file that is a folder lost the MQTT bridge's undelivered
    # final counts at shutdown (a warning among the last lines) while --check and the run said OK; the bridge's
    # default state path (no state_file set) too, which --check did not look at
    mqtt = cfg.publish.mqtt
    for key, path in (("summary_json", cfg.summary_json),
                      ("publish.mqtt.state_file", str(mqtt.state_path()) if mqtt.enabled else "")):
        why = file_problem(path) if path else None
        if why:
            default = key == "publish.mqtt.state_file" and not mqtt.state_file
            hint = " (its default place; move what is there, or set publish.mqtt.state_file)" if default else ""
            raise ConfigError(f"{key}: {why}{hint}", field=key)
    _claim_run_files(cfg)


def _claim_run_files(cfg: DaemonConfig) -> None:
    """Refuse, in one line, a file at a name the daemon rewrites that an earlier run did not write
    (:func:`inspector.outputs.claim_file`): the run summary (rewritten by every run) and the MQTT bridge's state
    file (rewritten at a shutdown with the broker away); a report, a config or notes there were lost."""
    mqtt = cfg.publish.mqtt
    claims = [("summary_json", cfg.summary_json, is_run_summary, "run summary", "set summary_json to")]
    if mqtt.enabled:
        claims.append(("publish.mqtt.state_file", str(mqtt.state_path()), is_bridge_state,
                       "state file of the MQTT bridge", "set publish.mqtt.state_file to"))
    for key, path, own, noun, option in claims:
        if not path:
            continue
        try:
            claim_file(path, own, ConfigError, command="run", option=option, noun=noun)
        except ConfigError as exc:
            default = key == "publish.mqtt.state_file" and not mqtt.state_file
            raise ConfigError(f"{key}: {exc}" + (" (its default place)" if default else ""), field=key) from None


def _check_recorder_disk(folder: str, min_free_bytes: int) -> None:
    """``recorder.min_free_bytes`` against the file system ``folder`` is on (or will be: its nearest existing
    folder). More than the whole file system holds can never be met: every defect was skipped as low disk, told
    only at run time, so it is refused in one line. Less than that but more than is free now is a warning: the
    disk may be cleared before a defect comes (the recorder then records)."""
    place = Path(folder)
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        disk = shutil.disk_usage(place)
    except OSError:  # an unreadable folder is folder_problem's to tell
        return
    if min_free_bytes > disk.total:
        raise ConfigError(f"recorder.min_free_bytes: {min_free_bytes} is more than the whole file system of "
                          f"{folder} holds ({disk.total} bytes), so nothing would ever be recorded",
                          field="recorder.min_free_bytes")
    if min_free_bytes > disk.free:
        log.warning("recorder.min_free_bytes: %d, but only %d bytes are free on %s now: defects are not recorded "
                    "until space is freed", min_free_bytes, disk.free, folder)


def is_run_summary(raw: bytes) -> bool:
    """Whether ``raw`` (a file's bytes) is a run summary a daemon wrote at ``summary_json`` (its final stats)."""
    data = json.loads(raw)
    return isinstance(data, dict) and {"cameras", "totals"} <= set(data)


def _refuse_recording_into_a_source(cfg: DaemonConfig) -> None:
    """ConfigError when the recorder would write into a folder camera's folder (``<recorder.dir>/<camera>``
    is it, links followed): its recordings and heat maps (.png) were read back as that camera's frames, each
    NG one recorded again, the folder growing for as long as the run lasted."""
    recording_dirs = {os.path.realpath(os.path.join(cfg.recorder.dir, c.name)): c.name for c in cfg.cameras}
    for cam in cfg.cameras:
        try:
            kind = source_type(cam)
        except InspectorError:
            continue  # the source's own error comes when it is made
        writer = recording_dirs.get(os.path.realpath(str(cam.source))) if kind == "folder" else None
        if writer:
            raise ConfigError(f"recorder.dir: camera '{writer}' would record into {cam.source}, the folder "
                              f"camera '{cam.name}' reads (its recordings inspected as frames); "
                              f"choose another recorder.dir", field="recorder.dir")


def refuse_shared_sources(cfg: DaemonConfig, namers: Mapping[str, SourceNamer] | None = None) -> None:
    """ConfigError naming two cameras that read one source: the same device (a path, a link to it, or its
    index), file, folder, URL (but for its user and password) or GenICam id. A device opens once (V4L2 and
    GenICam give one process control), so the second camera failed or was retried for ever; a file, folder or
    stream read twice inspects every frame twice, each defect published and recorded twice under two names.
    Synthetic sources (generated per camera) and GStreamer pipelines (their text need not name what they
    open) may repeat. An unnamed ``genicam://`` (the first camera found) beside another GenICam camera is
    refused too: which camera it opens is only known once it runs, may be the one the other names, and may
    change at a reconnect (a rebooted camera listed in another order).

    ``namers`` (source type → :data:`~.extensions.SourceNamer`, from the daemon's extensions) tell the one
    name of a source its text does not show: a GenICam camera is named by its device id, serial, MAC or IP
    address, and only the device list knows two of those are one camera."""
    _refuse_unnamed_genicam(cfg)
    keys = _source_keys(cfg, namers or {})
    seen: dict[tuple[str, str], str] = {}
    for cam in cfg.cameras:
        key = keys[cam.name]
        if key is None:
            continue
        other = seen.setdefault(key, cam.name)
        if other != cam.name:
            what = "the same URL" if key[0] == "url" else f"{key[0]} {key[1]}"
            first = next(c for c in cfg.cameras if c.name == other)
            if str(first.source) != str(cam.source) and key[0] != "url":  # named two ways: say both
                what += f" ('{other}' names it {first.source}, '{cam.name}' {cam.source})"
            raise ConfigError(f"cameras: '{other}' and '{cam.name}' both read {what} (a source is read by one "
                              f"camera: a device opens once, a file or stream read twice inspects every frame "
                              f"twice)", field="cameras")


def _source_keys(cfg: DaemonConfig, namers: Mapping[str, SourceNamer]) -> dict[str, tuple[str, str] | None]:
    """{camera name: :func:`_source_key`}, where a namer knows better the one name of the source it reads.

    A namer is asked only where two cameras of its type could clash (it may take a network discovery)."""
    keys = {cam.name: _source_key(cam) for cam in cfg.cameras}
    for kind, namer in namers.items():
        cams = [cam for cam in cfg.cameras if _kind_or_none(cam) == kind]
        if len(cams) < 2:
            continue
        try:
            names = namer(cams)
        except InspectorError:  # e.g. its library missing: that error comes, in one line, when the source is made
            continue
        for cam in cams:
            if names.get(cam.name) and keys[cam.name]:
                keys[cam.name] = (keys[cam.name][0], names[cam.name].casefold())
    return keys


def _kind_or_none(cam) -> str | None:
    try:
        return source_type(cam)
    except InspectorError:
        return None


def _refuse_unnamed_genicam(cfg: DaemonConfig) -> None:
    """ConfigError when a ``genicam://`` without an id shares the daemon with another GenICam camera."""
    keys = {cam.name: _source_key(cam) for cam in cfg.cameras}
    genicam = [cam for cam in cfg.cameras if keys[cam.name] and keys[cam.name][0] == "GenICam camera"]
    unnamed = [cam for cam in genicam if keys[cam.name][1] == _FIRST_FOUND]
    if unnamed and len(genicam) > 1:
        other = next(cam for cam in genicam if cam is not unnamed[0])
        raise ConfigError(f"cameras: '{unnamed[0].name}' reads genicam:// (the first GenICam camera found), which "
                          f"may be the camera '{other.name}' reads; name each GenICam camera "
                          f"(genicam://<device id or IP address>, as arv-camera-test-0.8 -l lists them)",
                          field="cameras")


_FIRST_FOUND = "(first found)"


def _source_key(cam) -> tuple[str, str] | None:
    """(kind, what) that two cameras share only when they read one source; None: may repeat, or not a
    source at all (its own error comes when it is made)."""
    try:
        kind = source_type(cam)
    except InspectorError:
        return None
    src = cam.source
    if kind == "device":
        return "device", os.path.realpath(f"/dev/video{src}" if str(src).isdigit() else str(src))
    if kind in ("file", "folder"):
        return kind, os.path.realpath(str(src))
    if kind == "url":
        parts = urlsplit(str(src))
        host = parts.netloc.rsplit("@", 1)[-1].lower()  # user and password differ, the camera is the same
        return "url", f"{parts.scheme.lower()}://{host}{parts.path or '/'}?{parts.query}"
    if kind == "genicam":
        return "GenICam camera", unquote(str(src)[len("genicam://"):]).strip("/").casefold() or _FIRST_FOUND
    return None


def cores_cap(value: int | None) -> int | None:
    """``value`` (a thread or session count, None: the backend's default) at most the usable cores.

    ONNX Runtime's intra-op threads meet on a barrier after every operator and spin while they wait: with
    more of them than cores, each barrier waits for threads the kernel has descheduled (model.threads 1024
    on 2 cores: ``run --check`` alone took 139 s, for a model that loads in 0.1 s), and every replica is one
    more session and thread. More threads than cores never runs faster, so the excess is dropped.
    """
    return value if value is None else min(value, usable_cores())


class Daemon:
    """The inspection daemon for one config. ``setup()`` → ``start()`` → ``wait()`` / ``run()``.

    ``extensions``: plug-ins (GenICam sources; metrics, MQTT, dashboard), see :mod:`.extensions`; without
    them a config that switches an integration on is refused. ``config_path``: the file ``cfg`` was read from,
    named first in every closing failure line (:meth:`_failed`); None for a config built in code.
    """

    def __init__(self, cfg: DaemonConfig, backend_factory: BackendFactory | None = None,
                 stop: threading.Event | None = None, context: zmq.Context | None = None,
                 extensions: Extensions = NO_EXTENSIONS, hurry: threading.Event | None = None,
                 config_path: str | Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = None if config_path is None else str(config_path)
        self.extensions = extensions
        self.stop = stop or threading.Event()
        self.hurry = hurry or threading.Event()  # the second stop signal: the publisher's drain ends at it
        self.counters = Counters()
        self._backend_factory = backend_factory
        self._context = context
        self.run_id = uuid.uuid4().hex[:12]  # names this start on every event header and recording
        self.started_utc = utc_iso()
        self.publisher: Publisher | None = None
        self.captures: list[CaptureWorker] = []
        self.workers: list = []
        self.final_stats: dict | None = None
        self.failures: list[str] = []
        self.integrations: Running | None = None
        self.mqtt_bridge = None  # set by Integrations when publish.mqtt is on
        self._started = False
        self._cameras_ended = False
        self.left_running: list[str] = []  # stages still running after shutdown (see shutdown())
        self._checking = False  # check(): recorder.dir is only tested for another daemon, not made
        self._dir_lock: RecorderDirLock | None = None  # recorder.dir held for this run (lock_recorder_dir)
        self.cpu = ThreadCpu()

    # -- setup --------------------------------------------------------------------------------
    def setup(self) -> None:
        """Validate everything that can be checked without threads; bind the socket. One-line errors."""
        cfg = self.cfg
        self.extensions.check(cfg)  # a missing integration extra fails before anything is loaded or bound
        if cfg.publish.endpoint.startswith("inproc://") and self._context is None:
            # inproc reaches only sockets of the same ZeroMQ context: with the daemon's own, nobody ever can, and
            # a run published every event to no one while --check said OK (a caller's context: its own sockets)
            raise ConfigError(f"publish.endpoint: {cfg.publish.endpoint} can be reached only from inside this "
                              f"process, so no subscriber could connect; use ipc://PATH or tcp://HOST:PORT",
                              field="publish.endpoint")
        check_outputs(cfg)
        refuse_shared_sources(cfg, self.extensions.source_names)
        if cfg.recorder.enabled:  # before the model loads: a second daemon on the folder is told at once
            self._dir_lock = lock_recorder_dir(cfg.recorder.dir, create=not self._checking)
        if cfg.recorder.enabled and self._checking and (watch := MountWatch(cfg.recorder.dir)).listed:
            # a run tells it at start (the recorder waits for the disk); --check said OK and nothing more
            log.warning("recorder.dir: %s (listed in /etc/fstab) is not mounted now; nothing will be recorded in "
                        "%s until it is", watch.point, cfg.recorder.dir)
        try:
            self._setup_parts(cfg)
        except BaseException:
            self._release_dir()
            raise

    def _setup_parts(self, cfg: DaemonConfig) -> None:
        """setup() past the cheap checks: model, thresholds, sources, socket, integrations."""
        model = Path(cfg.model.path)
        if not model.exists():
            raise ConfigError(f"model.path: {model} not found{missing_model_hint(model)}")
        if (why := not_a_file(model, "model file")) is not None:  # a folder is told as one, not "not found"
            raise ConfigError(f"model.path: {why}")
        self.sidecar = model_card_of(read_card(model))  # an engine card embeds the model card
        self.spec = card_input_spec(self.sidecar, str(model))
        self.policy, self.downscale = self.spec.resize, self.spec.downscale
        # each camera whose frames are unlike the training images is told (None: the card records no range)
        self.shapes = frame_shapes(self.sidecar, str(model), retell=True)
        self.model_sha = sha256_file(model)
        m = cfg.model
        if m.verify and backend_name(m.path, m.backend) == "onnxruntime":
            # before the calibration, which is bound to the graph's hash: a graph damaged since export was
            # blamed on the calibration ("made for another model: run calibrate again") on the broken file
            verify_graph(model, self.sidecar, sha256=self.model_sha)
        self._warn_cores_cap()
        self.decider, self.calibration = resolve_thresholds(cfg, self.model_sha)
        self._warn_batch_coverage()
        self.bit_depth = self.spec.bit_depth
        self.sources: dict[str, Source] = {c.name: make_source(c, self.bit_depth, self.extensions.source_kinds)
                                           for c in cfg.cameras}
        self.publisher = Publisher(cfg.publish, self._context)
        log.info("publishing on %s", self.publisher.endpoint)
        try:
            self.integrations = self.extensions.start(self)  # metrics, MQTT, dashboard: only those configured
        except BaseException:
            self.publisher.close()
            raise

    def _release_dir(self) -> None:
        release_recorder_dir(self._dir_lock)
        self._dir_lock = None

    def _default_backend(self) -> Backend:
        m = self.cfg.model
        name = backend_name(m.path, m.backend)
        if name == "tensorrt":
            opts = {"device": m.device, "cuda": m.cuda, "cuda_graphs": m.cuda_graphs}
        else:
            opts = {"threads": self.threads, "verify": m.verify, "spinning": m.spinning, "spin_us": m.spin_us,
                    "spin_after_run": m.spin_after_run, "replicas": self.replicas}
        return load_backend(m.path, name, **opts)

    @property
    def threads(self) -> int | None:
        """ONNX Runtime intra-op threads: ``model.threads``, at most the usable cores (:func:`cores_cap`)."""
        return cores_cap(self.cfg.model.threads)

    @property
    def replicas(self) -> int:
        """ONNX Runtime sessions a full batch is split across: ``model.replicas`` (at most the usable cores),
        or when not set one per core ``model.threads`` allows, at most ``batching.max_batch``
        (:func:`default_replicas`)."""
        m = self.cfg.model
        if m.replicas is not None:
            return cores_cap(m.replicas)
        return default_replicas(self.threads, self.cfg.batching.max_batch)

    def _warn_batch_coverage(self) -> None:
        """Say once, at setup, when the calibration's threshold was not checked at the largest batch this daemon
        sends (``batching.max_batch``, capped by the model's maximum): found only as good parts flagged NG in
        partial or full batches (:func:`inspector.artifacts.thresholds.batch_coverage_warning`)."""
        cfg = self.cfg
        if self.calibration is None or cfg.thresholds.image is not None:  # an explicit threshold replaces its own
            return
        batch = usable_max_batch(cfg.batching.max_batch, self.spec.max_batch)
        line = batch_coverage_warning(self.calibration, cfg.thresholds.calibration, cfg.model.path, batch,
                                      "batching.max_batch")
        if line:
            log.warning("thresholds.calibration: %s", line)

    def _warn_cores_cap(self) -> None:
        """Say once, at setup, which thread settings exceed this machine's cores and what is used instead."""
        cores = usable_cores()
        for key in ("threads", "replicas"):
            value = getattr(self.cfg.model, key)
            if value is not None and value > cores:
                log.warning("model.%s: %d exceeds the %d usable core(s) of this machine; using %d",
                            key, value, cores, cores)

    def check(self) -> list[str]:
        """``--check``: setup, load the model, open every source once; returns report lines."""
        lines = []
        self._checking = True
        self.setup()
        try:
            backend = (self._backend_factory or self._default_backend)()
            try:
                self._check_backend(backend)  # what start() refuses, --check refuses too
                split = getattr(backend, "replicas", 1)
                lines.append(f"ok model {self.cfg.model.path} on {backend.name} ({backend.precision}"
                             + (f", batches split across {split} sessions" if split > 1 else "") + "), "
                             f"input {self.spec.height}x{self.spec.width}, threshold {self.decider.image_threshold:g}"
                             + (f" from {self.cfg.thresholds.calibration}" if self.calibration else ""))
            finally:
                backend.close()
            for name, src in self.sources.items():
                src.open()
                try:
                    lines.append(f"ok camera '{name}': {src.describe()}")
                    self._check_first_frame(name, src)
                finally:
                    src.close()
            lines.append(f"ok publishing on {self.publisher.endpoint}")
            lines.extend(self.integrations.describe())
        finally:
            self.publisher.close()
            self.integrations.close()
            self._release_dir()
        return lines

    def _queued_frames(self) -> tuple[int, str]:
        """(frames of one camera the daemon's queues hold at most, the settings that make it), for the memory
        check at its first frame (:mod:`inspector.pipeline.queue_memory`)."""
        from inspector.pipeline.queue_memory import queued_frames_at_most

        cfg = self.cfg
        recorder = cfg.recorder.queue_size if cfg.recorder.enabled else None
        settings = (f"batching.queue_size {cfg.batching.queue_size} + publish.queue_size {cfg.publish.queue_size}"
                    + (f" + recorder.queue_size {recorder}" if recorder else ""))
        return queued_frames_at_most(cfg.batching.queue_size, cfg.publish.queue_size, recorder), settings

    def _check_first_frame(self, name: str, src: Source) -> None:
        """``--check``: tell what the run would tell of camera ``name``'s first frame: frames unlike the model's
        training images (:mod:`inspector.artifacts.frame_shapes`, the line the run's preprocessing logs), queues
        that would outgrow the machine's memory (:mod:`inspector.pipeline.queue_memory`, the line its capture
        logs) and a recording larger than ``recorder.max_bytes`` (:meth:`_check_recording_size`). Only sources
        that are no live camera are read (a file, folder, video, synthetic: reading one frame there costs nothing
        and cannot wait on a camera; a live camera is told by the run, at its first frame); a frame that cannot
        be read here is the run's to tell."""
        from inspector.pipeline.queue_memory import queue_memory_warning

        if src.live:
            return
        try:
            grabbed = src.read()
        except Exception:  # noqa: BLE001 - the run tells a source that fails; these are warnings only
            return
        if grabbed is None or grabbed.image is None:
            return
        if self.shapes is not None:
            self.shapes.see(f"camera '{name}'", grabbed.image.shape[0], grabbed.image.shape[1])
        said = queue_memory_warning(name, grabbed.image.nbytes, *self._queued_frames())
        if said:
            log.warning("%s", said)
        limit = self.cfg.recorder.max_bytes if self.cfg.recorder.enabled else 0
        if limit:
            self._check_recording_size(name, grabbed.image, limit)

    def _check_recording_size(self, name: str, image: np.ndarray, limit: int) -> None:
        """``--check``: warn, in one line naming the setting (and, through the run's log, the file), when
        ``recorder.max_bytes`` (``limit``) is less than one recording of camera ``name``'s first frame
        (``image``): the frame as PNG (as the recorder encodes it) and the least event header, a lower bound of
        its size (the heat map comes on top). Only the newest recording would ever be kept; told before only at
        run time, at the first defect. A warning, not a refusal: another frame may compress better, and the run
        still keeps the newest recording."""
        from inspector.pipeline.config import SMALLEST_PNG_BYTES, smallest_recording_bytes

        ok, png = cv2.imencode(".png", image)
        least = len(png) + smallest_recording_bytes() - SMALLEST_PNG_BYTES if ok else 0
        if least > limit:
            height, width = image.shape[:2]
            log.warning("recorder.max_bytes: %d is less than one recording of camera '%s' (its first frame, "
                        "%dx%d, makes one of at least %d bytes: the frame as PNG and the event header), so only "
                        "the newest recording would be kept; raise it, or 0 for no limit",
                        limit, name, width, height, least)

    def _check_backend(self, backend: Backend) -> None:
        if (backend.input_spec.height, backend.input_spec.width) != (self.spec.height, self.spec.width):
            raise ConfigError(f"model {self.cfg.model.path}: backend input {backend.input_spec} differs from its "
                              f"sidecar")
        problem = input_buffers_problem(self.cfg.batching.max_batch, backend.input_spec)
        if problem:
            raise ConfigError(f"batching.max_batch: {problem}")

    # -- start --------------------------------------------------------------------------------
    def start(self) -> None:
        if self.publisher is None:
            self.setup()
        cfg, stop, counters = self.cfg, self.stop, self.counters
        if cfg.batching.opencv_threads:
            cv2.setNumThreads(cfg.batching.opencv_threads)  # process-wide: the thread budget (config.py)
        self.cpu.start()
        try:
            self._start_workers(cfg, stop, counters)
        except BaseException:
            self.stop.set()
            inference = getattr(self, "inference", None)
            if inference is not None and inference.is_alive():
                self._to_infer.put(END)  # the backend is closed in its own thread
                inference.join(self.cfg.shutdown_timeout_s)
            self.publisher.close()
            self.integrations.close()
            self._release_dir()
            raise
        self._started = True

    def _start_workers(self, cfg: DaemonConfig, stop: threading.Event, counters: Counters) -> None:
        """Load the backend, then make every worker with all it needs, then start them (captures last)."""
        self._to_infer: queue.Queue = queue.Queue(maxsize=_N_BUFFERS)
        to_post: queue.Queue = queue.Queue(maxsize=4)
        # frames travel to the publisher one batch (list) per item, publish.queue_size frames of them (FrameQueue)
        to_pub: queue.Queue = FrameQueue(maxsize=cfg.publish.queue_size)
        self.status_queue: queue.Queue = queue.Queue(maxsize=10000)
        self.drift = DriftMonitor(cfg.drift, self.calibration.score_stats if self.calibration else None)
        shared = WorkerContext(broken=threading.Event(), cpu=self.cpu)  # one "a worker failed" flag for all
        offline = [c.name for c in cfg.cameras if not is_live(c, self.sources[c.name])]
        if len(offline) < len(cfg.cameras):
            # the recorder's put() runs on the one publisher thread: an offline camera's defect waiting there for
            # a slow disk would hold back a live camera's events too, and live inspection never waits for the disk.
            # So beside a live camera nothing waits; what a full queue drops is counted and fails the run.
            offline = []
        self.recorder = (RecorderWorker(cfg.recorder, threading.Event(), counters, self.run_id, self.started_utc,
                                        shared, dir_lock=self._dir_lock, cameras=[c.name for c in cfg.cameras],
                                        offline_cameras=offline,
                                        bit_depths={name: src.bit_depth for name, src in self.sources.items()})
                         if cfg.recorder.enabled else None)
        self.inference = self._start_inference(to_post, shared)
        backend = self.inference.backend
        self._check_backend(backend)
        self.model_info = self._model_info(backend)
        max_batch = self.inference.pool.max_batch
        self.hub = FrameHub(counters, max_batch)
        bit_depths = {name: src.bit_depth for name, src in self.sources.items()}
        pre = Preprocessor(self.spec, self.policy, bit_depths, self.downscale, self.shapes)
        self.batcher = BatchWorker(self.hub, self.inference.pool, self._to_infer, pre, max_batch,
                                   cfg.batching.max_wait_ms, stop, counters, shared, self.inference.pace)
        self.captures = [CaptureWorker(c, self.sources[c.name], self.hub, stop, counters, self._on_status,
                                       capacity=cfg.batching.queue_size, context=shared,
                                       queued_frames=self._queued_frames()) for c in cfg.cameras]
        self.post = PostprocessWorker(self.decider, cfg.postprocess, self.policy, to_post, to_pub, stop, counters,
                                      self.drift, cfg.postprocess.payloads_on_results, self._payloads_wanted,
                                      shared)
        self.stats = DaemonStats(counters, self.cpu, self.drift, self.captures, self.batcher)
        self.publish = PublishWorker(self._publish_context(), to_pub, self.status_queue, stop, counters, shared)
        self.workers = [self.inference, self.post, self.publish, self.batcher]
        self._wait_for_subscribers()  # before any frame is captured, so a batch run loses nothing
        # CPU per role spent on start-up (backend load, warm-up): subtract it from cpu_s for steady-state figures
        self.cpu_at_ready = self.cpu.snapshot()
        for w in (self.recorder, self.publish, self.post, self.batcher, *self.captures):
            if w is not None:
                w.start()
        if self.recorder is not None:
            self.workers.append(self.recorder)

    def _start_inference(self, to_post: queue.Queue, shared: WorkerContext) -> InferenceWorker:
        """Start the inference thread and wait until it has loaded the backend and made its buffers."""
        cfg = self.cfg
        b = cfg.batching
        warm_max = buffered_batch(b.max_batch, len(cfg.cameras), b.queue_size)
        if warm_max < b.max_batch and cfg.model.warmup_runs:
            log.info("warming batch sizes up to %d, the frames the cameras' queues hold (batching.queue_size %d "
                     "× %d camera(s)), not up to batching.max_batch %d", warm_max, b.queue_size,
                     len(cfg.cameras), b.max_batch)
        inference = InferenceWorker(self._backend_factory or self._default_backend, self._make_pool,
                                    self._to_infer, to_post, self.stop, self.counters, shared,
                                    warm_max, cfg.model.warmup_runs)
        self.inference = inference  # start()'s clean-up ends it if what follows fails
        inference.start()
        if not inference.ready.wait(_BACKEND_LOAD_TIMEOUT_S):
            raise InspectorError(f"model {cfg.model.path}: backend did not load within {_BACKEND_LOAD_TIMEOUT_S:g} s")
        if inference.startup_error is not None:
            err = inference.startup_error
            raise err if isinstance(err, InspectorError) else InspectorError(f"model {cfg.model.path}: {err}")
        return inference

    def _make_pool(self, backend: Backend) -> BufferPool:
        """Input buffers for batches of ``batching.max_batch`` frames, or fewer if the model takes fewer."""
        configured = self.cfg.batching.max_batch
        max_batch = usable_max_batch(configured, backend.input_spec.max_batch)
        if max_batch < configured:
            log.warning("batching.max_batch: %d exceeds the model's maximum batch %d; using %d",
                        configured, max_batch, max_batch)
        return BufferPool(_N_BUFFERS, max_batch, self.spec)

    def _model_info(self, backend: Backend) -> dict:
        name, _ = split_graph_name(self.cfg.model.path)
        model = self.sidecar.get("model", {})
        return {"name": model.get("name", name.name), "version": model.get("version"),
                "precision": backend.precision, "backend": backend.name,
                "sha256": getattr(backend, "sha256", None) or self.model_sha, "run_id": self.run_id}

    def _publish_context(self) -> PublishContext:
        cfg = self.cfg
        return PublishContext(
            publisher=self.publisher, cfg=cfg.publish, model=self.model_info, decider=self.decider,
            stats=self.stats.snapshot, run_id=self.run_id, run_started_utc=self.started_utc,
            recorder=self.recorder, taps=tuple(self.integrations.taps),
            results_payloads=cfg.postprocess.payloads_on_results, shutdown_timeout_s=cfg.shutdown_timeout_s,
            late_payloads=lambda f: encode_payloads(f, cfg.postprocess, self.decider.pixel_threshold))

    def _wait_for_subscribers(self) -> None:
        n, timeout = self.cfg.publish.wait_for_subscribers, self.cfg.publish.wait_for_subscribers_timeout_s
        if n <= 0:
            return
        log.info("waiting up to %g s for %d subscriber(s) on %s", timeout, n, self.publisher.endpoint)
        seen = self.publisher.wait_for_subscribers(n, timeout, self.stop)
        if seen < n and not self.stop.is_set():
            log.warning("publish.wait_for_subscribers: %d of %d subscriber(s) after %g s; starting anyway",
                        seen, n, timeout)
            self.counters.add("subscribers_missing", n - seen)
        elif seen >= n:
            log.info("%d subscriber(s) connected", seen)

    def _payloads_wanted(self, topic: str) -> bool:
        """Encode payloads for ``topic``'s events: an integration tap (MQTT, dashboard) takes every defect's,
        a ZeroMQ subscriber only those of the topics it holds."""
        return bool(self.integrations and self.integrations.taps) or self.publisher.wanted(topic)

    def _finish_recorder(self) -> None:
        """The recorder writes what it holds, up to ``shutdown_timeout_s``; what is left then is counted as
        abandoned (when the publisher stopped before it could do so)."""
        if self.recorder is not None and self.recorder.is_alive():
            self.recorder.finish()
            self.recorder.join(self.cfg.shutdown_timeout_s)
            if self.recorder.is_alive():
                self.recorder.abandon()

    def _on_status(self, camera: str, state: str, previous: str | None, reason: str, details: dict) -> None:
        try:
            self.status_queue.put_nowait(StatusUpdate(camera, state, previous, reason, details, utc_iso()))
        except queue.Full:
            self.counters.add("status_dropped")
            return
        self.publish.wake()  # published now, not at the publisher's next idle poll

    # -- run / stop ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Thread-safe: just sets the one stop event. Not from a signal handler: ``Event.set`` takes a lock
        the interrupted thread may hold (:mod:`inspector.lifecycle` relays signals instead)."""
        self.stop.set()

    def wait(self, timeout: float | None = None, tick: Callable[[], None] | None = None) -> int:
        """Supervise until stopped, a worker fails, or every camera ended; then shut down. Returns exit code.

        ``tick`` is called every loop (~10 Hz), e.g. to ping the systemd watchdog while supervision runs.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stop.is_set():
            self.stop.wait(0.1)
            if tick is not None:
                tick()
            for w in self.captures:
                w.check_watchdog()
            if all(w.finished.is_set() for w in self.captures):
                log.info("all cameras finished")
                self._cameras_ended = True
                break
            if any(w.finished.is_set() for w in self.workers):  # a stage ended early: it failed
                break
            if deadline is not None and time.monotonic() > deadline:
                break
        return self.shutdown()

    def run(self) -> int:
        self.start()
        return self.wait()

    def stopped_before_start(self, reason: str) -> int:
        """A stop requested before :meth:`start`: nothing ran; the final stats say so (and go to
        ``summary_json`` like any run's). Returns the exit code, 0."""
        self.final_stats = {"totals": {"inferred_frames": 0}, "cameras": {c.name: {"processed": 0}
                                                                          for c in self.cfg.cameras},
                            "run_id": self.run_id, "stopped": f"{reason} during start-up", "failures": []}
        self._release_dir()
        self._write_summary()
        return 0

    def shutdown(self) -> int:
        """Ordered shutdown: captures, then each stage drains and ends; last stats published."""
        if not self._started:
            return 0
        self._started = False
        self.stop.set()
        self.hub.wake_all()  # producers blocked on a full channel see the stop now, not at their backstop
        timeout = self.cfg.shutdown_timeout_s
        self._join_captures(timeout)
        for w in [self.batcher, self.inference, self.post, self.publish]:
            # the publisher waits up to `timeout` for the recorder before its final stats: give it that too
            w.join(timeout * 2 if w is self.publish and self.recorder is not None else timeout)
            if w.is_alive():
                self._failed(f"{self._stage(w)} did not stop within {timeout:g} s (shutdown_timeout_s)")
        if self.recorder is not None:
            self._finish_recorder()
            if self.recorder.is_alive():
                self._failed(f"{self._stage(self.recorder)} did not stop within {timeout:g} s (shutdown_timeout_s)")
        self.left_running = [w.name for w in self.workers if w.is_alive()]
        if self.publish.is_alive():
            # the publisher thread owns the socket and calls the integrations' taps: closed under it, ZeroMQ
            # and the MQTT client are used after close (libzmq aborts the process); the process exit ends it
            log.error("publisher still running after %g s: leaving its socket open until the process exits",
                      timeout)
        else:
            self.publisher.close(hurry=self.hurry)
            self.integrations.close()  # after the final stats: the MQTT bridge flushes them (bounded)
            for lost in self.integrations.losses():  # events an integration never delivered: evidence lost too
                self._failed(lost)
        if self.recorder is None or not self.recorder.is_alive():  # a recorder still writing keeps the folder
            self._release_dir()
        failed_cams = self._tell_worker_failures()
        self.final_stats = self.publish.final_stats or {}
        if not self.final_stats.get("totals", {}).get("inferred_frames", 0):
            cameras = "; ".join(f"camera '{w.camera.name}' ({w.source.describe()}) {w.state}"
                                f"{f': {reason}' if (reason := self._cause(w)) else ''}" for w in self.captures)
            log.warning("no frame was inspected in this run (%s)", cameras)
            if self._cameras_ended and not failed_cams:
                self._failed(f"every camera ended without one frame inspected ({cameras})")
        if self.recorder is not None:
            self._recordings_lost()
        self._events_lost()
        self.final_stats["failures"] = list(self.failures)
        self._write_summary()
        return 1 if self.failures else 0

    def _recordings_lost(self) -> None:
        """Any defect recording the run lost (a full queue, write errors, low disk, an unusable folder) is evidence
        lost: a closing failure line naming recorder.dir and the count, and exit 1, in a live run as in an offline
        one. A live run's losses were counted and logged only and it exited 0: a supervisor reading the exit status
        or the summary's ``failures`` could not tell that defects published as NG have no images on disk. A live
        camera's full queue drops by design (inspection never waits for the disk), but the evidence is lost all
        the same.

        One line for every kind of loss, those left unwritten at shutdown included (with the shutdown timeout they
        were not written within), and nowhere else: they had a line of their own beside this one, and the run's
        last line told the losses again before its failures, so each was told twice there and in the log."""
        totals = dict(self.final_stats.get("totals", {}))
        # abandoned by the daemon after the publisher took its final stats (it stopped first): not in the totals
        abandoned = max(int(totals.get("recorder.abandoned", 0)), self.recorder.abandoned)
        totals["recorder.abandoned"] = abandoned
        if lost := recording_losses(totals, self.cfg.shutdown_timeout_s if abandoned else None):
            self._failed(f"{self._stage(self.recorder)}: {lost}")

    def _events_lost(self) -> None:
        """Defect events the daemon itself never published and events an integration never took are evidence lost
        too: a closing failure line naming publish.endpoint and the counts, exit 1, as for recordings. Those of a
        full publisher queue (never numbered) or whose publishing failed reached no subscriber, no broker and no
        recording; one numbered but not sent on ZeroMQ (``daemon_dropped`` of the final stats, the ZeroMQ
        subscribers' books) was recorded and offered to the integrations all the same; an event whose
        hand-over to an integration raised (``tap_errors``) never reached the MQTT bridge, which could not count
        it. Both were counted, told to subscribers or logged, and the run exited 0."""
        stats = self.final_stats or {}
        labels = {"queue_full": "publisher queue full (publish.queue_size)", "unsent": "not sent on ZeroMQ",
                  "errors": "publishing failed"}
        per_camera, total = [], 0
        for stream, reasons in sorted((stats.get("daemon_dropped") or {}).items()):
            kind, _, camera = stream.partition("/")
            counts = {why: n for why, n in reasons.items() if n} if kind == "defect" else {}
            if counts:
                total += sum(counts.values())
                per_camera.append(f"camera '{camera}': " + ", ".join(f"{labels.get(why, why)} {n}"
                                                                      for why, n in counts.items()))
        if total:
            self._failed(f"{self._stage(self.publish)}: {total} defect event(s) never published "
                         f"({'; '.join(per_camera)})")
        if taps := stats.get("totals", {}).get("tap_errors", 0):
            self._failed(f"{self._stage(self.publish)}: {taps} event(s) an integration (MQTT bridge, dashboard) "
                         f"did not take: its hand-over raised (tap_errors)")

    def _join_captures(self, timeout: float) -> None:
        """Join the capture threads (``stop`` is set), each within ``timeout`` s.

        One still inside its source's open or read after a short grace is left behind: a silent network
        camera's open or a stalled one's read can block for open_timeout_s / read_timeout_s (up to an hour),
        and whatever it returns would not be inspected any more. Its channel is closed so the batcher drains
        without it; the thread (a daemon thread) ends by itself. Not a failure: the stop was asked for.
        """
        deadline = time.monotonic() + timeout
        grace_end = time.monotonic() + _BLOCKED_SOURCE_GRACE_S
        for w in self.captures:
            w.join(max(0.0, grace_end - time.monotonic()))
        for w in self.captures:
            call = w.source_call
            if w.is_alive() and call is not None:
                log.warning("camera '%s': stopping without waiting for its source (blocked in %s: %s)",
                            w.camera.name, call, w.source.describe())
                self.counters.add(f"{w.camera.name}.abandoned_on_stop")
                self.hub.close(w.camera.name)
                continue
            w.join(max(0.0, deadline - time.monotonic()))
            if w.is_alive():
                self._failed(f"capture of {w.source.describe()} did not stop within {timeout:g} s "
                             f"(shutdown_timeout_s)", w.camera.name)

    def _tell_worker_failures(self) -> list[str]:
        """One closing failure line per stage whose thread failed and per camera that failed (its source and
        the reason its capture gave up); returns the failed cameras' names."""
        for w in self.workers:
            if w.failure is not None:
                self._failed(f"{self._stage(w)} failed: {one_line(w.failure)}")
        failed = []
        for w in self.captures:
            if w.failure is not None:  # its loop catches Exception: a BaseException escaped it
                self._failed(f"capture of {w.source.describe()} failed: {one_line(w.failure)}", w.camera.name)
            elif w.state == "failed":
                self._failed(f"source {w.source.describe()} failed: {self._cause(w) or 'no reason given'}",
                             w.camera.name)
            if w.failure is not None or w.state == "failed":
                failed.append(w.camera.name)
        return failed

    @staticmethod
    def _cause(w: CaptureWorker) -> str:
        """The reason capture ``w`` gave with its last state, without the ``camera 'NAME': `` and source its
        line names already (a SourceError's text starts with the one, an ended file's with the other)."""
        reason = w.reason.removeprefix(f"camera '{w.camera.name}': ")
        return reason.removeprefix(f"{w.source.describe()}: ")

    def _stage(self, w) -> str:
        """A stage as its closing failure line names it: with what it works on where it has one of its own
        (the model, the endpoint, the recordings' folder), so the line says which part of the config to look at."""
        cfg = self.cfg
        named = {"inference": f"model {cfg.model.path}", "publisher": f"publish.endpoint {cfg.publish.endpoint}",
                 "recorder": f"recorder.dir {cfg.recorder.dir}"}.get(w.name)
        return f"{w.name} ({named})" if named else w.name

    def _failed(self, message: str, camera: str | None = None) -> None:
        """Add the closing failure line ``message`` (about camera ``camera``, if one) said of where: the config
        file first, and a camera's entry in it (``daemon.yaml: cameras[1], camera 'b': …``), as the daemon's other
        lines about its settings (:func:`inspector.pipeline.config.said_of_file`). These lines end the log, the
        summary JSON (``failures``) and the run's last line: 'camera(s) ['b'] failed' named neither the file
        (three daemons on one box, a config each) nor the camera's source nor why."""
        if camera is not None:
            message = f"camera '{camera}': {message}"
        if self.config_path is not None:
            cameras = [c.name for c in self.cfg.cameras]
            message = said_of_file(message, self.config_path, (), cameras) or f"{self.config_path}: {message}"
        self.failures.append(redact(message))  # the summary JSON and the last line are no log line: not redacted

    def _write_summary(self) -> None:
        stats = self.final_stats
        totals = stats.get("totals", {})
        log.info("processed %d frames in %d batches (mean batch %.2f); stage latencies (ms):\n%s",
                 totals.get("inferred_frames", 0), totals.get("batches", 0), totals.get("mean_batch", 0.0),
                 format_summary(stats.get("latency_ms", {})), extra={"lines": True})  # a table
        for failure in self.failures:
            log.error("%s", failure)
        if self.cfg.summary_json:
            path = Path(self.cfg.summary_json)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # whole or not at all: a stop or a full disk part-way left half a JSON file as the run's summary
                write_whole(path, json.dumps(stats, indent=2, default=str).encode("utf-8"))
            except OSError as exc:
                log.error("cannot write summary %s: %s", path, exc.strerror or exc)
