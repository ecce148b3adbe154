"""Peak memory of an ingest job as the tree grows (issue 6: "peak RSS flat (±50 MiB) from 20k
to 200k files").

Each job runs in a fresh interpreter, which reports its own peak (``VmHWM``: jobs sharing a
process would hide each other), on a fresh index, with the default workers; the same data
the ingest group generates (16×16 CT instances in folders of 200).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

__all__ = ["ingest_peak_rss", "rss_goal", "failed_row", "RSS_SLACK"]

#: the goal: the larger job's peak RSS within this many bytes of the smaller one's
RSS_SLACK = 50 << 20

_CHILD = """
import json, sys, time
from fastdicom.ingest import ingest
t = time.perf_counter()
r = ingest([sys.argv[1]], sys.argv[2], progress=False)
seconds = time.perf_counter() - t
# the peak RSS of this program: VmHWM, the high-water mark of its own memory map (Linux's
# ru_maxrss also keeps, across exec, the RSS of the process that forked it: the bench's)
with open("/proc/self/status") as f:
    hwm = [int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:")][0]
print(json.dumps({"rss": hwm, "files": r.files, "indexed": r.indexed, "seconds": seconds}))
"""


def ingest_peak_rss(root: Path) -> dict[str, Any]:
    """Ingest the tree ``root`` into a fresh index in a new interpreter; its peak RSS
    (bytes), file counts and job time."""
    import fastdicom
    pkg_parent = str(Path(fastdicom.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="fdbench-rss-") as tmp:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(root),
                               str(Path(tmp) / "index.sqlite")], env=env,
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ingest of {root} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rss_goal(small: int, large: int,
             log: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
    """The goal row of the report: the peak RSS of ingesting ``small`` and ``large`` tiny
    files (generated, or reused from the bench cache), and whether they are within
    :data:`RSS_SLACK` of each other.  Raises when a job fails (see :func:`failed_row`)."""
    from . import datagen
    runs = {}
    for n in (small, large):
        data = datagen.tiny_series(n)
        if log:
            log(f"[ingest] peak RSS of a {n:,}-file job ...")
        r = ingest_peak_rss(data.root)
        if r["indexed"] != n:
            raise RuntimeError(f"peak RSS job indexed {r['indexed']} of {n} files")
        runs[n] = r
    a, b = runs[small]["rss"], runs[large]["rss"]
    mib = 1 << 20
    row = failed_row(small, large, None)
    row.update(measured=f"{round((b - a) / mib):+d} MiB ({a / mib:.0f} → {b / mib:.0f} MiB)",
               met=abs(b - a) <= RSS_SLACK, runs={str(n): r for n, r in runs.items()})
    return row


def failed_row(small: int, large: int, exc: Optional[BaseException]) -> dict[str, Any]:
    """The goal row when the measurement failed: "not measured", with the error (the
    report is written all the same, as when a peer fails)."""
    return {"issue": 6, "task": f"ingest: peak RSS, {small:,} → {large:,} tiny files",
            "mode": "", "goal": f"flat (±{RSS_SLACK >> 20} MiB)",
            "measured": "" if exc is None else f"error: {type(exc).__name__}: {exc}"[:200],
            "met": None, "runs": {}}
