"""Files every reading path refused (or misnamed) while a well-kept library reads them: tiled TIFFs as tifffile
writes them, plain (ASCII) PGM/PPM/PBM without a final newline, and an image whose decode itself runs out of
memory (said as "corrupt or unsupported format"). Real files through the real readers: ``read_image`` (predict,
calibrate, enroll), the dataset loader (train / evaluate), masks, and the daemon's folder camera."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.commands.predict import _batches
from inspector.data.datasets import Sample, load_batch
from inspector.data.images import read_image, read_mask
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import FolderSource
from inspector.backends.base import InputSpec

SIZE = (40, 50)  # not a multiple of the 16x16 tiles: the edge tiles are padded, as in a real camera's file


def _folder_camera(folder: Path) -> dict[str, np.ndarray]:
    """{file name: RGB pixels} the daemon's folder camera reads from ``folder``."""
    source = FolderSource(CameraSection(name="c", source=str(folder)))
    source.open()
    seen = {}
    while (grabbed := source.read()) is not None:
        assert grabbed.image is not None, grabbed.error
        seen[grabbed.meta["file"]] = grabbed.image[:, :, ::-1]
    source.close()
    return seen


def _every_path_reads(folder: Path, want: dict[str, np.ndarray]) -> None:
    """Each file of ``want`` ({name: uint8 (H, W, 3) RGB}) reads as it says on every path: read_image (predict's
    decoder, calibrate, enroll), the dataset loader at the file's own size, predict's batches and the folder
    camera."""
    paths = sorted(folder / name for name in want)
    h, w = next(iter(want.values())).shape[:2]
    loaded, kept, skipped = load_batch([Sample(p, 0, "good") for p in paths], h, w, "square")
    assert not skipped, skipped
    errors: list[str] = []
    spec = InputSpec(height=h, width=w, resize="square")
    by_predict = {p.name: img for chunk, batch in _batches(paths, spec, 8, errors) for p, img in zip(chunk, batch)}
    assert not errors, errors
    by_camera = _folder_camera(folder)
    for sample, img in zip(kept, loaded):
        name = sample.path.name
        assert np.array_equal(read_image(sample.path), want[name]), f"{name}: read_image"
        assert np.array_equal(img, want[name]), f"{name}: dataset loader"
        assert np.array_equal(by_predict[name], want[name]), f"{name}: predict"
        assert np.array_equal(by_camera[name], want[name]), f"{name}: folder camera"


def test_tiled_tiffs_written_by_tifffile_read_pixel_exact_on_every_path(tmp_path):
    """``tifffile.imwrite(path, a, tile=(16, 16))``: OpenCV 5.1's imdecode refused every uncompressed 8-bit tiled
    page ("Invalid tile byte count"), so training, predict and the folder camera said "corrupt or unsupported
    format" of a file Pillow and tifffile read. Each reads as tifffile reads it (16-bit: scaled by the rule)."""
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, SIZE, dtype=np.uint8)
    tile = {"tile": (16, 16)}
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, **tile)
    tifffile.imwrite(tmp_path / "grey.tif", grey, **tile)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), planarconfig="separate", photometric="rgb",
                     **tile)
    tifffile.imwrite(tmp_path / "rgba_planar.tif", np.moveaxis(np.dstack([rgb, grey]), -1, 0),
                     planarconfig="separate", photometric="rgb", extrasamples=["unassalpha"], **tile)
    tifffile.imwrite(tmp_path / "white0.tif", 255 - grey, photometric="miniswhite", **tile)
    tifffile.imwrite(tmp_path / "grey16.tif", grey.astype(np.uint16) * 257, **tile)  # OpenCV read these already
    want = {"rgb.tif": rgb, "planar.tif": rgb, "rgba_planar.tif": rgb}
    want.update({name: np.dstack([grey] * 3) for name in ("grey.tif", "white0.tif", "grey16.tif")})
    for name in ("rgb.tif", "grey.tif", "planar.tif"):  # the values are the file's, by an independent reader
        stored = tifffile.imread(tmp_path / name)
        assert np.array_equal(np.dstack([stored] * 3) if stored.ndim == 2 else np.moveaxis(stored, 0, -1)
                              if stored.shape[0] == 3 else stored, want[name]), name
    _every_path_reads(tmp_path, want)
    assert read_mask(tmp_path / "grey.tif").shape == SIZE


def test_plain_pnm_without_a_final_newline_reads_as_pillow_reads_it(tmp_path):
    """Netpbm's plain formats need no whitespace after the last sample (pgm(5)); OpenCV 5.1 refused such a file
    ("Unexpected end of input stream") on every path while Pillow read it."""
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (9, 10), dtype=np.uint8)
    rgb = rng.integers(0, 256, (9, 10, 3), dtype=np.uint8)
    bits = grey > 127
    (tmp_path / "plain.pgm").write_text(f"P2\n10 9\n255\n{' '.join(map(str, grey.ravel()))}")
    (tmp_path / "plain.ppm").write_text(f"P3\n# a comment\n10 9\n255\n{' '.join(map(str, rgb.ravel()))}")
    (tmp_path / "plain.pbm").write_text(f"P1\n10 9\n{' '.join(str(int(not b)) for b in bits.ravel())}")  # 1 black
    (tmp_path / "plain15.pgm").write_text(f"P2 10 9 15\n{' '.join(map(str, grey.ravel() // 17))}")
    want = {"plain.pgm": np.dstack([grey] * 3), "plain.ppm": rgb, "plain.pbm": np.dstack([bits * 255] * 3)
            .astype(np.uint8), "plain15.pgm": np.dstack([grey // 17 * 17] * 3)}
    for name in ("plain.pgm", "plain.ppm", "plain.pbm"):
        with Image.open(tmp_path / name) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), want[name]), f"{name}: Pillow reads otherwise"
    _every_path_reads(tmp_path, want)
    assert read_mask(tmp_path / "plain.pbm").tolist() == bits.tolist()


def _grey_png(width: int, height: int) -> bytes:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_image_memory import _grey_png as grey_png

    return grey_png(width, height)


_DECODE_IN_LITTLE_MEMORY = """
import resource, sys
from inspector.data.images import read_image, read_mask
from inspector.errors import DataError
size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + (96 << 20),) * 2)  # 96 MB more: a 12000x12000 page needs 144
for read in (read_image, read_mask):
    try:
        read(sys.argv[1])
    except DataError as exc:
        print(exc.reason, exc, sep=": ")
"""


def test_a_decode_that_runs_out_of_memory_is_said_as_memory_not_corruption(tmp_path):
    """OpenCV's imdecode raises cv2.error StsNoMem ("Failed to allocate 144000000 bytes") when the decoded page
    does not fit: it was swallowed and read "cannot decode image (corrupt or unsupported format)". A real
    allocation failure: a child process limited to 96 MB of address space more than it holds (RLIMIT_AS)."""
    image = tmp_path / "huge.png"
    image.write_bytes(_grey_png(12000, 12000))
    done = subprocess.run([sys.executable, "-c", _DECODE_IN_LITTLE_MEMORY, str(image)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    line = (f"memory: {image}: image does not fit in the memory available to decode it (asked for 0.14 GB more)")
    assert done.stdout.splitlines() == [line, line], done.stdout
