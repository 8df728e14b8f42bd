"""A folder camera read while a producer churns its folder: a bounded, seeded fuzz with real files.

A writer thread applies what real producers do (slow in-place writes, temporary names renamed into place, ``cp -p``,
hard and symbolic links, overwrites, truncate-and-rewrite, deletes, subfolders, upper-case extensions, zero-byte
files, a writer that died mid-file) while a real :class:`FolderSource` in a real capture thread reads. Every picture
has its own pixels, so a delivered frame tells which content it was (md5 of the decoded pixels).

Rules checked (one pass): each content that stands finished in the folder at the end is inspected exactly once;
nothing is inspected twice; ``corrupt`` counts exactly the files that never completed (zero bytes, a dead
writer), never one that was only in flight; the run ends by itself once the writer stops and the files settle.
Subfolders are not recursed (the folder camera reads the files directly inside its folder, as ``list_images``).
Looping: the camera folder swapped (``current -> releases/N``), deleted and recreated, replaced by a file: the
camera keeps going, reads each release, and costs no CPU while there is nothing to read.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.data.images import decode_image
from inspector.pipeline.capture import CaptureWorker, FrameHub
from inspector.pipeline.config import CameraSection, ReconnectSection
from inspector.pipeline.file_settle import SETTLE_S, STALLED_S
from inspector.pipeline.sources import make_source
from inspector.pipeline.telemetry import Counters

from pipeline_support import base_config, by_type, run_to_end

PAUSE_S = 0.25  # the longest pause of a writer that is still writing: well under SETTLE_S


def _digest(image: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(image).tobytes()).hexdigest()


class Producer:
    """Pictures with pixels of their own, written into ``folder`` the ways producers write them.

    ``final``: name → digest of the finished content standing under that name (None: a file that will never
    decode); ``made``: every finished digest ever written into the folder (some overwritten or deleted before
    they could be read); ``dead``: names of the files that will never complete."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder, self.rng, self.n = folder, random.Random(seed), 0
        self.side = folder.parent / f"side-{seed}"
        self.side.mkdir(exist_ok=True)
        self.final: dict[str, str | None] = {}
        self.made: set[str] = set()

    def picture(self, ext: str = ".png") -> tuple[bytes, str]:
        """Encoded bytes of a new 24×32 picture and the md5 of its pixels as the camera decodes them."""
        self.n += 1
        pixels = np.random.default_rng(self.n * 7919 + self.rng.randrange(1 << 30)).integers(
            0, 256, (24, 32, 3), dtype=np.uint8)
        ok, buf = cv2.imencode(ext.lower(), pixels)
        assert ok
        data = buf.tobytes()
        digest = _digest(decode_image(data, "x", order="BGR"))
        self.made.add(digest)
        return data, digest

    def name(self, ext: str = ".png") -> str:
        self.names = getattr(self, "names", 0) + 1
        return f"{self.names:03d}_{self.rng.randrange(1000):03d}{ext}"

    def _slowly(self, path: Path, data: bytes, mode: str = "wb") -> None:
        parts = self.rng.randint(2, 4)
        with open(path, mode) as fh:
            if mode != "wb":
                fh.truncate(0)
            for part in np.array_split(np.frombuffer(data, np.uint8), parts):
                fh.write(part.tobytes())
                fh.flush()
                time.sleep(self.rng.uniform(0.02, PAUSE_S))

    # -- the operations --------------------------------------------------------------------------------------
    def in_place(self) -> None:
        ext = self.rng.choice([".png", ".jpg", ".PNG", ".JPG", ".bmp"])
        data, digest = self.picture(ext)
        name = self.name(ext)
        self._slowly(self.folder / name, data)
        self.final[name] = digest

    def renamed_into_place(self) -> None:
        data, digest = self.picture()
        name = self.name()
        tmp = self.folder / self.rng.choice([f"{name[:-4]}.tmp", f".{name}", f"{name}.part"])
        self._slowly(tmp, data)
        os.replace(tmp, self.folder / name)
        self.final[name] = digest

    def cp_p(self) -> None:
        data, digest = self.picture()
        name = self.name()
        source = self.side / name
        source.write_bytes(data)
        os.utime(source, (time.time() - 3600, time.time() - 3600))
        subprocess.run(["cp", "-p", str(source), str(self.folder / name)], check=True)
        self.final[name] = digest

    def link(self) -> None:
        """A hard link or a symbolic link to a finished picture, in the folder or beside it."""
        done = [n for n, d in self.final.items() if d is not None]
        if not done or self.rng.random() < 0.3:
            data, digest = self.picture()
            target = self.side / self.name()
            target.write_bytes(data)
            os.utime(target, (time.time() - 60, time.time() - 60))
        else:
            target = self.folder / self.rng.choice(done)
            digest = self.final[target.name]
        name = f"link{self.n:03d}_{self.rng.randrange(1000)}.png"
        (os.link if self.rng.random() < 0.5 else os.symlink)(target, self.folder / name)
        self.final[name] = digest

    def overwrite(self) -> None:
        """New content under a name already there: by rename over it, or rewritten in place (truncated first)."""
        names = [n for n, d in self.final.items() if d is not None and not n.startswith("link")]
        if not names:
            return self.in_place()
        name = self.rng.choice(names)
        data, digest = self.picture(Path(name).suffix)
        if self.rng.random() < 0.5:
            tmp = self.folder / f".{name}.new"
            tmp.write_bytes(data)
            os.replace(tmp, self.folder / name)
        else:
            self._slowly(self.folder / name, data, mode="r+b")
        for other, d in list(self.final.items()):  # a hard link shares bytes rewritten in place; a symlink follows
            if d is not None and os.path.samefile(self.folder / other, self.folder / name):
                self.final[other] = digest

    def keep_writing(self, until: threading.Event) -> None:
        """A copy that trickles in (a byte every 0.2 s) for as long as the writer works, then completes."""
        data, digest = self.picture()
        name = "000_trickle.png"
        with open(self.folder / name, "wb") as fh:
            fh.write(data[:100])
            fh.flush()
            at = 100
            while not until.wait(0.2):
                fh.write(data[at:at + 1])
                fh.flush()
                at += 1
            fh.write(data[at:])
        self.final[name] = digest

    def delete_soon(self) -> None:
        data, _ = self.picture()
        path = self.folder / self.name()
        path.write_bytes(data)
        time.sleep(self.rng.uniform(0, 0.05))
        path.unlink()

    def subfolder(self) -> None:
        sub = self.folder / f"sub{self.n:03d}"
        sub.mkdir()
        data, _ = self.picture()
        (sub / "inner.png").write_bytes(data)  # not recursed: never inspected

    def zero_bytes(self) -> None:
        name = self.name()
        (self.folder / name).touch()
        self.final[name] = None

    def dies(self) -> None:
        data, _ = self.picture()
        name = self.name()
        (self.folder / name).write_bytes(data[:len(data) // 2])
        ago = time.time() - STALLED_S - 1  # it died that long ago: a file cut short is waited for STALLED_S
        os.utime(self.folder / name, (ago, ago))
        self.final[name] = None

    def run(self, ops: int) -> None:
        choices = [self.in_place, self.renamed_into_place, self.cp_p, self.link, self.overwrite,
                   self.delete_soon, self.subfolder, self.zero_bytes, self.dies]
        weights = [4, 4, 2, 2, 2, 1, 1, 1, 1]
        for _ in range(ops):
            self.rng.choices(choices, weights)[0]()
            time.sleep(self.rng.uniform(0, 0.05))


def _drain(hub: FrameHub, seen: list[tuple[str, str]]) -> None:
    """The frames waiting now (up to 0.05 s for the first): one take, as a looping camera never runs dry."""
    # a file given up as corrupt goes on decided 'error' with no pixels (told as not inspected): no picture read
    seen += [(f.meta["file"], _digest(f.image)) for f in hub.take(100_000, 0.05) if f.decision != "error"]


def _thread_cpu_s(thread: threading.Thread) -> float:
    """CPU seconds (user + system) of one running thread, from /proc (proc(5): fields 14 and 15 in ticks)."""
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker(cam: CameraSection, counters: Counters, states: list) -> tuple[CaptureWorker, FrameHub]:
    hub = FrameHub(Counters())
    worker = CaptureWorker(cam, make_source(cam), hub, threading.Event(), counters,
                           lambda c, s, p, r, d: states.append((s, r)), capacity=100_000)
    return worker, hub


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_one_pass_folder_under_churn_inspects_each_finished_picture_once(tmp_path, seed):
    folder = tmp_path / "cam"
    folder.mkdir()
    producer = Producer(folder, seed)
    done = threading.Event()  # a copy trickling in while the writer works: the one pass waits for it
    keeper = threading.Thread(target=producer.keep_writing, args=(done,))
    keeper.start()
    while not (folder / "000_trickle.png").exists():  # an empty one-pass folder at open fails the camera
        time.sleep(0.01)
    counters, states, seen = Counters(), [], []
    worker, hub = _worker(CameraSection(name="c", source=str(folder)), counters, states)
    worker.start()
    writer = threading.Thread(target=lambda: (producer.run(25), done.set()))
    writer.start()
    while writer.is_alive() or keeper.is_alive():
        _drain(hub, seen)
        if not worker.is_alive():
            break
    ended_at = time.monotonic()
    while worker.is_alive() and time.monotonic() - ended_at < SETTLE_S + 8:
        _drain(hub, seen)
    alive = worker.is_alive()
    worker.stop_event.set()
    worker.join(5)
    writer.join(10)
    _drain(hub, seen)
    _drain(hub, seen)
    assert not alive, "a one-pass run did not end by itself once its writer stopped"
    digests = [d for _, d in seen]
    twice = {d for d in digests if digests.count(d) > 1}
    assert not twice, f"inspected more than once: {[s for s in seen if s[1] in twice]}"
    assert not set(digests) - producer.made, "a frame that is no picture the producer finished (read in flight)"
    finished = {n: d for n, d in producer.final.items() if d is not None}
    missed = {n for n, d in finished.items() if d not in digests}
    assert not missed, f"finished pictures never inspected: {sorted(missed)} ({states[-1]})"
    dead = [n for n, d in producer.final.items() if d is None]
    assert counters.get("c.corrupt") == len(dead), (dead, counters.snapshot())
    assert not any(n.startswith("sub") for n, _ in seen)  # subfolders are not recursed


# -- the faults the fuzz found, each on its own --------------------------------------------------------------
def _read_all(src, limit_s: float = 5.0) -> list:
    """Everything a one-pass source gives until it ends (or ``limit_s`` passes: a run that would never end)."""
    out, deadline = [], time.monotonic() + limit_s
    while time.monotonic() < deadline:
        grabbed = src.read()
        if grabbed is None:
            return out
        out.append(grabbed)
    raise AssertionError(f"a one-pass folder did not end: {len(out)} reads, e.g. {[g.reason for g in out[-3:]]}")


def test_a_broken_link_in_a_one_pass_folder_is_missing_once_and_the_run_ends(tmp_path):
    """A symbolic link whose target is gone (a producer's ``latest.png`` left dangling): it was listed again at
    every pass, so the one-pass run never ended, read it without a pause (a CPU core) and counted ``missing``
    thousands of times. It is missing once; a target that appears later is read."""
    folder = tmp_path / "cam"
    folder.mkdir()
    Producer(folder, 0).cp_p()
    os.symlink(tmp_path / "gone.png", folder / "latest.png")
    src = make_source(CameraSection(name="c", source=str(folder)))
    src.open()
    grabbed = _read_all(src)
    reasons = [g.reason if g.image is None else "ok" for g in grabbed]
    assert sorted(reasons) == ["missing", "ok"], reasons
    (told,) = [g.error for g in grabbed if g.image is None]  # not "deleted before it was read": nothing was
    assert told == f"latest.png: a broken symbolic link (its target {tmp_path / 'gone.png'} does not exist)", told
    data, _ = Producer(tmp_path, 9).picture()
    (tmp_path / "gone.png").write_bytes(data)  # the link's target arrives: another file stands there
    assert [g.image is not None for g in _read_all(src)] == [True]


@pytest.mark.parametrize("link", [os.link, os.symlink])
def test_another_name_of_a_file_already_read_is_inspected_once(tmp_path, link):
    """A hard link or a symbolic link beside a picture (``latest.png``, a release tree of links): one pass read
    the picture under each name, so one part gave two results. The second name is ``same_file``, counted and
    said in the camera's 'ended' line; a copy (another file) is still read."""
    folder = tmp_path / "cam"
    folder.mkdir()
    producer = Producer(folder, 0)
    producer.cp_p()
    first = next(iter(producer.final))
    link(folder / first, folder / "zz_link.png")
    shutil.copy(folder / first, folder / "zz_copy.png")
    counters, states = Counters(), []
    worker, hub = _worker(CameraSection(name="c", source=str(folder)), counters, states)
    worker.start()
    worker.join(10)
    seen: list = []
    _drain(hub, seen)
    assert [name for name, _ in seen] == [first, "zz_copy.png"], seen
    assert counters.get("c.same_file") == 1 and counters.get("c.captured") == 2
    assert states[-1] == ("ended", "2 frames; 1 same_file skipped"), states


def test_a_picture_finished_while_it_is_read_is_inspected_once(tmp_path, monkeypatch):
    """The copy's last bytes land between the camera's look at the file and its read: the read got the whole
    picture, but the file was recorded by what it was before (a part of its size), so the next pass took the
    same picture for another version and inspected it a second time. What is recorded is what was read."""
    folder = tmp_path / "cam"
    folder.mkdir()
    data, _ = Producer(tmp_path, 0).picture()
    path = folder / "0000.png"
    path.write_bytes(data[:len(data) // 2])
    real_fromfile = np.fromfile

    def fromfile(fh, *args, **kwargs):  # the writer finishes just as the camera starts reading
        if os.fstat(fh.fileno()).st_ino == path.stat().st_ino and path.stat().st_size < len(data):
            with open(path, "ab") as out:
                out.write(data[len(data) // 2:])
        return real_fromfile(fh, *args, **kwargs)

    monkeypatch.setattr(np, "fromfile", fromfile)
    src = make_source(CameraSection(name="c", source=str(folder)))
    src.open()
    assert [g.image is not None for g in _read_all(src)] == [True]


# -- looping: the camera folder itself swapped, deleted, replaced -------------------------------------------
def _release(root: Path, n: int, producer: Producer) -> tuple[Path, set[str]]:
    release = root / "releases" / str(n)
    release.mkdir(parents=True)
    digests = set()
    for i in range(2):
        data, digest = producer.picture()
        (release / f"{i:02d}.png").write_bytes(data)
        digests.add(digest)
    return release, digests


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _swap(link: Path, target: Path) -> None:
    """An atomic deploy: a new link beside the old one, renamed over it (``ln -sfn`` + ``mv -T``)."""
    _remove(link) if link.is_dir() and not link.is_symlink() else None  # a folder cannot be renamed over
    tmp = link.with_name(f".{link.name}.new")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def test_a_looping_folder_swapped_deleted_and_replaced_keeps_going_and_idles_cheaply(tmp_path):
    rng = random.Random(5)
    (tmp_path / "side").mkdir()
    producer = Producer(tmp_path / "side", 5)
    current = tmp_path / "current"
    release, wanted = _release(tmp_path, 0, producer)
    _swap(current, release)
    cam = CameraSection(name="c", source=str(current), loop=True, fps=50,
                        reconnect=ReconnectSection(initial_s=0.05, max_s=0.3))
    counters, states, seen = Counters(), [], []
    worker, hub = _worker(cam, counters, states)
    worker.start()
    for n in range(1, 7):
        step = rng.choice(["swap", "swap", "recreate", "file"])
        if step == "swap":
            release, digests = _release(tmp_path, n, producer)
            _swap(current, release)
        else:
            _remove(current)
            if step == "file":  # a file stands where the folder was: nothing to read, no CPU to spend
                current.write_bytes(b"not a folder")
            cpu0, t0 = _thread_cpu_s(worker), time.monotonic()
            time.sleep(1.0)
            idle = (_thread_cpu_s(worker) - cpu0) / (time.monotonic() - t0)
            assert idle < 0.1, f"{step}: the capture thread used {idle:.2f} core with nothing to read"
            _remove(current)
            release, digests = _release(tmp_path, n, producer)
            current.mkdir()
            for p in release.iterdir():
                shutil.copy2(p, current / p.name)
        wanted |= digests
        deadline = time.monotonic() + 8
        while not digests <= {d for _, d in seen} and time.monotonic() < deadline:
            _drain(hub, seen)
        assert worker.is_alive() and digests <= {d for _, d in seen}, (step, states[-3:])
    worker.stop_event.set()
    worker.join(5)
    assert {d for _, d in seen} <= wanted | producer.made
    assert counters.get("c.corrupt") == 0 and states[-1][0] != "failed", (counters.snapshot(), states[-3:])


# -- a real daemon on a churned one-pass folder -------------------------------------------------------------
def test_a_daemon_on_a_folder_filled_while_it_runs_inspects_each_picture_once(tiny_model, endpoint, tmp_path):
    folder = tmp_path / "cam"
    folder.mkdir()
    producer = Producer(folder, 11)
    done = threading.Event()
    keeper = threading.Thread(target=producer.keep_writing, args=(done,))
    keeper.start()
    while not (folder / "000_trickle.png").exists():
        time.sleep(0.01)

    def write() -> None:
        for op in (producer.renamed_into_place, producer.in_place, producer.cp_p, producer.link,
                   producer.renamed_into_place, producer.dies, producer.link):
            op()
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    cfg = base_config(tiny_model, endpoint, [{"name": "c", "source": str(folder)}])
    daemon, code, events = run_to_end(cfg, timeout=40)
    writer.join(10)
    keeper.join(10)
    results = by_type(events, "result")
    files = [e.source.get("file") if isinstance(e.source, dict) else None for e in results if e.decision != "error"]
    unread = [e.source.get("file") for e in results if e.decision == "error"]  # the copy that died: told
    assert unread == [n for n, d in producer.final.items() if d is None], (unread, producer.final)
    finished = {n for n, d in producer.final.items() if d is not None}
    digests = {}
    for name in finished:
        digests.setdefault(producer.final[name], []).append(name)
    assert code == 0 and len(files) == len(set(files)) == len(digests), (code, files, digests)
    links = sum(len(names) - 1 for names in digests.values())
    assert daemon.counters.get("c.corrupt") == 1 and daemon.counters.get("c.same_file") == links
