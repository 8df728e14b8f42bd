"""Image/mask reading and the resize policies (crop geometry, out= buffers, map_to_frame)."""

from __future__ import annotations

import os
import struct
import time

import cv2
import numpy as np
import pytest

from inspector.data.images import (RESIZE_POLICIES, crop_box, frame_size, list_images, map_to_frame, placement,
                                   read_image, read_mask, resize_image, resize_mask)
from inspector.errors import DataError


def _write(path, img):
    assert cv2.imwrite(str(path), img)
    return path


def test_read_real_mvtec_png(shared_data):
    img = read_image(shared_data / "mvtec_leather_subset" / "test" / "cut" / "000.png")
    assert img.dtype == np.uint8 and img.shape == (1024, 1024, 3)
    mask = read_mask(shared_data / "mvtec_leather_subset" / "ground_truth" / "cut" / "000_mask.png")
    assert mask.dtype == bool and mask.shape == (1024, 1024) and 0 < mask.sum() < mask.size


def test_read_real_grayscale_kolektor(kolektor):
    path = sorted((kolektor / "train" / "good").glob("*.png"))[0]
    img = read_image(path)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[1] == 500 and img.shape[2] == 3
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])


def test_colour_order_is_rgb(tmp_path):
    bgr = np.zeros((8, 9, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR
    img = read_image(_write(tmp_path / "red.png", bgr))
    assert img.shape == (8, 9, 3) and (img[..., 0] == 200).all() and (img[..., 2] == 0).all()


def test_grayscale_rgba_and_16bit(tmp_path):
    gray = np.arange(72, dtype=np.uint8).reshape(8, 9) * 3
    img = read_image(_write(tmp_path / "g.png", gray))
    assert img.shape == (8, 9, 3) and (img[..., 1] == gray).all()
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 1] = 77
    rgba[..., 3] = 10
    img = read_image(_write(tmp_path / "a.png", rgba))
    assert img.shape == (8, 9, 3) and (img[..., 1] == 77).all()
    deep = np.full((8, 9), 65535, np.uint16)
    deep[0, 0] = 0
    img = read_image(_write(tmp_path / "d.png", deep))
    assert img.dtype == np.uint8 and img[0, 0, 0] == 0 and img[1, 1, 0] == 255


def test_odd_path_name(tmp_path):
    path = _write(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    odd = tmp_path / "çà et là #1.png"
    path.rename(odd)
    assert read_image(odd).shape == (8, 8, 3)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.png: file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DataError, match="file not found"):
        read_mask(tmp_path / "nope_mask.png")


def _in_thread(fn, limit_s: float = 10.0):
    """``fn()``'s result or exception, or AssertionError if it is still running after ``limit_s``."""
    import threading

    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"still blocked after {limit_s} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_with_an_image_name_is_one_line_not_a_hang(tmp_path):
    """A FIFO named like an image (predict x.png, a folder camera's file replaced meanwhile): opening it for
    reading waited for a writer for ever. Now one line naming it; a pipe that has a writer is read whole."""
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"x\.png: is a FIFO \(named pipe\) with nothing written to it"):
        _in_thread(lambda: read_image(fifo))
    png = cv2.imencode(".png", np.full((8, 8, 3), 7, np.uint8))[1].tobytes()

    def feed():
        with open(fifo, "wb") as fh:  # blocks until the reader opens the FIFO
            fh.write(png)

    import threading

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    time.sleep(0.2)  # the writer is waiting in open(): the reader finds it there
    assert _in_thread(lambda: read_image(fifo)).shape == (8, 8, 3)
    writer.join(5)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_link_to_a_device_is_one_line_not_read_to_its_end(tmp_path):
    """``predict x.png`` with x.png a link to /dev/zero read it to its end: a MemoryError traceback once the memory
    was full (24 GiB here). A device's data never ends; it is refused unread, in one line naming it."""
    link = tmp_path / "x.png"
    link.symlink_to("/dev/zero")
    with pytest.raises(DataError) as caught:
        _in_thread(lambda: read_image(link))
    assert str(caught.value) == f"{link}: is a character device, not an image file"
    with pytest.raises(DataError, match=r"is a character device"):
        _in_thread(lambda: frame_size(link))


