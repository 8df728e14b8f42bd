"""`inspector subscribe`: print (and optionally save) events published by a daemon."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import signal
import sys
import secrets
import threading
import time
from pathlib import Path

from inspector.commands.argtypes import float_range, identifier, int_range, out_file, out_folder
from inspector.errors import ConfigError
from inspector.events import SILENCE_S
from inspector.interrupts import taken_over
from inspector.outputs import link_new, safe_name
from inspector.redact import redact
from inspector.textline import one_line, score_and_threshold, wire_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("subscribe", help="print defect events published by a daemon",
                       description="Subscribe to a daemon's ZeroMQ events and print one line per event.")
    p.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5556",
                   help="daemon endpoint, or an MQTT broker mqtt://[user:password@]host[:port][/topic_prefix] where many "
                        "daemons publish (needs the 'mqtt' extra); default tcp://127.0.0.1:5556, the daemon's default "
                        "publish.endpoint")
    p.add_argument("--topic", action="append", default=[],
                   help="topic prefix, repeatable (default v1/defect and v1/status; 'v1/' = everything)")
    p.add_argument("--json", action="store_true", help="print each event header as one JSON line")
    p.add_argument("--save-dir", type=out_folder(), help="write each event's header (.json) and payloads (.jpg/.png) here; names "
                                      "carry the daemon's run id and never overwrite a file")
    p.add_argument("--state", type=out_file(),
                   help="keep what this subscriber heard (per box and stream: run id, camera, last seq; the drops "
                        "already told) in this file, so that started again, from a daemon or an MQTT broker, it "
                        "tells what it missed while it was not running and whether the daemon restarted "
                        "meanwhile (default with --save-dir: <save-dir>/.subscriber-state)")
    p.add_argument("--count", type=int_range(0, 10**12), default=0, help="exit after this many events (0 = run until Ctrl-C); fewer before --timeout "
                   "runs out: exit 1")
    p.add_argument("--timeout", type=float_range(0, 10**7), default=0.0,
                   help="exit after this many seconds without an event (default 0 = wait for ever)")
    p.add_argument("--silence-s", type=float_range(0, 10**7), default=SILENCE_S,
                   help="after this many seconds without hearing anything (no event, no v1/stats heartbeat, "
                        "which a daemon sends every publish.stats_interval_s) say once what is waited on and why "
                        "(ipc path missing, nothing listening, ...; MQTT: the broker not reached, or reached and "
                        "nothing published under the topic prefix), and keep waiting; a connection refused before "
                        "any was made (nothing listening, ipc path missing) is said at once (MQTT: a broker that cannot be used at the "
                        "start, refused, not answering CONNACK within 5 s or refusing this client, is one line and "
                        "exit 2; 0 = never say; "
                        f"default {SILENCE_S:g})")
    p.add_argument("--max-message-mib", type=int_range(1, 4096), default=128,
                   help="largest message part taken from a daemon (MiB; a publisher sending more is disconnected; "
                        "a message whose payloads hold more than two such parts together is dropped, told and "
                        "counted malformed; MQTT: a larger message is dropped, told and counted); "
                        "a daemon's largest is a thumbnail or heat map: < 1 MiB at the default sizes, ~64 MiB at "
                        "8192 pixels")
    p.add_argument("--queue-mib", type=int_range(1, 2**20), default=1024,
                   help="memory for events received but not yet printed/saved (MiB): the receive queue holds "
                        "this / --max-message-mib events; once full the daemon's queue to this subscriber takes "
                        "the rest, and what it drops is told as missed (gaps). MQTT: messages received beyond "
                        "this (or 10000 messages) are dropped, newest first, told and counted missed (default 1024)")
    p.add_argument("--client-id", type=identifier("MQTT client id"),
                   help="MQTT: a fixed client id = a persistent session (QoS 1): the broker keeps events for this "
                        "consumer while it, or the broker, restarts; 1-64 letters, digits, '.', '_' or '-'")
    p.add_argument("--server-key", help="CURVE: the daemon's public key (certificate file or z85)")
    p.add_argument("--client-cert", help="CURVE: this client's secret certificate file")
    p.set_defaults(func=run)


def _number(value, default: float = 0.0) -> float:
    """A number from an event's free-form parts (stats data), or ``default`` (wire data is untrusted: an
    integer beyond the float range, e.g. 10**400, raised OverflowError out of describe())."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return default
    try:
        return float(value)
    except OverflowError:
        return default


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


