"""``inspector subscribe --save-dir``: an event's files appear whole or not at all, and never over a file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from file_faults import read_only_folder
from inspector.events import InspectionEvent, Payload

_SIZE_LIMITED = """
import json, resource, signal, sys
from pathlib import Path
from inspector.commands.subscribe import MqttSaver, save
from inspector.events import InspectionEvent, Payload
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like ENOSPC
folder = Path(sys.argv[1])
folder.mkdir()
resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
def event(seq, sizes):
    return InspectionEvent(type="defect", camera="c", seq=seq, frame_id=seq, event_id=f"r-c-{seq}", decision="NG",
                           score=1.0, threshold=0.5, capture={}, latency_ms={}, model={}, run_id="r",
                           payloads=[Payload(f"k{i}", "png", bytes([65 + i]) * n, [n]) for i, n in enumerate(sizes)])
errors = []
for seq, sizes in enumerate([(100, 9000), (100, 200)]):  # seq 0: its second payload is over the limit
    try:
        save(event(seq, sizes), folder)
    except OSError as exc:
        errors.append(exc.strerror)
saver = MqttSaver(folder)
saver.payload("b", "inspector/b/v1/defect/c/e1/big", b"x" * 9000)
saver.payload("b", "inspector/b/v1/defect/c/e2/small", b"y" * 10)
saver.finish()
print(json.dumps({"errors": errors, "unsaved_payloads": saver.unsaved_payloads}))
"""


def test_an_event_cut_short_by_a_full_disk_leaves_no_file(tmp_path):
    """A payload write that failed (a full disk; here a real EFBIG from a file size limit, in a child process)
    after the header was written left the header and a short payload under the event's names: evidence that
    looked whole. Now nothing of that event is left (no temporary either), the next event is saved whole, and
    the MQTT saver's payload cut short leaves no file while the next one is saved."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", _SIZE_LIMITED, str(tmp_path / "saved")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"errors": ["File too large"], "unsaved_payloads": 1}
    files = {p.name: p.read_bytes() for p in (tmp_path / "saved").iterdir()}
    assert sorted(files) == ["defect-c-r-0000001.json", "defect-c-r-0000001.k0.png", "defect-c-r-0000001.k1.png",
                             "payload-inspector-b-v1-defect-c-e2-small.bin"], sorted(files)
    assert files["defect-c-r-0000001.k1.png"] == b"B" * 200 and json.loads(files["defect-c-r-0000001.json"])["seq"] == 1


def _event(kinds: list[str]) -> InspectionEvent:
    return InspectionEvent(type="defect", camera="c", seq=0, frame_id=0, event_id="r-c-0", decision="NG",
                           score=1.0, threshold=0.5, capture={}, latency_ms={}, model={}, run_id="r",
                           payloads=[Payload(k, "png", k.encode(), [1]) for k in kinds])


def test_payload_kinds_that_differ_only_in_case_get_names_apart(tmp_path):
    """On a case-insensitive file system (macOS, SMB, FAT) 'Heat' and 'heat' are one file: the second payload's
    name was taken by the first, so the event could not be placed under any name. Kinds are told apart
    case-folded, and the saved names differ in more than case."""
    from inspector.commands.subscribe import save

    written = save(_event(["Heat", "heat"]), tmp_path)
    names = [p.name for p in written]
    assert len({n.casefold() for n in names}) == 3, names
    assert sorted(p.read_bytes() for p in written[1:]) == [b"Heat", b"heat"]


def test_an_mqtt_payload_name_taken_gets_the_next_free_one(tmp_path):
    """Two orphan payloads (no header came) whose topics sanitise alike ('e/1' and 'e-1' both give 'e-1'): the
    second one's exclusive create failed and it was counted unsaved, its bytes dropped."""
    from inspector.commands.subscribe import MqttSaver

    saver = MqttSaver(tmp_path)
    saver.payload("b", "inspector/b/v1/defect/c/e-1/k", b"first")
    saver.payload("b", "inspector/b/v1/defect/c/e/1-k", b"second")
    saver.finish()
    assert saver.unsaved_payloads == 0, saver.take()
    assert sorted(p.read_bytes() for p in tmp_path.iterdir()) == [b"first", b"second"]


