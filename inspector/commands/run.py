"""`inspector run`: the inspection daemon."""

from __future__ import annotations

import argparse
import signal


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the inspection daemon",
                       description="Capture → preprocess → infer → threshold → publish defect events on ZeroMQ. "
                                   "Runs until SIGINT/SIGTERM, or until every file source has ended.")
    p.add_argument("--config", required=True, help="daemon config YAML (see inspector.example.yaml)")
    p.add_argument("--check", action="store_true",
                   help="validate the config, load the model, open every source and the socket, then exit")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set publish.endpoint=tcp://127.0.0.1:6000")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.integrations.systemd import Notifier
    from inspector.pipeline.config import load_daemon_config
    from inspector.pipeline.daemon import Daemon

    cfg = load_daemon_config(args.config, args.set)
    daemon = Daemon(cfg)
    if args.check:
        for line in daemon.check():
            print(line)
        print(f"{args.config}: configuration OK")
        return 0
    previous = {sig: signal.signal(sig, lambda *_: daemon.request_stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        daemon.start()
        print(f"inspecting {len(cfg.cameras)} camera(s); publishing on {daemon.publisher.endpoint} "
              f"(Ctrl-C to stop)", flush=True)
        notifier = Notifier()  # systemd Type=notify + WatchdogSec; a no-op elsewhere
        notifier.ready(f"inspecting {len(cfg.cameras)} camera(s)")
        code = daemon.wait(tick=notifier.tick)
        notifier.stopping()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    totals = (daemon.final_stats or {}).get("totals", {})
    print(f"stopped: {totals.get('inferred_frames', 0)} frames inspected"
          + (f"; failures: {'; '.join(daemon.failures)}" if daemon.failures else ""), flush=True)
    return code
