"""Encapsulated pixel data: fragments, Basic / Extended Offset Tables, frame -> fragments.

The fragment items are the children of the Pixel Data entry in the element index (the
scanner already walked their 8-byte headers and bounded each length by the data present).
The frame table is built once per data set and cached, so later frame lookups are O(1):

1. Extended Offset Table (7FE0,0001) + lengths (7FE0,0002), when present: one fragment per
   frame, each offset on an item boundary and each length equal to that fragment's length.
2. Basic Offset Table (the first item), when not empty: first offset 0, strictly increasing,
   each on an item boundary inside the fragment stream, one offset per frame.
3. Otherwise, as pydicom's ``generate_fragmented_frames``: a single frame takes all fragments;
   as many fragments as frames gives one fragment per frame; more fragments than frames are
   grouped by codestream ends (a JPEG EOI / JPEG 2000 EOC marker FFD9 in the last 10 bytes of a
   fragment).  Fewer fragments than frames is an error.

Any inconsistency raises :class:`~fastdicom.errors.EncapsulationError`.
"""
from __future__ import annotations

import logging
from typing import Union

import numpy as np

from fastdicom.errors import EncapsulationError, report
from fastdicom.pixels.locator import PixelInfo, element_raw, pixel_cache, pixel_info

__all__ = ["fragments", "frame_table", "frame_head", "encapsulated_frame", "basic_offset_table",
           "EXTENDED_OFFSET_TABLE", "EXTENDED_OFFSET_TABLE_LENGTHS"]

logger = logging.getLogger("fastdicom")

EXTENDED_OFFSET_TABLE = 0x7FE00001
EXTENDED_OFFSET_TABLE_LENGTHS = 0x7FE00002
_EOI = b"\xff\xd9"


def _path(ds):
    return getattr(ds.__dict__.get("_ctx"), "path", None)


def fragments(ds, info: PixelInfo | None = None) -> tuple[tuple[int, int, int], list]:
    """``(bot, frags)``: the Basic Offset Table item and the fragment items, each as
    ``(header_offset, value_offset, length)``."""
    cache = pixel_cache(ds)
    cached = cache.get("fragments")
    if cached is not None:
        return cached
    info = info or pixel_info(ds)
    index = ds.__dict__["_index"]
    children = index.children(info.index_pos)
    if not children:
        raise EncapsulationError("encapsulated pixel data has no Basic Offset Table item",
                                 path=_path(ds), offset=info.offset, tag=info.tag)
    items = []
    for i in children:
        tag, _vr, _flags, voff, length, hoff = index.info(i)
        items.append((hoff, voff, length))
    result = (items[0], items[1:])
    cache["fragments"] = result
    return result


