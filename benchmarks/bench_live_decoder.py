"""``live_decoder: opencv`` against ``ffmpeg`` on a real local live stream: open time, time to the first
inspectable frame, CPU per frame, frames without an image by reason.

    python benchmarks/bench_live_decoder.py --sizes 640x480,1280x720 --trials 3 --port 27530

A 25 fps H.264 MPEG-TS stream (libx264 veryfast, a key frame a second, no B-frames: an IP camera's usual
profile) is encoded in real time by the ffmpeg program and relayed over tcp:// on 127.0.0.1 by a separate
process, which serves any number of connections (OpenCV's probe, then the program's own). Each trial opens a
camera of each decoder through :func:`inspector.pipeline.sources.make_source` (``mode: live``), reads
``--frames`` frames with an image, and measures: ``open_s`` (``open()``), ``first_image_s`` (open to the first
frame with an image: the program's path counted the frames after joining mid-GOP 'concealed' up to the second
key frame until Session 38; since, those before the first 'before_key_frame'), CPU ms per frame of this process
(``time.process_time``: every thread) plus the decoding program's (its /proc stat, read before it is killed),
and the wall time per frame. The relay's CPU is in neither. JSON to
``benchmarks/results/live-decoder.json``. Needs ffmpeg with libx264; Linux (/proc).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import claim_result_or_exit, write_result  # noqa: E402


def serve(size: str, port: int, fps: int) -> None:
    """Encode a live test pattern and send it to every connection (run as its own process)."""
    enc = subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc2=s={size}:r={fps}",
                            "-c:v", "libx264", "-preset", "veryfast", "-g", str(fps), "-bf", "0", "-f", "mpegts",
                            "pipe:1"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    server, clients, lock = socket.create_server(("127.0.0.1", port)), [], threading.Lock()

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            with lock:
                clients.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    while chunk := enc.stdout.read1(65536):
        with lock:
            for conn in list(clients):
                try:
                    conn.sendall(chunk)
                except OSError:
                    clients.remove(conn)


def children_cpu_s(relay: int) -> float:
    """CPU seconds of this process's children (the decoding program) but the relay."""
    total = 0.0
    for task in os.listdir("/proc/self/task"):
        try:
            kids = Path(f"/proc/self/task/{task}/children").read_text().split()
        except OSError:
            continue
        for pid in (int(k) for k in kids if int(k) != relay):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def trial(decoder: str, port: int, frames: int, relay: int) -> dict:
    """One open and ``frames`` frames read with ``decoder``."""
    from inspector.pipeline.config import CameraSection
    from inspector.pipeline.sources import make_source

    source = make_source(CameraSection(name="bench", source=f"tcp://127.0.0.1:{port}", mode="live",
                                       live_decoder=decoder))
    started = time.monotonic()
    source.open()
    open_s, reasons = time.monotonic() - started, {}
    while (grabbed := source.read()) is None or grabbed.image is None:
        reasons[grabbed.reason] = reasons.get(grabbed.reason, 0) + 1
    first_image_s = time.monotonic() - started
    cpu0, kids0, wall0, got = time.process_time(), children_cpu_s(relay), time.monotonic(), 0
    while got < frames:
        grabbed = source.read()
        got += grabbed.image is not None
        if grabbed.image is None:
            reasons[grabbed.reason] = reasons.get(grabbed.reason, 0) + 1
    cpu, kids, wall = time.process_time() - cpu0, children_cpu_s(relay) - kids0, time.monotonic() - wall0
    source.close()
    return {"open_s": open_s, "first_image_s": first_image_s, "cpu_ms_per_frame_process": cpu * 1e3 / frames,
            "cpu_ms_per_frame_program": kids * 1e3 / frames, "cpu_ms_per_frame": (cpu + kids) * 1e3 / frames,
            "wall_ms_per_frame": wall * 1e3 / frames, "frames_without_image": reasons}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="640x480,1280x720")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--port", type=int, default=27530)
    ap.add_argument("--serve", default="", help=argparse.SUPPRESS)  # the relay process: its size
    args = ap.parse_args()
    claim_result_or_exit("live-decoder")  # before the work: a user's file at the name is kept
    if args.serve:
        serve(args.serve, args.port, 25)
        return
    results = {}
    for size in args.sizes.split(","):
        relay = subprocess.Popen([sys.executable, __file__, "--serve", size, "--port", str(args.port)])
        time.sleep(3)
        try:
            runs = {d: [] for d in ("opencv", "ffmpeg")}
            for _ in range(args.trials):
                for decoder in runs:
                    runs[decoder].append(trial(decoder, args.port, args.frames, relay.pid))
                    time.sleep(0.5)
        finally:
            relay.kill()
            relay.wait()
        results[size] = {d: {"median": {k: statistics.median(r[k] for r in rows) for k in rows[0]
                                        if k != "frames_without_image"}, "trials": rows} for d, rows in runs.items()}
        for decoder, row in results[size].items():
            print(size, decoder, {k: round(v, 2) for k, v in row["median"].items()},
                  [r["frames_without_image"] for r in row["trials"]])
    print(write_result("live-decoder", {"settings": vars(args) | {"fps": 25, "gop": 25}, "results": results}))


if __name__ == "__main__":
    main()
