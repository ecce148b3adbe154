"""Native (uncompressed) pixel data: frames as numpy views on the buffer, copies only where
the layout needs one.

A frame ``k`` occupies ``frame_bytes`` bytes at ``offset + k * frame_bytes`` (bit-packed data:
bits ``k * frame_bits`` onwards), so reading it touches only those bytes.  Views are
read-only and keep the buffer (e.g. the :class:`~fastdicom._scan.MappedFile`) alive through
numpy's base chain.  A copy is made for big endian 8-bit data stored as OW (byte pairs
swapped), bit-packed data (unpacked to one uint8 per pixel), YBR_FULL_422 (upsampled),
YBR -> RGB conversion, and Bits Stored < Bits Allocated when some value has bits set above
Bits Stored (pydicom clears them, or sign-extends signed data).  Big endian data keeps a big
endian dtype, as pydicom returns it.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from fastdicom.errors import PixelDataError
from fastdicom.pixels.locator import PIXEL_DATA, PixelInfo, memory_error

__all__ = ["native_frames", "native_frame_from_bytes", "needs_bit_correction"]


def _be_swap_ow(info: PixelInfo) -> bool:
    return info.big_endian and info.bits_allocated == 8 and info.vr == "OW" \
        and info.tag == PIXEL_DATA


def _reshape(arr: np.ndarray, info: PixelInfo, count: int, interleaved: bool) -> np.ndarray:
    """1-D samples of ``count`` frames -> (count, rows, cols[, spp])."""
    rows, cols, spp = info.rows, info.columns, info.samples_per_pixel
    if spp == 1:
        return arr.reshape(count, rows, cols)
    if info.planar_configuration == 1 and not interleaved:
        return arr.reshape(count, spp, rows, cols).transpose(0, 2, 3, 1)
    return arr.reshape(count, rows, cols, spp)


def needs_bit_correction(arr: np.ndarray, info: PixelInfo) -> bool:
    """True when clearing / sign-extending the bits above Bits Stored changes a value."""
    if info.tag != PIXEL_DATA or info.bits_allocated <= info.bits_stored \
            or info.bits_allocated == 1 or arr.size == 0:
        return False
    bits = info.bits_stored
    if info.pixel_representation:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    return int(arr.min()) < lo or int(arr.max()) > hi


def _correct(arr: np.ndarray, info: PixelInfo) -> np.ndarray:
    shift = info.bits_allocated - info.bits_stored
    np.left_shift(arr, shift, out=arr)
    np.right_shift(arr, shift, out=arr)
    return arr


def _expand_422(flat: np.ndarray, info: PixelInfo) -> np.ndarray:
    """Y1 Y2 Cb Cr -> Y1 Cb Cr Y2 Cb Cr (PS3.3 C.7.6.3.1.2), as pydicom does."""
    if flat.shape[0] % 4:   # pixel_info refuses such headers; never index past the groups
        raise PixelDataError(f"YBR_FULL_422 data of {flat.shape[0]} samples is not made of "
                             "whole Y Y Cb Cr groups", tag=info.tag)
    out = np.empty(flat.shape[0] // 2 * 3, dtype=flat.dtype)
    out[::6] = flat[::4]
    out[3::6] = flat[1::4]
    out[1::6] = flat[2::4]
    out[4::6] = flat[2::4]
    out[2::6] = flat[3::4]
    out[5::6] = flat[3::4]
    return out


def native_frames(buffer, info: PixelInfo, start: int, count: int, *, as_rgb: bool = True,
                  view: bool = True, base_offset: Optional[int] = None) -> np.ndarray:
    """Frames ``start .. start+count-1`` of native pixel data in ``buffer`` as an array of shape
    (count, rows, cols[, spp]); a read-only view on ``buffer`` when the layout allows and
    ``view`` is true, otherwise a new writeable array.  Running out of memory for a copy
    raises LimitExceededError."""
    try:
        return _native_frames(buffer, info, start, count, as_rgb, view, base_offset)
    except MemoryError:
        raise memory_error(count * info.decoded_frame_bytes, tag=info.tag) from None


def _native_frames(buffer, info: PixelInfo, start: int, count: int, as_rgb: bool, view: bool,
                   base_offset: Optional[int]) -> np.ndarray:
    offset = info.offset if base_offset is None else base_offset
    photometric = info.photometric
    interleaved = False
    if info.bits_allocated == 1:
        first_bit = start * info.frame_bits
        nbits = count * info.frame_bits
        byte0 = offset + first_bit // 8
        skip = first_bit % 8
        nbytes = (skip + nbits + 7) // 8
        raw = np.frombuffer(buffer, dtype=np.uint8, count=nbytes, offset=byte0)
        flat = np.unpackbits(raw, bitorder="little", count=nbytes * 8)[skip:skip + nbits]
        copied = True
    elif _be_swap_ow(info):
        fb = info.frame_bytes
        lo = start * fb
        hi = lo + count * fb
        a_lo = lo - lo % 2
        a_hi = hi + hi % 2
        avail = info.length - a_lo
        if a_hi - a_lo > avail:  # odd total without its padding byte: pad with zero
            raw = bytes(memoryview(buffer)[offset + a_lo:offset + a_lo + avail]) + b"\x00"
        else:
            raw = memoryview(buffer)[offset + a_lo:offset + a_hi]
        swapped = np.frombuffer(raw, dtype="<u2").byteswap().view(np.uint8)
        flat = swapped[lo - a_lo:lo - a_lo + count * fb].view(info.dtype)
        copied = True
    else:
        n = count * (info.frame_bits // 8) // info.dtype.itemsize
        flat = np.frombuffer(buffer, dtype=info.dtype, count=n,
                             offset=offset + start * info.frame_bytes)
        copied = False
    if photometric == "YBR_FULL_422" and info.bits_allocated != 1:
        flat = _expand_422(flat, info)
        photometric = "YBR_FULL"
        interleaved = True
        copied = True
    arr = _reshape(flat, info, count, interleaved)
    if info.tag == PIXEL_DATA and info.bits_allocated > info.bits_stored \
            and info.bits_allocated != 1 and arr.dtype.kind in "iu":
        if needs_bit_correction(arr, info):
            if not copied:
                arr = np.array(arr)  # C-contiguous copy
                copied = True
            _correct(arr, info)
    if as_rgb and photometric in ("YBR_FULL", "YBR_FULL_422") and info.samples_per_pixel == 3:
        from fastdicom.pixels.codecs import to_rgb
        if not copied or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr) if copied else np.array(arr)
            copied = True
        arr = to_rgb(arr, info.bits_stored)
    if not view and not copied:
        arr = np.array(arr)
    return arr


def native_frame_from_bytes(data, info: PixelInfo, *, index: int = 0,
                            as_rgb: bool = True) -> np.ndarray:
    """One frame of native-layout bytes (frame-level deflate, encapsulated uncompressed) as a
    new array of ``info.frame_shape``."""
    if len(data) < info.frame_bytes:
        raise PixelDataError(f"frame holds {len(data)} bytes, {info.frame_bytes} expected",
                             tag=info.tag)
    arr = native_frames(data, info, 0, 1, as_rgb=as_rgb, view=False, base_offset=0)[0]
    if not arr.flags.writeable:
        arr = arr.copy()
    return arr
