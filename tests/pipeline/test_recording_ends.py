"""A recording whose writer pauses longer than SETTLE_S is read to its end (pipeline/recording_ends.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from inspector.pipeline import file_settle
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
    (True or False) and never raise: the judgement runs on every look at a file's end."""
    import random

    rng = random.Random(7)
    heads = [b"", b"\x47" * 400, b"RIFF\xff\xff\xff\xffAVI ", b"\x1a\x45\xdf\xa3\x84\x42\x86\x81\x01\x18\x53\x80\x67",
             b"\x00\x00\x00\x00ftyp", b"\x00\x00\x00\x01mdat" + b"\xff" * 8]
    for i in range(300):
        head = bytearray(rng.choice(heads) + rng.randbytes(rng.randrange(0, 600)))
        for _ in range(rng.randrange(0, 4)):
            if head:
                head[rng.randrange(len(head))] = rng.randrange(256)
        path = tmp_path / f"{i}.bin"
        path.write_bytes(bytes(head[:rng.randrange(len(head) + 1)]))
        assert being_recorded(path) in (True, False)
