"""A TIFF's picture is its first page that is no reduced-resolution preview and no transparency mask (TIFF 6.0
NewSubfileType bits 0 and 2, OldSubfileType 2), on every path; previews and masks are not "pages not inspected".

Before: a file with its preview written first (a scanner's, a microscope's or a camera vendor tool's habit) was
read as the 6x8 preview, scored in place of the 24x32 picture, and the picture itself was told "not inspected";
a picture followed by its own preview was told as two pages with one left out."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest

from inspector.data.images import decode_image, frame_size, read_image
from inspector.data.tiff_pages import picture_first, picture_pages
from tests.data.test_pixel_layouts import RGB, _every_path

tifffile = pytest.importorskip("tifffile")  # writes NewSubfileType; not a dependency of the project


def _tiff(pages: list[tuple[np.ndarray, int]], bigtiff: bool = False, byteorder: str = "<") -> bytes:
    """A TIFF of ``pages``: (RGB samples, NewSubfileType) each, in this order."""
    out = io.BytesIO()
    with tifffile.TiffWriter(out, bigtiff=bigtiff, byteorder=byteorder) as tif:
        for samples, kind in pages:
            tif.write(samples, photometric="rgb", subfiletype=kind)
    return out.getvalue()


PREVIEW = np.ascontiguousarray(RGB[::4, ::4])


@pytest.mark.parametrize("bigtiff,byteorder", [(False, "<"), (False, ">"), (True, "<")])
def test_a_preview_written_before_its_picture_is_not_the_picture_on_any_path(tmp_path, bigtiff, byteorder, caplog):
    path = tmp_path / "part.tif"
    path.write_bytes(_tiff([(PREVIEW, 1), (RGB, 0)], bigtiff, byteorder))
    with caplog.at_level(logging.WARNING):
        seen = _every_path(path)
    for path_name, got in seen.items():
        assert np.array_equal(got, RGB), path_name
    assert frame_size(path) == RGB.shape[:2]
    assert not [r for r in caplog.records if "pages" in r.getMessage()]  # a preview is no page left out


def test_previews_and_masks_are_not_pages_left_out_but_other_pictures_are(tmp_path, caplog):
    cases = {"picture then its preview": [(RGB, 0), (PREVIEW, 1)], "two previews first": [(PREVIEW, 1), (PREVIEW, 1),
                                                                                        (RGB, 0)],
             "preview, two pictures": [(PREVIEW, 1), (RGB, 0), (RGB[::-1].copy(), 0)]}
    counts = {name: picture_pages(_tiff(pages)) for name, pages in cases.items()}
    assert counts == {"picture then its preview": 1, "two previews first": 1, "preview, two pictures": 2}
    path = tmp_path / "stack.tif"
    path.write_bytes(_tiff(cases["preview, two pictures"]))
    with caplog.at_level(logging.WARNING):
        assert np.array_equal(read_image(path), RGB)
    told = [r.getMessage() for r in caplog.records if "pages" in r.getMessage()]
    assert told == [f"{path}: a TIFF of 2 pages; only its first page is read, the other 1 are not inspected (told "
                    f"once per folder)"], told


def test_a_file_of_previews_alone_or_a_plain_tiff_is_read_as_before():
    half = np.ascontiguousarray(RGB[::2, ::2])
    previews = _tiff([(half, 1), (half[::-1].copy(), 1)])
    assert picture_first(previews) is previews and picture_pages(previews) == 1
    assert np.array_equal(decode_image(previews, "p.tif"), half)  # its first page, as before
    plain = _tiff([(RGB, 0)])
    assert picture_first(plain) is plain and picture_pages(plain) == 1
