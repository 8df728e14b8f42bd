"""A recording whose writer pauses longer than SETTLE_S is read to its end (pipeline/recording_ends.py)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time

import numpy as np
import pytest

from inspector.pipeline import file_settle
from inspector.pipeline.avi_front import AviFront
from inspector.pipeline.recording_ends import TS_PACKET, being_recorded
from tests.pipeline.test_source_lifecycle import _read_recording

_UNKNOWN_SIZE = bytes.fromhex("01ffffffffffffff")  # an 8-byte EBML size, every data bit 1 (RFC 8794 §6.2)


def _encode(path, codec="libx264", b_frames=2, container=()):
    if not shutil.which("ffmpeg") or codec not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"],
                                                                 capture_output=True, text=True).stdout:
        pytest.skip(f"needs the ffmpeg program with {codec}")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25", "-frames:v", "100",
                    "-c:v", codec, "-pix_fmt", "yuv420p", "-bf", str(b_frames), "-g", "25", *container, str(path)],
                   check=True, timeout=60)
    os.utime(path, (time.time() - 60, time.time() - 60))  # written long ago: its end is its end
    return path.read_bytes()


def _as_recorded(data: bytes) -> bytes:
    """A finished Matroska file as its muxer leaves it while recording: the Segment's size not yet known."""
    at = data.find(b"\x18\x53\x80\x67") + 4
    assert data[at] == 0x01, data[at:at + 8].hex()  # FFmpeg writes the Segment size in 8 bytes
    return data[:at] + _UNKNOWN_SIZE + data[at + 8:]