def test_a_socket_with_an_image_name_is_named_for_what_it_is(tmp_path):
    """open(2) of a socket fails with ENXIO: it was "cannot read file (No such device or address)"."""
    import socket

    path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(DataError) as caught:
            read_image(path)
    assert str(caught.value) == f"{path}: is a socket, not an image file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_listing_names_special_files_with_image_names_instead_of_dropping_them(tmp_path):
    """A FIFO, a socket or a link to a device named like an image was left out of a folder's listing without a
    word, so predict, training and the folder camera never said it was there. Listed, reading it says what it is
    (and never waits: the size of a FIFO is not asked of Pillow, whose open waits for a writer)."""
    import socket

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    os.mkfifo(tmp_path / "b.png")
    (tmp_path / "c.png").symlink_to("/dev/null")
    (tmp_path / "folder.png").mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "d.png"))
        assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.png", "c.png", "d.png"]
    with pytest.raises(DataError, match=r"b\.png: is a FIFO \(named pipe\) with nothing written to it"):
        _in_thread(lambda: frame_size(tmp_path / "b.png"))
    assert frame_size(tmp_path / "a.png") == (8, 8)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_and_garbage_files(tmp_path, ext):
    ok, buf = cv2.imencode(ext, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = buf.tobytes()
    (tmp_path / f"cut{ext}").write_bytes(data[: len(data) // 2])
    (tmp_path / f"empty{ext}").write_bytes(b"")
    (tmp_path / f"text{ext}").write_bytes(b"not an image at all")
    for name in ("cut", "text"):
        with pytest.raises(DataError, match=r"cannot decode image \(corrupt or unsupported format\)"):
            read_image(tmp_path / f"{name}{ext}")
    # an empty file is said to be empty, not corrupt (which sends a user looking for a codec)
    with pytest.raises(DataError, match=rf"^{tmp_path / f'empty{ext}'}: empty file \(0 bytes\), nothing to decode$"):
        read_image(tmp_path / f"empty{ext}")


def test_mask_values(tmp_path):
    m = np.zeros((4, 4), np.uint8)
    m[1, 1] = 255
    m[2, 2] = 100  # below half: not defect in a 0/255 mask
    assert read_mask(_write(tmp_path / "m.png", m)).sum() == 1
    ones = (m > 0).astype(np.uint8)  # 0/1 masks
    assert read_mask(_write(tmp_path / "o.png", ones)).sum() == 2
    assert read_mask(tmp_path / "m.png", shape=(8, 8, 3)).shape == (8, 8)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_label_map_of_class_indices_marks_every_class_as_defect(tmp_path, dtype):
    """A label map of class indices (1 scratch, 2 dent, 3 hole) read by the half-of-the-largest rule for lossy
    masks lost every class below the top one's half (1 of 3): its pixels counted as normal in the pixel
    metrics. Every non-zero index is defect; a 0/255 mask keeps the rule (a value below half is not)."""
    m = np.zeros((6, 6), dtype)
    m[0, :2], m[2, :3], m[4, :1] = 1, 2, 3
    assert read_mask(_write(tmp_path / "labels.png", m)).sum() == 6
    m[4, :1] = 16
    assert read_mask(_write(tmp_path / "sixteen.png", m)).sum() == 6


def test_crop_box_geometry():
    assert crop_box(1250, 500, 256, 256, "square") == (0, 0, 1250, 500)
    assert crop_box(1250, 500, 256, 256, "shorter_side_crop") == (375, 0, 500, 500)
    assert crop_box(300, 600, 256, 256, "shorter_side_crop") == (0, 150, 300, 300)
    assert crop_box(300, 600, 100, 200, "shorter_side_crop") == (0, 0, 300, 600)
    with pytest.raises(ValueError, match="unknown resize policy"):
        crop_box(10, 10, 5, 5, "stretch")
    with pytest.raises(ValueError, match="unknown resize policy"):
        placement(10, 10, 5, 5, "stretch")


@pytest.mark.parametrize("policy", RESIZE_POLICIES)
def test_resize_shapes_and_out_buffer(policy):
    img = np.random.default_rng(1).integers(0, 255, (120, 50, 3), dtype=np.uint8)
    out = np.empty((64, 48, 3), np.uint8)
    res = resize_image(img, 64, 48, policy, out=out)
    assert res is out
    assert np.array_equal(out, resize_image(img, 64, 48, policy))
    with pytest.raises(ValueError, match="out must be"):
        resize_image(img, 64, 48, policy, out=np.empty((64, 64, 3), np.uint8))
    small = resize_image(img[:20, :20], 64, 48, policy)  # enlarging
    assert small.shape == (64, 48, 3) and small.dtype == np.uint8


def test_image_and_mask_share_geometry():
    """A square drawn in the image and its mask land on the same model pixels under both policies."""
    img = np.zeros((400, 200, 3), np.uint8)
    mask = np.zeros((400, 200), bool)
    img[180:220, 80:120] = 255
    mask[180:220, 80:120] = True
    for policy in RESIZE_POLICIES:
        small = resize_image(img, 100, 100, policy)[..., 0] > 127
        small_mask = resize_mask(mask, 100, 100, policy)
        assert small_mask.dtype == bool
        assert (small != small_mask).sum() <= 0.1 * small_mask.sum()
    # shorter_side_crop keeps the centre 200x200 at 0.5 scale: the square spans 20 model pixels
    assert resize_mask(mask, 100, 100, "shorter_side_crop").sum() == 400


def test_map_to_frame_round_trip():
    yy, xx = np.mgrid[0:300, 0:120].astype(np.float32)
    smooth = np.sin(yy / 40) + np.cos(xx / 25) + 3
    for policy in RESIZE_POLICIES:
        box = crop_box(300, 120, 64, 64, policy)
        model = resize_image(smooth, 64, 64, policy, downscale="area")
        back = map_to_frame(model, 300, 120, policy)
        assert back.shape == (300, 120) and back.dtype == np.float32
        inside = back[box.top:box.top + box.height, box.left:box.left + box.width]
        ref = smooth[box.top:box.top + box.height, box.left:box.left + box.width]
        assert np.abs(inside - ref)[4:-4, 4:-4].max() < 0.1
        if policy == "letterbox":  # the frame keeps its aspect: 64 rows by 26 columns, the rest mirrored
            assert box == (0, 0, 300, 120) and placement(300, 120, 64, 64, policy) == (0, 19, 64, 26)
        if policy == "shorter_side_crop":
            assert box == (90, 0, 120, 120)
            assert (back[:90] == 0).all() and (back[210:] == 0).all()


def test_letterbox_keeps_the_aspect_and_mirrors_the_frame_into_the_margins():
    img = np.random.default_rng(2).integers(0, 255, (100, 300, 3), dtype=np.uint8)
    out = resize_image(img, 96, 96, "letterbox", downscale="area")
    place = placement(100, 300, 96, 96, "letterbox")
    assert place == (32, 0, 32, 96)  # 300 → 96 columns, so 100 → 32 rows: one scale on both axes
    inner = out[32:64]
    assert np.array_equal(inner, resize_image(img, 32, 96, "square", downscale="area"))
    assert np.array_equal(out[31], inner[1]) and np.array_equal(out[64], inner[-2])  # BORDER_REFLECT_101
    mask = np.zeros((100, 300), bool)
    mask[:10, :30] = True  # a defect at the top edge is mirrored into the margin with the image
    small = resize_mask(mask, 96, 96, "letterbox")
    assert small[32:35, :9].all() and small[30:32, :9].all() and not small[40:90].any()


def test_letterbox_of_a_frame_of_the_input_aspect_is_the_plain_resize():
    img = np.random.default_rng(3).integers(0, 255, (200, 100, 3), dtype=np.uint8)
    assert np.array_equal(resize_image(img, 64, 32, "letterbox"), resize_image(img, 64, 32, "square"))


@pytest.mark.parametrize("ext", ["jpg", "tif", "png"])
@pytest.mark.parametrize("orientation", [1, 6])
def test_frame_size_is_the_decoded_frame_size(tmp_path, ext, orientation):
    """frame_size reads headers, yet agrees with read_image on rotated files (Pillow turns a TIFF's size, not a JPEG's)."""
    from PIL import Image

    from inspector.data.images import frame_size

    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 80), dtype=np.uint8))
    path = tmp_path / f"a.{ext}"
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, tiffinfo={0x0112: orientation}) if ext == "tif" else im.save(path, exif=exif)
    assert frame_size(path) == read_image(path).shape[:2] == ((80, 40) if orientation == 6 else (40, 80))


