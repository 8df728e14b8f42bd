"""Whether a file is still being written, on local and network file systems (pipeline/file_settle.py)."""

from __future__ import annotations

import io
import os
import time

import cv2
import numpy as np
import pytest

from inspector.data.images import ends_cut_short

from inspector.pipeline import file_settle
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import make_source

from pipeline_support import defect_pattern, write_folder, write_video


def test_the_file_system_of_a_file_comes_from_mountinfo():
    """Real mounts: /proc is procfs; a test's tmp folder is not a network file system."""
    assert file_settle.fs_type(os.stat("/proc").st_dev) == "proc"
    assert not file_settle.is_remote(os.stat("/proc").st_dev)


def _behind(path, seconds=60.0):
    """Stamp ``path`` as a NAS whose clock runs ``seconds`` behind ours does."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def _on_a_share(monkeypatch):
    # No NFS/SMB server can be mounted here: the device's file system type is what is injected, as
    # /proc/self/mountinfo would give it for a share ("nfs4")
    monkeypatch.setattr(file_settle, "fs_type", lambda dev: "nfs4")


def test_a_recording_copied_onto_a_share_with_a_slow_clock_is_read_to_its_real_end(tmp_path, monkeypatch):
    """The share stamps the file a minute back: by its time it looked finished, and a one-pass run ended at the
    end of what was there (exit 0, the rest never inspected). It is read on until seen unchanged for SETTLE_S."""
    _on_a_share(monkeypatch)
    data = write_video(tmp_path / "full.avi", defect_pattern(40)).read_bytes()
    video = tmp_path / "copying.avi"
    video.write_bytes(data[:len(data) // 2])
    _behind(video)
    source = make_source(CameraSection(name="nas", source=str(video)))
    source.open()
    frames, waits = 0, 0
    for _ in range(500):
        grabbed = source.read()
        if grabbed is None:
            break
        frames += grabbed.image is not None
        if grabbed.reason == "growing":
            waits += 1
            if waits == 2:
                with open(video, "ab") as fh:
                    fh.write(data[len(data) // 2:])
                _behind(video)
    assert frames == 40 and waits >= 2, (frames, waits)


def test_a_finished_recording_on_a_share_ends_once_seen_settled(tmp_path, monkeypatch):
    """The price of the rule: a finished file on a share ends SETTLE_S after its end is reached, not never."""
    _on_a_share(monkeypatch)
    video = write_video(tmp_path / "done.avi", defect_pattern(5))
    _behind(video)
    source = make_source(CameraSection(name="nas", source=str(video)))
    source.open()
    started, frames = time.monotonic(), 0
    while (grabbed := source.read()) is not None:
        frames += grabbed.image is not None
        assert time.monotonic() - started < 3 * file_settle.SETTLE_S
    assert frames == 5


def test_a_picture_half_copied_onto_a_share_is_waited_for_not_corrupt(tmp_path, monkeypatch):
    """A folder camera on a share: a picture half there, stamped a minute back, is still being written."""
    _on_a_share(monkeypatch)
    folder = write_folder(tmp_path / "f", [False, False])
    whole = (folder / "0001.png").read_bytes()
    (folder / "0001.png").write_bytes(whole[:len(whole) // 2])
    _behind(folder / "0001.png")
    source = make_source(CameraSection(name="nas", source=str(folder)))
    source.open()
    reasons, images = [], []
    for _ in range(50):
        grabbed = source.read()
        if grabbed is None:
            break
        if grabbed.image is not None:
            images.append(grabbed.image)
        else:
            reasons.append(grabbed.reason)
            if len(reasons) == 2:
                (folder / "0001.png").write_bytes(whole)
                _behind(folder / "0001.png")
    assert "corrupt" not in reasons and len(images) == 2 and isinstance(images[1], np.ndarray), reasons


def _picture(ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _pillow_tiff(**options) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(out, "TIFF",
                                                                                              **options)
    return out.getvalue()


def _grey16(ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, np.random.default_rng(5).integers(0, 4096, (24, 32), dtype=np.uint16))
    assert ok
    return buf.tobytes()


def _bigtiff(**options) -> bytes:
    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(out, np.random.default_rng(5).integers(0, 4096, (24, 32), dtype=np.uint16), bigtiff=True,
                     **options)
    return out.getvalue()


def _pbm() -> bytes:
    """A binary PBM (P4: 8 pixels a byte, no maxval), as Pillow writes a 1-bit picture."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 2, (24, 37), dtype=np.uint8) > 0).save(out, "PPM")
    assert out.getvalue()[:2] == b"P4"
    return out.getvalue()


