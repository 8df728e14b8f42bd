"""Wall and CPU (this process + ffmpeg children) to read a whole file through the daemon's capture worker.

    PYTHONPATH=CHECKOUT python benchmarks/experiments/s39_file_read.py FILE...   (run from CHECKOUT; median of 3)

Session 39: a 10-bit 1280x720 H.264 file of 300 frames (mkv and ts, made with ffmpeg testsrc, -g 25), read at
8bf2e34 and at 05ddd14 in two alternating rounds: results/file-read-s39.json."""
import json, resource, sys, time
from inspector.pipeline.config import CameraSection
from tests.pipeline.test_format_changes import _capture

def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

out = {}
for path in sys.argv[1:]:
    runs = []
    for _ in range(3):
        t0, c0 = time.perf_counter(), cpu()
        frames, _, counters = _capture(CameraSection(name="w", source=path))
        runs.append((time.perf_counter() - t0, cpu() - c0, len(frames), frames[0].image.dtype.name))
    out[path] = {"wall_s": sorted(r[0] for r in runs)[1], "cpu_s": sorted(r[1] for r in runs)[1],
                 "frames": runs[0][2], "dtype": runs[0][3]}
print(json.dumps(out))