def test_frame_size_of_a_huge_image_reads_the_header_quietly(tmp_path):
    """A 95 Mpixel scan: its size comes from the header, without Pillow's DecompressionBombWarning on stderr."""
    import struct
    import warnings
    import zlib

    from inspector.data.images import frame_size

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 10000, 9500, 8, 0, 0, 0, 0)  # width, height, 8-bit grey
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert frame_size(path) == (9500, 10000)


@pytest.mark.parametrize("colour", [0, 255])
def test_transparent_overlay_masks_are_read_from_their_alpha(tmp_path, colour):
    """An annotation tool's overlay: one colour everywhere (black or white), the defect opaque, the rest clear."""
    overlay = np.full((40, 60, 4), colour, np.uint8)
    overlay[..., 3] = 0
    overlay[10:20, 5:25, 3] = 255
    assert cv2.imwrite(str(tmp_path / "m.png"), overlay)
    mask = read_mask(tmp_path / "m.png")
    assert mask.sum() == 200 and mask[10:20, 5:25].all()
    opaque = overlay.copy()
    opaque[..., 3] = 255
    opaque[..., :3] = 0
    opaque[0:4, 0:4, :3] = 255  # constant alpha: the colour rule as before
    assert cv2.imwrite(str(tmp_path / "o.png"), opaque)
    assert read_mask(tmp_path / "o.png").sum() == 16