INSPECTION_TYPES = ("defect", "result")  # the streams whose lines look alike but for their type


def several_streams(topics: list[str]) -> bool:
    """Whether ``topics`` (checked by :func:`inspector.events.subscription_topic`) cover more than one of
    :data:`INSPECTION_TYPES`: then each frame may come twice (its defect and its result event, each numbered in
    its own stream), and a line must say which stream it is of."""
    covered = {kind for t in topics for kind in INSPECTION_TYPES
               if t in ("", "v1", "v1/") or t.split("/")[1:2] == [kind]}
    return len(covered) > 1


def describe(event, stream: bool = False) -> str:
    """One human-readable line per event (fields decode() checked; free-form parts read defensively; wire strings
    with a newline or ESC are escaped by :func:`~inspector.textline.one_line`: one event, one line). ``stream``:
    an inspection event's line names its stream (type) before its seq (:func:`several_streams`); without it
    the line is as it always was."""
    if event.type == "status":
        return one_line(f"{wire_text(event.time_utc)} {wire_text(event.camera):<10} status {wire_text(event.state)}"
                        + (f" ({wire_text(event.reason, 240)})" if event.reason else ""))
    if event.type == "stats":
        totals = _mapping(event.data.get("totals"))
        total = _mapping(_mapping(event.data.get("latency_ms")).get("total"))
        lat = (f" e2e p50 {_number(total.get('p50')):.1f} ms p99 {_number(total.get('p99')):.1f} ms"
               if total.get("n") else "")
        fps = _number(totals.get("fps" if event.final else "fps_window", totals.get("fps", 0)))
        return one_line(f"{wire_text(event.time_utc)} stats      {fps:.1f} fps{lat}" + (" (final)" if event.final else ""))
    regions = " ".join(f"[{r['bbox'][0]},{r['bbox'][1]} {r['bbox'][2]}x{r['bbox'][3]} peak {_number(r.get('peak')):.3g}]"
                       for r in event.regions[:4])
    score, threshold = score_and_threshold(event.score, event.threshold)
    kind = f"{event.type:<6} " if stream else ""
    line = (f"{wire_text(event.capture.get('utc', '?'))} {wire_text(event.camera):<10} {kind}#{event.seq:<6} "
            f"frame {event.frame_id:<7} {wire_text(event.decision):<9} score {score} (thr {threshold}) "
            f"e2e {_number(event.latency_ms.get('total')):.1f} ms")
    if event.regions:
        line += f" {len(event.regions)} region(s) {regions}"
    if event.error:
        line += f" error: {wire_text(event.error, 240)}"
    return one_line(line)


def _unique(stem: str, suffix: str, parts: list[tuple[str, bytes]]) -> str:
    """``stem + suffix``, or ``stem-<n> + suffix`` when an earlier part of the event took it: two payloads of one
    kind (or kinds that sanitise alike, 'a/b' and 'a.b') made the second one's exclusive create fail, and it and
    every payload after it were lost. Compared case-folded: on a case-insensitive file system (macOS, SMB, FAT)
    'Heat' and 'heat' are one name, and the event could never be placed."""
    taken = {name.casefold() for name, _ in parts}
    name, n = stem + suffix, 1
    while name.casefold() in taken:
        name, n = f"{stem}-{n}{suffix}", n + 1
    return name


# write_temporary's files: .subscribe-<pid>-<8 random characters: a-z, 0-9, _>.part (as tempfile.mkstemp's,
# which earlier versions used: their leftovers match too). One is left only when its subscriber died mid-save
# (SIGKILL, a power cut): removed at the next start once its writer is gone (remove_temporaries); no other name
# is ever removed.
TEMPORARY_NAME = re.compile(r"^\.subscribe-(\d{1,10})-[a-z0-9_]{8}\.part\Z", re.ASCII)