def _pam(maxval: int) -> bytes:
    samples = np.random.default_rng(5).integers(0, maxval + 1, (24, 32, 3))
    head = f"P7\nWIDTH 32\nHEIGHT 24\nDEPTH 3\nMAXVAL {maxval}\nTUPLTYPE RGB\nENDHDR\n".encode()
    return head + samples.astype(">u2" if maxval > 255 else np.uint8).tobytes()


CUT_SHORT_TOLD = {ext: (lambda ext=ext: _picture(ext)) for ext in (".png", ".jpg", ".bmp", ".webp", ".tif", ".ppm")}
CUT_SHORT_TOLD.update({"16-bit .tif": lambda: _grey16(".tif"), "16-bit .pgm": lambda: _grey16(".pgm"),
                       "Pillow .tif (IFD first)": _pillow_tiff,
                       "Pillow LZW .tif": lambda: _pillow_tiff(compression="tiff_lzw"),
                       "BigTIFF": _bigtiff, "big-endian tiled BigTIFF": lambda: _bigtiff(byteorder=">", tile=(16, 16)),
                       "binary .pbm": _pbm, ".pam": lambda: _pam(255), "12-bit .pam": lambda: _pam(4095)})


@pytest.mark.parametrize("kind", list(CUT_SHORT_TOLD))
def test_what_ends_cut_short_is_told_by_its_format(kind):
    """JPEG and PNG by their end marks; BMP, WebP, binary PNM and PAM by the size their header declares; a TIFF
    or BigTIFF by its IFD and the strips it names, wherever its writer put them (libtiff: IFD last; Pillow:
    first). TIFF and PNM were 'cannot tell', and then BigTIFF, PBM (P4) and PAM still were, so one copied in by a
    writer that paused past SETTLE_S was counted corrupt."""
    whole = CUT_SHORT_TOLD[kind]()
    assert not ends_cut_short(whole)
    for cut in (16, len(whole) // 3, len(whole) * 2 // 3, len(whole) - 1):
        assert ends_cut_short(whole[:cut]), cut


def test_an_empty_or_unknown_file_is_never_told_cut_short():
    assert not ends_cut_short(b"") and not ends_cut_short(b"some text, no picture")


def _dated(path, seconds_ago: float) -> None:
    os.utime(path, (time.time() - seconds_ago, time.time() - seconds_ago))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".pgm", ".pbm", ".pam", "big.tif"])
