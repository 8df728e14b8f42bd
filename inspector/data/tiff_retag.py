"""TIFF layouts OpenCV's reader gets wrong, read by OpenCV all the same: through a rewritten first IFD.

Measured with OpenCV 5.0 (tests/data/test_pixel_layouts.py, tests/data/test_format_corpus.py):

* **separate planes** (PlanarConfiguration 2: all red samples, then all green …; scientific and
  machine-vision software writes them): 16-bit and float32 pages came out with their planes wrongly interleaved
  (a 16-bit RGB pixel 11822/13878/10280 came out 33153/32125/31097) and 8-bit ones not at all;
* **float16** samples (SampleFormat 3, 16 bits: HDR and ML tools' half floats): refused ("cannot decode").

The strips or tiles themselves are fine — only the way OpenCV lays them out is wrong — so they are not
decoded here: a new first IFD is appended to a copy of the file, pointing at the same strips, and OpenCV
(libtiff: every compression, predictor, byte order, strip and tile layout it knows) decodes that. Each plane of
a planar page becomes a one-sample page of its own (its strips, SamplesPerPixel 1, MinIsBlack for RGB's
planes), decoded and stacked as OpenCV's BGR; float16 samples are read as the uint16 words they are
(SampleFormat 1) and viewed as float16. The Orientation tag is kept, so each plane is turned as the page is.
Classic TIFF only (BigTIFF planar / float16 pages are refused in one line); a plane OpenCV cannot decode is
refused in one line naming the file, as any undecodable image.

* **32- and 64-bit samples with alpha** (float32 / float64 / uint32 / int32 grey + alpha or RGBA, interleaved:
  what HDR and scientific tools write): refused ("cannot decode"), while the same samples without alpha are
  read; OpenCV 5.1 reads such samples 1 or 3 to a pixel only (measured: 2 and 4 refused whatever the sample
  format). The page is read as a grey page ``samples`` times as wide (the same strips or tiles: interleaved
  samples are stored pixel by pixel, row by row, so a row of W pixels of C samples is a row of W·C samples), split
  back into its pixels here and its alpha dropped, as the decoder drops an 8- or 16-bit RGBA page's. Its
  Orientation is applied after the split (a turn of the wide page would mix samples across pixels), and so is
  a horizontal Predictor (2: each sample differenced against the same sample a pixel before, which the wide
  page would take as the sample before).
* **the floating-point Predictor (3)** (what tifffile writes for float data with ``predictor=True``) on float16
  pages, planar or not, and on float pages with alpha: refused ("corrupt or unsupported format"; libtiff takes
  no such predictor on the uint16 words float16 is read as). The strips are read as bytes and the predictor is
  undone here (:func:`_float_samples`), the Orientation applied after.
* **16-bit grey + alpha** (uint16 / float16): OpenCV cut uint16 to 8 bits (12-bit data with ``bit_depth: 12``
  came out 16x too dark) and read float16's words as 8-bit levels (garbage): read as above.
* **RGB with two or more extra samples** (RGB + near infrared + alpha), which OpenCV refused at every depth ("corrupt
  or unsupported format"): read as above, the extra samples dropped as alpha is.
* **CMYK** (PhotometricInterpretation 5, four inks) wider than 8 bits, with extra samples, or in separate planes:
  OpenCV reads only interleaved 8-bit CMYK (by libtiff's RGBA reader, ``R = (255 - C)(255 - K) / 255``); a 16-bit
  page, one with alpha and 8- or 16-bit planes were refused. They are read as above (wide page or planes) and
  converted by that same rule at their own depth (:func:`cmyk_to_bgr`), so one picture gives the same pixels as an
  8-bit, 16-bit, planar or interleaved CMYK file.
"""

from __future__ import annotations

import struct
from typing import Callable

import numpy as np

