"""A subscriber stopped and started again tells what it missed meanwhile (real ZeroMQ sockets, real files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inspector.events import InspectionEvent, Payload, StatsEvent, utc_iso
from inspector.outputs import whole_temporary
from subscribe_support import subscribe_session


def _defect(run: str, seq: int) -> InspectionEvent:
    return InspectionEvent(type="defect", camera="c", seq=seq, frame_id=seq, event_id=f"{run}-c-{seq}",
                           decision="NG", score=1.0, threshold=0.5, capture={}, latency_ms={}, model={},
                           run_id=run, run_started_utc=f"{run}-start")


def _stats(run: str, seq: int, queue_full: int) -> StatsEvent:
    return StatsEvent(seq=seq, time_utc=utc_iso(), uptime_s=seq, final=False, run_id=run, run_started_utc=f"{run}-start",
                      data={"daemon_dropped": {"defect/c": {"queue_full": queue_full}}})


def test_a_restarted_subscriber_tells_what_it_missed_while_it_was_not_running(tmp_path, capsys):
    """A subscriber restarted with the same --save-dir knew only 'missed before joining' (seq 5 as its first
    event: 5 missed, though it had heard 0..2 itself), and a daemon restart while it was down looked like a
    late join. Its state (per stream the next seq) now survives it: the gap since is counted as missed while
    it was not running, and a new run id meanwhile is told as a restart."""
    endpoint, saved = f"ipc://{tmp_path}/ev.sock", tmp_path / "saved"
    assert subscribe_session(endpoint, [_defect("r1", s) for s in range(3)], "--save-dir", str(saved)) == 0
    capsys.readouterr()
    assert subscribe_session(endpoint, [_defect("r1", 5)], "--save-dir", str(saved)) == 0  # 3 and 4 published meanwhile
    err = capsys.readouterr().err
    assert "resumed the subscriber state" in err and "last heard run r1" in err, err
    assert "missed 2 defect event(s) of camera 'c' (seq 3..4) in run r1 while this subscriber was not running" in err
    assert "2 event(s) missed (0 before joining a run, 0 in gaps, 2 while this subscriber was not running)" in err
    assert subscribe_session(endpoint, [_defect("r2", 2)], "--save-dir", str(saved)) == 0  # the daemon restarted meanwhile
    err = capsys.readouterr().err
    assert "daemon restarted: new run r2 (started r2-start) after run r1, while this subscriber was not running" \
        in err and "1 restart(s)" in err and "missed 2 defect event(s) of camera 'c' published before" in err, err
    # the state is no event header: the folder's .json files are the events received, none overwritten
    assert len(list(saved.glob("*.json"))) == 5 and (saved / ".subscriber-state").is_file()


def test_a_restarted_subscriber_whose_run_ends_before_its_next_event_counts_the_rest_missed_while_down(tmp_path,
                                                                                                        capsys):
    """Restarted after 3 more defects were published, a subscriber heard nothing of the run but its final stats:
    those 3 were counted 'lost the last 3 defect event(s)', in gaps (a network loss to whoever reads it), while
    its next event would have told them missed while it was not running. Now the final stats tell them so."""
    from inspector.client import Subscriber
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.publish import Publisher

    endpoint, state = f"ipc://{tmp_path}/ev.sock", tmp_path / "state"
    assert subscribe_session(endpoint, [_defect("r1", s) for s in range(3)], "--state", str(state)) == 0
    final = StatsEvent(seq=1, time_utc=utc_iso(), uptime_s=9, final=True, run_id="r1", run_started_utc="r1-start",
                       data={"sequences": {"defect/c": 6}})
    pub = Publisher(PublishSection(endpoint=endpoint))
    try:
        with Subscriber(endpoint, ["v1/defect"], state=str(state)) as sub:
            assert pub.wait_for_subscription(10.0)
            time.sleep(0.2)
            pub.send(final)
            assert sub.recv(timeout=2.0) is None  # the stats are heard quietly
            notices = sub.notices()
    finally:
        pub.close()
    assert (sub.loss.missed_while_down, sub.gaps) == (3, 0), notices
    assert any("missed 3 defect event(s) of camera 'c' (seq 3..5) in run r1 while this subscriber was not running"
               in n for n in notices), notices


def test_a_rogue_events_long_names_do_not_make_the_next_start_drop_the_state(tmp_path, capsys):
    """A rogue publisher's event with a run id of 10,000 characters (and one with a camera as long) was kept in
    the state file, which the next start then refused whole as damaged: the accounting of the real run (here:
    seq 3 and 4 published while the subscriber was down) was lost. What the state cannot take back is left out
    of it; the rest resumes."""
    endpoint, saved = f"ipc://{tmp_path}/ev.sock", tmp_path / "saved"
    rogue = _defect("r" * 10_000, 0)
    long_camera = _in("c" * 300, _defect("r1", 9))
    events = [_defect("r1", 0), _defect("r1", 1), _defect("r1", 2), rogue, long_camera]
    assert subscribe_session(endpoint, events, "--save-dir", str(saved), count=5) == 0
    capsys.readouterr()
    assert subscribe_session(endpoint, [_defect("r1", 5)], "--save-dir", str(saved)) == 0
    err = capsys.readouterr().err
    assert "damaged" not in err and "resumed the subscriber state" in err, err
    assert "missed 2 defect event(s) of camera 'c' (seq 3..4) in run r1 while this subscriber was not running" in err


def test_a_damaged_or_unsaveable_state_is_one_line_and_the_subscriber_runs_on(tmp_path, capsys):
    endpoint, state = f"ipc://{tmp_path}/ev.sock", tmp_path / "state"
    # a state cut short, a bad tracker, bytes that are not UTF-8 in a state, and what a crash leaves on some file
    # systems (an empty or zero-filled file: states are not fsynced)
    for damage in (b"{not json", b'{"key": "%s", "tracker": {"version": 1, "runs": [["r1"]]}}'
                   % endpoint.encode(), b'{"key": "\xff\xfe', b"", b"\0" * 64):
        state.write_bytes(damage)
        assert subscribe_session(endpoint, [_defect("r1", 1)], "--state", str(state)) == 0
        err = capsys.readouterr().err
        assert "subscriber state" in err and "starting without it" in err and "Traceback" not in err, err
        assert "1 event(s) missed (1 before joining a run, 0 in gaps)" in err, err
    # saving fails mid-run (here: its temporary file's name taken by a folder): one warning, the summary says so
    whole_temporary(tmp_path / "s").mkdir()
    assert subscribe_session(endpoint, [_defect("r1", 0), _defect("r1", 1)], "--state", str(tmp_path / "s")) == 0
    err = capsys.readouterr().err
    assert err.count("cannot save the subscriber state") == 1 and "Traceback" not in err, err
    assert "subscriber state not saved to" in err.splitlines()[-1], err


def test_a_restarted_subscriber_does_not_tell_the_daemon_drops_it_told_before(tmp_path, capsys):
    """The stats' data.daemon_dropped are totals of the run so far: a subscriber restarted with its state told
    the old run's drops once more as new (the state did not keep which were told). It keeps them now: only
    the drops since are told, and counted."""
    endpoint, state = f"ipc://{tmp_path}/ev.sock", tmp_path / "state"
    assert subscribe_session(endpoint, [_stats("r1", 0, 2), _defect("r1", 0)], "--state", str(state)) == 0
    err = capsys.readouterr().err
    assert "the daemon itself dropped 2 defect event(s)" in err and "2 dropped by the daemon itself" in err, err
    assert subscribe_session(endpoint, [_stats("r1", 1, 2), _defect("r1", 1)], "--state", str(state)) == 0
    err = capsys.readouterr().err
    assert "the daemon itself dropped" not in err and "0 dropped by the daemon itself" in err, err
    assert subscribe_session(endpoint, [_stats("r1", 2, 5), _defect("r1", 2)], "--state", str(state)) == 0
    err = capsys.readouterr().err
    assert "the daemon itself dropped 3 defect event(s) of camera 'c' in run r1" in err, err
    assert "(5 in this run so far)" in err and "3 dropped by the daemon itself" in err, err


def _in(camera: str, event: InspectionEvent) -> InspectionEvent:
    event.camera, event.event_id = camera, f"{event.run_id}-{camera}-{event.seq}"
    return event


def _published(run: str, seq: int, sequences: dict, final: bool = False) -> StatsEvent:
    return StatsEvent(seq=seq, time_utc=utc_iso(), uptime_s=seq, final=final, run_id=run,
                      run_started_utc=f"{run}-start", data={"sequences": sequences})


def test_a_subscriber_resumed_with_other_topics_counts_their_streams_as_joined_now(tmp_path, capsys):
    """The state was of the endpoint alone, not of the topics: resumed with wider topics, a stream the earlier
    subscriber never asked for, first told of by stats, was counted lost 'in gaps' (events this subscriber
    could not have heard); resumed with narrower ones, a stream no longer asked for was counted lost at the
    run's end. The state keeps the topics that covered each run: the new stream is missed 'before joining',
    the stream left is not this subscriber's loss."""
    endpoint, state = f"ipc://{tmp_path}/ev.sock", tmp_path / "state"
    first = [_published("r1", 0, {"defect/c": 2, "defect/d": 3}), _defect("r1", 0), _defect("r1", 1)]
    assert subscribe_session(endpoint, first, "--state", str(state), topics=("v1/defect/c",)) == 0
    capsys.readouterr()
    wider = [_published("r1", 1, {"defect/c": 2, "defect/d": 4}), _defect("r1", 2), _in("d", _defect("r1", 4))]
    assert subscribe_session(endpoint, wider, "--state", str(state)) == 0
    err = capsys.readouterr().err
    assert "missed 4 defect event(s) of camera 'd' published in run r1 before this subscriber subscribed" in err, err
    assert "4 event(s) missed (4 before joining a run, 0 in gaps, 0 while this subscriber was not running)" in err
    narrower = [_defect("r1", 3), _published("r1", 2, {"defect/c": 4, "defect/d": 9}, final=True)]
    assert subscribe_session(endpoint, narrower, "--state", str(state), topics=("v1/defect/c", "v1/stats"),
                             count=2) == 0
    err = capsys.readouterr().err
    assert "0 event(s) missed (0 before joining a run, 0 in gaps" in err and "camera 'd'" not in err, err


