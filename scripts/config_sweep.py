"""Systematic sweep of the daemon's settings: every leaf of :class:`DaemonConfig` at its edges and beyond.

For each setting (found by walking the config dataclasses, so a new one is swept without editing this file)
it writes a config that differs from a working base in that one value, runs ``inspector run --check`` and,
for values --check accepts, a short real run. A case passes when --check refuses it in one line naming the
key (exit 2, no traceback), or when --check accepts it and the run ends by itself, exit 0, no traceback,
with every frame processed and no 'error' decision. Everything else is printed as a finding.

Bounded: every command has a wall-clock limit and a 4 GiB address-space limit, runs are one at a time.

usage: python scripts/config_sweep.py MODEL.onnx WORK_DIR [--only KEY_PREFIX] [--no-runs] [--jobs N]
The model is any small exported model with its sidecar (the field checks' tiny model, or
tests/pipeline/conftest.py build_tiny_model).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import math
import os
import re
import resource
import subprocess
import sys
import typing
from pathlib import Path

import cv2
import numpy as np
import yaml

from inspector.config import field_range
from inspector.pipeline.config import CameraSection, DaemonConfig

LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} [0-9:,]+ (DEBUG|INFO|WARNING) ")
SYN_FRAMES, FOLDER_FRAMES = 6, 3
CAMERAS = {"syn": SYN_FRAMES, "dir": FOLDER_FRAMES}


def leaves(cls: type, prefix: str = "") -> list[tuple[str, typing.Any, dataclasses.Field]]:
    """(dotted key, type hint, field) of every non-dataclass setting in ``cls``; cameras → cameras.0 (synthetic)."""
    out, hints = [], typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], f"{prefix}{f.name}"
        args = typing.get_args(tp)
        if dataclasses.is_dataclass(tp):
            out += leaves(tp, key + ".")
        elif args and args[0] is CameraSection:
            out += leaves(CameraSection, key + ".0.")
        else:
            out.append((key, tp, f))
    return out


def _numbers(rng, is_int: bool) -> list:
    """Edges of the declared range, just outside them, and the usual suspects."""
    vals: list = [0, -1, 10**12, 1e12, math.nan, math.inf, -math.inf, 10**30, "abc", True]
    for edge, step in ((rng.ge, 0), (rng.gt, 1), (rng.le, 0), (rng.lt, -1)) if rng else ():
        if edge is None:
            continue
        low = edge in (rng.ge, rng.gt) and edge is not rng.le
        inside = edge + (step if is_int else (1e-9 if step > 0 else -1e-9 if step < 0 else 0))
        outside = edge + (-1 if low else 1) if is_int else edge + (-1e-6 if low else 1e-6) * max(1, abs(edge))
        vals += [int(inside) if is_int else inside, int(outside) if is_int else outside]
        if is_int:
            vals.append(float(edge))  # a float where an integer is wanted
    seen, out = set(), []
    for v in vals:
        k = (type(v), repr(v))
        if k not in seen:
            seen.add(k), out.append(v)
    return out


STRINGS = ["", "x" * 5000, "ünï😀", "a\nb", " ", "/", 7]


def values_for(tp, f: dataclasses.Field) -> list:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return [*args, "bogus", 1, None]
    if tp is bool:
        return ["yes", 1, None]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")) and args \
            and typing.get_origin(args[0]) in (tuple, list):
        tp, origin = args[0], typing.get_origin(args[0])
    if origin in (tuple, list):
        inner = typing.get_args(tp)
        return [[], [1.0, 0.5], [0.5, 1.0], [math.nan, 1.0], ["a", "b"], [1] * 3, "ab", [1e308, 1e308]] \
            if inner and inner[0] is float else [[], ["bogus"], [""], "x", [1]]
    if args and all(a in (int, float) for a in args) or tp in (int, float):
        return _numbers(field_range(f), int in (args or [tp]) and float not in (args or [tp]))
    if tp is str or (args and str in args):
        extra = [-1, 10**6] if int in args else []
        return STRINGS + extra
    if args and dataclasses.is_dataclass(args[0]):
        return []
    return [None, "x"]


def base_config(model: str, work: Path) -> dict:
    return {"model": {"path": model, "threads": 1},
            "thresholds": {"image": 0.0},
            "cameras": [{"name": "syn", "source": "synthetic", "max_frames": SYN_FRAMES,
                         "synthetic": {"texture": "procedural", "size": 64, "pool": 2, "defect_rate": 1.0}},
                        {"name": "dir", "source": str(work / "images"), "type": "folder"}],
            "publish": {"endpoint": "ipc://@inspector-sweep"},
            "recorder": {"enabled": True, "dir": str(work / "rec")},
            "summary_json": "summary.json"}


def make_images(work: Path) -> None:
    d = work / "images"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(FOLDER_FRAMES):
        cv2.imwrite(str(d / f"{i}.png"), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))


def set_key(cfg: dict, key: str, value) -> dict:
    cfg = json.loads(json.dumps(cfg))
    node, *_ = cfg, None
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[parts[-1]] = value
    return cfg


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def run_cmd(argv: list[str], cwd: Path, timeout: float) -> tuple[int | None, str]:
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, preexec_fn=_limit,
                           errors="replace")
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"") + (exc.stderr or b"")
        return None, out.decode(errors="replace") if isinstance(out, bytes) else out


def judge_check(rc, out: str, key: str) -> str | None:
    """None when --check accepted the value; 'refused' when refused properly; else what went wrong."""
    if rc is None:
        return "HANG in --check"
    if "Traceback" in out:
        return "TRACEBACK in --check: " + [ln for ln in out.splitlines() if ln.strip()][-1][:160]
    if rc == 0:
        return None
    errs = [ln for ln in out.splitlines() if ln.strip() and not LOG_LINE.match(ln) and not ln.startswith("ok ")]
    leaf = key.split(".")[-1]
    if rc == 2 and len(errs) == 1:
        return "refused" if leaf in errs[0] else "refused (names the file or camera)"
    return f"--check exit {rc}, {len(errs)} error lines: {' | '.join(errs)[:200]}"


def judge_run(rc, out: str, case: Path) -> str:
    if rc is None:
        return "HANG in run"
    if "Traceback" in out:
        return "TRACEBACK in run: " + [ln for ln in out.splitlines() if ln.strip()][-1][:160]
    if rc != 0:
        return f"run exit {rc}: {[ln for ln in out.splitlines() if ln.strip()][-1:]}"
    try:
        cams = json.loads((case / "summary.json").read_text())["cameras"]
    except (OSError, ValueError, KeyError):
        return "ran (no summary.json)"
    bad = {n: (cams.get(n, {}).get("processed"), cams.get(n, {}).get("error")) for n, want in CAMERAS.items()
           if cams.get(n, {}).get("processed") != want or cams.get(n, {}).get("error", 0)}
    return f"MISBEHAVES: processed/error per camera {bad}" if bad else "ran"


def one_case(i: int, key: str, value, base: dict, work: Path, runs: bool) -> tuple[str, str, str]:
    case = work / f"c{i:04d}"
    case.mkdir(parents=True, exist_ok=True)
    cfg = set_key(base, key, value)
    cfg["publish"]["endpoint"] = cfg["publish"]["endpoint"] if key.startswith("publish.endpoint") \
        else f"ipc://@inspector-sweep-{os.getpid()}-{i}"
    (case / "cfg.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    exe = [sys.executable, "-m", "inspector", "run", "--config", str(case / "cfg.yaml")]
    rc, out = run_cmd(exe + ["--check"], case, 30)
    verdict = judge_check(rc, out, key)
    if verdict is None:
        verdict = "accepted"
        if runs:
            rc, out = run_cmd(exe, case, 40)
            verdict = judge_run(rc, out, case)
    (case / "out.txt").write_text(out or "", encoding="utf-8", errors="replace")
    return key, repr(value)[:60], verdict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model"), ap.add_argument("work")
    ap.add_argument("--only", default="", help="keys starting with this")
    ap.add_argument("--no-runs", action="store_true", help="--check only")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    work = Path(args.work).absolute()
    make_images(work)
    base = base_config(str(Path(args.model).absolute()), work)
    cases = [(key, v) for key, tp, f in leaves(DaemonConfig) if key.startswith(args.only)
             for v in values_for(tp, f)]
    print(f"{len(cases)} cases", flush=True)
    bad = 0
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        futs = [pool.submit(one_case, i, k, v, base, work, not args.no_runs) for i, (k, v) in enumerate(cases)]
        for i, fut in enumerate(futs):
            key, value, verdict = fut.result()
            flag = not verdict.startswith(("refused", "ran", "accepted"))
            bad += flag
            print(f"{'!!' if flag else '  '} c{i:04d} {key} = {value}: {verdict}", flush=True)
    print(f"{bad} finding(s) of {len(cases)} cases")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