def basic_offset_table(ds) -> list[int]:
    """The Basic Offset Table's offsets (empty list when the table is empty)."""
    info = pixel_info(ds)
    (hoff, voff, length), _ = fragments(ds, info)
    if length % 4:
        raise EncapsulationError(f"Basic Offset Table length {length} is not a multiple of 4",
                                 path=_path(ds), offset=hoff, tag=0xFFFEE000)
    buf = ds.__dict__["_ctx"].buffer
    if length == 0:
        return []
    return np.frombuffer(buf, dtype="<u4", count=length // 4, offset=voff).tolist()


def _eot_table(ds, info: PixelInfo, frags) -> list:
    path = _path(ds)
    offsets_raw = element_raw(ds, EXTENDED_OFFSET_TABLE)
    lengths_raw = element_raw(ds, EXTENDED_OFFSET_TABLE_LENGTHS)
    if lengths_raw is None:
        raise EncapsulationError("Extended Offset Table without Extended Offset Table Lengths",
                                 path=path, tag=EXTENDED_OFFSET_TABLE)
    if len(offsets_raw) % 8 or len(lengths_raw) % 8:
        raise EncapsulationError("Extended Offset Table values must be multiples of 8 bytes",
                                 path=path, tag=EXTENDED_OFFSET_TABLE)
    offsets = np.frombuffer(offsets_raw, dtype="<u8").tolist()
    lengths = np.frombuffer(lengths_raw, dtype="<u8").tolist()
    if len(offsets) != len(lengths):
        raise EncapsulationError(f"Extended Offset Table has {len(offsets)} offsets and "
                                 f"{len(lengths)} lengths", path=path,
                                 tag=EXTENDED_OFFSET_TABLE)
    if len(offsets) != info.frames:
        raise EncapsulationError(f"Extended Offset Table has {len(offsets)} entries for "
                                 f"{info.frames} frames", path=path, tag=EXTENDED_OFFSET_TABLE)
    if not frags:
        raise EncapsulationError("encapsulated pixel data has no fragments", path=path,
                                 tag=info.tag)
    base = frags[0][0]
    by_position = {hoff - base: (hoff, voff, length) for hoff, voff, length in frags}
    table = []
    previous = -1
    for k, (offset, length) in enumerate(zip(offsets, lengths)):
        if offset <= previous:
            raise EncapsulationError(f"Extended Offset Table offsets must increase (entry {k})",
                                     path=path, tag=EXTENDED_OFFSET_TABLE)
        previous = offset
        frag = by_position.get(offset)
        if frag is None:
            raise EncapsulationError(f"Extended Offset Table entry {k} ({offset}) is not at a "
                                     "fragment item boundary", path=path,
                                     tag=EXTENDED_OFFSET_TABLE)
        if frag[2] != length:
            raise EncapsulationError(f"Extended Offset Table length {k} ({length}) differs from "
                                     f"its fragment's length ({frag[2]})", path=path,
                                     tag=EXTENDED_OFFSET_TABLE_LENGTHS)
        table.append((frag,))
    return table


def _bot_table(ds, info: PixelInfo, bot: list, frags) -> list:
    path = _path(ds)
    if not frags:
        raise EncapsulationError("encapsulated pixel data has no fragments", path=path,
                                 tag=info.tag)
    base = frags[0][0]
    positions = [hoff - base for hoff, _v, _l in frags]
    start_of = {p: k for k, p in enumerate(positions)}
    stream_end = frags[-1][1] + frags[-1][2] - base
    if bot[0] != 0:
        raise EncapsulationError(f"Basic Offset Table starts at {bot[0]}, not 0", path=path,
                                 tag=info.tag)
    if len(bot) != info.frames:
        raise EncapsulationError(f"Basic Offset Table has {len(bot)} entries for {info.frames} "
                                 "frames", path=path, tag=info.tag)
    starts = []
    previous = -1
    for k, offset in enumerate(bot):
        if offset <= previous:
            raise EncapsulationError(f"Basic Offset Table offsets must increase (entry {k})",
                                     path=path, tag=info.tag)
        previous = offset
        if offset >= stream_end:
            raise EncapsulationError(f"Basic Offset Table entry {k} ({offset}) points past the "
                                     "fragments", path=path, tag=info.tag)
        first = start_of.get(offset)
        if first is None:
            raise EncapsulationError(f"Basic Offset Table entry {k} ({offset}) is not at a "
                                     "fragment item boundary", path=path, tag=info.tag)
        starts.append(first)
    starts.append(len(frags))
    return [tuple(frags[starts[k]:starts[k + 1]]) for k in range(len(bot))]


def _ends_codestream(buf, voff: int, length: int) -> bool:
    tail = bytes(memoryview(buf)[voff + max(0, length - 10):voff + length])
    return _EOI in tail


def _fragment_table(ds, info: PixelInfo, frags) -> list:
    path = _path(ds)
    n = len(frags)
    frames = info.frames
    if n == 0:
        raise EncapsulationError("encapsulated pixel data has no fragments", path=path,
                                 tag=info.tag)
    if n == 1 or frames == 1:
        if frames != 1:
            raise EncapsulationError(f"one fragment for {frames} frames", path=path,
                                     tag=info.tag)
        return [tuple(frags)]
    if n == frames:
        return [(f,) for f in frags]
    if n < frames:
        raise EncapsulationError(f"{n} fragments for {frames} frames and no offset table",
                                 path=path, tag=info.tag)
    buf = ds.__dict__["_ctx"].buffer
    table = []
    current = []
    for frag in frags:
        current.append(frag)
        if _ends_codestream(buf, frag[1], frag[2]):
            table.append(tuple(current))
            current = []
    if current:
        table.append(tuple(current))
    if len(table) < frames:
        raise EncapsulationError(f"found {len(table)} codestreams for {frames} frames",
                                 path=path, tag=info.tag)
    if len(table) > frames:
        ctx = ds.__dict__["_ctx"]
        report(getattr(ctx, "validation", "warn"), EncapsulationError(
            f"found {len(table)} codestreams for {frames} frames; extra ones ignored",
            path=path, tag=info.tag))
    return table


def frame_table(ds) -> list:
    """Per frame, the tuple of its fragments ``(value_offset, length)`` (built once)."""
    cache = pixel_cache(ds)
    table = cache.get("frame_table")
    if table is not None:
        return table
    info = pixel_info(ds)
    if not info.encapsulated:
        raise EncapsulationError("pixel data is not encapsulated", path=_path(ds), tag=info.tag)
    _bot_item, frags = fragments(ds, info)
    if EXTENDED_OFFSET_TABLE in ds:
        table = _eot_table(ds, info, frags)
    else:
        bot = basic_offset_table(ds)
        if bot:
            table = _bot_table(ds, info, bot, frags)
        else:
            table = _fragment_table(ds, info, frags)
    table = [tuple((voff, length) for (_h, voff, length) in f) for f in table]
    cache["frame_table"] = table
    return table


def frame_head(ds, index: int, size: int = 64) -> tuple[Union[memoryview, bytes], int]:
    """``(head, length)``: the first ``size`` encoded bytes of frame ``index`` (fewer when the
    frame is shorter) and the frame's total encoded length, without joining its fragments."""
    parts = frame_table(ds)[index]
    buf = memoryview(ds.__dict__["_ctx"].buffer)
    length = sum(part_length for _voff, part_length in parts)
    voff, first = parts[0]
    if first >= size or len(parts) == 1:
        return buf[voff:voff + min(first, size)], length
    head = bytearray()
    for voff, part_length in parts:
        head += buf[voff:voff + min(part_length, size - len(head))]
        if len(head) >= size:
            break
    return bytes(head), length


def encapsulated_frame(ds, index: int) -> Union[memoryview, bytes]:
    """The encoded bytes of frame ``index``: a memoryview on the buffer when the frame is a
    single fragment, else the fragments joined (bytes)."""
    table = frame_table(ds)
    n = pixel_info(ds).frames
    if index < 0:
        index += n
    if not 0 <= index < n:
        raise IndexError(f"frame index {index} out of range for {n} frames")
    parts = table[index]
    owner = ds.__dict__["_ctx"].buffer
    advise = getattr(owner, "advise_willneed", None)
    if advise is not None:  # a memory map: read the frame's range ahead in one go
        advise(parts[0][0], parts[-1][0] + parts[-1][1] - parts[0][0])
    buf = memoryview(owner)
    if len(parts) == 1:
        voff, length = parts[0]
        return buf[voff:voff + length]
    return b"".join(buf[voff:voff + length] for voff, length in parts)