def _tmpfs(path: Path, size: str) -> bool:
    """A tmpfs of ``size`` mounted at ``path`` (a real full disk); False where this user cannot mount."""
    path.mkdir()
    return os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                                capture_output=True).returncode == 0


def _big_event(seq: int) -> InspectionEvent:
    """A defect whose payload (100 kB of noise: tmpfs keeps it as is) fills a 1 MiB disk in ten events."""
    noise = np.random.default_rng(seq).integers(0, 256, 100_000, np.uint8).tobytes()
    return InspectionEvent(type="defect", camera="c", seq=seq, frame_id=seq, event_id=f"r-c-{seq}", decision="NG",
                           score=1.0, threshold=0.5, capture={}, latency_ms={}, model={}, run_id="r",
                           payloads=[Payload("thumbnail", "jpeg", noise, [len(noise)])])


def _heard(state: Path) -> int:
    """The next seq of the one stream a subscriber's state file holds (0: none yet)."""
    try:
        streams = json.loads(state.read_text())["tracker"]["streams"]
    except (OSError, ValueError, KeyError):
        return 0
    return streams[0][3] if streams else 0


def test_a_full_save_disk_is_told_once_and_saving_resumes_when_room_is_made(tmp_path, capsys):
    """``subscribe --save-dir`` on a real 1 MiB disk that fills up: it printed one warning per event for as long
    as the disk stayed full (a line per defect at the camera's rate). Now one line says saving fails and why,
    each event not saved is counted, and once an operator makes room the next event is saved and one line
    says how many could not be saved meanwhile (the summary's count)."""
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.publish import Publisher

    disk = tmp_path / "disk"
    if not _tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    saved, state = disk / "saved", tmp_path / "state"
    endpoint = f"ipc://{tmp_path}/ev.sock"
    pub = Publisher(PublishSection(endpoint=endpoint))

    def publish() -> None:
        assert pub.wait_for_subscription(10.0)
        time.sleep(0.2)
        for seq in range(20):
            pub.send(_big_event(seq))
        deadline = time.monotonic() + 20
        while _heard(state) < 20 and time.monotonic() < deadline:  # all 20 handled (saved or not)
            time.sleep(0.05)
        for path in saved.iterdir():  # an operator makes room
            path.unlink()
        for seq in range(20, 23):
            pub.send(_big_event(seq))

    try:
        code, names = _subscribe_while(publish, endpoint, 23, saved, state)
    finally:
        pub.close()
        subprocess.run(["umount", str(disk)], check=True)
    err = capsys.readouterr().err.splitlines()
    failing = [line for line in err if "cannot save" in line]
    back = [line for line in err if line.startswith(f"saving to {saved} again")]
    # events it could not save are a run that lost evidence: exit 1, said last (was 0)
    assert code == 1 and len(failing) == 1 and "No space left on device" in failing[0], err
    unsaved = int(re.search(r"(\d+) event\(s\) not saved", err[-2]).group(1))
    assert 5 <= unsaved < 20, err
    assert err[-1] == f"subscribe: {unsaved} event(s) or payload(s) not saved to {saved}; exit 1", err
    assert back == [f"saving to {saved} again; {unsaved} event(s) could not be saved meanwhile"], err
    assert names == [f"defect-c-r-{seq:07d}{suffix}" for seq in (20, 21, 22) for suffix in (".json", ".thumbnail.jpg")]


def test_mqtt_payloads_into_a_read_only_folder_are_told_once_and_the_end_of_it_too(tmp_path):
    """The MQTT saver printed a warning per payload it could not write (two per defect at the default payloads).
    A folder made read-only (for root: immutable) is told once with why; payloads are counted unsaved; once it
    is writable again the next payload is saved and one line says what it cost."""
    from inspector.commands.subscribe import MqttSaver

    folder = tmp_path / "saved"
    folder.mkdir()
    saver = MqttSaver(folder)
    undo = read_only_folder(folder)
    if undo is None:
        pytest.skip("cannot make a folder read-only here")
    try:
        for n in range(6):
            saver.payload("b", f"inspector/b/v1/defect/c/e{n}/k", b"x")
            saver._orphan(*saver.early.popitem())  # its header never comes: saved under its topic at once
    finally:
        undo()
    told = saver.take()
    saver.payload("b", "inspector/b/v1/defect/c/e9/k", b"y")
    saver._orphan(*saver.early.popitem())
    after = saver.take()
    assert saver.unsaved_payloads == 6
    assert len([line for line in told if "cannot save" in line]) == 1, told
    assert after[-1] == f"saving to {folder} again; 6 payload(s) could not be saved meanwhile", after
    assert [p.read_bytes() for p in folder.iterdir()] == [b"y"]


