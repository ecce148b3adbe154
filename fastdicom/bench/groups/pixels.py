"""Group "pixels": native pixel_array, RLE decode throughput, JPEG-LS lossless (issue 4)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import datagen, floors, peers
from ..runner import Goal, Impl, Task, parallel_map
from . import ours, peer


def _array_check(ref: dict):
    def check(label: str, value: Any) -> None:
        if label.startswith("floor"):
            return
        a = np.asarray(value)
        if "ref" not in ref:
            ref["ref"] = a.copy()
            return
        b = ref["ref"]
        if a.shape != b.shape or not np.array_equal(a.astype(np.int64), b.astype(np.int64)):
            raise AssertionError(f"{label}: pixels differ from the first impl's "
                                 f"({a.dtype}{a.shape} vs {b.dtype}{b.shape})")
    return check


def _native(plan: datagen.Plan) -> Task:
    data = datagen.ct_instance()
    path = str(data.paths[0])
    offset = data.meta["pixel_offsets"][0]
    impls: list[Impl] = []
    missing: dict[str, str] = {}

    def fd():
        from fastdicom import dcmread
        from fastdicom.pixels import pixel_array  # noqa: F401  (exists?)
        return lambda: dcmread(path).pixel_array

    ours(impls, missing, "fastdicom", fd)

    def floor():
        out = np.empty((512, 512), np.int16)
        floors.read_range_into(path, offset, out)
        return out

    impls.append(Impl("floor: open + readinto 512 KiB + close", floor, kind="floor"))
    peer(impls, missing, "pydicom", "pydicom", lambda: peers.pydicom_pixel_array(path))
    peer(impls, missing, "dicomsdl", "dicomsdl", lambda: peers.dicomsdl_pixels(path))
    return Task("pixels", "pixels: native pixel_array", "dcmread(path).pixel_array of a 512×512 "
                "int16 CT instance (a new array)", "file", 1, impls, nbytes=datagen.SLICE_BYTES,
                files=data.paths, missing=missing, check=_array_check({}),
                goals=[Goal("≥ 5× faster than pydicom", "pydicom", "fastdicom", ">=", 5.0,
                            issue=4)])


def _rle(plan: datagen.Plan) -> Task:
    n = 32 if plan.tiny else 64
    data = datagen.encoded_series("rle", n)
    frames = []
    for p, (off, length) in zip(data.paths, data.meta["frames"]):
        frames.append(p.read_bytes()[off:off + length])
    impls: list[Impl] = []
    missing: dict[str, str] = {}
    nbytes = datagen.SLICE_BYTES * n

    def fd(threads: int):
        def factory():
            from fastdicom.pixels.rle import rle_decode_frame

            def chunk(part):
                return [rle_decode_frame(f, 512, 512, 1, 16, 1) for f in part]

            if threads == 1:
                return lambda: chunk(frames)[-1]
            return lambda: parallel_map(chunk, frames, threads)[-1][-1]
        return factory

    ours(impls, missing, "fastdicom", fd(1))
    ours(impls, missing, "fastdicom ×2 threads", fd(2), threads=2)
    buf = np.empty(datagen.SLICE_BYTES, np.uint8)

    def floor():
        for _ in frames:
            out = buf.copy()  # memcpy of one decoded frame's bytes into a new array
        return out

    impls.append(Impl("floor: memcpy of the decoded bytes", floor, kind="floor"))
    peer(impls, missing, "pylibjpeg-rle", "pylibjpeg-rle",
         lambda: [peers.pylibjpeg_rle_decode(f, 512, 512, 16, np.int16) for f in frames][-1])
    return Task("pixels", "pixels: RLE decode", f"RLE Lossless decode of {n} 512×512 int16 CT "
                "frames held in memory (throughput in decoded MB/s)", "frame", n, impls,
                nbytes=nbytes, missing=missing, check=_array_check({}),
                notes=["the floor is a memcpy of the decoded frame size: RLE decoding cannot beat"
                       " writing its output once"],
                goals=[Goal("throughput ≥ pylibjpeg-rle's", "pylibjpeg-rle", "fastdicom", ">=",
                            1.0, issue=4)])


def _jpegls(plan: datagen.Plan) -> Task | None:
    try:
        data = datagen.encoded_series("jpegls", 4)
    except Exception as exc:  # no imagecodecs: say so
        return Task("pixels", "pixels: JPEG-LS lossless", "JPEG-LS lossless", "file", 1, [],
                    missing={"fastdicom": f"not available: no JPEG-LS encoder ({exc})"})
    path = str(data.paths[0])
    off, length = data.meta["frames"][0]
    impls: list[Impl] = []
    missing: dict[str, str] = {}

    def fd():
        from fastdicom import dcmread
        from fastdicom.pixels import pixel_array  # noqa: F401
        return lambda: dcmread(path).pixel_array

    ours(impls, missing, "fastdicom", fd)
    size = data.paths[0].stat().st_size
    try:
        import imagecodecs

        def floor():
            blob = floors.read_whole(path)
            return imagecodecs.jpegls_decode(memoryview(blob)[off:off + length]).view(np.int16)

        impls.append(Impl("floor: open + pread + close + imagecodecs.jpegls_decode", floor,
                          kind="floor"))
    except ImportError as exc:
        missing["floor"] = f"missing: imagecodecs ({exc})"
    peer(impls, missing, "pydicom", "pydicom", lambda: peers.pydicom_pixel_array(path))
    peer(impls, missing, "dicomsdl", "dicomsdl", lambda: peers.dicomsdl_pixels(path))
    return Task("pixels", "pixels: JPEG-LS lossless", "dcmread(path).pixel_array of a 512×512 "
                "int16 CT instance in JPEG-LS lossless", "file", 1, impls, nbytes=size,
                files=data.paths, missing=missing, check=_array_check({}),
                notes=["the floor here is the raw read plus the codec call itself "
                       "(imagecodecs, bytes already located): what any reader must spend"])


def build(plan: datagen.Plan) -> list[Task]:
    return [t for t in (_native(plan), _rle(plan), _jpegls(plan)) if t is not None]
