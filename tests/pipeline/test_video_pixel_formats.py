"""A video file or live stream frame gives the model the same pixels as that frame saved losslessly as an image and
read by ``predict`` (:func:`inspector.data.images.decode_image`), whatever the pixel format a recording or an
industrial camera's stream has. Every video here is made by the real ``ffmpeg`` program, and so is the reference:
the same frame extracted by it as a PNG / BMP in the matching depth. Skipped where the program is missing.

Tolerances: lossless integer formats exact. Planar YUV frames bitwise the extracted PNG (packed YUYV within 2,
:data:`YUV`), and the declared matrix and range honoured: within 3 levels (1 for 4:4:4 and 10-bit) of the exact conversion, where the wrong
matrix or range is 10+ levels off. FFmpeg's 8-bit subsampled YUV → RGB path (swscale's table converter, which
the ffmpeg program uses for the PNG too) rounds to within 3 levels, mean 0.8 (measured, FFmpeg 5.1)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.data.images import decode_image, standardize_pixels
from inspector.integrations.pixel_formats import decode_pixels
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import make_source

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program")
H, W = 32, 48


def _ffmpeg(*args: str, data: bytes | None = None) -> None:
    subprocess.run(["ffmpeg", "-y", "-v", "error", *args], input=data, check=True,
                   stdin=None if data is not None else subprocess.DEVNULL)


def _daemon_frame(path: Path, bit_depth: int | None = None) -> np.ndarray:
    """The first frame the daemon's camera on ``path`` gives, as model input pixels: uint8 (H, W, 3) BGR."""
    settled = time.time() - 10  # a file written just now would be read as a growing recording
    os.utime(path, (settled, settled))
    return _first_frame(make_source(CameraSection(name="cam", source=str(path), bit_depth=bit_depth)), bit_depth)


def _first_frame(source, bit_depth: int | None = None) -> np.ndarray:
    """The first frame ``source`` gives once opened, as model input pixels: uint8 (H, W, 3) BGR."""
    source.open()
    try:
        grabbed = source.read()
    finally:
        source.close()
    assert grabbed is not None and grabbed.image is not None, getattr(grabbed, "error", "no frame")
    return standardize_pixels(grabbed.image, "camera", bit_depth, "BGR")


def _reference(video: Path, tmp_path: Path, ext: str, pix_fmt: str | None, frame: int = 0) -> np.ndarray:
    """The video's first frame (or ``frame``) extracted by the ffmpeg program as an image file, read as
    ``predict`` reads it."""
    image = tmp_path / f"frame.{ext}"
    select = ["-vf", f"select=eq(n\\,{frame})"] if frame else []
    _ffmpeg("-i", str(video), *select, "-frames:v", "1", *(["-pix_fmt", pix_fmt] if pix_fmt else []),
            *(["-c:v", "bmp"] if ext == "bmp" else []), str(image))
    return decode_image(np.fromfile(image, np.uint8), "reference", None, "BGR")


def _noise_png(tmp_path: Path, wide: bool, alpha: bool) -> Path:
    rng = np.random.default_rng(7)
    picture = rng.integers(0, 65536 if wide else 256, (H, W, 4 if alpha else 3)).astype(np.uint16 if wide else np.uint8)
    path = tmp_path / "source.png"
    cv2.imwrite(str(path), picture)
    return path


