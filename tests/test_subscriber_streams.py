"""A subscriber of several streams: what it missed per stream, which stream each line is of, its summary at a stop.

Real ZeroMQ sockets (the daemon's Publisher, the Subscriber) and, for the signals, a real ``inspector subscribe``
process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inspector.client import Subscriber
from inspector.events import InspectionEvent, StatsEvent, StatusEvent, utc_iso
from inspector.pipeline.config import PublishSection
from inspector.pipeline.publish import Publisher

RUN = {"run_id": "r1", "run_started_utc": "2025-01-31T12:00:00.000Z"}
ROOT = Path(__file__).resolve().parents[1]


def _inspection(kind: str, seq: int, frame: int, camera: str = "c") -> InspectionEvent:
    return InspectionEvent(type=kind, camera=camera, seq=seq, frame_id=frame, event_id=f"{kind}-{camera}-{frame}",
                           decision="NG", score=1.0, threshold=0.5, capture={"utc": utc_iso()}, latency_ms={},
                           model={}, **RUN)


def _stats(seq: int, sequences: dict) -> StatsEvent:
    return StatsEvent(seq=seq, time_utc=utc_iso(), uptime_s=1, final=False, data={"sequences": sequences}, **RUN)


def test_a_late_joiner_counts_nothing_before_each_streams_first_event_as_a_gap(tmp_path):
    """`subscribe --topic v1/` joining a running daemon heard its re-sent status and a result first, then the
    stats: the defect stream's 69 earlier events were counted '69 in gaps' because the run's first event (of
    another stream) was taken as the join point of every stream. And the stats a daemon re-sends to a joiner is
    its last heartbeat, older than the join: defects published since (69, 70) counted as gaps too. A stream's
    join point is its own first event: nothing before it is a gap; after it, a missing seq is. What the stale
    stats and the first event tell of one stream is one line (it was two: 69, then 2 more)."""
    pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/ev.sock"))
    with Subscriber(pub.endpoint, ["v1/"]) as sub:
        assert pub.wait_for_subscription(5.0)
        time.sleep(0.05)
        pub.send(StatusEvent(camera="c", seq=0, state="online", previous=None, reason="", time_utc=utc_iso(), **RUN))
        pub.send(_inspection("result", 100, 100))
        pub.send(_stats(7, {"defect/c": 69, "result/c": 101, "status/c": 1}))  # re-sent: stale
        pub.send(_inspection("defect", 71, 101))
        pub.send(_inspection("result", 101, 101))
        pub.send(_stats(8, {"defect/c": 72, "result/c": 102, "status/c": 1, "defect/d": 2}))
        pub.send(_inspection("defect", 73, 103))  # 72 lost after the join: a gap
        got = [sub.recv(timeout=2) for _ in range(7)]
        notices = sub.notices()
    pub.close()
    assert [e.type for e in got] == ["status", "result", "stats", "defect", "result", "stats", "defect"]
    assert (sub.missed_at_start, sub.gaps) == (100 + 71 + 2, 1), notices
    assert [n for n in notices if n.startswith("missed") and "defect" in n] == [
        "missed 71 defect event(s) of camera 'c' published before this subscriber heard run r1 (first seq 71)"]
    assert "173 before joining a run, 1 in gaps" in sub.loss.summary()
    # camera 'd', told by the last stats only, none of it heard: said at the close
    assert sub.notices() == ["missed 2 defect event(s) of camera 'd' published before this subscriber heard run "
                             "r1 (stats: 2 published, none received)"]


def test_a_late_joiner_of_a_running_daemon_prints_one_missed_line_per_camera(tmp_path, capsys):
    """`inspector subscribe` started after the daemon had published: the daemon re-sends each camera's status and
    its last stats (a heartbeat older than the join), then the camera's next defect comes. It printed 'missed 1
    status event(s) of camera 'cam'' (the re-sent status is the current one: nothing of the state was missed),
    'missed 29 defect event(s) … (stats: 29 published, none received)' (stale) and 'missed 1 defect event(s) …
    (first seq 30)': three lines for one camera, two of them for its defects. Now one, with the count its first
    seq gives."""
    from subscribe_support import subscribe_session

    status = StatusEvent(camera="cam", seq=1, state="online", previous="connecting", reason="", time_utc=utc_iso(),
                         **RUN)
    stats = _stats(12, {"defect/cam": 29, "status/cam": 2, "defect/other": 4})
    code = subscribe_session(f"ipc://{tmp_path}/ev.sock", [status, stats, _inspection("defect", 30, 95, "cam"),
                                                           _inspection("defect", 4, 96, "other")],
                             topics=("v1/defect", "v1/status"), count=3)
    err = capsys.readouterr().err
    missed = [line for line in err.splitlines() if line.startswith("missed")]
    assert code == 0 and missed == [
        f"missed 30 defect event(s) of camera 'cam' published before this subscriber heard run r1 (first seq 30)",
        f"missed 4 defect event(s) of camera 'other' published before this subscriber heard run r1 (first seq 4)"], err
    assert "34 event(s) missed (34 before joining a run, 0 in gaps)" in err, err


def _session(tmp_path, topics: tuple, events: list, capsys) -> list[str]:
    from subscribe_support import subscribe_session

    assert subscribe_session(f"ipc://{tmp_path}/{len(topics)}.sock", events, topics=topics, count=len(events)) == 0
    return capsys.readouterr().out.splitlines()


def test_each_line_names_its_stream_when_two_streams_look_alike(tmp_path, capsys):
    """With `--topic v1/` each NG frame came twice (its defect and its result event, each with its own #seq) and
    nothing told the lines apart. With both streams subscribed each line names its stream; with one, the line
    is as before."""
    frame = [_inspection("defect", 3, 10), _inspection("result", 9, 10)]
    both = _session(tmp_path, ("v1/",), frame, capsys)
    assert [line.split()[2:4] for line in both] == [["defect", "#3"], ["result", "#9"]], both
    assert [line.split()[2:4] for line in _session(tmp_path, ("v1/defect", "v1/result/c"), frame, capsys)] == \
        [["defect", "#3"], ["result", "#9"]]
    one = _session(tmp_path, ("v1/defect",), frame[:1], capsys)
    assert one[0].split()[1:4] == ["c", "#3", "frame"], one


def _subscriber(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "inspector", "subscribe", f"ipc://{tmp_path}/sig.sock",
                             "--topic", "v1/defect", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _wait_for(stream, pattern: str, seen: list[str], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if pattern in line:
            return
    raise AssertionError(f"no {pattern!r} in {seen}")


def _publish(pub: Publisher, stop: threading.Event) -> None:
    seq = 0
    while not stop.is_set():
        pub.send(_inspection("defect", seq, seq))
        seq += 1
        time.sleep(0.002)


def _read_lines(stream, seen: list[str]) -> threading.Thread:
    reader = threading.Thread(target=lambda: seen.extend(iter(stream.readline, "")), daemon=True)
    reader.start()
    return reader


@pytest.mark.parametrize("moment", ["before any event", "mid-stream", "during saves"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_at_any_moment_prints_the_summary(tmp_path, moment, sig):
    """Ctrl-C once printed only 'interrupted': a stop that came before the handlers were installed (just after
    'subscribed to'), or while the subscriber closed (a second Ctrl-C, one landing as the wait ended) was a
    KeyboardInterrupt out of the command, and SIGTERM there killed it on the spot. The stops here come as a
    burst (one every 2 ms until the summary is printed), so some land while it connects, closes and saves its
    state."""
    pub = Publisher(PublishSection(endpoint=f"ipc://{tmp_path}/sig.sock"))
    stop = threading.Event()
    publisher = threading.Thread(target=_publish, args=(pub, stop))
    args = ("--save-dir", str(tmp_path / "saved")) if moment == "during saves" else ()
    proc = _subscriber(tmp_path, *args)
    seen: list[str] = []
    try:
        _wait_for(proc.stderr, "subscribed to", seen)
        reader = _read_lines(proc.stderr, seen)
        if moment != "before any event":
            assert pub.wait_for_subscription(10.0)
            publisher.start()
            for _ in range(20):
                proc.stdout.readline()  # events printed (and saved): the stops land mid-stream
        _read_lines(proc.stdout, [])  # drained: a full pipe must not hold up the subscriber
        for _ in range(1000):  # until the summary: a stop after it is no longer the command's
            if proc.poll() is not None or any(line.startswith("received ") for line in seen):
                break
            proc.send_signal(sig)
            time.sleep(0.002)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        stop.set()
        if publisher.is_alive():
            publisher.join()
        if proc.poll() is None:
            proc.kill()
        pub.close()
    err = "".join(seen)
    assert "interrupted" not in err and "Traceback" not in err, err
    assert err.rstrip().splitlines()[-1].startswith("received "), err
    # a stop of the burst after the summary (main returning, the interpreter's teardown) keeps the status: it
    # killed the process (-sig) before cli.main held the signals to its end (interrupts.CommandStops)
    assert proc.returncode == (0 if sig == signal.SIGINT else 128 + signal.SIGTERM), err
    assert not list((tmp_path / "saved").glob(".subscribe-*.part"))



def test_subscribe_without_timeout_tells_what_it_finds_while_no_event_comes(tmp_path):
    """`inspector subscribe` without --timeout printed the Subscriber's notices only after an event came: an
    ipc path that turned into a regular file once it waited (or a failed handshake) was found and never told,
    since no event could come. The line comes while it waits; Ctrl-C then ends it with 0 and the summary."""
    proc = _subscriber(tmp_path)
    seen: list[str] = []
    try:
        _wait_for(proc.stderr, "subscribed to", seen)
        (tmp_path / "sig.sock").write_text("not a socket\n")  # after the start: told by the waiting loop
        reader = _read_lines(proc.stderr, seen)
        end = time.monotonic() + 30
        while not any("regular file" in line for line in seen) and time.monotonic() < end and reader.is_alive():
            time.sleep(0.05)
        told = [line for line in seen if "regular file" in line]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(seen)
    assert len(told) == 1 and "not the socket of a running daemon" in told[0], err
    assert proc.returncode == 0 and "received 0 event(s)" in err and "Traceback" not in err, err


_SIGNALLED_AT = """
import atexit, os, signal, sys
from inspector import cli
from inspector.commands import subscribe
sig, where = getattr(signal, sys.argv[1]), sys.argv[2]
def kill():
    os.kill(os.getpid(), sig)
if where == "start-up":  # before the command takes the signals: while its parser is built
    real_build = cli.build_parser
    def build_parser(*args, **kwargs):
        kill()
        return real_build(*args, **kwargs)
    cli.build_parser = build_parser
elif where == "after the loop":  # its handlers put back: the summary printed, main not yet returned
    real_exit = subscribe.StopSignals.__exit__
    def __exit__(self, *exc):
        real_exit(self, *exc)
        kill()
    subscribe.StopSignals.__exit__ = __exit__
else:  # interpreter teardown, after main returned
    atexit.register(kill)
sys.argv[1:] = sys.argv[3:]
sys.exit(cli.main())
"""


@pytest.mark.parametrize("where", ["start-up", "after the loop", "teardown"])
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stop_outside_the_commands_own_handling_keeps_its_exit_status(tmp_path, where, sig):
    """subscribe exits 0 after Ctrl-C and 143 after SIGTERM. A stop that came after its handlers were put back
    (summary printed) made a Ctrl-C 130 and 'interrupted', or in the interpreter's teardown a KeyboardInterrupt
    traceback; a SIGTERM there, or while starting, killed the process without a word. Now a stop while starting
    is 'interrupted' (130, or 143), one after the loop keeps the command's status (0 after Ctrl-C, 143 after
    SIGTERM), and one in the teardown is ignored: exited, not killed. Real signals, sent by the process to itself
    at each moment."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _SIGNALLED_AT, sig, where, "subscribe",
                           f"ipc://{tmp_path}/none.sock", "--timeout", "0.2"],
                          capture_output=True, text=True, env=env, timeout=60)
    last = proc.stderr.rstrip().splitlines()[-1]
    assert "Traceback" not in proc.stderr, proc.stderr
    if where == "start-up":
        assert (proc.returncode, last) == (130 if sig == "SIGINT" else 143, "interrupted"), proc.stderr
    else:  # in the teardown (main returned: the status decided) a stop is ignored
        status = 0 if sig == "SIGINT" or where == "teardown" else 143
        assert proc.returncode == status and last.startswith("received "), proc.stderr
        assert "interrupted" not in proc.stderr, proc.stderr