_INT_TYPES = {1: "B", 3: "H", 4: "I"}  # BYTE, SHORT, LONG: the types of the tags read here
# tags copied to a plane's IFD (TIFF 6.0): size, bits, compression, photometric, fill order, strips, samples,
# rows per strip, orientation, predictor, tiles, sample format (JPEGTables for new-style JPEG strips)
_KEPT = (256, 257, 258, 259, 262, 266, 273, 274, 277, 278, 279, 284, 317, 322, 323, 324, 325, 339, 347)
_GREY_OR_RGB = (0, 1, 2)  # photometric interpretations whose planes are grey samples each
_CMYK = 5  # PhotometricInterpretation Separated (TIFF 6.0 Section 16), read as CMYK: its default InkSet 1
_PLANES_READ = (*_GREY_OR_RGB, _CMYK)


class RetagError(ValueError):
    """The first IFD cannot be read or rewritten (damaged, BigTIFF); the message says what."""


def _ifd(buf: bytes) -> tuple[str, dict[int, tuple[int, int, tuple[int, ...]]]]:
    """Byte order (``<`` / ``>``) and the first IFD's integer tags {tag: (type, count, values)}; other types
    are kept as (type, count, value offset or inline bytes as one int). Raises :class:`RetagError`."""
    if buf[:4] not in (b"II*\x00", b"MM\x00*"):
        raise RetagError("not a classic TIFF (BigTIFF pages of this layout are not read)")
    order = "<" if buf[:2] == b"II" else ">"
    at = struct.unpack_from(order + "I", buf, 4)[0]
    if at + 2 > len(buf):
        raise RetagError("first IFD past the end of the file")
    (count,) = struct.unpack_from(order + "H", buf, at)
    if at + 2 + 12 * count > len(buf):
        raise RetagError("first IFD cut short")
    tags = {}
    for n in range(count):
        tag, kind, number = struct.unpack_from(order + "HHI", buf, at + 2 + 12 * n)
        code = _INT_TYPES.get(kind)
        if code is None:
            continue
        size = struct.calcsize(code) * number
        where = at + 2 + 12 * n + 8 if size <= 4 else struct.unpack_from(order + "I", buf, at + 2 + 12 * n + 8)[0]
        if where + size > len(buf) or number > 1 << 20:
            raise RetagError(f"tag {tag} past the end of the file")
        tags[tag] = (kind, number, struct.unpack_from(f"{order}{number}{code}", buf, where))
    return order, tags


def first_ifd(buf: bytes) -> tuple[str, dict[int, tuple[int, int, tuple[int, ...]]]]:
    """Byte order and the first IFD's integer tags {tag: (type, count, values)} of a classic TIFF, as the readers
    here see them. Raises :class:`RetagError` (a BigTIFF, a damaged IFD)."""
    return _ifd(buf)


def _one(tags: dict, tag: int, default: int | None = None) -> int:
    if tag in tags and tags[tag][2]:
        return tags[tag][2][0]
    if default is None:
        raise RetagError(f"tag {tag} missing")
    return default


def _with_ifd(buf: bytes, order: str, entries: dict[int, tuple[int, tuple[int, ...]]]) -> bytes:
    """``buf`` with a new first IFD of ``entries`` {tag: (type, values)} appended (word-aligned); the old IFDs
    stay in the file, unreferenced. Values over 4 bytes go after the IFD."""
    at = len(buf) + (len(buf) & 1)
    extra_at = at + 2 + 12 * len(entries) + 4
    ifd, extra = [struct.pack(order + "H", len(entries))], []
    for tag in sorted(entries):
        kind, values = entries[tag]
        data = struct.pack(f"{order}{len(values)}{_INT_TYPES[kind]}", *values)
        if len(data) <= 4:
            ifd.append(struct.pack(order + "HHI", tag, kind, len(values)) + data.ljust(4, b"\x00"))
        else:
            ifd.append(struct.pack(order + "HHII", tag, kind, len(values), extra_at + sum(map(len, extra))))
            extra.append(data + b"\x00" * (len(data) & 1))
    head = buf[:4] + struct.pack(order + "I", at)
    return head + buf[8:] + b"\x00" * (at - len(buf)) + b"".join(ifd) + b"\x00" * 4 + b"".join(extra)