def _miniswhite_tiff(stored: np.ndarray) -> bytes:
    """An uncompressed little-endian one-strip grey TIFF with PhotometricInterpretation 0 (MinIsWhite) holding
    ``stored`` (H, W) as it is (uint8, uint16, int16 or float32), written here because Pillow inverts some
    depths on saving and not others."""
    h, w = stored.shape
    fmt = {"u": 1, "i": 2, "f": 3}[stored.dtype.kind]
    data = stored.astype(stored.dtype.newbyteorder("<")).tobytes()
    tags = [(256, w), (257, h), (258, 8 * stored.dtype.itemsize), (259, 1), (262, 0), (273, 0), (277, 1),
            (278, h), (279, len(data)), (339, fmt)]
    data_at = 8 + 2 + len(tags) * 12 + 4
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHII", tag, 4, 1, data_at if tag == 273 else value) for tag, value in tags)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4 + data


@pytest.mark.parametrize("dtype, white", [(np.uint8, 255), (np.uint16, 65535), (np.int16, 32767),
                                          (np.float32, 1.0)])
def test_a_miniswhite_tiff_mask_marks_its_defect_at_every_depth(tmp_path, dtype, white):
    """A MinIsWhite TIFF mask (0 = white: the defect stored as 0) marks the defect, as its image shows it white:
    masks skipped the inversion images get beyond 8 bits (OpenCV inverts only 8-bit pages), so a 16-bit, signed
    or float one marked every pixel but the defect."""
    defect = np.zeros((30, 40), bool)
    defect[3:10, 5:20] = True
    (tmp_path / "m.tif").write_bytes(_miniswhite_tiff(np.where(defect, 0, white).astype(dtype)))
    grey = read_image(tmp_path / "m.tif")[..., 0]
    assert (grey[defect] == 255).all() and (grey[~defect] == 0).all()
    assert np.array_equal(read_mask(tmp_path / "m.tif"), defect)

# EXIF Orientation → the Pillow transpose that turns the upright picture into the stored one (its inverse)
_STORED_AS = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_90",
              7: "TRANSVERSE", 8: "ROTATE_270"}


@pytest.mark.parametrize("mode, suffix", [("RGBA", ".png"), ("LA", ".png"), ("RGBA", ".tif"), ("LA", ".tif"),
                                          ("RGBA", ".webp")])  # WebP has no grey+alpha mode
@pytest.mark.parametrize("size", [(40, 40), (30, 50)])
def test_an_overlay_mask_is_read_upright_whatever_its_exif_orientation(tmp_path, mode, suffix, size):
    """An overlay mask (colour constant, the defect in its alpha) stored turned, with the EXIF orientation that
    turns it back, marks the pixels of the picture as displayed, as its image decodes: its alpha was read as
    stored, so a mirrored or half-turned overlay (any orientation when square) marked the wrong pixels, and a
    grey+alpha TIFF's alpha was dropped (the whole white picture read as defect)."""
    from PIL import Image

    upright = np.zeros(size, np.uint8)
    upright[2:10, 3:20] = 255  # off every axis of symmetry: a turn or a mirror shows
    colour = np.full(size, 255, np.uint8)  # white everywhere: the colour rule alone reads all of it as defect
    picture = Image.fromarray(np.dstack([colour] * (3 if mode == "RGBA" else 1) + [upright]), mode)
    for orientation in range(1, 9):
        stored = picture.transpose(getattr(Image.Transpose, _STORED_AS[orientation])) if orientation > 1 else picture
        path = tmp_path / f"o{orientation}{suffix}"
        exif = Image.Exif()
        exif[0x0112] = orientation
        if suffix == ".tif":
            stored.save(path, tiffinfo={0x0112: orientation})
        else:
            stored.save(path, exif=exif, **({"lossless": True} if suffix == ".webp" else {}))
        mask = read_mask(path)
        assert mask.shape == size and np.array_equal(mask, upright > 0), f"orientation {orientation}"


