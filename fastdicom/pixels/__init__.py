"""Pixel data: frame location, native views, encapsulated frames and codecs.

Arrays match pydicom 3's ``ds.pixel_array`` (same values, dtype — big endian data keeps a big
endian dtype — and shape; YBR_FULL / YBR_FULL_422 converted to RGB unless ``as_rgb=False``).

* :func:`frame_view` — frame ``i``; a read-only view on the file's buffer for native layouts
  that need no conversion, else a new array.
* :func:`get_frame` — frame ``i`` as a new, writeable array.
* :func:`pixel_array` — all frames: (frames, rows, cols[, spp]) when NumberOfFrames > 1,
  else (rows, cols[, spp]).
* :func:`iter_frames` — frames one at a time; :func:`num_frames`;
  :func:`encapsulated_frame` — the encoded bytes of a frame.

Reading frame ``k`` touches only frame ``k``'s bytes; the encapsulated frame table is built
once per data set and cached on it.
"""
from __future__ import annotations

import functools
import operator
from typing import Iterable, Iterator, Optional

import numpy as np

from fastdicom._scan import MappedFile
from fastdicom.errors import DicomError, FileChangedError, LimitExceededError, PixelDataError
from fastdicom.pixels import encaps as _encaps, locator as _locator
from fastdicom.pixels.codecs import SIZE_CHECKED_SYNTAXES, check_encoded_frame, decode_frame
from fastdicom.pixels.encaps import frame_head, frame_offset, frame_table
from fastdicom.pixels.locator import (PixelInfo, allocate, locate, memory_error,
                                      pixel_buffer, pixel_cache)
from fastdicom.pixels.native import _be_swap_ow, _correct, native_frames, needs_bit_correction

__all__ = ["frame_view", "get_frame", "pixel_array", "iter_frames", "num_frames",
           "encapsulated_frame", "pixel_info", "PixelInfo"]


def _ctx(ds):
    return ds.__dict__["_ctx"]


def _located(fn):
    """``fn(ds, ...)`` whose DicomErrors say where in ``ds``'s file (see :func:`locate`)."""
    @functools.wraps(fn)
    def located(ds, *args, **kwargs):
        try:
            return fn(ds, *args, **kwargs)
        except DicomError as exc:
            raise locate(exc, ds)
    return located


pixel_info = _located(_locator.pixel_info)
num_frames = _located(_locator.num_frames)


def encapsulated_frame(ds, index: int) -> bytes:
    """The encoded bytes of frame ``index`` (see :mod:`fastdicom.pixels.encaps`)."""
    try:     # (no generic wrapper: this is the hot path of frame access)
        return _encaps.encapsulated_frame(ds, index)
    except DicomError as exc:
        raise locate(exc, ds)


def _index(info: PixelInfo, index: int) -> int:
    index = operator.index(index)     # an integer (numpy's too); not a float or a str
    if index < 0:
        index += info.frames
    if not 0 <= index < info.frames:
        raise IndexError(f"frame index out of range for {info.frames} frame(s)")
    return index


@_located
def frame_view(ds, index: int, *, as_rgb: bool = True) -> np.ndarray:
    """Frame ``index`` (rows, cols[, spp]): a read-only view on the buffer where the native
    layout allows, otherwise a new array."""
    info = _locator.pixel_info(ds)   # (errors located by the wrapper)
    index = _index(info, index)
    ctx = _ctx(ds)
    if info.encapsulated:
        return decode_frame(_encaps.encapsulated_frame(ds, index), info, as_rgb=as_rgb,
                            path=ctx.path, validation=ctx.validation,
                            offset=frame_offset(ds, index))
    return native_frames(pixel_buffer(ds), info, index, 1, as_rgb=as_rgb)[0]