def _plane_entries(tags: dict, plane: int, planes: int, float16: bool) -> dict[int, tuple[int, tuple[int, ...]]]:
    """The IFD entries of one sample plane of a page (``planes`` 1: the page itself, interleaved)."""
    entries = {tag: (tags[tag][0], tags[tag][2]) for tag in _KEPT if tag in tags}
    tiled = 324 in tags
    offsets, counts = (324, 325) if tiled else (273, 279)
    if offsets not in tags or counts not in tags:
        raise RetagError("no strip or tile offsets")
    per_plane = len(tags[offsets][2]) // planes
    if per_plane == 0 or len(tags[counts][2]) < per_plane * planes:
        raise RetagError(f"{len(tags[offsets][2])} strips or tiles for {planes} planes")
    for tag in (offsets, counts):
        entries[tag] = (tags[tag][0], tags[tag][2][plane * per_plane:(plane + 1) * per_plane])
    if planes > 1:
        bits = tags[258][2] if 258 in tags else (1,)
        entries[258] = (3, (bits[min(plane, len(bits) - 1)],))
        entries[277], entries[284] = (3, (1,)), (3, (1,))
        entries[262] = (3, (_one(tags, 262) if _one(tags, 262) in (0, 1) else 1,))
        if 339 in tags:
            formats = tags[339][2]
            entries[339] = (3, (formats[min(plane, len(formats) - 1)],))
    if float16:
        entries[339] = (3, (1,) * len(entries[339][1]) if 339 in entries else (1,))
    return entries


def needs_retag(planar: int, samples: int, bits: int | None, sample_format: int) -> bool:
    """Whether a page of these tags is read here: separate planes of more than one sample, or float16."""
    return (planar == 2 and samples > 1) or (sample_format == 3 and bits == 16)


