"""Group "ingest": the SQLite index job against the batch scan of the same files (issue 6)."""
from __future__ import annotations

import inspect
import shutil
import tempfile
from pathlib import Path

from .. import datagen, floors
from ..runner import Goal, Impl, Task
from . import ours

SCAN = "fastdicom.batch.scan (same files, reference)"


def build(plan: datagen.Plan) -> list[Task]:
    n = plan.header_files
    data = datagen.ct_series(plan.series_slices if plan.series_slices >= n else n)
    paths = sorted(str(p) for p in data.paths)[:n]
    impls: list[Impl] = []
    missing: dict[str, str] = {}

    def fd():
        from fastdicom.ingest import ingest
        params = inspect.signature(ingest).parameters
        extra = {k: v for k, v in (("progress", False), ("quiet", True)) if k in params}

        def run():
            tmp = tempfile.mkdtemp(prefix="fdbench-ingest-")
            try:
                return ingest(paths, str(Path(tmp) / "index.sqlite"), **extra)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return run

    def scan():
        from fastdicom.batch import scan as _scan
        return lambda: _scan(paths)

    ours(impls, missing, "fastdicom", fd)
    ours(impls, missing, SCAN, scan)
    impls.append(Impl("floor: open + pread 8 KiB + close", lambda: floors.read_prefixes(paths),
                      kind="floor"))
    return [Task("ingest", "ingest: SQLite index", f"fastdicom.ingest of {n} 512×512 CT "
                 "instances into a fresh SQLite index (default workers) vs scanning them",
                 "file", n, impls, nbytes=8192 * n, files=paths, missing=missing,
                 goals=[Goal("≥ 50% of the scan rate", "fastdicom", SCAN, "<=", 2.0, issue=6)])]
