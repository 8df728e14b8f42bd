"""`inspector run`: the inspection daemon."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from inspector import lifecycle
from inspector.native_output import NativeOutput

log = logging.getLogger("inspector.run")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the inspection daemon",
                       description="Capture → preprocess → infer → threshold → publish defect events on ZeroMQ. "
                                   "Runs until SIGINT/SIGTERM, or until every file source has ended.")
    p.add_argument("--config", required=True, help="daemon config YAML (see inspector.example.yaml)")
    p.add_argument("--check", action="store_true",
                   help="validate the config, load the model, open every source and the socket, then exit")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set publish.endpoint=tcp://127.0.0.1:6000")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    lifecycle.install()  # first: a signal from here on is an orderly stop (cli.main installs it even earlier)
    try:
        return _run(args, lifecycle.STOP)
    finally:
        lifecycle.restore()


def _run(args: argparse.Namespace, stop: threading.Event) -> int:
    from inspector.pipeline.config import load_daemon_config

    cfg = load_daemon_config(args.config, args.overrides)
    # From here native libraries print (FFmpeg, libjpeg, GLib): their lines become redacted, throttled records
    with NativeOutput(cfg.cameras):
        return _inspect(args, cfg, stop)


def _inspect(args: argparse.Namespace, cfg, stop: threading.Event) -> int:
    from inspector.pipeline.config import config_named_records, settings_of

    # what the daemon refuses as it checks or starts is told of the file it came from, as the loader's errors;
    # so is what it warns of and what fails at run time about a setting (three daemons on a box: which file?)
    cameras = [cam.name for cam in cfg.cameras]
    with config_named_records(args.config, args.overrides, cameras):
        return _check_or_run(args, cfg, stop, settings_of(args.config, args.overrides, cameras))


def _check_or_run(args: argparse.Namespace, cfg, stop: threading.Event, settings) -> int:
    from inspector.integrations.systemd import Notifier
    from inspector.integrations.runtime import make_daemon

    with settings:
        daemon = make_daemon(cfg, stop=stop, hurry=lifecycle.HURRY, config_path=args.config)
    if args.check:
        with settings:
            lines = daemon.check()
        print("\n".join(lines))
        print(f"{args.config}: configuration OK")
        return 0
    if lifecycle.requested():
        log.info("%s during start-up: stopping before the daemon starts", lifecycle.reason())
        code = daemon.stopped_before_start(lifecycle.reason())
        print("stopped: 0 frames inspected (stopped during start-up)", flush=True)
        return code
    with settings:
        daemon.start()
    if lifecycle.requested():
        log.info("%s during start-up: stopping", lifecycle.reason())
    print(f"inspecting {len(cfg.cameras)} camera(s); publishing on {daemon.publisher.endpoint} "
          f"(Ctrl-C to stop)", flush=True)
    notifier = Notifier()  # systemd Type=notify + WatchdogSec; a no-op elsewhere
    notifier.ready(f"inspecting {len(cfg.cameras)} camera(s)")
    code = daemon.wait(tick=notifier.tick)
    notifier.stopping()
    if lifecycle.received:
        log.info("%s: stopped", lifecycle.reason())
    totals = (daemon.final_stats or {}).get("totals", {})
    # Every loss (recordings, defect events never published, MQTT messages never delivered) is one of the daemon's
    # failures, each told once there; a part of its own here told the recordings lost a second time
    print(f"stopped: {totals.get('inferred_frames', 0)} frames inspected{decided(totals)}"
          + (f"; failures: {'; '.join(daemon.failures)}" if daemon.failures else ""), flush=True)
    if daemon.left_running:
        exit_now(code, daemon.left_running)
    return code



def decided(totals: dict) -> str:
    """``' (NG 3, OK 27)'``: the frames of the run by decision (``decided_<decision>`` of the final stats; uncertain
    and error only when some were), so a run on a recorded file or folder with no subscriber still tells how many
    parts were NG; '' when no frame reached a decision."""
    counts = {d: totals.get(f"decided_{d}", 0) for d in ("NG", "uncertain", "OK", "error")}
    if not any(counts.values()):
        return ""
    return " (" + ", ".join(f"{d} {n}" for d, n in counts.items() if n or d in ("NG", "OK")) + ")"

def exit_now(code: int, running: list[str]) -> None:
    """End the process with ``code`` at once, without the interpreter's finalisation.

    A stage that did not stop within ``shutdown_timeout_s`` is still inside ONNX Runtime or ZeroMQ; the
    interpreter's exit would tear those libraries down under it, and the process died of SIGABRT
    ('terminate called without an active exception', exit 134) instead of exiting 1 with its failures told.
    Everything the run reports (summary, stats, log) is written by then; only the streams are flushed.
    """
    log.warning("exiting with stage(s) %s still running", ", ".join(running))
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
