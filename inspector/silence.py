"""When a subscriber last heard anything, and whether its silence has been told (ZeroMQ and MQTT subscribers)."""

from __future__ import annotations

import threading
import time


class SilenceClock:
    """The part every subscriber's silence shares: ``silence_s`` seconds without a message are told once, its end
    once. ``where`` names the subscription in the lines (an endpoint or a URL). Times are ``time.monotonic()``
    seconds; ``silence_s`` 0: never told. Thread-safe where a network thread reports arrivals (paho)."""

    def __init__(self, where: str, silence_s: float) -> None:
        self.where, self.silence_s = where, silence_s
        self._lock = threading.Lock()
        self.heard_at = time.monotonic()  # the last message, the start, or a connection after a silence told
        self.told = False  # a silence told, its end not yet

    def due_in(self) -> float | None:
        """Seconds until a silence is to be told (≥ 0), or None (told already, or never told)."""
        if self.told or not self.silence_s:
            return None
        return max(0.0, self.heard_at + self.silence_s - time.monotonic())

    def heard(self) -> str | None:
        """A message came: the line ending a silence told, if one was."""
        with self._lock:
            now, told, self.told = time.monotonic(), self.told, False
            line = f"{self.where}: heard again after {now - self.heard_at:.0f} s of silence" if told else None
            self.heard_at = now
            return line
