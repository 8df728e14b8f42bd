"""File-system faults a test can put on a real folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable


def read_only_folder(folder: Path) -> Callable[[], None] | None:
    """Make ``folder`` read-only for this process: nothing can be created, renamed or deleted in it (a 0o555
    mode; for root, who ignores modes, the immutable attribute). Returns the undo, or None where neither is
    possible here (e.g. ``chattr`` missing or the file system without the attribute)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        return None
    return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)