def test_an_overlay_mask_ignores_an_exif_chunk_after_its_pixels_as_its_colour_does(tmp_path):
    """OpenCV reads a PNG's eXIf chunk only before IDAT (the colour of such a file is not turned); Pillow's
    getexif reads one after it too: the alpha must not be turned where the colour is not."""
    import io
    import zlib

    from PIL import Image

    upright = np.zeros((40, 40), np.uint8)
    upright[2:10, 3:20] = 255
    png = io.BytesIO()
    Image.fromarray(np.dstack([np.zeros_like(upright)] * 3 + [upright]), "RGBA").save(png, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 3
    body = b"eXIf" + exif.tobytes()
    late = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    data = png.getvalue()
    iend = data.rindex(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(data[:iend] + late + data[iend:])
    assert read_image(tmp_path / "late.png").shape[:2] == (40, 40)
    assert np.array_equal(read_mask(tmp_path / "late.png"), upright > 0)


def _exif_app1(entry: bytes, big_endian: bool = False) -> bytes:
    """An EXIF block (TIFF header + IFD0 holding the one 12-byte ``entry``), as a JPEG APP1 segment carries it."""
    bo = ">" if big_endian else "<"
    return b"Exif\x00\x00" + (b"MM" if big_endian else b"II") + struct.pack(bo + "HIH", 42, 8, 1) + entry + bytes(4)


# Orientation tags as cameras and tools write them besides the textbook one (type SHORT, count 1). ``turned``:
# whether the value says "rotate 90° clockwise to display" (6), which the tag's type does not change, else the
# tag says nothing (a count of 0 holds no value)
MALFORMED_ORIENTATION = {
    "byte": (struct.pack("<HHI", 0x0112, 1, 1) + bytes([6, 0, 0, 0]), False, True),
    "long_big_endian": (struct.pack(">HHII", 0x0112, 4, 1, 6), True, True),
    "count_zero": (struct.pack("<HHIHH", 0x0112, 3, 0, 6, 0), False, False),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_ORIENTATION))
def test_a_malformed_exif_orientation_is_read_by_one_rule_on_every_path(tmp_path, case):
    """OpenCV's decoder and Pillow (frame_size, a mask's alpha) read a malformed Orientation tag differently:
    OpenCV turned a JPEG whose tag had a count of 0 while frame_size said it was upright (so its mask, of the
    decoded frame's shape, was 'of another aspect' and dropped), left one whose big-endian LONG tag said 6
    unturned while frame_size turned it, and an overlay mask's alpha was turned apart from its colour. One
    reader decides now, for the pixels, the frame size, the folder camera and a mask's alpha."""
    from PIL import Image

    from inspector.data.datasets import Sample, load_masks
    from inspector.data.images import frame_size
    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.sources import FolderSource

    entry, big_endian, turned = MALFORMED_ORIENTATION[case]
    exif = _exif_app1(entry, big_endian)
    upright = np.zeros((48, 64, 3), np.uint8)
    upright[4:14, 6:30] = (230, 40, 40)  # an asymmetric mark: a turn or a flip shows
    stored = np.ascontiguousarray(np.rot90(upright, 1)) if turned else upright
    photo = tmp_path / "cam" / "part.jpg"
    photo.parent.mkdir()
    Image.fromarray(stored).save(photo, quality=95, subsampling=0, exif=exif)
    image = read_image(photo)
    assert image.shape == upright.shape and np.abs(image.astype(int) - upright).mean() < 3, \
        "the value the tag holds turns the pixels, whatever its type; a tag without a value turns nothing"
    assert frame_size(photo) == image.shape[:2]
    source = FolderSource(CameraSection(name="cam", source=str(photo.parent)))
    source.open()
    assert np.array_equal(source.read().image[:, :, ::-1], image), "the folder camera decodes like predict"
    mask = _write(tmp_path / "part_mask.png", (image[:, :, 0] > 128).astype(np.uint8) * 255)
    assert load_masks([Sample(photo, 1, "cut", mask)], 32, 32)[0] is not None, "a mask of the frame's shape fits"
    overlay = np.dstack([np.zeros(stored.shape[:2] + (3,), np.uint8), (stored[:, :, 0] > 128).astype(np.uint8) * 255])
    Image.fromarray(overlay, "RGBA").save(tmp_path / "overlay.png", exif=exif)  # eXIf before the pixel data
    assert np.array_equal(read_mask(tmp_path / "overlay.png"), upright[:, :, 0] > 128), "alpha turned as colour"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_every_exif_orientation_turns_the_picture_as_pillow_displays_it(tmp_path, suffix):
    """The colour of a JPEG, PNG or WebP is decoded as stored and turned by the one orientation table
    (:data:`inspector.data.images._ORIENT`, OpenCV's flips and turns): each of the eight orientations gives the
    picture Pillow's ``ImageOps.exif_transpose`` displays, on read_image and the daemon's folder camera alike."""
    from PIL import Image, ImageOps

    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.sources import FolderSource

    upright = np.zeros((30, 50, 3), np.uint8)
    upright[2:10, 3:20] = (200, 60, 20)  # off every axis of symmetry: a turn or a mirror shows
    picture = Image.fromarray(upright)
    folder = tmp_path / "cam"
    folder.mkdir()
    for orientation in range(1, 9):
        stored = picture.transpose(getattr(Image.Transpose, _STORED_AS[orientation])) if orientation > 1 else picture
        exif = Image.Exif()
        exif[0x0112] = orientation
        lossless = {".jpg": {"quality": 100, "subsampling": 0}, ".webp": {"lossless": True}}.get(suffix, {})
        stored.save(folder / f"o{orientation}{suffix}", exif=exif, **lossless)
    camera = FolderSource(CameraSection(name="cam", source=str(folder)))
    camera.open()
    daemon = {g.meta["file"]: g.image[:, :, ::-1] for g in iter(camera.read, None)}
    for orientation in range(1, 9):
        path = folder / f"o{orientation}{suffix}"
        with Image.open(path) as im:
            shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        got = read_image(path)
        assert got.shape == upright.shape and np.abs(got.astype(int) - shown).max() <= 2, f"orientation {orientation}"
        assert np.array_equal(daemon[path.name], got), f"orientation {orientation}: the folder camera differs"


def test_float_samples_above_255_follow_bit_depth_or_are_told_clipped(tmp_path, caplog):
    """A 12-bit camera's float32 TIFF (0..4095, as a flat-field correction writes it) was read as 0..255 and
    clipped: 94 % of the picture white, without a word, and ``bit_depth: 12`` changed nothing. With the setting it
    reads like the camera's integer data; without, the clipping is told once per source. 0..1 data whose brightest
    pixel overshoots 1 (read as 0..255: near black) is told as well."""
    import io
    import logging

    import tifffile

    from inspector.data.images import decode_image

    eight = (np.arange(64 * 96).reshape(64, 96) % 256).astype(np.uint8)
    buf = io.BytesIO()
    tifffile.imwrite(buf, eight.astype(np.float32) * 4095 / 255)
    with caplog.at_level(logging.WARNING, "inspector.images"):
        assert np.array_equal(decode_image(buf.getvalue(), "f12.tif", bit_depth=12)[..., 0], eight)
        assert not caplog.records
        clipped = decode_image(buf.getvalue(), "f12.tif", warn_key="camera c")
        decode_image(buf.getvalue(), "f12.tif", warn_key="camera c")  # once per source
    assert (clipped == 255).mean() > 0.9
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 1 and "exceed 255" in told[0] and "clipped" in told[0] and "bit_depth" in told[0], told
    caplog.clear()
    buf = io.BytesIO()
    tifffile.imwrite(buf, eight.astype(np.float32) / 255 * 1.02)
    with caplog.at_level(logging.WARNING, "inspector.images"):
        decode_image(buf.getvalue(), "overshoot.tif")
    assert [r for r in caplog.records if "just above 1" in r.getMessage()], caplog.records


def test_a_multi_page_tiff_says_its_other_pages_are_not_inspected(tmp_path, caplog):
    """A multi-page TIFF (a line camera's stack) is read as its first page, by rule; the other pages were dropped
    without a word, on every path (train, evaluate, predict, the daemon's folder camera). One warning per folder
    now says how many pages were not inspected; a one-page TIFF says nothing."""
    import logging

    from PIL import Image

    from inspector.data.images import decode_image

    pages = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (10, 120, 240)]
    for name in ("a.tif", "b.tif"):
        pages[0].save(tmp_path / name, save_all=True, append_images=pages[1:])
    pages[1].save(tmp_path / "one.tif")
    caplog.set_level(logging.WARNING)
    first = decode_image((tmp_path / "a.tif").read_bytes(), str(tmp_path / "a.tif"))
    assert int(first.mean()) == 10  # the first page, as before
    decode_image((tmp_path / "b.tif").read_bytes(), str(tmp_path / "b.tif"))
    decode_image((tmp_path / "one.tif").read_bytes(), str(tmp_path / "one.tif"))
    told = [r.getMessage() for r in caplog.records if "pages" in r.getMessage()]
    assert told == [f"{tmp_path / 'a.tif'}: a TIFF of 3 pages; only its first page is read, the other 2 are not "
                    "inspected (told once per folder)"], told



