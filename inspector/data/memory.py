"""Whether a set of images fits in memory once decoded, said in one line before any is decoded.

A set too large for the machine was killed by the kernel for memory with no message (``model.image_size:
[8192, 8192]`` on ten images: 1.9 GiB per copy); within the schema's sizes a large data set can still do it.
What each command keeps per pixel of the model's input:

- training decodes every good image once into uint8 (N, H, W, 3) arrays and keeps them (training/loop.py
  ``load_training_images``): the decoded set, then its train and validation copies (:data:`TRAINING_BYTES`);
- evaluation keeps the test set decoded (3 bytes), its float32 maps twice while they are joined (8), and the masks
  (1) (:data:`EVALUATION_BYTES`);
- calibration decodes 64 images at a time but keeps every float32 map, twice while they are joined
  (:data:`CALIBRATION_BYTES`).
"""

from __future__ import annotations

from inspector.errors import DataError

COPIES = 2  # the decoded set and its train/validation copies, alive together while they are split
TRAINING_BYTES = COPIES * 3
EVALUATION_BYTES = 3 + 2 * 4 + 1
CALIBRATION_BYTES = 2 * 4
_GIB = 1 << 30


def available_memory_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """The kernel's estimate of memory a new allocation can get without swapping (MemAvailable), in bytes;
    None where it is not known (not Linux, an old kernel, an unreadable file)."""
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def require_image_memory(n_images: int, height: int, width: int, where: str, *, bytes_per_pixel: int = TRAINING_BYTES,
                         what: str = "training image(s)",
                         advice: str = "lower model.image_size or data.input_pixels, or train on fewer images") -> None:
    """DataError naming ``where`` when ``n_images`` at ``height``×``width`` (the model's input), at
    ``bytes_per_pixel`` each (:data:`TRAINING_BYTES`, :data:`EVALUATION_BYTES`, :data:`CALIBRATION_BYTES`), would
    not fit in the memory available now; nothing when they fit or the memory is not known."""
    need = bytes_per_pixel * n_images * height * width
    available = available_memory_bytes()
    if available is not None and need > available:
        raise DataError(f"{where}: {n_images} {what} at {height}x{width} need about {need / _GIB:.1f} GiB of "
                        f"memory, {available / _GIB:.1f} GiB is available: {advice}")
