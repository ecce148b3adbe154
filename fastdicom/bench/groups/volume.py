"""Group "volume": a 512x512 int16 CT series → one volume (issue 5), and how the cost scales
with the series size (64 MiB up to --size)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import datagen, floors, peers
from ..runner import Goal, Impl, Task, parallel_map
from . import ours, peer

FLOOR1 = "floor: per file open + readinto slice + close"
FLOOR2 = "floor ×2 threads"
WHOLE1 = "fastdicom"
WHOLE2 = "fastdicom ×2 workers"
READ1 = "fastdicom load_series(SeriesInfo), read only"
READ2 = "fastdicom load_series(SeriesInfo) ×2 workers"


def _floor(paths, offsets, shape, threads: int):
    items = list(zip(paths, offsets, range(len(paths))))

    def run():
        out = np.empty(shape, np.int16)

        def part(chunk):
            for p, off, k in chunk:
                floors.read_range_into(p, off, out[k])
        parallel_map(part, items, threads)
        return out
    return run


def _check(ref: dict):
    def check(label: str, value: Any) -> None:
        if hasattr(value, "array"):
            value = value.array
        if not isinstance(value, np.ndarray) or label in ("SimpleITK",):
            return  # SimpleITK rescales; dcm2niix returns the NIfTI size
        picks = ref.get("picks")
        if picks is None:
            n = value.shape[0]
            ref["shape"] = value.shape
            ref["picks"] = {k: value[k].copy() for k in {0, n // 2, n - 1}}
            return
        if value.shape != ref["shape"]:
            raise AssertionError(f"{label}: shape {value.shape} != {ref['shape']}")
        for k, sl in picks.items():
            if not np.array_equal(value[k], sl):
                raise AssertionError(f"{label}: slice {k} differs from the floor's (order?)")
    return check


def _impls(data: datagen.DataSet, full: bool) -> tuple[list[Impl], dict[str, str]]:
    paths = [str(p) for p in data.paths]            # slice order (known to the floor only)
    offsets = data.meta["pixel_offsets"]
    by_name = sorted(paths)                          # what a user's glob gives the peers
    folder = str(data.root)
    shape = (len(paths), data.meta["rows"], data.meta["columns"])
    impls: list[Impl] = [Impl(FLOOR1, _floor(paths, offsets, shape, 1), kind="floor")]
    missing: dict[str, str] = {}

    def whole(workers: int):
        def factory():
            from fastdicom.series import load_series
            return lambda: load_series(folder, workers=workers)
        return factory

    ours(impls, missing, WHOLE1, whole(1), floor=FLOOR1)
    ours(impls, missing, WHOLE2, whole(2), threads=2, floor=FLOOR2)
    if full:
        impls.append(Impl(FLOOR2, _floor(paths, offsets, shape, 2), kind="floor", threads=2))

        def read_only(workers: int):
            def factory():
                from fastdicom.series import find_series, load_series
                stacks = find_series(folder)
                if len(stacks) != 1:
                    raise NotImplementedError(f"find_series found {len(stacks)} stacks")
                info = stacks[0]
                return lambda: load_series(info, workers=workers)
            return factory

        ours(impls, missing, READ1, read_only(1), floor=FLOOR1)
        ours(impls, missing, READ2, read_only(2), threads=2, floor=FLOOR2)
    rounds = 2 if len(paths) > 256 else 3
    peer(impls, missing, "pydicom", "pydicom", lambda: peers.pydicom_load_series(by_name),
         max_rounds=rounds, cold=False)
    peer(impls, missing, "dicomsdl", "dicomsdl", lambda: peers.dicomsdl_load_series(by_name),
         max_rounds=rounds, cold=False)
    peer(impls, missing, "SimpleITK", "SimpleITK", lambda: peers.sitk_load_series(folder),
         max_rounds=2, cold=False)
    peer(impls, missing, "dcm2niix", "dcm2niix", lambda: peers.dcm2niix_convert(folder),
         max_rounds=2, cold=False)
    return impls, missing


def build(plan: datagen.Plan) -> list[Task]:
    full = datagen.ct_series(plan.series_slices)
    n = len(full.paths)
    size = n * datagen.SLICE_BYTES
    impls, missing = _impls(full, True)
    main = Task(
        "volume", "volume: series → volume",
        f"{n} instances of 512×512 int16 ({datagen.format_size(size)}) → one (n, 512, 512) "
        "volume. fastdicom = load_series(folder): find + sort + geometry + read (the whole "
        "job, as for pydicom, dicomsdl, SimpleITK and dcm2niix); the read-only rows start from "
        "a SeriesInfo found beforehand", "series", 1, impls, nbytes=size, files=full.paths,
        cold=True, missing=missing, check=_check({}), series_size=size,
        notes=["pydicom: dcmread + sort by position along the normal + stack of pixel_array;"
               " dicomsdl: open + sort + copyFrameData into a preallocated array; SimpleITK: "
               "GetGDCMSeriesFileNames + ImageSeriesReader.Execute + GetArrayFromImage; "
               "dcm2niix: subprocess writing an uncompressed NIfTI (-z n -b n) to a temp dir",
               "the ×2 floor reads the same files with two Python threads"],
        goals=[Goal("read ≤ 1.25× the raw floor", READ1, FLOOR1, "<=", 1.25, issue=5),
               Goal("≥ 8× faster than pydicom", "pydicom", WHOLE1, ">=", 8.0, issue=5),
               Goal("faster than dicomsdl", "dicomsdl", WHOLE1, ">=", 1.0, issue=5),
               Goal("2 workers faster than 1 (warm)", WHOLE1, WHOLE2, ">=", 1.0, issue=5),
               Goal("2 workers faster than 1 (cold)", WHOLE1, WHOLE2, ">=", 1.0, mode="cold",
                    issue=5),
               Goal("whole job ≥ 10× faster than SimpleITK", "SimpleITK", WHOLE1, ">=", 10.0,
                    issue=5),
               Goal("whole job ≥ 5× faster than dcm2niix", "dcm2niix", WHOLE1, ">=", 5.0,
                    issue=5)])
    tasks = [main]
    for k in plan.scaling_slices:
        if k >= n:
            continue
        sub = datagen.series_subset(full, k)
        impls, missing = _impls(sub, False)
        tasks.append(Task(
            "volume", f"volume: scaling {datagen.format_size(k * datagen.SLICE_BYTES)}",
            f"the first {k} slices of the series (scaling plot)", "series", 1, impls,
            nbytes=k * datagen.SLICE_BYTES, files=sub.paths, missing=missing,
            check=_check({}), series_size=k * datagen.SLICE_BYTES, in_ratio_chart=False))
    return tasks