def test_an_animated_png_or_webp_says_its_other_frames_are_not_inspected(tmp_path, caplog):
    """An animated PNG (APNG) or WebP (a camera's burst, a GIF converted) is read as its first frame, as a
    multi-page TIFF is its first page; its other frames were dropped without a word, where a TIFF's were told. A
    still PNG or WebP says nothing."""
    import logging

    from PIL import Image

    from inspector.data.images import decode_image

    frames = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (10, 120, 240, 60)]
    frames[0].save(tmp_path / "burst.png", save_all=True, append_images=frames[1:], duration=40)
    frames[0].save(tmp_path / "burst.webp", save_all=True, append_images=frames[1:3], duration=40, lossless=True)
    frames[1].save(tmp_path / "still.png")
    frames[1].save(tmp_path / "still.webp", lossless=True)
    caplog.set_level(logging.WARNING)
    for name in ("burst.png", "burst.webp", "still.png", "still.webp"):
        pixels = decode_image((tmp_path / name).read_bytes(), str(tmp_path / name), warn_key=name)
        assert int(pixels.mean()) == (10 if name.startswith("burst") else 120), name  # the first frame, as before
    told = [r.getMessage() for r in caplog.records if "frames" in r.getMessage()]
    assert told == [f"{tmp_path / 'burst.png'}: an animated PNG of 4 frames; only its first frame is read, the other 3 "
                    "are not inspected (told once per source)",
                    f"{tmp_path / 'burst.webp'}: an animated WebP of 3 frames; only its first frame is read, the "
                    "other 2 are not inspected (told once per source)"], told