_SIGNALLED_WHILE_IMPORTING = """
import builtins, os, runpy, signal, sys
sig = getattr(signal, sys.argv[1])
real_import = builtins.__import__
def importing(name, *args, **kwargs):
    if name == "inspector.commands.argtypes":  # one of inspector.cli's first imports: the CLI half loaded
        builtins.__import__ = real_import
        os.kill(os.getpid(), sig)
    return real_import(name, *args, **kwargs)
builtins.__import__ = importing
sys.argv[1:] = sys.argv[2:]
runpy.run_module("inspector", run_name="__main__", alter_sys=True)  # python -m inspector
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stop_while_the_cli_is_imported_is_one_line_and_130_or_143(tmp_path, sig):
    """``python -m inspector`` (and the console script) imported inspector.cli before any handler was in place:
    a Ctrl-C in those tens of milliseconds was a KeyboardInterrupt traceback out of an import, and a SIGTERM
    killed the process without a word. Real signals, sent by the process to itself halfway through the import;
    a --state named is left untouched."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    state = tmp_path / "state"
    state.write_text("kept")
    proc = subprocess.run([sys.executable, "-c", _SIGNALLED_WHILE_IMPORTING, sig, "subscribe",
                           f"ipc://{tmp_path}/none.sock", "--timeout", "0.2", "--state", str(state)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert (proc.returncode, proc.stderr) == (128 + getattr(signal, sig), "interrupted\n"), proc.stderr
    assert state.read_text() == "kept"