# (pixel format, encoder, container, reference image, its pixel format); wide: 16-bit source, alpha: RGBA source
LOSSLESS = {
    "rgb565le-raw": ("rgb565le", "rawvideo", "nut", "bmp", "rgb565le"),     # was 1 level off (bit repetition)
    "rgb565be-raw": ("rgb565be", "rawvideo", "nut", "bmp", "rgb565le"),     # was 247 levels off
    "bgr565le-raw": ("bgr565le", "rawvideo", "nut", "bmp", "rgb565le"),
    "rgb555le-avi": ("rgb555le", "rawvideo", "avi", "bmp", "rgb555le"),     # was 1 level off
    "bgr555be-raw": ("bgr555be", "rawvideo", "nut", "bmp", "rgb555le"),
    "bgr24-avi": ("bgr24", "rawvideo", "avi", "png", "rgb24"),
    "rgb24-huffyuv": ("rgb24", "huffyuv", "avi", "png", "rgb24"),
    "gbrp-utvideo": ("gbrp", "utvideo", "avi", "png", "rgb24"),
    "rgb24-tiff-mov": ("rgb24", "tiff", "mov", "png", "rgb24"),
    "rgb48le-raw": ("rgb48le", "rawvideo", "nut", "png", "rgb48be"),
    "gbrp16le-ffv1": ("gbrp16le", "ffv1", "mkv", "png", "rgb48be"),
    "rgba64le-raw": ("rgba64le", "rawvideo", "nut", "png", "rgba64be"),
    "gray-ffv1": ("gray", "ffv1", "mkv", "png", "gray"),
    "gray10le-raw": ("gray10le", "rawvideo", "nut", "png", "gray16be"),
    "gray12le-ffv1": ("gray12le", "ffv1", "mkv", "png", "gray16be"),
    "gray16be-raw": ("gray16be", "rawvideo", "nut", "png", "gray16be"),
    "ya8-png": ("ya8", "png", "mkv", "png", "ya8"),
    "ya16be-png": ("ya16be", "png", "mkv", "png", "ya16be"),
    "pal8-alpha-png": ("pal8", "png", "mkv", "png", "pal8"),
}


@pytest.mark.parametrize("name", sorted(LOSSLESS))
def test_a_lossless_video_frame_gives_the_pixels_of_the_same_frame_as_an_image(tmp_path, name):
    """Raw, FFV1, HuffYUV, Ut Video, PNG and TIFF frames in any lossless pixel format: bitwise the extracted
    image's pixels. Packed 5/6-bit RGB is scaled per channel from its own full scale, as the 16-bit BMP of the
    frame is (OpenCV widened it by repeating bits, 1 level off on 12 % of the pixels, and read rgb565be 247
    levels off)."""
    pix_fmt, codec, ext, ref_ext, ref_fmt = LOSSLESS[name]
    wide = any(t in pix_fmt for t in ("48", "64", "16", "10", "12"))
    source = _noise_png(tmp_path, wide, alpha=pix_fmt.startswith(("rgba", "ya", "pal8")))
    video = tmp_path / f"v.{ext}"
    _ffmpeg("-loop", "1", "-i", str(source), "-frames:v", "2", "-c:v", codec, "-pix_fmt", pix_fmt, str(video))
    want = _reference(video, tmp_path, ref_ext, ref_fmt)
    got = _daemon_frame(video)
    diff = np.abs(got.astype(int) - want)
    assert diff.max() == 0, f"{name}: {int((diff > 0).sum())} samples off, up to {diff.max()} levels"


def _mosaic_video(tmp_path: Path, pix_fmt: str, mosaic: np.ndarray) -> Path:
    video = tmp_path / "bayer.nut"
    _ffmpeg("-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{W}x{H}", "-r", "10", "-i", "-", "-frames:v", "2",
            "-c:v", "rawvideo", str(video), data=mosaic.tobytes() * 2)
    return video


@pytest.mark.parametrize("pix_fmt, pfnc", [("bayer_rggb8", "BayerRG8"), ("bayer_bggr8", "BayerBG8"),
                                           ("bayer_gbrg8", "BayerGB8"), ("bayer_grbg8", "BayerGR8")])
def test_a_bayer_video_is_demosaiced_as_the_genicam_camera_demosaics_the_same_mosaic(tmp_path, pix_fmt, pfnc):
    """A machine-vision camera's raw Bayer frames, recorded as they came: the pixels the GenICam source gives
    for the same mosaic. FFmpeg demosaiced them its own way: up to 182 levels off (mean 7) on this noise."""
    mosaic = np.random.default_rng(3).integers(0, 256, (H, W), dtype=np.uint8)
    want = standardize_pixels(decode_pixels(mosaic.tobytes(), pfnc, W, H), "genicam", None, "BGR")
    got = _daemon_frame(_mosaic_video(tmp_path, pix_fmt, mosaic))
    assert np.array_equal(got, want), f"max diff {np.abs(got.astype(int) - want).max()}"


