"""`inspector service install`: a systemd unit for the daemon (written, or printed with --print)."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from inspector.commands.argtypes import identifier, int_range
from inspector.errors import ConfigError
from inspector.outputs import write_whole


UNIT_DIR = "/etc/systemd/system"  # where systemd looks for units the administrator installs (systemd.unit(5))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("service", help="install the daemon as a systemd service",
                       description="Write a systemd unit that runs 'inspector run --config X' (Type=notify, "
                                   "watchdog, restart on failure, journald log lines).")
    actions = p.add_subparsers(dest="action", metavar="<action>")  # none: its help on stderr, exit 2 (cli)
    i = actions.add_parser("install", help="write (or print) the unit file")
    i.add_argument("--config", required=True, help="daemon config YAML (validated first)")
    i.add_argument("--name", default="inspector", help="unit name (default inspector → inspector.service)")
    i.add_argument("--user", type=identifier("user name"), help="run as this user (default: root)")
    i.add_argument("--unit-dir", default=UNIT_DIR, help=f"where to write the unit (default {UNIT_DIR}; not with --print)")
    i.add_argument("--watchdog-s", type=int_range(0, 3600), default=30,
                   help="WatchdogSec: systemd restarts a daemon silent this long, [0 = off, 3600] (default 30)")
    i.add_argument("--print", action="store_true", help="print the unit instead of writing it")
    i.set_defaults(func=run)


# what systemd loads as a service's name (systemd.unit(5), "unit_name_is_valid") that is also a StateDirectory= and
# SyslogIdentifier= it keeps: '@a' is no unit name, 'a@' a template no 'systemctl enable --now a@' starts, '.' and
# '..' a StateDirectory= it ignores ("path is not normalized"), '-x' an option to the systemctl line it prints
_UNIT_NAME = re.compile(r"(?=.{1,200}\Z)[A-Za-z0-9_][A-Za-z0-9_.-]*(@[A-Za-z0-9_.-]+)?")


def run(args: argparse.Namespace) -> int:
    from inspector.integrations.systemd import unit_file
    from inspector.pipeline.config import load_daemon_config

    if not _UNIT_NAME.fullmatch(args.name) or args.name.endswith(".service"):
        raise ConfigError(f"--name: '{args.name}' is not a valid unit name (letters, digits, '_', '-', '.', "
                          f"the last two not first; one '@' between a name and an instance; no '.service', it is "
                          f"added)")
    config = Path(args.config)
    cfg = load_daemon_config(config)  # a unit for a config that does not load would only crash-loop
    text = unit_file(config, args.name, args.user, args.watchdog_s, shutdown_timeout_s=cfg.shutdown_timeout_s)
    if args.print:
        if args.unit_dir != UNIT_DIR:  # ignored, the user looked for the unit there and found none
            raise ConfigError(f"--unit-dir: does nothing with --print (the unit is printed, not written); "
                              f"leave one of them out")
        print(text, end="")
        return 0
    unit_dir = Path(args.unit_dir)
    if not unit_dir.is_dir():
        raise ConfigError(f"--unit-dir: folder {unit_dir} not found")
    path = unit_dir / f"{args.name}.service"
    replaced = _check_not_someone_elses(path)
    try:
        write_whole(path, text.encode("utf-8"))  # a unit cut short by a stop or a full disk fails to load
    except OSError as exc:
        raise ConfigError(f"--unit-dir: cannot write {path}: {exc.strerror or exc} (run as root, or use --print)") \
            from None
    print(f"wrote {path}" + (" (replaced the unit an earlier 'service install' wrote)" if replaced else ""))
    if unit_dir == Path("/etc/systemd/system"):
        subprocess.run(["systemctl", "daemon-reload"], check=False)
    print(f"start it with: systemctl enable --now {args.name}; logs: journalctl -u {args.name} -f")
    return 0


def _check_not_someone_elses(path: Path) -> bool:
    """Replace a unit written by ``service install`` (an update; True: one is there, and the command says it
    replaced it), never another one: ``--name ssh`` or a hand-written unit of the same name was overwritten
    silently. ConfigError (one line) for anything else at the name."""
    if not path.exists() and not path.is_symlink():
        return False
    from inspector.integrations.systemd import UNIT_DESCRIPTION

    try:
        ours = path.is_file() and f"Description={UNIT_DESCRIPTION}" in path.read_text(encoding="utf-8",
                                                                                       errors="replace")
    except OSError:
        ours = False
    if not ours:
        raise ConfigError(f"--name: {path} exists and was not written by 'inspector service install'; "
                          f"choose another --name, or remove that unit first")
    return True