def test_what_a_muxer_leaves_unfinished_is_told_by_its_bytes(tmp_path):
    """A TS is unfinished while its last packet is cut, a Matroska file while its Segment size is unknown, a
    fragmented MP4 until its mfra box; a finished one of each, a plain MP4 (finished, or cut short), another file, a
    missing one and a malformed EBML head are not."""
    ts = _encode(tmp_path / "full.ts", container=("-f", "mpegts"))
    mkv = _encode(tmp_path / "full.mkv")
    fmp4, mp4 = _encode(tmp_path / "frag.mp4", container=_FRAGMENTED), _encode(tmp_path / "plain.mp4")
    cases = {"ts_cut": (ts[:100 * TS_PACKET + 72], True), "ts_whole": (ts[:100 * TS_PACKET], False),
             "mkv_recording": (_as_recorded(mkv)[:len(mkv) // 2], True), "mkv_finished": (mkv, False),
             "mkv_cut_finished": (mkv[:len(mkv) // 2], False), "text": (b"frame,score\n" * 100, False),
             "bad_ebml": (b"\x1a\x45\xdf\xa3\x00" + bytes(100), False), "ebml_short": (b"\x1a\x45\xdf\xa3\x81", False),
             "fmp4_recording": (_fmp4_as_recorded(fmp4), True), "fmp4_finished": (fmp4, False),
             "mp4_finished": (mp4, False), "mp4_cut_finished": (mp4[:len(mp4) // 2], False)}
    for name, (data, unfinished) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert being_recorded(tmp_path / name) is unfinished, name
    assert not being_recorded(tmp_path / "missing.ts")


def test_a_ts_cut_short_long_ago_ends_at_once(tmp_path):
    """A TS whose last packet is cut but that nobody has written for longer than STALLED_S (a copy cut off) is
    read to its end without waiting for more."""
    data = _encode(tmp_path / "full.ts", container=("-f", "mpegts"))
    video = tmp_path / "cut.ts"
    video.write_bytes(data[:len(data) // 2 // TS_PACKET * TS_PACKET + 100])
    os.utime(video, (time.time() - file_settle.STALLED_S - 30,) * 2)
    images, reasons = _read_recording(video)
    assert 20 < len(images) < 100 and "growing" not in reasons, (len(images), reasons)


def _avi_as_recorded(data: bytes) -> bytes:
    """A finished AVI as its muxer leaves it while recording: no index (idx1) yet, the RIFF size unset and the
    frame counts (avih dwTotalFrames, strh dwLength) still 0 (FFmpeg's and OpenCV's writers, measured)."""
    data = bytearray(data[:data.rfind(b"idx1")])
    data[4:8] = b"\xff\xff\xff\xff"
    avih, strh = data.find(b"avih") + 8, data.find(b"strh") + 8
    data[avih + 16:avih + 20] = data[strh + 32:strh + 36] = bytes(4)
    return bytes(data)


def _fmp4_as_recorded(data: bytes) -> bytes:
    """A finished fragmented MP4 as its muxer leaves it while recording: its fragments, not yet its mfra box."""
    return data[:data.rfind(b"mfra") - 4]


_FRAGMENTED = ("-movflags", "frag_keyframe+empty_moov", "-f", "mp4")
_AS_RECORDED = {"ts": lambda data: data, "mkv": _as_recorded, "avi": _avi_as_recorded, "mp4": _fmp4_as_recorded}


@pytest.mark.parametrize("container", ["ts", "mkv", "avi", "mp4"])
def test_a_recording_whose_writer_pauses_past_settle_s_is_read_to_its_end(tmp_path, monkeypatch, container):
    """A recording copied in 3 kB parts whose writer paused once for longer than SETTLE_S (a slow share, a
    recorder's buffer): the one-pass camera ended at the end of what was there (an H.264 TS: 49 of 100 frames, the
    last 3 made up by the decoder and called damage; exit 0, the rest never inspected). Its bytes say it is
    unfinished (a cut TS packet; a Matroska Segment of unknown size; an AVI's unset RIFF size; a fragmented MP4
    without its closing mfra box), so it is waited for
    STALLED_S: every frame once, in order, bitwise the finished file's, and none counted concealed."""
    from inspector.pipeline import sources

    monkeypatch.setattr(sources, "_GROWTH_POLL_S", 0.001)  # the wait between looks at the end: a pace only
    full = tmp_path / f"full.{container}"
    codec = "mpeg4" if container == "avi" else "libx264"
    finished = _encode(full, codec, container={"ts": ("-f", "mpegts"), "mp4": _FRAGMENTED}.get(container, ()))
    recorded = _AS_RECORDED[container](finished)
    video, copied, parts = tmp_path / f"copying.{container}", [len(recorded) // 4], [0]
    video.write_bytes(recorded[:copied[0]])

    def copy_a_part():
        parts[0] += 1
        if parts[0] == 10:
            time.sleep(file_settle.SETTLE_S + 0.6)
        with open(video, "ab") as fh:
            fh.write(recorded[copied[0]:copied[0] + 3000])
        copied[0] += 3000
        if copied[0] >= len(recorded):
            video.write_bytes(finished)  # the muxer's last writes: the sizes, counts and index
            os.utime(video, (time.time() - 60, time.time() - 60))

    images, reasons = _read_recording(video, copy_a_part, limit=3000)
    expected, _ = _read_recording(full)
    assert parts[0] > 10 and len(expected) == 100 and set(reasons) == {"growing"}, (parts, reasons[-3:])
    whole = [frame.tobytes() for frame in expected]
    read = sorted(whole.index(image.tobytes()) if image.tobytes() in whole else -1 for image in images)
    assert read == list(range(100)), (len(images), sorted(set(range(100)) - set(read)))


def test_any_bytes_are_judged_without_an_error(tmp_path):
    """Bounded fuzz: random bytes, and real TS, Matroska and AVI heads with random bytes flipped or cut, are judged
    (True or False), and an AVI's whole frames counted, without raising: both run on every look at a file's end."""
    import random

    rng = random.Random(7)
    avi = _avi_as_recorded(_encode(tmp_path / "seed.avi", "mpeg4"))[:20_000]
    (tmp_path / "seed.avi").write_bytes(avi)
    assert AviFront(tmp_path / "seed.avi").scan() > 0  # the seed's frames are walked: its mutations reach the walk
    heads = [avi, avi[:3000], b"", b"\x47" * 400, b"RIFF\xff\xff\xff\xffAVI LIST\xff\xff\xff\xffhdrl",
             b"\x1a\x45\xdf\xa3\x84\x42\x86\x81\x01\x18\x53\x80\x67", b"\x00\x00\x00\x00ftyp",
             b"\x00\x00\x00\x01mdat" + b"\xff" * 8]
    for i in range(300):
        head = bytearray(rng.choice(heads) + rng.randbytes(rng.randrange(0, 600)))
        for _ in range(rng.randrange(0, 4)):
            if head:
                head[rng.randrange(len(head))] = rng.randrange(256)
        path = tmp_path / f"{i}.bin"
        path.write_bytes(bytes(head[:rng.randrange(len(head) + 1)]))
        assert being_recorded(path) in (True, False)
        assert AviFront(path).scan() >= 0


def _opencv_avi(path, frames, snapshot_after=None):
    """``frames`` written by OpenCV's VideoWriter (MJPG in AVI) to ``path``; the file's bytes as they were on disk
    after ``snapshot_after`` frames (the writer's flushes: a recording still being written), or None."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, frames[0].shape[1::-1])
    if not writer.isOpened() or writer.getBackendName() != "FFMPEG":
        pytest.skip("needs OpenCV's FFmpeg backend writing MJPG")
    snapshot = None
    for i, frame in enumerate(frames):
        writer.write(frame)
        if i + 1 == snapshot_after:
            snapshot = path.read_bytes()
    writer.release()
    return snapshot


def _packets(path) -> list[bytes]:
    """The encoded packets OpenCV's FFmpeg backend reads from ``path`` (raw stream mode), as the camera reads them."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    packets = []
    if cap.isOpened() and cap.set(cv2.CAP_PROP_FORMAT, -1):
        while cap.grab():
            packets.append(cap.retrieve()[1].tobytes())
    cap.release()
    return packets


def _assert_front_counts_what_opencv_reads_whole(tmp_path, data: bytes, cuts: list[int], finished: list[bytes]):
    """At each cut of ``data`` (in growing order) the walker counts as many frames as OpenCV reads whole from the
    cut file (bytewise the packets ``finished`` of the whole recording), scanned afresh and by one walker under
    which the file grows through the cuts. Returns the last count."""
    from inspector.pipeline.avi_front import AviFront

    growing, front, whole = tmp_path / "growing.avi", None, 0
    for cut in cuts:
        (tmp_path / "cut.avi").write_bytes(data[:cut])
        read = _packets(tmp_path / "cut.avi")
        whole = next((i for i, (a, b) in enumerate(zip(read, finished)) if a != b), len(read))
        growing.write_bytes(data[:cut])
        front = front or AviFront(growing)
        assert AviFront(tmp_path / "cut.avi").scan() == front.scan() == whole, (cut, whole, len(read))
    return whole


def _list(kind: bytes, body: bytes, size: int | None = None) -> bytes:
    return b"LIST" + struct.pack("<I", len(body) + 4 if size is None else size) + kind + body


def _opendml_parts(finished: bytes) -> tuple[bytes, list[int]]:
    """A finished AVI's frame chunks laid out as OpenDML recorders leave them while recording (OpenDML AVI File
    Format Extensions 1.02): a closed first part RIFF('AVI ' … LIST('movi' …)) whose chunks are grouped in
    LIST('rec ' …) lists, with a JUNK chunk of odd size (padded) and an 'ix00' index chunk, then an open
    RIFF('AVIX' LIST('movi' …)) part, its sizes unset (0xFFFFFFFF), holding an empty frame chunk (a dropped
    frame). (bytes, offsets to cut them at)."""
    movi = finished.find(b"movi") - 8
    assert finished[movi:movi + 4] == b"LIST"
    chunks, at = [], movi + 12
    while finished[at:at + 4] == b"00dc":
        size = struct.unpack_from("<I", finished, at + 4)[0]
        chunks.append(finished[at:at + 8 + size + (size & 1)])
        at += len(chunks[-1])
    junk, index = b"JUNK" + struct.pack("<I", 5) + b"abcde\0", b"ix00" + struct.pack("<I", 24) + bytes(24)
    empty = b"00dc" + bytes(4)  # a dropped frame: FFmpeg hands over no packet for it
    first = bytearray(finished[:movi] + _list(b"movi", b"".join(_list(b"rec ", chunks[i] + chunks[i + 1])
                                                              for i in range(0, 50, 2)) + junk + index))
    first[4:8] = struct.pack("<I", len(first) - 8)
    frames = b"".join(chunks[50:75]) + junk + empty + b"".join(chunks[75:])
    second = b"RIFF\xff\xff\xff\xffAVIX" + _list(b"movi", frames, 0xFFFFFFFF)
    rec = movi + 12 + 12 + len(chunks[0])  # inside the first 'rec ' list, between its two chunks
    data_end = len(first) + 24 + 8 + struct.unpack_from("<I", chunks[50], 4)[0]  # of the first frame in 'AVIX'
    cuts = [movi + 14, movi + 30, rec, rec + 5, len(first) - 40, len(first) - 30, len(first) + 6,
            len(first) + 24, data_end - 1, data_end, len(first) + len(second) - 20]
    return bytes(first) + second, cuts + [len(first) + len(second)]


def test_the_avi_front_counts_the_frames_opencv_reads_whole(tmp_path):
    """An AVI as OpenCV's VideoWriter leaves it while recording (its bytes on disk after 60 of 100 frames, cut by
    the writer's flush inside a frame), cut again in its header, on a chunk boundary, inside a chunk's header and
    inside a chunk; and its frames laid out in OpenDML parts with 'rec ' lists, JUNK and index chunks
    (:func:`_opendml_parts`), cut likewise and inside each of those: the walker counts as many frames as OpenCV
    reads whole from each cut, whether each cut is scanned afresh or the file grows through them under one walker."""
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (120, 160, 3), np.uint8) for _ in range(100)]
    recording = _opencv_avi(tmp_path / "full.avi", frames, snapshot_after=60)
    finished = _packets(tmp_path / "full.avi")
    assert len(finished) == 100 and recording[4:8] == b"\xff\xff\xff\xff"
    chunks = [i - 8 for i in range(len(recording) - 2) if recording[i:i + 3] == b"\xff\xd8\xff"]  # '00dc' headers
    cuts = [100, 3000, chunks[0], chunks[0] + 5, chunks[1], chunks[20], chunks[20] + 4, chunks[20] + 3000,
            chunks[-1], len(recording)]
    whole = _assert_front_counts_what_opencv_reads_whole(tmp_path, recording, cuts, finished)
    assert whole == len(chunks) - 1 > 40  # the snapshot ends inside a frame: that one is not whole
    parts, cuts = _opendml_parts((tmp_path / "full.avi").read_bytes())
    (tmp_path / "parts.avi").write_bytes(parts)
    assert _packets(tmp_path / "parts.avi") == finished  # OpenCV reads the parts as the file they were made from
    assert _assert_front_counts_what_opencv_reads_whole(tmp_path, parts, cuts, finished) == 100


def test_an_avi_read_while_opencv_writes_it_loses_no_frame_at_its_write_front(tmp_path, monkeypatch):
    """150 random frames written by OpenCV's VideoWriter (MJPG in AVI, FFmpeg's muxer) 30 at a time while a
    one-pass camera reads the file. The writer's flushes cut a frame at the end of the file; the read took it cut,
    and FFmpeg cannot seek an AVI without its index (written when it is closed) to read it again: frames 51, 86
    and 103 were lost as corrupt (147 read). Now no frame is grabbed before its chunk is whole: every frame read
    once, in order (each read image matched to its source frame by least mean absolute difference), none corrupt."""
    import cv2

    from inspector.pipeline import sources

    monkeypatch.setattr(sources, "_GROWTH_POLL_S", 0.001)  # the wait between looks at the end: a pace only
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 160, 3), np.uint8) for _ in range(150)]
    video = tmp_path / "recording.avi"
    writer, written = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120)), [0]
    if not writer.isOpened() or writer.getBackendName() != "FFMPEG":
        pytest.skip("needs OpenCV's FFmpeg backend writing MJPG")

    def write_a_part():
        for frame in frames[written[0]:written[0] + 30]:
            writer.write(frame)
        written[0] += 30
        if written[0] == len(frames):
            writer.release()
            os.utime(video, (time.time() - 60, time.time() - 60))  # written long ago: its end is its end

    write_a_part()
    write_a_part()
    assert being_recorded(video)
    images, reasons = _read_recording(video, write_a_part, limit=20000)
    stack = np.stack(frames).astype(np.int16)
    read = [int(np.argmin(np.abs(stack - image.astype(np.int16)).mean(axis=(1, 2, 3)))) for image in images]
    assert read == list(range(150)) and set(reasons) == {"growing"}, (sorted(set(range(150)) - set(read)),
                                                                      [r for r in reasons if r != "growing"])


def test_an_avi_being_recorded_is_opened_once_its_first_frame_is_whole(tmp_path):
    """An AVI OpenCV's VideoWriter is writing, found while its first frame is cut by the end of the file: FFmpeg's
    probe took that frame cut, so the packet looked no picture, the file was read decoded by OpenCV and its first
    frame came out made up (its pixels 93 levels off the frame written, on average; as read from the finished
    file: 47, JPEG's loss on random pixels). It now waits (SourceWaiting: the capture worker tries again) and,
    once that frame is whole, reads it as the finished file gives it."""
    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.source_base import SourceWaiting
    from inspector.pipeline.sources import make_source

    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (120, 160, 3), np.uint8) for _ in range(60)]
    recording = _opencv_avi(tmp_path / "full.avi", frames, snapshot_after=40)
    video = tmp_path / "recording.avi"
    video.write_bytes(recording[:recording.find(b"\xff\xd8\xff") + 3000])  # inside the first frame's JPEG
    source = make_source(CameraSection(name="cam", source=str(video)))
    with pytest.raises(SourceWaiting, match="no whole frame yet"):
        source.open()
    video.write_bytes(recording)
    source.open()
    first = source.read().image
    source.close()
    os.utime(tmp_path / "full.avi", (time.time() - 60, time.time() - 60))  # written long ago: its end is its end
    expected, _ = _read_recording(tmp_path / "full.avi")
    assert first is not None and np.array_equal(first, expected[0])