def _pread_frames(ds, info: PixelInfo, start: int, count: int, as_rgb: bool, squeeze=False):
    """Native frames ``start .. start+count-1`` of a memory-mapped file read with ``pread``
    straight into a new array (count, rows, cols[, spp]; without the first axis when
    ``squeeze``): no page faults on the map, the same system calls as a raw read, and a file
    truncated meanwhile raises FileChangedError instead of SIGBUS.  None when the layout needs
    the general path."""
    ctx = _ctx(ds)
    owner = ctx.owner
    if (info.encapsulated or not isinstance(owner, MappedFile) or ctx.inflated
            or "buffer" in pixel_cache(ds)
            or not ctx.path or info.bits_allocated < 8 or _be_swap_ow(info)
            or (info.samples_per_pixel > 1 and info.planar_configuration == 1)
            or (as_rgb and info.photometric in ("YBR_FULL", "YBR_FULL_422"))
            or info.photometric == "YBR_FULL_422"):
        return None
    frame_bytes = info.frame_bytes
    shape = (count,) + info.frame_shape if not squeeze else info.frame_shape
    arr = allocate(shape, info.dtype, path=ctx.path, tag=info.tag)
    got = owner.pread_into(arr, info.offset + start * frame_bytes)
    if got != frame_bytes * count:
        raise FileChangedError("file changed since it was opened", path=ctx.path,
                               tag=info.tag)
    if info.bits_allocated > info.bits_stored and arr.dtype.kind in "iu" \
            and needs_bit_correction(arr, info):
        _correct(arr, info)
    return arr


@_located
def get_frame(ds, index: int, *, as_rgb: bool = True) -> np.ndarray:
    """Frame ``index`` as a new, writeable array (rows, cols[, spp]).

    For native data of a memory-mapped file the frame is read with ``pread`` straight into
    the new array (no page faults, and a truncated file raises FileChangedError instead of
    SIGBUS)."""
    info = _locator.pixel_info(ds)   # (errors located by the wrapper)
    index = _index(info, index)
    arr = _pread_frames(ds, info, index, 1, as_rgb, squeeze=True)
    if arr is not None:
        return arr
    arr = frame_view(ds, index, as_rgb=as_rgb)
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr)
    return arr


def iter_frames(ds, indices: Optional[Iterable[int]] = None, *,
                as_rgb: bool = True) -> Iterator[np.ndarray]:
    """Yield frames (new arrays) in ``indices`` order (all frames by default)."""
    info = pixel_info(ds)
    if indices is None:
        indices = range(info.frames)
    for index in indices:
        yield get_frame(ds, index, as_rgb=as_rgb)


@_located
def pixel_array(ds, *, as_rgb: bool = True) -> np.ndarray:
    """All frames as a new array, shaped as pydicom's ``ds.pixel_array``."""
    info = _locator.pixel_info(ds)   # (errors located by the wrapper)
    ctx = _ctx(ds)
    n = info.frames
    total = info.decoded_frame_bytes * n
    budget = ctx.limits.decode_budget
    if total > budget:  # pixel_info checked this too; keep the guard next to the allocation
        raise LimitExceededError(f"decoding needs {total} bytes, more than "
                                 f"limits.decode_budget ({budget})", path=ctx.path,
                                 tag=info.tag)
    if info.encapsulated:
        frame_table(ds)  # validate the whole table before allocating
        if info.transfer_syntax in SIZE_CHECKED_SYNTAXES:
            # and every frame's encoded size: a few hundred bytes cannot make gigabytes
            for k in range(n):
                try:
                    check_encoded_frame(*frame_head(ds, k), info)
                except PixelDataError as exc:
                    raise exc.with_context(path=ctx.path, offset=frame_offset(ds, k),
                                           tag=info.tag)
        out = allocate((n,) + info.frame_shape, info.dtype, path=ctx.path, tag=info.tag)
        for k in range(n):
            decode_frame(_encaps.encapsulated_frame(ds, k), info, as_rgb=as_rgb, path=ctx.path,
                         out=out[k], validation=ctx.validation, offset=frame_offset(ds, k))
    else:
        out = _pread_frames(ds, info, 0, n, as_rgb)
        if out is None:
            try:
                out = native_frames(pixel_buffer(ds), info, 0, n, as_rgb=as_rgb, view=False)
            except LimitExceededError as exc:
                raise exc.with_context(path=ctx.path)
            if not out.flags.c_contiguous:
                try:
                    out = np.ascontiguousarray(out)
                except MemoryError:
                    raise memory_error(total, path=ctx.path, tag=info.tag) from None
    if n == 1:
        out = out[0]
    return out

