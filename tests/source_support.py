"""Reading a camera the way the source tests share."""

from __future__ import annotations

import contextlib

from inspector.pipeline.source_base import SourceError
from inspector.pipeline.config import CameraSection
from inspector.pipeline.sources import make_source


def read_until_it_ends(camera: CameraSection) -> list:
    """Every Grabbed the source of ``camera`` gives, opened once and read until it ends (SourceError), closed."""
    source = make_source(camera)
    source.open()
    grabbed = []
    try:
        with contextlib.suppress(SourceError):
            while True:
                grabbed.append(source.read())
    finally:
        source.close()
    return grabbed
