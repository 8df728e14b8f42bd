"""Soak: the daemon with 4 cameras (live, looping file, folder, synthetic) under faults, for a long time.

    python benchmarks/soak.py --minutes 30                    # random-weight reduced student, 1 model thread
    python benchmarks/soak.py --minutes 2 --kill-every 30     # a short smoke run

The daemon runs as ``inspector run`` in a child process (real ZeroMQ, real sockets, real files):

* **live**: an MJPEG-over-HTTP camera (a child process of this script, 25 fps, frames stamped with
  its clock), inspected at ``--fps``; it is killed (SIGKILL) every ``--kill-every`` seconds and
  restarted ``--down`` seconds later;
* **loop**: an MJPG .avi replayed forever at ``--fps``;
* **folder**: a looping image folder at ``--fps``; every ``--folder-every`` seconds one file is
  added and the oldest deleted;
* **synthetic**: a procedural-texture camera at ``--fps``.

Reported (JSON to ``benchmarks/results/soak.json``): the actual duration, frames inspected and
drops by reason per camera (from the daemon's final summary), the daemon's RSS after warm-up
(``--warmup`` s) and its growth to the end (and the least-squares slope in MiB/hour), and each
reconnect time of the live camera (restart → ``online`` status event), plus the live frames' age
(capture stamp − the camera's own clock in the frame) p50/max, and the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim_result_or_exit, write_result  # noqa: E402

from inspector.testing.clock_stamp import read_stamp  # noqa: E402
from inspector.testing.mjpeg_camera import serve_stamped_mjpeg  # noqa: E402


# ------------------------------------------------------------------------------------------ camera
def serve_camera(port: int, fps: float) -> None:
    """The live camera process: MJPEG over HTTP at ``fps``, clock-stamped frames, until killed."""
    rng = np.random.default_rng(0)
    base = np.clip(rng.normal(120, 20, (120, 160, 3)), 0, 255).astype(np.uint8)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve_stamped_mjpeg, args=(conn, base, fps), kwargs={"skip_missed": True},
                         daemon=True).start()


def start_camera(port: int, fps: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, "--serve-camera", str(port), "--camera-fps", str(fps)],
                            stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # "ready"
    return proc


# ------------------------------------------------------------------------------------------ inputs
def default_model(workdir: Path, size: int) -> Path:
    """A random-weight reduced student exported like a real one (same graph and cost; needs torch)."""
    from inspector.deploy import export_model
    from inspector.models.registry import build_model, parse_model_config

    cfg = parse_model_config({"name": "reduced_student", "image_size": [size, size], "teacher_weights": "random"})
    return Path(export_model(build_model(cfg).eval(), workdir / "rs-random", precisions=["fp32"])["fp32"])


def texture(rng, h=120, w=160):
    return np.clip(rng.normal(128, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def write_inputs(workdir: Path) -> tuple[Path, Path]:
    import cv2

    rng = np.random.default_rng(1)
    video = workdir / "loop.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120))
    for _ in range(50):
        writer.write(texture(rng))
    writer.release()
    folder = workdir / "folder"
    folder.mkdir()
    for i in range(8):
        cv2.imwrite(str(folder / f"{i:06d}.png"), texture(rng))
    return video, folder


def config(model: Path, workdir: Path, port: int, video: Path, folder: Path, args) -> Path:
    import yaml

    rc = {"initial_s": 0.5, "max_s": 2.0}
    cfg = {
        "model": {"path": str(model), "threads": args.threads},
        "thresholds": {"image": 1e9},
        "cameras": [
            {"name": "live", "source": f"http://127.0.0.1:{port}/video.mjpg", "fps": args.fps, "reconnect": rc,
             "open_timeout_s": 3.0, "read_timeout_s": 3.0},
            {"name": "loop", "source": str(video), "loop": True, "fps": args.fps},
            {"name": "folder", "source": str(folder), "loop": True, "fps": args.fps, "reconnect": rc},
            {"name": "synthetic", "source": "synthetic", "fps": args.fps,
             "synthetic": {"texture": "procedural", "size": 128, "pool": 4}},
        ],
        "publish": {"endpoint": f"ipc://{workdir}/soak.sock", "results": True, "stats_interval_s": 5.0},
        "postprocess": {"payloads_on_results": True, "heatmap": False, "thumbnail": {"max_side": 160}},
        "drift": {"enabled": False},
        "summary_json": str(workdir / "summary.json"),
    }
    path = workdir / "soak.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ------------------------------------------------------------------------------------------ watch
class Watcher(threading.Thread):
    """Subscribes to the daemon: live camera status times and live frames' age."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        from inspector.client import Subscriber

        self.sub = Subscriber(endpoint, ["v1/status", "v1/result/live"])
        self.online_at: list[float] = []
        self.states: list[tuple[float, str, str]] = []
        self.ages: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        import cv2

        while not self.done.is_set():
            event = self.sub.recv(timeout=0.5)
            if event is None:
                continue
            now = time.monotonic()
            if event.type == "status":
                self.states.append((now, event.camera, event.state))
                if event.camera == "live" and event.state == "online":
                    self.online_at.append(now)
            elif event.payloads:
                thumb = next((p for p in event.payloads if p.kind == "thumbnail"), None)
                if thumb is not None:
                    img = cv2.imdecode(np.frombuffer(thumb.data, np.uint8), cv2.IMREAD_COLOR)
                    scale = img.shape[1] / event.frame["width"]
                    if scale == 1.0:
                        produced = read_stamp(img)
                        captured = int(_utc_s(event.capture["utc"]) * 1000) & 0xFFFFFFFF
                        self.ages.append(((captured - produced) & 0xFFFFFFFF) / 1000.0)
        self.sub.close()


