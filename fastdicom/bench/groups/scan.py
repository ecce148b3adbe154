"""Group "scan": batch header scan of many files into Arrow (issue 6)."""
from __future__ import annotations

from typing import Any

from .. import datagen, floors, peers
from ..runner import Goal, Impl, Task, parallel_map
from . import ours, peer

KEYWORDS = list(peers.HEADER_KEYWORDS)
FLOOR1 = "floor: open + pread 8 KiB + close"
FLOOR2 = "floor ×2 threads"


def _check(n: int):
    def check(label: str, value: Any) -> None:
        if label.startswith("fastdicom"):
            if value.num_rows != n:
                raise AssertionError(f"{label}: {value.num_rows} rows for {n} files")
            errors = [e for e in value.column("error_type").to_pylist() if e]
            if errors:
                raise AssertionError(f"{label}: {len(errors)} files failed ({errors[0]})")
        elif not label.startswith("floor") and len(value) != n:
            raise AssertionError(f"{label}: {len(value)} results for {n} files")
    return check


def _task(name: str, title: str, paths: list[str], files, plan, goals) -> Task:
    n = len(paths)
    impls: list[Impl] = []
    missing: dict[str, str] = {}

    def fd(workers: int):
        def factory():
            from fastdicom.batch import scan
            return lambda: scan(paths, KEYWORDS, workers=workers)
        return factory

    ours(impls, missing, "fastdicom", fd(1), floor=FLOOR1)
    ours(impls, missing, "fastdicom ×2 workers", fd(2), threads=2, floor=FLOOR2)
    impls.append(Impl(FLOOR1, lambda: floors.read_prefixes(paths), kind="floor"))
    impls.append(Impl(FLOOR2, lambda: sum(parallel_map(floors.read_prefixes, paths, 2)),
                      kind="floor", threads=2))
    peer(impls, missing, "pydicom", "pydicom", lambda: peers.pydicom_scan(paths), max_rounds=3,
         cold=False)
    peer(impls, missing, "dicomsdl", "dicomsdl", lambda: peers.dicomsdl_scan(paths),
         max_rounds=5, cold=False)
    peer(impls, missing, "gdcm", "gdcm.Scanner", lambda: peers.gdcm_scan(paths), max_rounds=5,
         cold=False)
    return Task("scan", name, title, "file", n, impls, nbytes=8192 * n, files=files, cold=True,
                missing=missing, check=_check(n), goals=goals,
                notes=[f"tags read: {', '.join(KEYWORDS)}; pydicom uses "
                       "dcmread(stop_before_pixels=True, specific_tags=...), dicomsdl "
                       "open(load_until=pixel data)"])


def build(plan: datagen.Plan) -> list[Task]:
    n = plan.header_files
    data = datagen.ct_series(plan.series_slices if plan.series_slices >= n else n)
    paths = sorted(str(p) for p in data.paths)[:n]
    ct = _task("scan: CT headers", f"fastdicom.batch.scan of {n} 512×512 CT instances, 8 tags, "
               "into a pyarrow Table", paths, paths, plan,
               [Goal("single worker ≤ 2× the floor", "fastdicom", FLOOR1, "<=", 2.0, issue=6),
                Goal("≥ 40× faster than pydicom", "pydicom", "fastdicom", ">=", 40.0, issue=6),
                Goal("≥ 3× faster than dicomsdl", "dicomsdl", "fastdicom", ">=", 3.0, issue=6),
                Goal("2 workers ≥ 1.6× one", "fastdicom", "fastdicom ×2 workers", ">=", 1.6,
                     issue=6)])
    mixed = datagen.mixed_set(n)
    mpaths = [str(p) for p in mixed.paths]
    mx = _task("scan: mixed transfer syntaxes", f"fastdicom.batch.scan of {n} small instances "
               "over implicit/explicit LE, explicit BE, deflated, RLE and JPEG lossless",
               mpaths, mpaths, plan,
               [Goal("single worker ≤ 2× the floor", "fastdicom", FLOOR1, "<=", 2.0, issue=6)])
    return [ct, mx]