def test_a_bayer_video_puts_each_colour_where_its_mosaic_has_it(tmp_path):
    """Only the red sites of an RGGB mosaic lit (row 0, column 0 of each 2x2 block): the frame is red."""
    mosaic = np.zeros((H, W), np.uint8)
    mosaic[0::2, 0::2] = 255
    got = _daemon_frame(_mosaic_video(tmp_path, "bayer_rggb8", mosaic))
    assert (got[2:-2, 2:-2] == (0, 0, 255)).all()


@pytest.mark.parametrize("pix_fmt", ["bayer_rggb16le", "bayer_grbg16be"])
def test_a_16_bit_bayer_video_is_demosaiced_at_full_depth_then_scaled(tmp_path, pix_fmt):
    """A 16-bit mosaic (12-bit data, the camera's ``bit_depth: 12``): OpenCV's demosaicing at full depth, then
    the decoder's scaling, as for a 16-bit frame (FFmpeg's own: up to 156 levels off)."""
    mosaic = np.random.default_rng(5).integers(0, 4096, (H, W)).astype(np.uint16)
    dtype = "<u2" if pix_fmt.endswith("le") else ">u2"
    video = tmp_path / "bayer16.nut"
    _ffmpeg("-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{W}x{H}", "-r", "10", "-i", "-", "-frames:v", "2",
            "-c:v", "rawvideo", str(video), data=mosaic.astype(dtype).tobytes() * 2)
    code = cv2.COLOR_BayerRGGB2BGR if "rggb" in pix_fmt else cv2.COLOR_BayerGRBG2BGR
    want = standardize_pixels(cv2.cvtColor(mosaic, code), "rule", 12, "BGR")
    got = _daemon_frame(video, bit_depth=12)
    assert np.array_equal(got, want), f"max diff {np.abs(got.astype(int) - want).max()}"


# -- YUV: the matrix and range the stream declares -------------------------------------------------------------
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
BLOCK = 16  # chroma is constant over BLOCK x BLOCK pixels: compared away from the edges, upsampling cannot matter


