"""Group "frame": a random frame of a big native multi-frame file, opened fresh (issue 4)."""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .. import datagen, floors, peers
from ..runner import Goal, Impl, Task
from . import ours, peer


def _sequence(n_frames: int, seed: int = 42) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).integers(0, n_frames, 4096)]


def _fastdicom_frame(path: str, seq: list[int]):
    def factory():
        import fastdicom
        from fastdicom.pixels import frame_view  # noqa: F401  (feature present?)
        it = itertools.cycle(seq)

        def run():
            with fastdicom.open(path) as f:
                return f.dataset.frame(next(it))  # a new array: every byte touched
        return run
    return factory


def _floor_frame(path: str, seq: list[int], offset: int, frame_bytes: int, shape, dtype):
    it = itertools.cycle(seq)

    def run():
        out = np.empty(shape, dtype)
        floors.read_range_into(path, offset + next(it) * frame_bytes, out)
        return out
    return run


def _check(n_frames: int, rows: int, columns: int, first: int):
    from fastdicom.testing import multiframe_frame
    ref = multiframe_frame(first, n_frames, rows, columns, dtype=np.uint16, seed=3)

    def check(label: str, value: Any) -> None:
        if not np.array_equal(np.asarray(value), ref):
            raise AssertionError(f"{label}: frame {first} differs from what was written")
    return check


def _random_frame(plan: datagen.Plan) -> Task:
    data = datagen.multiframe(plan.multiframe_frames)
    path, m = str(data.paths[0]), data.meta
    n, fb = m["n_frames"], m["frame_bytes"]
    shape = (m["rows"], m["columns"])
    seq = _sequence(n)
    impls: list[Impl] = []
    missing: dict[str, str] = {}
    ours(impls, missing, "fastdicom", _fastdicom_frame(path, seq))
    impls.append(Impl("floor: open + readinto the frame + close",
                      _floor_frame(path, seq, m["pixel_offset"], fb, shape, np.uint16),
                      kind="floor"))

    def pydicom_frame():
        from pydicom.pixels import pixel_array
        it = itertools.cycle(seq)
        return lambda: pixel_array(path, index=next(it))

    if peers.available("pydicom")[0]:
        impls.append(Impl("pydicom", pydicom_frame(),
                          kind="peer", peer="pydicom", max_rounds=5))
    else:
        missing["pydicom"] = peers.available("pydicom")[1]

    it_sdl = itertools.cycle(seq)

    def dicomsdl_frame():
        import dicomsdl  # imported only when the peer is installed and measured
        return dicomsdl.open(path).pixelData(index=next(it_sdl), storedvalue=True)

    peer(impls, missing, "dicomsdl", "dicomsdl", dicomsdl_frame, max_rounds=3, cold=False)
    size = datagen.format_size(data.nbytes)
    return Task("frame", "frame: random frame", f"open a {n}-frame 512×512 uint16 multi-frame "
                f"({size}) afresh, copy a random frame into a new array, close", "frame", 1,
                impls, nbytes=fb, files=data.paths, cold=True, missing=missing,
                check=_check(n, shape[0], shape[1], seq[0]),
                goals=[Goal("≤ 2× the floor", "fastdicom",
                            "floor: open + readinto the frame + close", "<=", 2.0, issue=4)])


def _independence(plan: datagen.Plan) -> Task:
    small_n, large_n = plan.independence_frames
    impls: list[Impl] = []
    missing: dict[str, str] = {}
    labels = []
    files = []
    for n in (small_n, large_n):
        data = datagen.multiframe(n)
        files += data.paths
        path, m = str(data.paths[0]), data.meta
        seq = _sequence(n, seed=7)
        size = datagen.format_size(data.nbytes)
        floor_label = f"floor, {size} file"
        label = f"fastdicom, {size} file"
        labels.append(label)
        ours(impls, missing, label, _fastdicom_frame(path, seq), floor=floor_label)
        impls.append(Impl(floor_label, _floor_frame(path, seq, m["pixel_offset"],
                                                    m["frame_bytes"], (512, 512), np.uint16),
                          kind="floor"))
    return Task("frame", "frame: size independence", "random frame (open + copy + close) of a "
                f"{small_n}-frame vs a {large_n}-frame file: the cost must not grow with the "
                "file", "frame", 1, impls, nbytes=datagen.SLICE_BYTES, files=files,
                missing=missing, ours=labels[0],
                # one-sided: O(frame) work means the large file is not slower; it may be
                # faster when the page cache serves it faster (its floor then is too)
                goals=[Goal("large file ≤ 1.2× the small one", labels[1], labels[0], "<=", 1.2,
                            issue=4)])


def build(plan: datagen.Plan) -> list[Task]:
    return [_random_frame(plan), _independence(plan)]
