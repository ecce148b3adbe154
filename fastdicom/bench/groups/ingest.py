"""Group "ingest": the SQLite index job against the batch scan of the same files (issue 6)."""
from __future__ import annotations

import atexit
import inspect
import shutil
import tempfile
from pathlib import Path

from .. import datagen, floors
from ..runner import Goal, Impl, Task
from . import ours

SCAN = "fastdicom.batch.scan (same files, reference)"


def _task(name: str, title: str, paths: list[str], rerun: bool = False) -> Task:
    """The ingest of ``paths`` into a fresh index, or (``rerun``) the job run again over
    them on an index that holds them already (every file unchanged: nothing parsed)."""
    n = len(paths)
    impls: list[Impl] = []
    missing: dict[str, str] = {}

    def fd():
        from fastdicom.ingest import ingest
        params = inspect.signature(ingest).parameters
        extra = {k: v for k, v in (("progress", False), ("quiet", True)) if k in params}

        if rerun:
            tmp = tempfile.mkdtemp(prefix="fdbench-rerun-")
            atexit.register(shutil.rmtree, tmp, True)
            db = str(Path(tmp) / "index.sqlite")
            calls = []

            def again():
                # (the runner's untimed warm-up call makes the index: all indexed)
                r = ingest(paths, db, **extra)
                if r.files != n or (r.unchanged if calls else r.indexed) != n:
                    raise AssertionError(f"re-run: {r.as_dict()}")
                calls.append(1)
                return r
            return again

        def run():
            tmp = tempfile.mkdtemp(prefix="fdbench-ingest-")
            try:
                r = ingest(paths, str(Path(tmp) / "index.sqlite"), **extra)
                if r.indexed != n:
                    raise AssertionError(f"ingest indexed {r.indexed} of {n} files")
                return r
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
    return Task("ingest", name, title, "file", n, impls, nbytes=8192 * n, files=paths,
                missing=missing,
                goals=[] if rerun else [Goal("≥ 50% of the scan rate: time ≤ 2× the scan's", "fastdicom", SCAN, "<=",
                                             2.0, issue=6)])


def build(plan: datagen.Plan) -> list[Task]:
    n = plan.header_files
    data = datagen.ct_series(plan.series_slices if plan.series_slices >= n else n)
    paths = sorted(str(p) for p in data.paths)[:n]
    m = plan.ingest_files
    tiny = sorted(str(p) for p in datagen.tiny_series(m).paths)
    return [
        _task("ingest: SQLite index", f"fastdicom.ingest of {n} 512×512 CT instances into a "
              "fresh SQLite index (default workers) vs scanning them (default workers); the "
              "job's fixed costs (schema, final checkpoint and its fsyncs, about 15 ms) are "
              "a large part of so small a job", paths),
        _task("ingest: SQLite index, rate", f"the same on {m:,} 16×16 CT instances in folders "
              "of 200: the rate once the job's fixed costs are spread", tiny),
        _task("ingest: re-run, unchanged", f"the job run again over the {m:,} 16×16 CT "
              "instances on an index that holds them (every file unchanged: a ledger lookup "
              "and a stat each, nothing parsed) vs scanning them", tiny, rerun=True),
    ]