def test_an_overlay_predict_wrote_is_never_scored_as_a_part(tmp_path):
    """'inspector predict … --out data/x/test/good' put its overlays (heat maps painted over pictures) among the test
    images, and evaluate scored each as one more good part (brick: 101 images, AUROC 0.895 → 0.874). The one decoder
    refuses a PNG carrying predict's tag on every path; a data set load skips it with its counted warning."""
    from inspector.data.datasets import Sample, load_batch
    from inspector.data.images import ImageRejected, decode_image
    from inspector.visual import PREDICT_OVERLAY_TAG, encode_png, tag_png

    picture = np.full((40, 40, 3), 90, np.uint8)
    (tmp_path / "part.png").write_bytes(encode_png(picture))
    (tmp_path / "overlay.png").write_bytes(tag_png(encode_png(picture), PREDICT_OVERLAY_TAG))
    with pytest.raises(ImageRejected, match="overlay.png: an overlay written by 'inspector predict'") as info:
        decode_image((tmp_path / "overlay.png").read_bytes(), str(tmp_path / "overlay.png"))
    assert info.value.reason == "overlay"
    samples = [Sample(tmp_path / n, 0, "good") for n in ("part.png", "overlay.png")]
    _, kept, skipped = load_batch(samples, 32, 32)
    assert [s.path.name for s in kept] == ["part.png"] and [s.path.name for s, _ in skipped] == ["overlay.png"]