def test_the_state_of_another_endpoint_or_a_newer_version_is_refused_and_kept(tmp_path, capsys):
    """A state file of another endpoint (two subscribers sharing a --save-dir, hence its default state file) or
    one a newer version wrote was told as 'starting without it' and then replaced at the first save: the
    subscriber it belonged to, restarted, no longer knew what it had missed. Now: one line, exit 2, the file
    as it was."""
    from inspector.cli import main

    endpoint, saved = f"ipc://{tmp_path}/ev.sock", tmp_path / "saved"
    assert subscribe_session(f"ipc://{tmp_path}/other.sock", [_defect("r1", 0)], "--save-dir", str(saved)) == 0
    state = saved / ".subscriber-state"
    theirs = state.read_bytes()
    capsys.readouterr()
    newer = tmp_path / "newer"
    newer.write_text('{"key": "%s", "saved_utc": "?", "tracker": {"version": 2, "runs": {}}}' % endpoint)
    for path, why in ((state, "other.sock"), (newer, "version 2, written by a newer inspector")):
        before = path.read_bytes()
        assert main(["subscribe", endpoint, "--state", str(path), "--timeout", "0.2"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and why in err and "--state" in err and "Traceback" not in err, err
        assert path.read_bytes() == before
    assert state.read_bytes() == theirs


@pytest.mark.parametrize("content", [
    b"model: {path: export/rs.onnx}\ncameras: []\n",  # a daemon config (--state daemon.yaml)
    b'{"schema_version": 1, "model": {"name": "rs"}}',  # a model card
    b"\x08\n\x12\x07pytorch\x1a\x052.1.0",  # an ONNX graph
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # an image
    b"[1, 2, 3]",  # JSON, but no state
], ids=["yaml-config", "model-card", "onnx", "png", "json-list"])
def test_a_file_of_another_kind_is_refused_not_replaced(tmp_path, capsys, content):
    """A --state naming another kind of file (a daemon config, a model card, a graph) was read as a damaged
    state, 'starting without it', and replaced at the first save: the user's file was gone. Now: one line,
    exit 2, the file as it was. (A damaged state of the subscriber's own is still replaced: above.)"""
    from inspector.cli import main

    path = tmp_path / "file"
    path.write_bytes(content)
    assert main(["subscribe", f"ipc://{tmp_path}/ev.sock", "--state", str(path), "--timeout", "0.2"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"{path}: not a subscriber state" in err and "Traceback" not in err, err
    assert path.read_bytes() == content


_SIGNALLED_MID_SAVE = """
import os, signal, sys
from inspector.commands import subscribe
real, calls = subscribe.write_temporary, []
def write_temporary(folder, data):  # the signal comes between the event's two files
    calls.append(data)
    if len(calls) == 2:
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    return real(folder, data)
subscribe.write_temporary = write_temporary
from inspector.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_a_subscriber_stopped_mid_save_leaves_the_event_whole_or_told_missed(tmp_path, sig):
    """SIGTERM (kill, systemd, docker stop) ended 'subscribe --save-dir' on the spot, in the middle of saving an
    event: no summary, its temporaries left, and the event, counted as heard in the state saved when it was
    received, was lost without a word. Now SIGTERM stops it after that event is saved whole (exit 143, the
    summary, the state counting it); and the state is saved only once an event is handled, so after a SIGKILL
    mid-save the next subscriber is told it missed the event."""
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.publish import Publisher

    endpoint, saved = f"ipc://{tmp_path}/ev.sock", tmp_path / "saved"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _SIGNALLED_MID_SAVE, sig, "subscribe", endpoint, "--topic",
                             "v1/defect", "--save-dir", str(saved), "--timeout", "20"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pub = Publisher(PublishSection(endpoint=endpoint))
    try:
        assert pub.wait_for_subscription(20.0)
        time.sleep(0.2)
        event = _defect("r1", 0)
        event.payloads = [Payload("thumbnail", "jpeg", b"jpeg bytes", [1, 1])]
        for one in (event, _defect("r1", 1)):
            pub.send(one)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
    names = sorted(p.name for p in saved.iterdir() if p.name != ".subscriber-state")
    state_file = saved / ".subscriber-state"
    state = json.loads(state_file.read_text())["tracker"] if state_file.exists() else {"streams": []}
    if sig == "SIGTERM":
        assert proc.returncode == 143 and "received 1 event(s)" in err, (proc.returncode, err)
        assert names == ["defect-c-r1-0000000.json", "defect-c-r1-0000000.thumbnail.jpg"], names
        assert [s[3] for s in state["streams"]] == [1], state
    else:
        assert proc.returncode == -signal.SIGKILL
        assert not [n for n in names if not n.startswith(".")], names  # hidden temporaries at most
        assert [s[3] for s in state["streams"] if s[3]] == [], state  # seq 0 is not counted as heard


def test_temporaries_of_a_save_cut_short_are_removed_at_the_next_start_and_only_those(tmp_path, capsys):
    """A subscriber killed mid-save (SIGKILL, a power cut) left its hidden temporaries in --save-dir (and the state
    file's, when killed while saving it) for good: nothing ever removed them. The next start removes those
    of its own naming whose writer is gone, says how many, and leaves every other file: a user's look-alike
    names, a link or folder under such a name, and the temporaries of a subscriber still saving there."""
    from inspector.cli import main

    endpoint, saved = f"ipc://{tmp_path}/ev.sock", tmp_path / "saved"
    test_a_subscriber_stopped_mid_save_leaves_the_event_whole_or_told_missed(tmp_path, "SIGKILL")
    leftovers = sorted(p.name for p in saved.glob(".subscribe-*.part"))
    assert len(leftovers) == 1, sorted(p.name for p in saved.iterdir())  # the real one: the header's temporary
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    # killed while saving the state: by this inspector (outputs.write_whole's name) and by an earlier one
    whole_temporary(saved / ".subscriber-state", int(gone.stdout)).write_text("{")
    (saved / f".subscriber-state.tmp-{gone.stdout.strip()}").write_text("{")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.1)
        kept = [f".subscribe-{live.pid}-abcdefgh.part", f".subscriber-state.tmp-{live.pid}",  # a live writer's
                whole_temporary(".subscriber-state", live.pid).name, "..subscriber-state.x.tmp",
                ".abcdefgh.part", "notes.part", ".subscribe-x-abcdefgh.part", f".subscribe-{gone.stdout.strip()}-abc.part",
                ".subscriber-state.tmp-notes", "report.tmp-1"]
        for name in kept:
            (saved / name).write_text("user data")
        (saved / f".subscribe-{gone.stdout.strip()}-folder00.part").mkdir()
        (saved / f".subscribe-{gone.stdout.strip()}-link0000.part").symlink_to(saved / "notes.part")
        assert main(["subscribe", endpoint, "--save-dir", str(saved), "--timeout", "0.2"]) == 0
        err = capsys.readouterr().err
        assert main(["subscribe", endpoint, "--save-dir", str(saved), "--timeout", "0.2"]) == 0
        assert "removed" not in capsys.readouterr().err  # nothing more of ours: said only when something was removed
    finally:
        live.kill()
        live.wait()
    assert f"removed 1 temporary file(s) left in {saved} by an interrupted save" in err, err
    assert f"removed 2 temporary file(s) of an interrupted save of {saved / '.subscriber-state'}" in err, err
    assert sorted(p.name for p in saved.iterdir()) == sorted(kept + [
        ".subscriber-state", f".subscribe-{gone.stdout.strip()}-folder00.part",
        f".subscribe-{gone.stdout.strip()}-link0000.part"])
    assert all((saved / name).read_text() == "user data" for name in kept)


_SIGNALLED_BEFORE_HANDLING = """
import os, signal, sys
from inspector.client import Subscriber
from inspector.loss import LossTracker
where = sys.argv[1]
owner, name = (LossTracker, "observe") if where == "inside-recv" else (Subscriber, "asked")
real = getattr(owner, name)
def hook(self, event):  # SIGTERM once defect seq 1 is off the socket, before the command prints or saves it
    got = real(self, event)
    if event.type == "defect" and event.seq == 1:
        os.kill(os.getpid(), signal.SIGTERM)
    return got
setattr(owner, name, hook)
from inspector.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("where", ["inside-recv", "before-handling"])
def test_a_signal_between_receiving_an_event_and_handling_it_leaves_it_counted_missed(tmp_path, where):
    """A SIGTERM that came inside ``recv`` after the message was read off the socket, or after ``recv`` returned
    but before the event was printed and saved, stopped the subscriber, and closing it saved the state with the
    event counted as heard: never printed nor saved, the restarted subscriber thought it had it. An event
    counts as heard only once handled now: the state keeps seq 1 as the next one, so it is told missed."""
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.publish import Publisher

    endpoint, saved = f"ipc://{tmp_path}/ev.sock", tmp_path / "saved"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _SIGNALLED_BEFORE_HANDLING, where, "subscribe", endpoint,
                             "--topic", "v1/defect", "--save-dir", str(saved), "--timeout", "20"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pub = Publisher(PublishSection(endpoint=endpoint))
    try:
        assert pub.wait_for_subscription(20.0)
        time.sleep(0.2)
        for seq in range(3):
            pub.send(_defect("r1", seq))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
    assert proc.returncode == 143 and "received 1 event(s)" in err and "Traceback" not in err, (proc.returncode, err)
    assert [line.split()[2] for line in out.splitlines()] == ["#0"], out
    assert sorted(p.name for p in saved.glob("*.json")) == ["defect-c-r1-0000000.json"]
    state = json.loads((saved / ".subscriber-state").read_text())["tracker"]
    assert [s[3] for s in state["streams"]] == [1], state  # seq 1 not heard: the next subscriber tells it missed


def test_a_state_file_that_is_no_regular_file_is_refused_or_skipped_never_read_nor_replaced(tmp_path):
    """``--state`` named a pipe: reading it back blocked the subscriber for good (a device: ``/dev/zero`` read
    until the kernel killed it for memory, ``/dev/null`` as root was renamed over and lost for the machine).
    Every file output is now a regular file or absent (one line, exit 2), and a default state file in
    ``--save-dir`` that is no regular file is one warning: the subscriber starts without it."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "inspector", "subscribe", f"ipc://{tmp_path}/none.sock", "--timeout", "0.2"]
    fifo = tmp_path / "state"
    os.mkfifo(fifo)
    res = subprocess.run(command + ["--state", str(fifo)], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"error: inspector subscribe: argument --state: {fifo} is not a regular file (a device, pipe or socket) "
        f"(see 'inspector subscribe --help')"]
    saved = tmp_path / "saved"
    saved.mkdir()
    os.mkfifo(saved / ".subscriber-state")
    res = subprocess.run(command + ["--save-dir", str(saved)], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert res.stderr.splitlines()[0] == (f"warning: {saved / '.subscriber-state'}: subscriber state is not a "
                                          f"regular file; starting without it")


def test_a_state_file_nested_too_deeply_is_one_line_and_the_subscriber_runs_on(tmp_path, capsys):
    """json.loads raises RecursionError (no ValueError) on deep nesting: a state file of 100 000 '[' ended
    ``subscribe --state`` with a traceback before it heard anything. (A file that begins with no '{' is no
    state at all: refused and kept, test_a_file_of_another_kind_is_refused_not_replaced.)"""
    endpoint, state = f"ipc://{tmp_path}/ev.sock", tmp_path / "state"
    for damage in ('{"runs": ' + "[" * 100_000, '{"key": "%s", "tracker": %s1%s}' % (endpoint, '{"a":' * 5000, "}" * 5000)):
        state.write_text(damage)
        assert subscribe_session(endpoint, [_defect("r1", 0)], "--state", str(state)) == 0
        err = capsys.readouterr().err
        assert "cannot read the subscriber state" in err and "Traceback" not in err, err[-2000:]


def test_a_second_subscriber_on_a_state_in_use_keeps_none_or_is_refused_and_the_first_keeps_its_own(tmp_path,
                                                                                                      capsys):
    """Two ``subscribe --save-dir`` of one daemon on one folder shared its default state file while both ran:
    each replaced the other's state after every event, and each one restarted resumed whatever the other wrote
    last (a status subscriber resumed a defect subscriber's streams, so that one restarted later counted as heard
    what only the other had heard, or as missed what it had saved). While the first runs, a second on the same
    --save-dir now runs without a state (one warning naming the holder; it still saves), and one naming that
    state with --state is refused (one line, exit 2); the state stays the first's. Once the first has ended,
    the state is free again."""
    from inspector.cli import main

    endpoint, saved = f"ipc://{tmp_path}/ev.sock", tmp_path / "saved"
    state = saved / ".subscriber-state"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    first = subprocess.Popen([sys.executable, "-m", "inspector", "subscribe", endpoint, "--save-dir", str(saved),
                              "--timeout", "30"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stderr.readline().startswith("subscribed to"), "the first subscriber did not start"
        before = state.read_bytes()
        assert main(["subscribe", endpoint, "--topic", "v1/status", "--save-dir", str(saved), "--timeout", "0.2"]) == 0
        err = capsys.readouterr().err.splitlines()
        warned = [line for line in err if "in use by another running subscriber" in line]
        assert len(warned) == 1 and f"pid {first.pid}" in warned[0] and "keeps no state" in warned[0], err
        assert not any("resumed" in line for line in err), err
        assert main(["subscribe", endpoint, "--state", str(state), "--timeout", "0.2"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and f"pid {first.pid}" in err and str(state) in err \
            and "--state" in err and "Traceback" not in err, err
        assert state.read_bytes() == before
    finally:
        first.send_signal(signal.SIGINT)
        _, first_err = first.communicate(timeout=30)
    assert first.returncode == 0, first_err
    assert main(["subscribe", endpoint, "--state", str(state), "--timeout", "0.2"]) == 0
    assert "resumed the subscriber state" in capsys.readouterr().err


@pytest.mark.parametrize("told_by", ["stats", "its first event"])
def test_a_camera_the_resumed_state_never_heard_counts_as_missed_while_down(tmp_path, capsys, told_by):
    """Camera 'd' of a run the earlier subscriber heard first published while that subscriber was not running.
    Told by the next stats, its events were counted lost 'in gaps' (a network loss while it listened); told by
    its first event, 'published before this subscriber heard run r1', which the earlier subscriber had heard.
    A state that knows no event of a stream, nor stats counting one, was saved before the stream published (or
    in the last seconds after the last stats it heard): missed while the subscriber was not running."""
    endpoint, state = f"ipc://{tmp_path}/ev.sock", tmp_path / "state"
    assert subscribe_session(endpoint, [_defect("r1", s) for s in range(3)], "--state", str(state)) == 0
    capsys.readouterr()
    later = [_in("d", _defect("r1", 4)), _defect("r1", 3)]
    if told_by == "stats":
        later.insert(0, _published("r1", 0, {"defect/c": 3, "defect/d": 4}))
    assert subscribe_session(endpoint, later, "--state", str(state)) == 0
    err = capsys.readouterr().err
    assert "missed 4 defect event(s) of camera 'd'" in err and "while this subscriber was not running" in err, err
    assert "4 event(s) missed (0 before joining a run, 0 in gaps, 4 while this subscriber was not running)" in err
    # stats first heard after the resume settle the run: a camera unheard since was lost while this one listened
    gap = [_published("r1", 1, {"defect/c": 4, "defect/d": 5}), _published("r1", 2, {"defect/c": 4, "defect/d": 5,
                                                                                    "defect/e": 2}),
           _defect("r1", 4)]
    assert subscribe_session(endpoint, gap, "--state", str(state)) == 0
    err = capsys.readouterr().err
    assert "missed 2 defect event(s) of camera 'e' in run r1 (stats: 2 published, none received)" in err, err
    assert "2 event(s) missed (0 before joining a run, 2 in gaps, 0 while this subscriber was not running)" in err
