"""A dependency-free progress bar: live on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Shows epoch, step, loss and ETA. ``total_steps`` counts all steps of all epochs.

    ``eta_is_bound``: the step count is a cap (early stopping may end sooner), so
    the ETA is shown as an upper bound ("eta ≤ …").
    """

    def __init__(self, total_steps: int, label: str = "train", stream=None,
                 budget_s: float | None = None, eta_is_bound: bool = False) -> None:
        self.total = max(total_steps, 1)
        self.budget_s = budget_s  # a time budget caps the ETA
        self.eta_prefix = "≤ " if eta_is_bound else ""
        self.label = label
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.done = 0

    def step(self, epoch: int, epochs: int | str, loss: float) -> None:
        self.done += 1
        if self.live:
            self.stream.write("\r" + self._line(epoch, epochs, f"loss {loss:.4f}") + "\x1b[K")
            self.stream.flush()

    def epoch_end(self, epoch: int, epochs: int | str, text: str) -> None:
        line = self._line(epoch, epochs, text)
        self.stream.write(("\r" + line + "\x1b[K\n") if self.live else line + "\n")
        self.stream.flush()

    def _line(self, epoch: int, epochs: int | str, text: str) -> str:
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        if self.budget_s is not None:
            eta = min(eta, self.budget_s - elapsed)
        width = 24
        filled = int(width * self.done / self.total)
        bar = "█" * filled + "·" * (width - filled)
        return (f"{self.label} epoch {epoch}/{epochs} |{bar}| {text} "
                f"elapsed {format_duration(elapsed)} eta {self.eta_prefix}{format_duration(eta)}")
