"""Declared-edge values of a bounded dataclass field, and how a run at one was judged (shared by the s45 range
sweeps)."""
import subprocess

from inspector.config import field_range

TINY = 1e-320


def edges(f):
    r = field_range(f)
    if r is None or (r.ge is None and r.gt is None and r.le is None):
        return []
    is_int = "int" in str(f.type) and "float" not in str(f.type)
    vals = []
    lo = r.ge if r.ge is not None else r.gt
    if lo is not None:
        vals.append(int(lo) + (1 if r.gt is not None else 0) if is_int else (TINY if lo == 0 else lo))
        if not is_int and lo == 0 and r.ge is not None:
            vals.append(0.0)
    if r.le is not None:
        vals.append(int(r.le) if is_int else float(r.le))
    if "tuple" in str(f.type):  # a pair (betas, image_size): both entries at the edge
        vals = [[v, v] for v in vals]
    return vals


def judged(name: str, cmd: list[str], timeout: float) -> tuple[str | None, subprocess.CompletedProcess | None]:
    """(the verdict when the run of ``cmd`` hung, raised a traceback or was refused, else None; the finished
    process, None when it hung)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"HANG      {name}", None
    text = r.stdout + r.stderr
    if "Traceback" in text:
        exc = [ln for ln in text.splitlines() if "Error" in ln or "Exception" in ln][-1:]
        return f"TRACEBACK {name} rc={r.returncode} {exc}", r
    if r.returncode == 2:
        return f"refused   {name}: {r.stderr.strip().splitlines()[-1][:140]}", r
    return None, r