def test_a_picture_whose_writer_paused_past_settle_s_is_waited_for_not_corrupt(tmp_path, ext):
    """A slow copy or a camera SDK writing in bursts paused 10 s mid-file: the 2-s rule judged the half file
    finished and counted it corrupt, its picture never inspected. Data cut short (no JPEG EOI, no PNG IEND) is
    waited for STALLED_S since its last change; then it is corrupt."""
    folder = tmp_path / "f"
    folder.mkdir()
    made = {".pgm": lambda: _grey16(ext), ".pbm": _pbm, ".pam": lambda: _pam(4095), "big.tif": _bigtiff}
    whole, path = made.get(ext, lambda: _picture(ext))(), folder / f"a{ext}"
    path.write_bytes(whole[:len(whole) // 2])
    _dated(path, 10 * file_settle.SETTLE_S)  # the writer paused 20 s ago: < STALLED_S
    source = make_source(CameraSection(name="sdk", source=str(folder)))
    source.open()
    assert source.read().reason == "incomplete"
    assert source.read().reason == "waiting"
    path.write_bytes(whole)  # the writer goes on and finishes
    assert source.read().image is not None


def test_a_picture_cut_short_long_ago_is_corrupt_and_a_complete_bad_one_at_once(tmp_path):
    folder = write_folder(tmp_path / "f", [False], corrupt=(0,))
    whole = _picture(".png")
    garbled = whole[:20] + bytes(len(whole) - 20 - 12) + whole[-12:]  # complete (ends in IEND), but garbled
    (folder / "0000.png").write_bytes(garbled)
    (folder / "0001.png").write_bytes(whole[:len(whole) // 2])
    _dated(folder / "0000.png", 10 * file_settle.SETTLE_S)  # a complete file is read at once, however recent
    _dated(folder / "0001.png", file_settle.STALLED_S + 5)  # its writer died
    source = make_source(CameraSection(name="sdk", source=str(folder)))
    source.open()
    assert [source.read().reason for _ in range(2)] == ["corrupt", "corrupt"] and source.read() is None


def _mp4_being_recorded(path, frames: int = 10) -> bytes:
    """A real MP4 (OpenCV's writer, FFmpeg's muxer: ``moov`` last) written to ``path`` as its muxer leaves it while
    recording: ``mdat`` of size 0 (to the end of the file, size not known yet) and no ``moov``. Returns the whole
    file's bytes, which the muxer would write at its end."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    whole = path.read_bytes()
    mdat, moov = whole.index(b"mdat") - 4, whole.index(b"moov") - 4
    assert mdat < moov, "the muxer wrote its index first"
    path.write_bytes(whole[:mdat] + bytes(4) + whole[mdat + 4:moov])
    return whole


def _run_camera(cam, until_s: float, at_s: float = 0.0, then=None):
    """A real capture worker on ``cam`` for ``until_s``; ``then()`` called ``at_s`` after the start. Returns (the
    frames delivered, the states and reasons it went through)."""
    import threading

    from inspector.pipeline.capture import CaptureWorker, FrameHub
    from inspector.pipeline.telemetry import Counters

    states, hub, stop = [], FrameHub(Counters()), threading.Event()
    worker = CaptureWorker(cam, make_source(cam), hub, stop, Counters(), lambda c, s, p, r, d: states.append((s, r)))
    frames, started, called = [], time.monotonic(), then is None
    worker.start()
    while time.monotonic() - started < until_s and worker.is_alive():
        frames += hub.take(1, 0.05)
        if not called and time.monotonic() - started >= at_s:
            then()
            called = True
    stop.set()
    worker.join(10)
    return frames + hub.take(100, 0.1), states


def test_an_mp4_still_being_recorded_is_waited_for_and_read_whole(tmp_path):
    """A camera on an MP4 its recorder is still writing (index last; the muxer's buffer left the file unchanged
    for 10 s, longer than SETTLE_S): it failed at once, 'cannot open … (corrupt or unsupported video)', the run
    ended with exit 1 and the recording was never inspected. It is waited for (connecting, no reconnect attempt
    spent), and read whole once the recorder finished it. One left so by a recorder that died (unchanged for longer than
    STALLED_S) still fails at once."""
    from inspector.pipeline.config import ReconnectSection

    video = tmp_path / "batch.mp4"
    whole = _mp4_being_recorded(video)
    _behind(video, 10.0)
    # waiting spends no reconnect attempt: a recording written for minutes outlasts any max_attempts
    cam = CameraSection(name="rec", source=str(video), reconnect=ReconnectSection(initial_s=0.2, max_attempts=1))
    frames, states = _run_camera(cam, 15.0, at_s=2.0, then=lambda: video.write_bytes(whole))
    assert len(frames) == 10, (len(frames), states)
    assert [s for s, _ in states] == ["connecting", "online", "ended"], states

    _mp4_being_recorded(video)
    _behind(video, file_settle.STALLED_S + 30)
    frames, states = _run_camera(cam, 5.0)
    assert not frames and states[-1][0] == "failed" and "corrupt or unsupported video" in states[-1][1], states


@pytest.mark.parametrize("tail", [b"\x00" * 300, b"\xff" * 3, "thumbnail JPEG appended"])
def test_a_jpeg_with_bytes_after_its_end_marker_is_not_cut_short(tail):
    """A camera padding its JPEGs to a block, or a second picture appended: the file ends after its EOI, not in it.
    Told cut short, a damaged one waited STALLED_S (30 s) before it counted corrupt, where a whole one waits
    SETTLE_S; cut before its EOI it still is cut short."""
    whole = _picture(".jpg")
    tail = _picture(".jpg") if isinstance(tail, str) else tail
    assert not ends_cut_short(whole + tail)
    for cut in (16, len(whole) // 2, len(whole) - 1):
        assert ends_cut_short(whole[:cut]), cut
