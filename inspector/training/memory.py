"""Whether the training images fit in memory, said in one line before they are decoded.

Training decodes every good image once into uint8 (N, H, W, 3) arrays and keeps them (training/loop.py
``load_training_images``): the decoded set, then its train and validation copies. A set too large for the
machine was killed by the kernel for memory with no message (``model.image_size: [8192, 8192]`` on ten
images: 1.9 GiB per copy); within the schema's sizes a large data set can still do it.
"""

from __future__ import annotations

from inspector.errors import DataError

COPIES = 2  # the decoded set and its train/validation copies, alive together while they are split
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


def require_image_memory(n_images: int, height: int, width: int, where: str) -> None:
    """DataError naming ``where`` when ``n_images`` decoded at ``height``×``width`` would not fit in the memory
    available now; nothing when it fits or the memory is not known."""
    need = COPIES * n_images * height * width * 3
    available = available_memory_bytes()
    if available is not None and need > available:
        raise DataError(f"{where}: {n_images} training image(s) at {height}x{width} need about "
                        f"{need / _GIB:.1f} GiB of memory, {available / _GIB:.1f} GiB is available: lower "
                        f"model.image_size or data.input_pixels, or train on fewer images")