def _utc_s(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def soak(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    model = Path(args.model) if args.model else default_model(workdir, args.size)
    video, folder = write_inputs(workdir)
    port = free_port()
    cam = start_camera(port, 25.0)
    cfg = config(model, workdir, port, video, folder, args)
    log = open(workdir / "daemon.log", "w")
    daemon = subprocess.Popen(["inspector", "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    watcher = Watcher(f"ipc://{workdir}/soak.sock")
    watcher.start()
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    rss: list[tuple[float, float]] = []
    restarts: list[float] = []
    next_kill, next_folder, next_rss, restart_at = t0 + args.kill_every, t0 + args.folder_every, t0, None
    added = 100
    try:
        while time.monotonic() < end and daemon.poll() is None:
            now = time.monotonic()
            if now >= next_rss:
                value = rss_mib(daemon.pid)
                if value is not None:
                    rss.append((now - t0, value))
                next_rss = now + args.rss_every
            if now >= next_kill and cam is not None:
                cam.kill()
                cam.wait()
                cam, restart_at = None, now + args.down
                next_kill = now + args.kill_every
            if restart_at is not None and now >= restart_at:
                cam, restart_at = start_camera(port, 25.0), None
                restarts.append(time.monotonic())
            if now >= next_folder:
                files = sorted(folder.glob("*.png"))
                shutil.copy(files[-1], folder / f"{added:06d}.png")
                added += 1
                if len(files) > 4:
                    files[0].unlink()
                next_folder = now + args.folder_every
            time.sleep(0.2)
        duration = time.monotonic() - t0
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        if cam is not None:
            cam.kill()
        watcher.done.set()
        watcher.join(5)
        log.close()
    summary = json.loads((workdir / "summary.json").read_text()) if (workdir / "summary.json").exists() else {}
    return report(summary, rss, restarts, watcher, duration, code, args, workdir)


def reconnect_times(restarts: list[float], online_at: list[float]) -> list[float]:
    out = []
    for r in restarts:
        later = [t for t in online_at if t >= r]
        if later:
            out.append(round(later[0] - r, 2))
    return out


def report(summary: dict, rss, restarts, watcher, duration, code, args, workdir) -> dict:
    cams = summary.get("cameras", {})
    per_cam = {}
    for name, c in cams.items():
        per_cam[name] = {"frames_captured": c.get("captured", 0), "frames_inspected": c.get("processed", 0),
                         "reconnects": c.get("reconnects", 0),
                         "drops": {k: v for k, v in c.items() if k.startswith("dropped") or k in
                                   ("corrupt", "missing", "incomplete", "source_changed", "stalls")
                                   or k.startswith("rejected")}}
    warm = [(t, v) for t, v in rss if t >= args.warmup]
    rss_info = {"samples": len(rss), "warmup_s": args.warmup}
    if len(warm) >= 2:
        t, v = np.array(warm).T
        rss_info.update({"after_warmup_mib": round(float(v[0]), 1), "end_mib": round(float(v[-1]), 1),
                         "growth_mib": round(float(v[-1] - v[0]), 1), "max_mib": round(float(v.max()), 1),
                         "slope_mib_per_hour": round(float(np.polyfit(t, v, 1)[0] * 3600), 2)})
    ages = sorted(watcher.ages)
    return {
        "duration_s": round(duration, 1), "exit_code": code, "fps_per_camera": args.fps,
        "model_threads": args.threads, "faults": {"live_kills": len(restarts), "kill_every_s": args.kill_every,
                                                  "down_s": args.down, "folder_change_every_s": args.folder_every},
        "cameras": per_cam, "totals": {k: v for k, v in summary.get("totals", {}).items()
                                       if k in ("inferred_frames", "batches", "mean_batch", "fps")},
        "rss": rss_info,
        "live_reconnect_s": reconnect_times(restarts, watcher.online_at),
        "live_frame_age_s": {"n": len(ages), "p50": ages[len(ages) // 2] if ages else None,
                             "max": ages[-1] if ages else None},
        "failures": summary.get("failures"), "workdir": str(workdir),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--model", help="exported ONNX graph (sidecar beside it); default: random-weight reduced student")
    ap.add_argument("--size", type=int, default=64, help="input size of the default model")
    ap.add_argument("--threads", type=int, default=1, help="model threads (the machine is shared)")
    ap.add_argument("--fps", type=float, default=4.0, help="inspection rate of each camera")
    ap.add_argument("--kill-every", type=float, default=120.0, help="seconds between live-camera kills")
    ap.add_argument("--down", type=float, default=5.0, help="seconds the live camera stays down")
    ap.add_argument("--folder-every", type=float, default=15.0, help="seconds between folder add/delete")
    ap.add_argument("--warmup", type=float, default=120.0, help="seconds before the RSS baseline")
    ap.add_argument("--rss-every", type=float, default=10.0)
    ap.add_argument("--out", default="soak", help="result name under benchmarks/results")
    ap.add_argument("--serve-camera", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--camera-fps", type=float, default=25.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_camera:
        serve_camera(args.serve_camera, args.camera_fps)
        return 0
    claim_result_or_exit(args.out)  # before the hours of soak: a user's file at the name is kept
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = soak(args)
    path = write_result(args.out, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
