"""Stopping a child program this process started and reads (the ``ffmpeg`` program: a live stream's decoder
and relay, a video file's verdict pass): one rule for every owner of one (:func:`stop`); and starting a relay told its
URL on stdin, not on its command line (:func:`start_told`)."""

from __future__ import annotations

import subprocess
import threading
from typing import Iterable

JOIN_S = 2.0  # how long to wait for each thread draining the program's pipes once it was killed


def stop(proc: subprocess.Popen, threads: Iterable[threading.Thread] = (), join_s: float = JOIN_S) -> None:
    """Kill ``proc`` and reap it (no zombie), wait up to ``join_s`` for each of ``threads`` (those reading or
    feeding its pipes: killed, the program closes its ends, so they meet an end or a broken pipe), then close
    every pipe of ours to it. Killed, not asked to end: a program reading a live stream may block in a read for
    as long as the sender is silent. Idempotent; never raises for a program already gone or a pipe already
    closed."""
    proc.kill()
    proc.wait()
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(join_s)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:  # a buffered stdin's flush into the dead program's pipe
                pass


def start_told(cmd: list[str], line: str) -> subprocess.Popen:
    """``cmd`` as a child process with stdout and stderr pipes, ``line`` (a URL holding a secret) and a line break
    written to its stdin and the pipe closed: never on its command line, which every local user reads (``ps``,
    /proc/PID/cmdline). Raises OSError."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.close()
    except OSError:
        proc.kill()
        proc.wait()
        raise
    return proc