def test_saved_events_are_readable_as_the_umask_says_not_by_the_subscribers_user_alone(tmp_path):
    """Every file of ``subscribe --save-dir`` was mode 0600 (tempfile.mkstemp's): a reviewer, the plant's
    viewer or a log shipper under another account could not open the evidence. Now as any file the user makes
    (0666 less the umask; 0644 under the usual 022), as the daemon's recorder writes its recordings."""
    from inspector.commands.subscribe import MqttSaver, save

    old = os.umask(0o022)
    try:
        written = save(_event(["heat"]), tmp_path / "zmq")
        saver = MqttSaver(tmp_path / "mqtt")
        saver.payload("b", "inspector/b/v1/defect/c/e1/k", b"x")
        saver.finish()
    finally:
        os.umask(old)
    files = [*written, *(tmp_path / "mqtt").iterdir()]
    assert len(files) == 3 and {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}


def test_a_save_disk_unmounted_is_not_replaced_by_the_system_disk_and_saving_resumes_once_it_is_back(tmp_path,
                                                                                                      capsys):
    """``--save-dir`` on its own disk (a real tmpfs), unmounted while the subscriber runs (umount -l, as a pulled
    USB disk): save() made the folder again in the bare mount-point directory and saved onto the system disk in
    silence; the disk mounted again hid those events from every reader. Now nothing is written beneath the
    mount point, one line says why, each event is counted not saved, and saving resumes on the disk mounted
    again (one line with what it cost)."""
    from inspector.pipeline.config import PublishSection
    from inspector.pipeline.publish import Publisher

    disk = tmp_path / "disk"
    if not _tmpfs(disk, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    saved, state = disk / "saved", tmp_path / "state"
    endpoint = f"ipc://{tmp_path}/ev.sock"
    pub = Publisher(PublishSection(endpoint=endpoint))
    beneath: list[str] = []

    def send_and_wait(seqs: range) -> None:
        for seq in seqs:
            pub.send(_big_event(seq))
        deadline = time.monotonic() + 20
        while _heard(state) < seqs.stop and time.monotonic() < deadline:
            time.sleep(0.05)

    def publish() -> None:
        assert pub.wait_for_subscription(10.0)
        time.sleep(0.2)
        send_and_wait(range(0, 2))
        subprocess.run(["umount", "-l", str(disk)], check=True)
        send_and_wait(range(2, 5))
        beneath.extend(p.name for p in disk.rglob("*"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
        send_and_wait(range(5, 7))

    try:
        code, names = _subscribe_while(publish, endpoint, 7, saved, state)
    finally:
        pub.close()
        subprocess.run(["umount", str(disk)], capture_output=True)
    err = capsys.readouterr().err.splitlines()
    failing = [line for line in err if "cannot save" in line]
    assert code == 1 and beneath == [], (beneath, err)  # events it could not save: exit 1
    assert err[-1].startswith("subscribe: ") and err[-1].endswith(f"not saved to {saved}; exit 1"), err
    assert len(failing) == 1 and f"{disk} is no longer mounted" in failing[0], err
    assert f"saving to {saved} again; 3 event(s) could not be saved meanwhile" in err, err
    assert "3 event(s) not saved" in err[-2], err
    assert names == [f"defect-c-r-{seq:07d}{suffix}" for seq in (5, 6) for suffix in (".json", ".thumbnail.jpg")]


def _subscribe_while(publish, endpoint: str, count: int, saved: Path, state: Path) -> tuple[int, list[str]]:
    """``subscribe --save-dir saved`` for ``count`` defects while ``publish`` runs in a thread (joined on every
    path); its exit code and the names saved."""
    from inspector.cli import main

    sender = threading.Thread(target=publish)
    sender.start()
    try:
        code = main(["subscribe", endpoint, "--topic", "v1/defect", "--count", str(count), "--timeout", "20",
                     "--save-dir", str(saved), "--state", str(state)])
        return code, sorted(p.name for p in saved.iterdir())
    finally:
        sender.join()