_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _new_temporary(folder: Path) -> tuple[int, str]:
    """A new hidden file in ``folder`` named as :data:`TEMPORARY_NAME`, open for writing: (fd, path). Made with
    mode 0o666 less the umask, as any file the user makes (and as the recorder's): tempfile.mkstemp makes 0o600
    files, and every event saved was readable by the subscriber's user alone (a reviewer, the plant's web
    viewer or a log shipper under another account could not open the evidence)."""
    for _ in range(100):
        name = str(folder / f".subscribe-{os.getpid()}-{''.join(secrets.choice(_NAME_CHARS) for _ in range(8))}.part")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def write_temporary(folder: Path, data: bytes) -> Path:
    """``data`` in a new hidden file of ``folder`` (:data:`TEMPORARY_NAME`: never an event's name; mode as the
    umask says, :func:`_new_temporary`), on disk (fsync) before it gets a name, so a full disk, a file size
    limit or a crash leaves no short file under an event's name (after a power cut ext4 gave a file linked
    before its data was written back empty or short)."""
    fd, name = _new_temporary(folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _place(folder: Path, name: str, parts: list[tuple[str, bytes]], temps: list[Path]) -> list[Path] | None:
    """Link the written ``temps`` to ``<name><suffix>``: payloads first, the header last, so a header on disk
    means its payloads are whole. None (nothing left behind) when a name is taken; any other error removes
    what was placed and is raised."""
    placed: list[Path] = []
    order = list(range(1, len(parts))) + [0]
    try:
        for i in order:
            link_new(temps[i], folder / f"{name}{parts[i][0]}")
            placed.append(folder / f"{name}{parts[i][0]}")
    except FileExistsError:
        _remove(placed)
        return None
    except BaseException:
        _remove(placed)
        raise
    return placed[-1:] + placed[:-1]  # the header first


def remove_temporaries(folder: Path) -> list[str]:
    """Remove the temporaries an earlier subscriber left in ``folder`` when it died mid-save (SIGKILL, a power
    cut): only names of :data:`TEMPORARY_NAME` whose writer is gone (:func:`inspector.leftovers.writer_gone`:
    a subscriber still saving into the same folder keeps its own), never a user's file. The line telling how
    many, or none. They were left for good before, one per payload of each event cut short."""
    from inspector.leftovers import remove_leftovers

    removed = remove_leftovers(folder, TEMPORARY_NAME)
    return [f"removed {removed} temporary file(s) left in {folder} by an interrupted save (.subscribe-<pid>-*.part "
            f"of a subscriber no longer running)"] if removed else []


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except OSError:
            pass  # gone already, or the disk is gone: nothing more to undo


def save(event, folder: Path, box: str | None = None) -> list[Path]:
    """Write the header and payloads of ``event`` as new files in ``folder``; returns their paths (header first).

    Names are ``[<box>-]<type>-<camera>-<run id>-<seq>[-n]`` from sanitised wire strings, so they stay inside
    ``folder``, and files are created exclusively: a name already taken (another run, a re-sent status)
    gets the next free ``-n`` suffix instead of overwriting. ``box``: the MQTT box the event came from.
    The event appears whole or not at all: every part is written to a temporary file first, and an error
    (OSError: a full disk) leaves nothing behind.
    """
    from inspector.events import header_dict

    folder.mkdir(parents=True, exist_ok=True)
    run = event.run_id or "norun"
    base = (("" if box is None else f"{safe_name(box)}-")
            + f"{event.type}-{safe_name(getattr(event, 'camera', 'all'))}-{safe_name(run, 32)}-{event.seq:07d}")
    parts = [(".json", json.dumps(header_dict(event), indent=1).encode())]
    for payload in event.payloads:
        parts.append((_unique(f".{safe_name(payload.kind, 32)}", payload.suffix, parts), payload.data))
    temps: list[Path] = []
    try:
        for _, data in parts:
            temps.append(write_temporary(folder, data))
        for n in range(1000):
            written = _place(folder, base if n == 0 else f"{base}-{n}", parts, temps)
            if written is not None:
                return written
    finally:
        _remove(temps)
    raise FileExistsError(f"{folder / base}: 1000 names taken")


SUFFIXES = {"jpeg": ".jpg", "png": ".png"}  # as events.Payload.suffix
EARLY_PAYLOADS = 256  # payload messages kept while their header has not come (MQTT orders each topic alone)
# Payloads waited for at most (headers saved whose payload messages have not come). Wire data is untrusted: a
# publisher whose headers name payloads it never sends grew the list by one entry per payload without end. A
# daemon's payloads follow their header within moments (MAX_PAYLOADS per event), so the oldest beyond this many
# is given up: counted as not saved, and told once.
WAITING_PAYLOADS = 4096


class MqttSaver:
    """``--save-dir`` for MQTT: a header is saved as the ZeroMQ subscriber saves an event (names led by the box),
    and each payload message, a message of its own, goes to the name the header gives it (``<header>.<kind>.jpg``),
    whichever of the two the broker delivered first; at the end, payloads whose header never came are saved
    under their topic and headers whose payloads never came are told (nothing is lost silently)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.waiting: dict[str, Path] = {}  # payload topic → its file, once the header is saved
        self.early: dict[str, bytes] = {}  # payload topic → bytes that came before their header
        self.done: dict[str, None] = {}  # payload topics written (a QoS 1 re-delivery is not an orphan)
        self.warnings: list[str] = []
        self.unsaved_payloads = 0
        self.given_up = 0  # payloads no longer waited for (WAITING_PAYLOADS)
        self.trouble = SaveTrouble(folder)  # headers and payloads: a full disk told once, not per message

    def event(self, box: str, event) -> None:
        """Save the header of ``event`` (OSError as :func:`save`) and place its payloads."""
        stem = save(event, self.folder, box)[0].name[:-len(".json")]
        parts: list[tuple[str, bytes]] = []
        for desc in (event.source or {}).get("payloads", []) if isinstance(event.source, dict) else []:
            topic = desc.get("topic")
            if isinstance(topic, str) and topic not in self.done:  # done: saved under its topic before this
                name = _unique(f".{safe_name(desc.get('kind', 'payload'), 32)}",
                               SUFFIXES.get(desc.get("encoding"), ".bin"), parts)
                parts.append((name, b""))
                self.waiting[topic] = self.folder / f"{stem}{name}"
                if topic in self.early:
                    self.payload(box, topic, self.early.pop(topic))
        self._give_up_oldest()

    def _give_up_oldest(self) -> None:
        """Stop waiting for the oldest payloads beyond WAITING_PAYLOADS: each counted as not saved; the first
        time told in one line (the summary gives the count)."""
        while len(self.waiting) > WAITING_PAYLOADS:
            topic = next(iter(self.waiting))
            del self.waiting[topic]
            self.unsaved_payloads += 1
            if not self.given_up:
                self.warnings.append(f"warning: more than {WAITING_PAYLOADS} payloads waited for (first given up: "
                                     f"{wire_text(topic, 160)}); the oldest are given up, counted as not saved")
            self.given_up += 1

    def payload(self, box: str, topic: str, data: bytes) -> None:
        path = self.waiting.pop(topic, None)
        if path is not None:
            self._write(path, data, topic)
        elif topic not in self.done:
            self.early[topic] = data
            if len(self.early) > EARLY_PAYLOADS:  # its header is long overdue: keep the bytes under the topic
                oldest = next(iter(self.early))
                self._orphan(oldest, self.early.pop(oldest))

    def _orphan(self, topic: str, data: bytes) -> None:
        self.warnings.append(f"warning: payload {wire_text(topic, 160)} came without its header; saved under its topic")
        self._write(self.folder / f"payload-{safe_name(topic.replace('/', '-'), 160)}.bin", data, topic)

    def _write(self, path: Path, data: bytes, topic: str) -> None:
        """Write a payload whole or not at all (a temporary file linked to ``path``: a full disk leaves no short
        file), never over a file: a name taken (an orphan's topic that sanitises like another's, a name taken
        on a case-insensitive file system) gets the next free ``-n``."""
        self.done[topic] = None
        while len(self.done) > 4096:
            del self.done[next(iter(self.done))]
        tmp = None
        try:
            self.trouble.check_mounted()
            self.folder.mkdir(parents=True, exist_ok=True)  # a payload may come before any header
            tmp = write_temporary(self.folder, data)
            for n in range(1000):
                try:
                    link_new(tmp, path if n == 0 else path.with_name(f"{path.stem}-{n}{path.suffix}"))
                except FileExistsError:
                    continue
                self._note(self.trouble.saved())
                return
            raise FileExistsError(errno.EEXIST, "1000 names taken", str(path))
        except OSError as exc:
            self.unsaved_payloads += 1
            self._note(self.trouble.failed(f"payload {path.name}", exc, "payload"))
        finally:
            if tmp is not None:
                _remove([tmp])

    def finish(self) -> None:
        """The payloads left unpaired when the subscriber stops: orphans saved, the missing ones told."""
        for topic, data in list(self.early.items()):
            self._orphan(topic, data)
        self.early.clear()
        if self.waiting:
            self.unsaved_payloads += len(self.waiting)
            self.warnings.append(f"warning: {len(self.waiting)} payload(s) never came (first: "
                                 f"{one_line(next(iter(self.waiting))[:160])}); their headers are saved")

    def _note(self, line: str | None) -> None:
        if line:
            self.warnings.append(line)

    def take(self) -> list[str]:
        out, self.warnings = self.warnings, []
        return out


def run_mqtt(args: argparse.Namespace) -> int:
    """Events of every daemon (box) publishing under the broker's topic prefix; one line each. Stats are heard
    quietly when not asked for (MqttSubscriber): they tell what each box published and what it dropped."""
    with StopSignals() as stops:  # from before connecting until the summary is printed
        seen, unsaved = _run_mqtt(args, stops)
    return _exit_code(args, stops, seen, unsaved)


def _run_mqtt(args: argparse.Namespace, stops: StopSignals) -> tuple[int, int]:
    """(events seen, events and payloads not saved)."""
    from inspector.integrations.mqtt import MqttSubscriber

    # the topics as given: 'v1/defect/cam1' is that camera alone, 'v1/' everything (MqttSubscriber's filters)
    topics = args.topic or ["v1/defect", "v1/status"]
    saver = MqttSaver(Path(args.save_dir)) if args.save_dir else None
    sub = _with_state(args, lambda state: MqttSubscriber(
        args.endpoint, topics, client_id=args.client_id, state=state,
        on_payload=None if saver is None else saver.payload, queue_bytes=args.queue_mib * 2**20,
        max_message_bytes=args.max_message_mib * 2**20, silence_s=args.silence_s))
    tally = {"seen": 0, "unsaved": 0}
    try:
        if saver is not None:  # once the state is known to be this subscriber's (a foreign one is refused first)
            _tell(remove_temporaries(saver.folder))
        print(f"subscribed to {', '.join(sub.topics)} on {redact(args.endpoint)}", file=sys.stderr, flush=True)
        with stops.waiting():
            _receive_mqtt(args, sub, saver, tally, stops)
            if saver is not None:  # the last event's payloads, still on their way after --count
                sub.take_payloads(PAYLOAD_WAIT_S, saver.waiting)
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    _tell(sub.notices(final=True))  # the drops not told yet (NOTICE_S) too
    tail, unsaved = "", 0
    if saver is not None:
        saver.finish()
        unsaved = tally["unsaved"] + saver.unsaved_payloads
        _tell(saver.take())
        tail = (f"; {tally['unsaved']} event(s) and {saver.unsaved_payloads} payload(s) not saved to "
                f"{args.save_dir}")
    print(f"received {tally['seen']} event(s); {sub.summary()}{tail}{sub.state_stale}", file=sys.stderr, flush=True)
    return tally["seen"], unsaved


# Longest wait for an event before the notices found meanwhile are printed: a subscriber waiting for ever
# (no --timeout) told what it found while no event came (a handshake failed, an ipc path that is a regular
# file, messages dropped) only when the next event came, i.e. never when none could.
NOTICE_WAKE_S = 1.0


def _wait(deadline: float | None) -> float:
    """Seconds for the next recv: until ``deadline`` (monotonic; None: none), at most NOTICE_WAKE_S."""
    return NOTICE_WAKE_S if deadline is None else min(max(deadline - time.monotonic(), 0.0), NOTICE_WAKE_S)


def _waited_out(deadline: float | None, timeout: float) -> bool:
    """Whether ``--timeout`` has passed without an event (then told); False: only a wake-up to print notices."""
    if deadline is None or time.monotonic() < deadline:
        return False
    print(f"no event for {timeout:g} s; exiting", file=sys.stderr)
    return True


PAYLOAD_WAIT_S = 2.0  # after the last event (--count), how long its payload messages may take to come


def _receive_mqtt(args: argparse.Namespace, sub, saver: MqttSaver | None, tally: dict, stops: StopSignals) -> None:
    """Print (and save) events until ``--count``, ``--timeout`` or a stop signal (not inside an event)."""
    from inspector.events import header_dict

    deadline = time.monotonic() + args.timeout if args.timeout else None
    while not args.count or tally["seen"] < args.count:
        got = sub.recv(timeout=_wait(deadline), quiet=True)
        _tell(sub.notices())
        if saver is not None:
            _tell(saver.take())
        if got is None:
            if _waited_out(deadline, args.timeout):
                return
            continue
        box, event = got
        if not sub.asked(event):
            continue  # for loss accounting only: neither shown nor counted, and --timeout runs on
        deadline = time.monotonic() + args.timeout if args.timeout else None
        with stops.handling():
            tally["seen"] += 1
            if args.json:
                print(json.dumps({**header_dict(event), "box": box}), flush=True)
            else:
                print(one_line(f"{wire_text(box):<12} {describe(event, several_streams(args.topic))}"), flush=True)
            if saver is not None and not _save_or_warn(event, saver.trouble, lambda: saver.event(box, event)):
                tally["unsaved"] += 1
            sub.handled()  # printed and saved (or told unsaved): heard, in the state saved next


STATE_NAME = ".subscriber-state"  # in --save-dir; no '.json' suffix: the folder's .json files are event headers


def _with_state(args: argparse.Namespace, make):
    """``make(state path)``: the subscriber, keeping the state asked for (:func:`state_path`).

    The default state of a ``--save-dir`` held by another running subscriber (a second ``subscribe`` saving
    into the same folder: a service and an engineer watching by hand): this one runs without a state, told in one
    warning line, and saves the events as the other does (its names never take the other's). Refusing it left the
    second saver not saving at all; sharing the state made each one's restart resume the other's accounting.
    A state named with ``--state`` held by another is refused (one line, exit 2): it cannot be kept as asked."""
    from inspector.loss import StateInUse

    try:
        return make(state_path(args))
    except StateInUse as exc:
        if args.state:
            raise
        _tell([f"warning: {exc.path} is in use by another running subscriber (pid {exc.holder}); this one keeps "
               f"no state (restarted, it will not know what it missed meanwhile): give it its own --state to keep one"])
        return make(None)


def state_path(args: argparse.Namespace) -> Path | None:
    """The subscriber state file asked for (``--state``, or the default in ``--save-dir``), or None."""
    return Path(args.state) if args.state else (Path(args.save_dir) / STATE_NAME if args.save_dir else None)


def run(args: argparse.Namespace) -> int:
    if args.endpoint.startswith(("mqtt://", "mqtts://")):
        if args.server_key is not None or args.client_cert is not None:  # ignored, the user believed it encrypted
            raise ConfigError(f"{redact(args.endpoint)}: --server-key and --client-cert are ZeroMQ CURVE keys and "
                              f"do nothing for an MQTT broker; secure it with mqtts:// (TLS) and leave them out")
        return run_mqtt(args)
    if args.client_id is not None:  # ignored, the user believed the broker kept events for this consumer
        raise ConfigError(f"{redact(args.endpoint)}: --client-id names an MQTT session and does nothing for a "
                          f"daemon's ZeroMQ endpoint (it keeps no events for a subscriber); leave it out")
    with StopSignals() as stops:  # from before connecting until the summary is printed
        seen, unsaved = _run_zmq(args, stops)
    return _exit_code(args, stops, seen, unsaved)


# The command ran but did not deliver what was asked: fewer events than --count before --timeout, or events it
# could not save. A script waiting for N events (a line check after a change-over) could not tell it from success.
INCOMPLETE = 1


def _exit_code(args: argparse.Namespace, stops: "StopSignals", seen: int, unsaved: int) -> int:
    """The exit code after the summary: a signal's (:attr:`StopSignals.exit_code`), else :data:`INCOMPLETE` with one
    line saying why when ``--count`` was not reached by a wait that ran out (a Ctrl-C asked for the end) or when
    ``unsaved`` events or payloads were not saved to ``--save-dir``, else 0."""
    if stops.exit_code:
        return stops.exit_code
    short = bool(args.count) and seen < args.count and stops.signum is None
    if short:
        print(f"subscribe: {seen} of the {args.count} event(s) asked for (--count) came before --timeout "
              f"{args.timeout:g} s ran out; exit {INCOMPLETE}", file=sys.stderr, flush=True)
    if unsaved:
        print(f"subscribe: {unsaved} event(s) or payload(s) not saved to {args.save_dir}; exit {INCOMPLETE}",
              file=sys.stderr, flush=True)
    return INCOMPLETE if short or unsaved else 0


def _run_zmq(args: argparse.Namespace, stops: StopSignals) -> tuple[int, int]:
    """(events seen, events not saved)."""
    from inspector.client import Subscriber

    topics = args.topic or ["v1/defect", "v1/status"]
    # the Subscriber hears v1/stats quietly when not asked for: the daemon's drops and the end of a run
    with _with_state(args, lambda state: Subscriber(
            args.endpoint, topics, server_key=args.server_key, client_cert=args.client_cert, state=state,
            max_message_bytes=args.max_message_mib * 2**20, queue_bytes=args.queue_mib * 2**20,
            silence_s=args.silence_s)) as sub:
        _tell(sub.notices())  # the state resumed, or why not
        if args.save_dir:
            _tell(remove_temporaries(Path(args.save_dir)))
        print(f"subscribed to {', '.join(topics)} on {args.endpoint}", file=sys.stderr, flush=True)
        tally = {"seen": 0, "unsaved": 0}
        try:
            with stops.waiting():
                _receive(args, sub, tally, stops)
        except KeyboardInterrupt:
            pass
    _tell(sub.notices(final=True))  # closing saved the state a last time; the malformed messages not told yet
    # the events of the topics asked for: the quiet v1/stats heartbeats are neither shown nor counted
    tail = f"; {tally['unsaved']} event(s) not saved to {args.save_dir}" if args.save_dir else ""
    print(f"received {tally['seen']} event(s); {sub.loss.summary()}; {sub.malformed} malformed message(s) "
          f"skipped{tail}{sub.state_stale}", file=sys.stderr, flush=True)
    return tally["seen"], tally["unsaved"]


def _receive(args: argparse.Namespace, sub, tally: dict, stops: StopSignals) -> None:
    """Print (and save) events until ``--count``, ``--timeout`` or a stop signal (not inside an event; the
    Subscriber saves its state)."""
    from inspector.events import header_dict

    trouble = SaveTrouble(Path(args.save_dir)) if args.save_dir else None
    typed = several_streams(sub.topics)  # each line names its stream when two look alike
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while not args.count or tally["seen"] < args.count:
        event = sub.recv(timeout=_wait(deadline), quiet=True)  # the quiet stats too: their notices told at once
        _tell(sub.notices())  # missed events, restarts, skipped messages: as they are found
        if event is None:
            if _waited_out(deadline, args.timeout):
                return
            continue
        if not sub.asked(event):
            continue  # for loss accounting only: neither shown nor counted, and --timeout runs on
        deadline = time.monotonic() + args.timeout if args.timeout else None
        with stops.handling():
            tally["seen"] += 1
            print(json.dumps(header_dict(event)) if args.json else describe(event, typed), flush=True)
            if trouble is not None and not _save_or_warn(event, trouble):
                tally["unsaved"] += 1
            sub.handled()  # printed and saved (or told unsaved): heard, in the state saved next


class StopSignals:
    """SIGINT and SIGTERM stop the subscriber between events, never inside one, and never before its summary line.

    Installed for the whole command (before the subscriber connects, until its summary is printed): a stop
    interrupts only the wait for events (:meth:`waiting`, KeyboardInterrupt); received while an event is being
    printed and saved (:meth:`handling`) it waits until the files are whole; received before the wait (while
    connecting, loading the state) it ends the wait as it begins; received after it (closing, saving the state,
    printing the summary) it is only recorded. A Ctrl-C that came between printing 'subscribed to' and the
    handlers being installed, or during close, was a KeyboardInterrupt out of the command: 'interrupted' and no
    summary; SIGTERM there ended the process on the spot. ``signum``: the signal that stopped it (None: none).
    Only the main thread may install handlers; elsewhere (tests running the command in a thread) nothing
    changes."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._busy = False
        self._armed = False  # inside waiting(): a stop may interrupt (once: raising disarms)
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
            taken_over()  # cli.main's handler, put back at the end, then only records a late stop
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum, _frame) -> None:
        self.signum = signum
        if self._armed and not self._busy:
            self._stop()

    def _stop(self) -> None:
        """Raise the one KeyboardInterrupt that ends the wait; disarmed first, so none can follow it into the
        cleanup and summary (a second Ctrl-C, or one landing as the wait ends)."""
        self._armed = False
        raise KeyboardInterrupt()

    @contextlib.contextmanager
    def waiting(self):
        """The block (the receive loop) ends with KeyboardInterrupt at a stop, one asked for before it too; the
        caller catches it around this block."""
        self._armed = True
        try:
            if self.signum is not None:
                self._stop()
            yield
        finally:
            self._armed = False

    @contextlib.contextmanager
    def handling(self):
        """The block runs to its end whatever signal comes; a stop asked for meanwhile is raised after it."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False
        if self.signum is not None and self._armed:
            self._stop()

    @property
    def exit_code(self) -> int:
        """0, or 128 + SIGTERM after one (the shell convention, inspector.interrupts); Ctrl-C ends with 0."""
        return 128 + signal.SIGTERM if self.signum == signal.SIGTERM else 0


def _tell(lines: list[str]) -> None:
    for line in lines:
        print(one_line(line), file=sys.stderr, flush=True)  # notices carry wire text: one line each


class SaveTrouble:
    """``--save-dir`` failures told once per reason, and their end told once (the ZeroMQ and the MQTT saver).

    A full disk, a read-only or vanished share printed one warning per event (and per MQTT payload) for as long
    as it lasted: a line per defect at the camera's rate, burying the lines that say what was missed. Now the
    first failure for a reason (its strerror: 'No space left on device', 'Read-only file system', 'Permission
    denied') is one line naming the folder; the same reason again only counts; another reason is told; the next
    save that works is one line with how many were not saved meanwhile (the summary gives the run's total). The
    daemon's recorder tells its own disk trouble the same way (pipeline.recorder.RecorderWorker._trouble)."""

    def __init__(self, folder: Path) -> None:
        from inspector.mounts import MountWatch

        self.folder = folder
        self.mount = MountWatch(folder)  # the file system the folder lies on at start (:meth:`check_mounted`)
        self.reason: str | None = None  # why saving fails now (None: it works)
        self.missed = {"event": 0, "payload": 0}  # not saved since saving stopped working (any reason)

    def failed(self, what: str, exc: OSError, kind: str = "event") -> str | None:
        """Saving ``what`` (an event or payload, in words) failed with ``exc``; the line to print, or None when
        this reason was told already. ``kind``: ``event`` or ``payload`` (what the line at the end counts)."""
        why = exc.strerror or str(exc)
        self.missed[kind] += 1
        if why == self.reason:
            return None
        self.reason = why
        return (f"warning: cannot save {what} to {self.folder}: {why}; nothing more is saved until this clears "
                f"(each event counted in the summary; told when saving works again)")

    def check_mounted(self) -> None:
        """OSError when the file system the folder lay on at start is no longer mounted (a USB disk pulled, a
        share dropped): each save made the folder again in the bare mount-point directory (save() makes a missing
        folder) and filled the system disk with events the next mount hid from every reader."""
        if self.mount.gone():  # listed: in /etc/fstab, not mounted yet since the start (inspector.mounts.MountWatch)
            how = "is not mounted (listed in /etc/fstab)" if self.mount.listed else "is no longer mounted"
            raise OSError(errno.ENOENT, f"{self.mount.point} {how} (nothing is saved in the folder beneath it)")

    def saved(self) -> str | None:
        """A save worked: the line telling that saving works again and what it cost (None: it never stopped)."""
        if self.reason is None:
            return None
        missed = " and ".join(f"{n} {kind}(s)" for kind, n in self.missed.items() if n)
        self.reason, self.missed = None, {"event": 0, "payload": 0}
        return f"saving to {self.folder} again; {missed} could not be saved meanwhile"


def _save_or_warn(event, trouble: SaveTrouble, saving=None) -> bool:
    """Save ``event`` (or call ``saving``); False when it could not be (a full disk must not stop the subscriber;
    the summary counts the events not saved), told through ``trouble``: once per reason, not per event."""
    try:
        trouble.check_mounted()
        saving() if saving is not None else save(event, trouble.folder)
    except OSError as exc:
        _tell([line] if (line := trouble.failed(f"{event.type} event seq {event.seq}", exc)) else [])
        return False
    _tell([line] if (line := trouble.saved()) else [])
    return True