def decode_retagged(buf: bytes, where: str, imdecode: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A planar or float16 TIFF's first page → OpenCV's layout of its samples: grey (H, W) or BGR (H, W, 3), the
    stored depth (float16 as float32), orientation applied; extra samples (alpha) dropped, as the decoder drops
    them. ``imdecode``: the decoder's OpenCV call (raises its one-line error). Raises :class:`RetagError`."""
    try:
        order, tags = _ifd(buf)
        planar, samples = _one(tags, 284, 1), _one(tags, 277, 1)
        photometric = _one(tags, 262)
        float16 = _one(tags, 339, 1) == 3 and _one(tags, 258, 1) == 16
        planes = samples if planar == 2 and samples > 1 else 1
        if planes > 1 and photometric not in _PLANES_READ:
            raise RetagError(f"separate planes of photometric interpretation {photometric} are not read")
        used = {2: 3, _CMYK: 4}.get(photometric, 1) if planes > 1 else 1
        if _float_predicted(tags):  # read as bytes and undone here, then turned (the bytes' page must not be)
            decoded = [_upright(_opencv_layout(_float_samples(buf, order, tags, _plane_entries(tags, k, planes, True),
                                                              1 if planes > 1 else samples, imdecode)),
                                _one(tags, 274, 1)) for k in range(used)]
        else:
            decoded = [imdecode(np.frombuffer(_with_ifd(buf, order, _plane_entries(tags, k, planes, float16)),
                                              np.uint8)) for k in range(used)]
    except (struct.error, IndexError) as exc:
        raise RetagError(f"damaged first IFD ({exc})") from None
    if float16:
        decoded = [d.view(np.float16).astype(np.float32) if d.dtype == np.uint16 else d for d in decoded]
    if planes == 1:
        return decoded[0]
    if any(d.shape != decoded[0].shape or d.ndim != 2 for d in decoded):
        raise RetagError("its planes decode to different sizes")
    if used == 4:
        return cmyk_to_bgr(np.dstack(decoded))
    return decoded[0] if used == 1 else np.dstack(decoded[::-1])  # R, G, B planes → OpenCV's BGR


PALETTE = 3  # PhotometricInterpretation Palette (TIFF 6.0 Section 5): each sample indexes the ColorMap (tag 320)


def decode_palette(buf: bytes, imdecode: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A palette TIFF's first page of 16-bit indices → BGR uint8 (H, W, 3), orientation applied.

    TIFF 6.0 Section 5 allows Baseline palette pages of 4 or 8 bits, and defines the ColorMap for any
    BitsPerSample (``3 * 2**BitsPerSample`` SHORT values: all reds, all greens, all blues; 65535 full intensity);
    a 16-bit palette page is a legal, non-Baseline TIFF (GDAL writes one for 16-bit classes with a colour table).
    OpenCV's libtiff RGBA reader takes palettes up to 8 bits only and refused it as "corrupt". Its indices are
    read here as 16-bit grey samples (the same strips, PhotometricInterpretation MinIsBlack, the Orientation
    kept) and looked up in the ColorMap by libtiff's rule for the 8-bit pages OpenCV reads (tif_getimage.c: a
    map whose values are all below 256 is an old 8-bit one, taken as is; else each value's high byte), so one
    picture gives the same pixels at 8 or 16 bits a sample. ``imdecode``: the decoder's OpenCV call.
    Raises :class:`RetagError` (a ColorMap missing or of the wrong length, a damaged IFD)."""
    try:
        order, tags = _ifd(buf)
        bits = _one(tags, 258)
        colours = tags[320][2] if 320 in tags else ()
        if len(colours) != 3 << bits:
            raise RetagError(f"its ColorMap holds {len(colours)} values, not 3 x 2**{bits} = {3 << bits}")
        entries = _plane_entries(tags, 0, 1, False)
        entries[262] = (3, (1,))  # the indices, read as grey samples
        indices = imdecode(np.frombuffer(_with_ifd(buf, order, entries), np.uint8))
    except (struct.error, IndexError) as exc:
        raise RetagError(f"damaged first IFD ({exc})") from None
    if indices.ndim != 2 or indices.dtype != np.uint16:
        raise RetagError(f"its indices decoded to {indices.shape} {indices.dtype}, not 16-bit samples")
    return palette_colours(indices, np.asarray(colours, np.uint16).reshape(3, -1))


def palette_colours(indices: np.ndarray, colormap: np.ndarray) -> np.ndarray:
    """``indices`` (H, W) looked up in a TIFF ColorMap (3, N) uint16 (red, green, blue rows) → BGR uint8 (H, W, 3),
    by libtiff's rule (:func:`decode_palette`)."""
    table = colormap if int(colormap.max(initial=0)) < 256 else colormap >> 8
    return table[::-1].T.astype(np.uint8)[indices]


def _float_predicted(tags: dict) -> bool:
    """Whether a page's float samples are stored with the floating-point Predictor (3) on compressed strips."""
    return _one(tags, 339, 1) == 3 and _one(tags, 317, 1) == 3 and _one(tags, 259, 1) != 1


def _float_samples(buf: bytes, order: str, tags: dict, entries: dict, samples: int,
                   imdecode: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The float samples (H, W, ``samples``) of a page (or one plane: ``entries``) stored with the floating-point
    Predictor (3), as stored (not turned), float16 as float32. OpenCV reads float16 samples not at all, and the
    uint16 words they are read as here elsewhere take no floating-point predictor (libtiff refuses it): the
    strips are read as 8-bit bytes, a page ``samples * bytes`` times as wide, and the predictor undone here as
    libtiff does (tif_predictor.c fpAcc; Adobe Photoshop TIFF Technical Note 3): each row's (or tile row's)
    bytes summed with a stride of ``samples``, then its byte planes, most significant first, put back together
    into words. Raises :class:`RetagError`."""
    nbytes, width = _one(tags, 258) // 8, _one(tags, 256)
    span = _one(tags, 322) if 322 in tags else width
    if nbytes not in (2, 4, 8) or span <= 0 or width % span:
        raise RetagError(f"{8 * nbytes}-bit samples or tiles past the page's edge with the floating-point Predictor")
    wide = dict(entries)
    wide.pop(274, None)  # the bytes' page must not be turned: the caller turns the samples
    wide[256] = (4, (width * samples * nbytes,))
    if 322 in tags:
        wide[322] = (4, (span * samples * nbytes,))
    wide[258], wide[277], wide[262], wide[339], wide[317] = (3, (8,)), (3, (1,)), (3, (1,)), (3, (1,)), (3, (1,))
    raw = imdecode(np.frombuffer(_with_ifd(buf, order, wide), np.uint8))
    if raw.ndim != 2 or raw.dtype != np.uint8 or raw.shape[1] != width * samples * nbytes:
        raise RetagError(f"its bytes decoded to {raw.shape} {raw.dtype}, not {width * samples * nbytes} a row")
    rows, runs = raw.shape[0], width // span
    summed = np.cumsum(raw.reshape(rows, runs, span * nbytes, samples), axis=2, dtype=np.uint8)
    planes = summed.reshape(rows, runs, nbytes, span * samples).transpose(0, 1, 3, 2)
    words = np.ascontiguousarray(planes).view(f">f{nbytes}").reshape(rows, width, samples)
    return words.astype(np.float64 if nbytes == 8 else np.float32)


def _opencv_layout(samples: np.ndarray) -> np.ndarray:
    """(H, W, C) samples as OpenCV lays them out: grey (H, W), colour BGR (alpha dropped, as the decoder drops it)."""
    return samples[:, :, 0] if samples.shape[2] < 3 else np.ascontiguousarray(samples[:, :, 2::-1])


# TIFF Orientation (274) → the array displayed upright (TIFF 6.0: 2 mirrored, 3 turned half, 4 flipped, 5-8 with
# rows and columns swapped), for samples read here unturned
_TURNS = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
          6: lambda a: np.rot90(a, -1), 7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}


def _upright(samples: np.ndarray, orientation: int) -> np.ndarray:
    turn = _TURNS.get(orientation)
    return np.ascontiguousarray(turn(samples)) if turn else samples


def needs_widening(planar: int, samples: int, bits: int | None, photometric: int | None) -> bool:
    """Whether a page of these tags is read as one wide grey page (:func:`decode_widened`): interleaved samples
    with extra ones (alpha) that OpenCV refuses (32 or 64 bits) or cuts to 8 bits (16-bit grey + alpha)."""
    colour = 3 if photometric == 2 else 1
    if photometric == _CMYK:  # OpenCV reads 8-bit CMYK without extra samples only
        return planar != 2 and samples >= 4 and (samples > 4 or (bits or 8) > 8)
    # RGB with more than one extra sample (RGB + near infrared + alpha: a multispectral camera's) OpenCV refuses
    # at every depth (its reader takes 1, 3 or 4 channels)
    return (planar != 2 and photometric in _GREY_OR_RGB and samples > colour
            and (bits in (32, 64) or (bits == 16 and colour == 1) or (colour == 3 and samples > 4)))


def cmyk_to_bgr(cmyk: np.ndarray) -> np.ndarray:
    """CMYK samples (H, W, 4), unsigned integers of any width → BGR (H, W, 3) of the same dtype by the rule OpenCV's
    8-bit CMYK TIFFs are read by (libtiff tif_getimage.c, putRGBcontig8bitCMYKtile: ``R = (W - C)(W - K) / W``,
    rounded down), ``W`` the dtype's white: 65535 for 16-bit samples. Raises :class:`RetagError` for other
    sample types (float or signed CMYK, which no reader here converts)."""
    if cmyk.dtype.kind != "u":
        raise RetagError(f"CMYK samples of type {cmyk.dtype} are not read")
    white = int(np.iinfo(cmyk.dtype).max)
    wide = cmyk.astype(np.uint64)
    ink = white - wide[..., 3]
    return np.dstack([(white - wide[..., i]) * ink // white for i in (2, 1, 0)]).astype(cmyk.dtype)


def _undifferenced(diffs: np.ndarray, span: int) -> np.ndarray:
    """Predictor 2's differences (H, W, C) → the samples: each row's running sum per sample, modulo its word
    (TIFF 6.0 Section 14; libtiff differences float samples as the words they are), restarting every ``span``
    pixels (a tile's rows are differenced alone)."""
    words = diffs.view(f"u{diffs.dtype.itemsize}")
    out = np.empty_like(words)
    for x in range(0, words.shape[1], span):
        np.cumsum(words[:, x:x + span], axis=1, dtype=words.dtype, out=out[:, x:x + span])
    return out.view(diffs.dtype)


def decode_widened(buf: bytes, imdecode: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, int]:
    """An interleaved page with extra samples (:func:`needs_widening`) → (its samples as OpenCV lays out those
    of its sibling without alpha: grey (H, W) or BGR (H, W, 3), the stored dtype (float16 as float32), extra
    samples dropped; its Orientation, 1..8, still to be applied). ``imdecode``: the decoder's OpenCV call
    (raises its one-line error). Raises :class:`RetagError` (a floating-point Predictor, a damaged IFD)."""
    try:
        order, tags = _ifd(buf)
        samples, photometric, predictor = _one(tags, 277), _one(tags, 262), _one(tags, 317, 1)
        predictor = predictor if _one(tags, 259, 1) != 1 else 1  # libtiff ignores it on uncompressed strips
        float16 = _one(tags, 339, 1) == 3 and _one(tags, 258) == 16
        if predictor == 3 and _float_predicted(tags):
            pixels = _float_samples(buf, order, tags, _plane_entries(tags, 0, 1, True), samples, imdecode)
            kept = pixels[:, :, 2::-1] if photometric == 2 else pixels[:, :, 0]
            return np.ascontiguousarray(kept), _one(tags, 274, 1)
        if predictor not in (1, 2):
            raise RetagError(f"Predictor {predictor} with {samples} samples a pixel is not read")
        entries = _plane_entries(tags, 0, 1, float16)
        entries.pop(274, None)  # applied to the pixels once split (the module docstring)
        for tag in (256, 322):  # ImageWidth, TileWidth: in samples now
            if tag in tags:
                entries[tag] = (4, (_one(tags, tag) * samples,))
        entries[258], entries[277], entries[262] = (3, (_one(tags, 258),)), (3, (1,)), (3, (1,))
        entries[339] = (3, (1 if float16 else _one(tags, 339, 1),))
        entries[317] = (3, (1,))  # the differences as stored, summed below by pixel (not by sample)
        wide = imdecode(np.frombuffer(_with_ifd(buf, order, entries), np.uint8))
        span = max(1, _one(tags, 322) if 322 in tags else _one(tags, 256))
    except (struct.error, IndexError) as exc:
        raise RetagError(f"damaged first IFD ({exc})") from None
    if wide.ndim != 2 or wide.shape[1] % samples or (float16 and wide.dtype != np.uint16):
        raise RetagError(f"its wide page decoded to {wide.shape} {wide.dtype}, not whole pixels of {samples} "
                         f"samples")
    pixels = wide.reshape(wide.shape[0], -1, samples)
    pixels = _undifferenced(pixels, span) if predictor == 2 else pixels
    pixels = pixels.view(np.float16).astype(np.float32) if float16 else pixels
    if photometric == _CMYK:
        return cmyk_to_bgr(pixels[:, :, :4]), _one(tags, 274, 1)
    kept = pixels[:, :, 2::-1] if photometric == 2 else pixels[:, :, 0]  # R, G, B → OpenCV's BGR; grey
    return np.ascontiguousarray(kept), _one(tags, 274, 1)