def _yuv_planes(full: bool, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng, s = np.random.default_rng(11), 1 << (bits - 8)
    top = (1 << bits) - 1
    y = rng.integers(0 if full else 16 * s, (top if full else 235 * s) + 1, (H, W))
    cb, cr = (np.kron(rng.integers(0 if full else 16 * s, (top if full else 240 * s) + 1, (H // BLOCK, W // BLOCK)),
                      np.ones((BLOCK, BLOCK), int)) for _ in range(2))
    return y, cb, cr


def _exact_bgr(y, cb, cr, full: bool, bits: int, matrix: str) -> np.ndarray:
    """YUV → BGR by the matrix's definition (ITU-R BT.601 / 709 / 2020), in floating point, rounded."""
    s, top = 1 << (bits - 8), (1 << bits) - 1
    if full:
        yn, bn, rn = y / top, (cb - 128 * s) / top, (cr - 128 * s) / top
    else:
        yn, bn, rn = (y - 16 * s) / (219 * s), (cb - 128 * s) / (224 * s), (cr - 128 * s) / (224 * s)
    kr, kb = KR_KB[matrix]
    r, b = yn + 2 * (1 - kr) * rn, yn + 2 * (1 - kb) * bn
    g = (yn - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.round(np.dstack([b, g, r]) * 255), 0, 255).astype(int)


def _interior() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return ((yy % BLOCK >= 4) & (yy % BLOCK < BLOCK - 4) & (xx % BLOCK >= 4) & (xx % BLOCK < BLOCK - 4))


# (input planes, bits, full range, matrix, colorspace tag (None: none, BT.601 by convention), encoder, container,
#  the stored pixel format, how far from the extracted PNG, how far from the exact conversion). Packed YUYV takes
#  another swscale path in OpenCV than in the ffmpeg program: 2 levels apart, both within 3 of the exact conversion
#  (mean 0.88 the daemon, 1.11 the PNG; measured)
YUV = {
    "420-ffv1-bt709-tv": ("yuv420p", 8, False, "bt709", "bt709", "ffv1", "mkv", "yuv420p", 0, 3),
    "420-ffv1-bt601-pc": ("yuv420p", 8, True, "bt601", "smpte170m", "ffv1", "mkv", "yuv420p", 0, 3),
    "420-ffv1-bt2020-tv": ("yuv420p", 8, False, "bt2020", "bt2020nc", "ffv1", "mkv", "yuv420p", 0, 3),
    "444-ffv1-bt709-tv": ("yuv444p", 8, False, "bt709", "bt709", "ffv1", "mkv", "yuv444p", 0, 1),
    "422-huffyuv-bt709-tv": ("yuv422p", 8, False, "bt709", "bt709", "huffyuv", "mkv", "yuv422p", 0, 3),
    "yuyv422-raw-avi-untagged": ("yuv422p", 8, False, "bt601", None, "rawvideo", "avi", "yuyv422", 2, 3),
    "420p10-ffv1-bt709-tv": ("yuv420p10le", 10, False, "bt709", "bt709", "ffv1", "mkv", "yuv420p10le", 0, 1),
}


def _yuv_video(tmp_path: Path, case: tuple) -> tuple[Path, np.ndarray]:
    planes_fmt, bits, full, matrix, tag, codec, ext, stored, _, _ = case
    y, cb, cr = _yuv_planes(full, bits)
    step = {"yuv420p": 2, "yuv422p": 1, "yuv444p": 1}[planes_fmt[:7]]
    hstep = 1 if planes_fmt.startswith("yuv444") else 2
    dtype = "<u2" if bits > 8 else "u1"
    data = b"".join(p.astype(dtype).tobytes() for p in (y, cb[::step, ::hstep], cr[::step, ::hstep]))
    tags = ["-color_range", "pc" if full else "tv", *(["-colorspace", tag] if tag else [])]
    video = tmp_path / f"yuv.{ext}"
    _ffmpeg("-f", "rawvideo", "-pix_fmt", planes_fmt, "-s", f"{W}x{H}", "-r", "10", *tags, "-i", "-",
            "-frames:v", "2", "-c:v", codec, "-pix_fmt", stored, *tags, str(video), data=data * 2)
    return video, _exact_bgr(y, cb, cr, full, bits, matrix)


@pytest.mark.parametrize("name", sorted(YUV))
def test_a_yuv_video_frame_honours_its_declared_matrix_and_range(tmp_path, name):
    """4:2:0 / 4:2:2 / 4:4:4, 8 and 10 bits, limited and full range, BT.601 / 709 / 2020 or untagged (BT.601):
    bitwise the frame the ffmpeg program extracts as a PNG (8 bits; 16 for 10-bit data; packed YUYV: see
    :data:`YUV`), and within the module docstring's rounding of the exact conversion by the declared matrix and
    range."""
    case = YUV[name]
    video, exact = _yuv_video(tmp_path, case)
    got = _daemon_frame(video).astype(int)
    png = _reference(video, tmp_path, "png", "rgb24" if case[1] == 8 else "rgb48be")
    assert np.abs(got - png).max() <= case[-2], f"{name}: {np.abs(got - png).max()} levels off the extracted PNG"
    inner = _interior()
    off = np.abs(got - exact)[inner]
    assert off.max() <= case[-1], f"{name}: {off.max()} levels off the exact {case[3]} conversion"
    wrong = "bt709" if case[3] != "bt709" else "bt601"  # the test tells a wrong matrix or range apart
    y, cb, cr = _yuv_planes(case[2], case[1])
    for other in (_exact_bgr(y, cb, cr, case[2], case[1], wrong), _exact_bgr(y, cb, cr, not case[2], case[1], case[3])):
        assert np.abs(got - other)[inner].max() >= 10


# -- a live stream: the same rule ------------------------------------------------------------------------------
@contextlib.contextmanager
def _served(video: Path):
    """A live camera on 127.0.0.1: each connection gets ``video`` in real time, looped, as a NUT stream."""
    server = socket.create_server(("127.0.0.1", 0))
    procs: list[subprocess.Popen] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            procs.append(subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(video),
                                           "-c", "copy", "-f", "nut", "pipe:1"], stdout=conn.fileno(),
                                          stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("pix_fmt", ["rgb565be", "bayer_rggb8"])
def test_a_live_stream_of_packed_or_mosaic_samples_gives_the_pixels_of_its_frames(tmp_path, pix_fmt):
    """The same frames sent live over TCP (NUT), by the same rule: the frame's 16-bit BMP, the GenICam camera's
    demosaicing of the mosaic (OpenCV's conversion: 247 / 182 levels off)."""
    if pix_fmt.startswith("bayer"):
        mosaic = np.random.default_rng(3).integers(0, 256, (H, W), dtype=np.uint8)
        video = _mosaic_video(tmp_path, pix_fmt, mosaic)
        want = standardize_pixels(decode_pixels(mosaic.tobytes(), "BayerRG8", W, H), "genicam", None, "BGR")
    else:
        video = tmp_path / "v.nut"
        _ffmpeg("-loop", "1", "-i", str(_noise_png(tmp_path, False, False)), "-frames:v", "2", "-c:v", "rawvideo",
                "-pix_fmt", pix_fmt, str(video))
        want = _reference(video, tmp_path, "bmp", "rgb565le")
    with _served(video) as url:
        got = _first_frame(make_source(CameraSection(name="live", source=url, open_timeout_s=10,
                                                     read_timeout_s=10)))
    assert np.array_equal(got, want), f"max diff {np.abs(got.astype(int) - want).max()}"


# -- bottom-up raw DIB AVIs: read by avi_raw, never by OpenCV ----------------------------------------------------
_CHILD = """
import os, sys, time, numpy as np
from inspector.data.images import standardize_pixels
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import make_source
source = make_source(CameraSection(name="cam", source=sys.argv[1]))
source.open()
frames, errors = [], []
while (grabbed := source.read()) is not None:
    if grabbed.image is None:
        errors.append(grabbed.error)
    else:
        frames.append(standardize_pixels(grabbed.image, "camera", None, "BGR"))
source.close()
np.save(sys.argv[2], np.array(frames, np.uint8) if frames else np.zeros((0, 1, 1, 3), np.uint8))
print("\\n".join(errors))
"""


def _daemon_frames_in_child(path: Path, tmp_path: Path) -> tuple[np.ndarray, list[str]]:
    """Every frame the daemon's camera on ``path`` gives, read in a child process (a crash of the native
    decoder fails the test instead of killing the test run), and the one-line errors of frames it refused."""
    settled = time.time() - 10
    os.utime(path, (settled, settled))
    out = tmp_path / "frames.npy"
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(out)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert proc.returncode == 0, f"the reader died (exit {proc.returncode}): {proc.stderr[-500:]}"
    return np.load(out), [line for line in proc.stdout.splitlines() if line]


# (pixel format, reference image, its pixel format): the rows of each stored bottom-up
BOTTOM_UP = {"bgr24": ("png", "rgb24"), "rgb555le": ("bmp", "rgb555le"), "pal8": ("png", "rgb24"),
             "bgra": ("png", "rgb24")}


@pytest.mark.parametrize("flipped", [1, 0], ids=["bottom-up", "top-down"])
@pytest.mark.parametrize("pix_fmt", sorted(BOTTOM_UP))
def test_a_raw_dib_avi_gives_the_frames_ffmpeg_gives_whichever_way_up_its_rows_are(tmp_path, pix_fmt, flipped):
    """Uncompressed VfW AVIs (BI_RGB 8/16/24/32 bits), rows stored bottom-up (positive biHeight, ``-flipped_raw_rgb
    1``) or top-down: every frame bitwise the frame the ffmpeg program extracts (16 bits: its BMP, the bit-field
    rule). A bottom-up 24-bit one killed the process in OpenCV's conversion (malloc abort); RGB555 came out
    upside down."""
    source = _noise_png(tmp_path, False, alpha=pix_fmt == "bgra")
    video = tmp_path / "v.avi"
    _ffmpeg("-loop", "1", "-i", str(source), "-frames:v", "3", "-c:v", "rawvideo", "-pix_fmt", pix_fmt,
            "-flipped_raw_rgb", str(flipped), str(video))
    height = int.from_bytes(video.read_bytes()[video.read_bytes().find(b"strf") + 16:][:4], "little", signed=True)
    assert (height > 0) == bool(flipped)  # the test makes the layout it names
    frames, errors = _daemon_frames_in_child(video, tmp_path)
    assert not errors and len(frames) == 3, errors
    for n, got in enumerate(frames):  # each frame its own reference: the encoder dithers pal8 frame by frame
        want = _reference(video, tmp_path, *BOTTOM_UP[pix_fmt], frame=n)
        assert np.array_equal(got, want), f"frame {n}: max diff {np.abs(got.astype(int) - want).max()}, " \
                                          f"upside down: {np.array_equal(got[::-1], want)}"


@pytest.mark.parametrize("cut", ["last-frame", "first-frame"])
def test_a_bottom_up_avi_cut_short_gives_its_whole_frames_and_one_line_errors(tmp_path, cut):
    """A bottom-up AVI cut inside its last frame (a copy interrupted) or inside its first: the whole frames,
    then one line naming the file for the cut frame; the process lives."""
    video = tmp_path / "v.avi"
    _ffmpeg("-loop", "1", "-i", str(_noise_png(tmp_path, False, False)), "-frames:v", "2", "-c:v", "rawvideo",
            "-pix_fmt", "bgr24", "-flipped_raw_rgb", "1", str(video))
    data = video.read_bytes()
    first = data.find(b"movi") + 4  # the first frame chunk ('00dc'), then the second
    second = first + 8 + int.from_bytes(data[first + 4:first + 8], "little")
    video.write_bytes(data[:(second if cut == "last-frame" else first) + 8 + 100])
    frames, errors = _daemon_frames_in_child(video, tmp_path)
    assert len(frames) == (1 if cut == "last-frame" else 0)
    assert len(errors) == 1 and str(video) in errors[0] and "shorter than one" in errors[0], errors


def _encoder(name: str) -> bool:
    listed = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in listed.splitlines() if line.startswith(" V"))


@pytest.mark.parametrize("codec,ext", [("libx264", "mp4"), ("mpeg4", "avi"), ("libvpx-vp9", "webm"),
                                       ("mpeg2video", "mpg")])
def test_every_frame_of_a_yuv420p_video_is_ffmpegs_png_of_it(tmp_path, codec, ext):
    """A moving yuv420p recording in the usual lossy codecs, untagged (BT.601 limited range): every frame the
    daemon's camera gives within 3 levels of the PNG the ffmpeg program extracts of it (swscale's rounding, see
    the module docstring), in order and none missing."""
    if not _encoder(codec):
        pytest.skip(f"ffmpeg has no {codec} encoder")
    video = tmp_path / f"v.{ext}"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10", "-frames:v", "12", "-c:v", codec,
            "-pix_fmt", "yuv420p", str(video))
    _ffmpeg("-i", str(video), "-pix_fmt", "rgb24", str(tmp_path / "f%03d.png"))
    pngs = sorted(tmp_path.glob("f*.png"))
    settled = time.time() - 10
    os.utime(video, (settled, settled))
    source = make_source(CameraSection(name="cam", source=str(video)))
    source.open()
    got = []
    while (grabbed := source.read()) is not None:
        assert grabbed.image is not None, grabbed.error
        got.append(standardize_pixels(grabbed.image, "camera", None, "BGR").astype(int))
    source.close()
    assert len(got) == len(pngs) == 12
    for n, (frame, png) in enumerate(zip(got, pngs)):
        want = decode_image(np.fromfile(png, np.uint8), "reference", None, "BGR")
        assert np.abs(frame - want).max() <= 3, f"frame {n}: {np.abs(frame - want).max()} levels off its PNG"
