"""Sweep every bounded daemon setting at its declared edges on a short real run (s45 config-ranges hunt).

usage: s45_range_sweep.py MODEL.onnx WORK_DIR [FILTER]  — prints one line per case: ok / refused / traceback /
hang / wrong (processed != 6 or 'error' decisions). Each case: a synthetic camera, 6 defective frames, threshold 0.
SWEEP_CAMERA='{"source": "/pics", "type": "folder"}' (or '{"mode": "live", "fps": 50}') swaps the camera.

Results 2026-12-07 (rs.onnx 64 px, 2 cores): 126 edges on synthetic, camera.* again on a folder and a live
camera: every one ok or refused in one line; only camera.max_frames 0 / 1e12 on a synthetic or live camera run
past 60 s, as they should (no frame limit). Training (s45_train_range_sweep.py, 63 edges + model edges by
hand): all ok or refused except train.threads 4096 (past 120 s; fixed: inspector.cores.capped_threads).
"""
import dataclasses, json, math, os, sys, typing
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(__file__))

from inspector.pipeline import config as pc

MODEL, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
FILTER = sys.argv[3] if len(sys.argv) > 3 else ""
from s45_range_sweep_edges import TINY, edges, judged  # noqa: E402


def sections():
    """(yaml path prefix, dataclass) for the sections users set."""
    out = []
    for f in dataclasses.fields(pc.DaemonConfig):
        t = typing.get_type_hints(pc.DaemonConfig)[f.name]
        if dataclasses.is_dataclass(t):
            out.append((f.name, t))
    out.append(("camera", pc.CameraSection))
    out.append(("camera.synthetic", pc.SyntheticSection))
    out.append(("camera.reconnect", pc.ReconnectSection))
    out.append(("", pc.DaemonConfig))
    return out


def nested(prefix, cls, seen=()):
    rows = []
    for f in dataclasses.fields(cls):
        t = typing.get_type_hints(cls).get(f.name)
        if dataclasses.is_dataclass(t) and t not in seen and prefix not in ("", "camera"):
            rows += nested(f"{prefix}.{f.name}", t, seen + (t,))
        for v in edges(f):
            rows.append((f"{prefix}.{f.name}".lstrip("."), v))
    return rows


def config(key, value, d, port):
    cam = {"name": "syn", "source": "synthetic", "max_frames": 6,
           "synthetic": {"texture": "procedural", "size": 64, "pool": 2, "defect_rate": 1.0}}
    cam.update(json.loads(os.environ.get("SWEEP_CAMERA", "{}")))  # e.g. {"source": "/pics", "type": "folder"}
    cfg = {"model": {"path": MODEL, "threads": 1}, "thresholds": {"image": 0.0}, "cameras": [cam],
           "publish": {"endpoint": f"ipc://{d}/p.sock"}, "summary_json": f"{d}/summary.json"}
    parts = key.split(".")
    if parts[0] == "camera":
        node, parts = cam, parts[1:]
    else:
        node = cfg
    if key.startswith("recorder."):
        cfg["recorder"] = {"enabled": True, "dir": f"{d}/rec"}
    if key.startswith("metrics."):
        cfg["metrics"] = {"listen": f"127.0.0.1:{port}"}
    if key.startswith("dashboard."):
        cfg["dashboard"] = {"listen": f"127.0.0.1:{port}"}
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return cfg


def run(indexed):
    index, (key, value) = indexed
    name = f"{key}={value}"
    d = os.path.join(WORK, name.replace("/", "_"))
    os.makedirs(d, exist_ok=True)
    cfg = config(key, value, d, 5800 + index % 30)  # two runs at once: two ports
    p = os.path.join(d, "cfg.yaml")
    with open(p, "w") as fh:
        json.dump(cfg, fh)  # JSON is YAML
    verdict, r = judged(name, ["inspector", "run", "--config", p], 60)
    if verdict:
        return verdict
    try:
        c = json.load(open(f"{d}/summary.json"))["cameras"]["syn"]
        proc, err = c.get("processed", 0), c.get("error", 0)
    except Exception:
        proc, err = None, None
    if r.returncode != 0 or proc != 6 or err:
        return f"WRONG     {name} rc={r.returncode} processed={proc} error={err} {(r.stdout + r.stderr).strip().splitlines()[-1:]}"
    return f"ok        {name}"


SKIP = ("camera.source", "publish.mqtt.")  # source is the camera itself; MQTT needs a broker
cases = [c for pre, cls in sections() for c in nested(pre, cls)
         if FILTER in c[0] and not c[0].startswith(SKIP)]
with ThreadPoolExecutor(2) as ex:
    for line in ex.map(run, enumerate(cases)):
        print(line, flush=True)
