"""Wall and CPU (this process + ffmpeg children) to read a whole file through the daemon's capture worker.

    PYTHONPATH=CHECKOUT python benchmarks/experiments/s40_file_read.py FILE...   (run from CHECKOUT; median of 3)
    PYTHONPATH=CHECKOUT python benchmarks/experiments/s40_file_read.py --once FILE WARMUP   (one read, after WARMUP's)
    python benchmarks/experiments/s40_file_read.py --interleave REPS CHECKOUT... -- FILE...

Session 39's method (s39_file_read.py), the CPU split into this process's and the ffmpeg children's. ``--interleave``:
per file, REPS repetitions, each reading it once with each checkout in turn (rotating order, a fresh process each,
``--once``), each repetition started once both vCPUs were over 90 % idle for 3 x 3 s; medians. Session 40: 8-bit
1280x720 H.264 files of 300 frames (-g 25): lavfi testsrc as mkv, mp4 and ts, testsrc2 with noise=alls=6:allf=t at 1, 2
and 4 Mbit/s (mkv), and Session 39's 10-bit ones; read at 73c74fc (OpenCV), with every inter-coded 8-bit file read
through the program (FileFrames) and with OpenCV beside a verdict-only pass (file_verdicts): results/file-read-s40.json
(benchmarks/README.md, Session 40)."""
import json, os, resource, statistics, subprocess, sys, time


def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


def read(path):
    from inspector.pipeline.config import CameraSection
    from tests.pipeline.test_format_changes import _capture
    t0, (s0, c0) = time.perf_counter(), cpu()
    frames, _, _ = _capture(CameraSection(name="w", source=path))
    s1, c1 = cpu()
    return {"wall_s": time.perf_counter() - t0, "cpu_s": s1 - s0 + c1 - c0, "self_cpu_s": s1 - s0,
            "ffmpeg_cpu_s": c1 - c0, "frames": len(frames)}


def idle(share=0.9, seconds=3, times=3):
    ok = 0
    while ok < times:
        a = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
        time.sleep(seconds)
        b = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
        d = [y - x for x, y in zip(a, b)]
        ok = ok + 1 if (d[3] + d[4]) / max(1, sum(d)) >= share else 0


def interleave(reps, checkouts, files):
    out = {}
    for path in files:
        for rep in range(reps):
            idle()
            for checkout in checkouts[rep % len(checkouts):] + checkouts[:rep % len(checkouts)]:
                run = subprocess.run([sys.executable, os.path.abspath(__file__), "--once", path, files[0]],
                                     cwd=checkout, env={**os.environ, "PYTHONPATH": "."}, capture_output=True,
                                     text=True, check=True)
                out.setdefault(path, {}).setdefault(checkout, []).append(json.loads(run.stdout))
    return {path: {checkout: {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
                   for checkout, runs in by.items()} for path, by in out.items()}


if sys.argv[1] == "--once":
    read(sys.argv[3])  # warm-up: imports, the first open
    print(json.dumps(read(sys.argv[2])))
elif sys.argv[1] == "--interleave":
    split = sys.argv.index("--")
    print(json.dumps(interleave(int(sys.argv[2]), sys.argv[3:split], sys.argv[split + 1:])))
else:
    out = {}
    for path in sys.argv[1:]:
        runs = [read(path) for _ in range(3)]
        out[path] = {key: round(sorted(r[key] for r in runs)[1], 3) for key in runs[0]}
    print(json.dumps(out))
