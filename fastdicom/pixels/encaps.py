"""Encapsulated pixel data: fragments, Basic / Extended Offset Tables, frame -> fragments.

The fragment items are the children of the Pixel Data entry in the element index (the
scanner already walked their 8-byte headers and bounded each length by the data present).
They are held as two int64 arrays (header offsets, lengths), taken from the index in one
vectorised pass, and the frame table as two more (each frame's first fragment and the one
after its last): a file of millions of empty fragments costs 16 bytes a fragment, not a Python
tuple each.  The frame table is built once per data set and cached, so later frame lookups are
O(1):

1. Extended Offset Table (7FE0,0001) + lengths (7FE0,0002), when present: one fragment per
   frame, each offset on an item boundary and each length equal to that fragment's length.
2. Basic Offset Table (the first item), when not empty: first offset 0, strictly increasing,
   each on an item boundary inside the fragment stream, one offset per frame.
3. Otherwise, as pydicom's ``generate_fragmented_frames``: a single frame takes all fragments;
   as many fragments as frames gives one fragment per frame; more fragments than frames are
   grouped by codestream ends (a JPEG EOI / JPEG 2000 EOC marker FFD9 in the last 10 bytes of a
   fragment).  Fewer fragments than frames is an error.

Any inconsistency raises :class:`~fastdicom.errors.EncapsulationError`, with the offset of what
is at fault: the Basic Offset Table item, the Extended Offset Table (Lengths) element, or the
Pixel Data element itself.
"""
from __future__ import annotations

import io
import logging
from typing import Iterator, Optional, Union

import numpy as np

from fastdicom.errors import EncapsulationError, report
from fastdicom.pixels.locator import (PixelInfo, element_header_offset, element_raw, pixel_buffer,
                                      pixel_cache, pixel_index, pixel_info)

__all__ = ["fragments", "frame_table", "frame_head", "encapsulated_frame", "basic_offset_table",
           "frame_offset", "Fragments", "FrameTable",
           "EXTENDED_OFFSET_TABLE", "EXTENDED_OFFSET_TABLE_LENGTHS"]

logger = logging.getLogger("fastdicom")

EXTENDED_OFFSET_TABLE = 0x7FE00001
EXTENDED_OFFSET_TABLE_LENGTHS = 0x7FE00002
ITEM = 0xFFFEE000
_ITEM_HEADER = 8
_TUPLE_CHUNK = 1 << 16      # fragments turned into Python tuples at a time (iteration)
_TAIL_CHUNK = 1 << 16       # fragments whose tails are searched for FFD9 at a time
_SMALL_PART = 512           # fragments shorter than this are gathered vectorised when joined
_GATHER_BYTES = 1 << 20     # bytes of small fragments gathered at a time


class Fragments:
    """The fragment items of encapsulated pixel data (the Basic Offset Table item left out),
    in file order: ``header_offsets`` and ``lengths`` (int64 arrays); each value starts 8 bytes
    after its header.  Indexing and iteration give ``(header_offset, value_offset, length)``."""
    __slots__ = ("header_offsets", "lengths")

    def __init__(self, header_offsets: np.ndarray, lengths: np.ndarray) -> None:
        self.header_offsets = header_offsets
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        hoff = int(self.header_offsets[k])
        return (hoff, hoff + _ITEM_HEADER, int(self.lengths[k]))

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for start in range(0, len(self), _TUPLE_CHUNK):
            hoffs = self.header_offsets[start:start + _TUPLE_CHUNK].tolist()
            lengths = self.lengths[start:start + _TUPLE_CHUNK].tolist()
            for hoff, length in zip(hoffs, lengths):
                yield (hoff, hoff + _ITEM_HEADER, length)


class FrameTable:
    """Frame -> fragments: frame ``k`` is fragments ``first[k]:stop[k]`` of ``fragments``
    (int64 arrays, one entry a frame; more entries than frames when more codestreams were
    found).  ``table[k]`` gives frame ``k``'s fragments as ``(value_offset, length)`` pairs."""
    __slots__ = ("fragments", "first", "stop", "_filled")

    def __init__(self, frags: Fragments, first: np.ndarray, stop: np.ndarray) -> None:
        self.fragments = frags
        self.first = first
        self.stop = stop
        self._filled: Optional[tuple] = None

    def __len__(self) -> int:
        return len(self.first)

    def bounds(self, k: int) -> tuple[int, int]:
        """``(first, stop)``: the fragment indices of frame ``k``."""
        return self.first.item(k), self.stop.item(k)     # (.item: no numpy scalar)

    def parts(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(value_offsets, lengths)`` of the fragments of frame ``k`` (int64 arrays)."""
        i, j = self.bounds(k)
        frags = self.fragments
        return frags.header_offsets[i:j] + _ITEM_HEADER, frags.lengths[i:j]

    def filled_parts(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(value_offsets, lengths)`` of the fragments of frame ``k`` that hold bytes (views
        on arrays of all non-empty fragments, made once: a frame's empty fragments cost
        nothing per call)."""
        if self._filled is None:
            frags = self.fragments
            filled = np.flatnonzero(frags.lengths)
            self._filled = (frags.header_offsets[filled] + _ITEM_HEADER, frags.lengths[filled],
                            np.searchsorted(filled, self.first),
                            np.searchsorted(filled, self.stop))
        voffs, lengths, first, stop = self._filled
        i, j = first.item(k), stop.item(k)
        return voffs[i:j], lengths[i:j]

    def header_offset(self, k: int) -> int:
        """The file offset of the item header of frame ``k``'s first fragment."""
        return self.fragments.header_offsets.item(self.first.item(k))

    def __getitem__(self, k: int) -> tuple:
        voffs, lengths = self.parts(k)
        return tuple(zip(voffs.tolist(), lengths.tolist()))

    def __iter__(self):
        for k in range(len(self)):
            yield self[k]


def _path(ds):
    return getattr(ds.__dict__.get("_ctx"), "path", None)


def fragments(ds, info: PixelInfo | None = None) -> tuple[tuple[int, int, int], Fragments]:
    """``(bot, frags)``: the Basic Offset Table item ``(header_offset, value_offset, length)``
    and the fragment items (a :class:`Fragments`)."""
    cache = pixel_cache(ds)
    cached = cache.get("fragments")
    if cached is not None:
        return cached
    info = info or pixel_info(ds)
    hoffs, lengths = pixel_index(ds).child_extents(info.index_pos)
    if not len(hoffs):
        raise EncapsulationError("encapsulated pixel data has no Basic Offset Table item",
                                 path=_path(ds), offset=info.offset, tag=info.tag)
    bot = (int(hoffs[0]), int(hoffs[0]) + _ITEM_HEADER, int(lengths[0]))
    result = (bot, Fragments(hoffs[1:], lengths[1:]))
    cache["fragments"] = result
    return result


def _bot_array(ds, info: PixelInfo) -> np.ndarray:
    (hoff, voff, length), _ = fragments(ds, info)
    if length % 4:
        raise EncapsulationError(f"Basic Offset Table length {length} is not a multiple of 4",
                                 path=_path(ds), offset=hoff, tag=ITEM)
    if length == 0:
        return np.empty(0, dtype=np.int64)
    buf = pixel_buffer(ds)
    return np.frombuffer(buf, dtype="<u4", count=length // 4, offset=voff).astype(np.int64)


def basic_offset_table(ds) -> list[int]:
    """The Basic Offset Table's offsets (empty list when the table is empty)."""
    return _bot_array(ds, pixel_info(ds)).tolist()


def _no_fragments(ds, info: PixelInfo) -> EncapsulationError:
    return EncapsulationError("encapsulated pixel data has no fragments", path=_path(ds),
                              offset=element_header_offset(ds, info.tag), tag=info.tag)


def _eot_table(ds, info: PixelInfo, frags: Fragments) -> FrameTable:
    path = _path(ds)
    where = dict(path=path, offset=element_header_offset(ds, EXTENDED_OFFSET_TABLE),
                 tag=EXTENDED_OFFSET_TABLE)
    offsets_raw = element_raw(ds, EXTENDED_OFFSET_TABLE)
    lengths_raw = element_raw(ds, EXTENDED_OFFSET_TABLE_LENGTHS)
    if lengths_raw is None:
        raise EncapsulationError("Extended Offset Table without Extended Offset Table Lengths",
                                 **where)
    if len(offsets_raw) % 8 or len(lengths_raw) % 8:
        raise EncapsulationError("Extended Offset Table values must be multiples of 8 bytes",
                                 **where)
    offsets = np.frombuffer(offsets_raw, dtype="<u8").astype(np.uint64)
    lengths = np.frombuffer(lengths_raw, dtype="<u8").astype(np.uint64)
    if len(offsets) != len(lengths):
        raise EncapsulationError(f"Extended Offset Table has {len(offsets)} offsets and "
                                 f"{len(lengths)} lengths", **where)
    if len(offsets) != info.frames:
        raise EncapsulationError(f"Extended Offset Table has {len(offsets)} entries for "
                                 f"{info.frames} frames", **where)
    n = len(frags)
    if not n:
        raise _no_fragments(ds, info)
    positions = (frags.header_offsets - frags.header_offsets[0]).astype(np.uint64)
    increasing = np.ones(len(offsets), dtype=bool)
    increasing[1:] = offsets[1:] > offsets[:-1]
    index = np.searchsorted(positions, offsets)
    found = index < n
    found[found] = positions[index[found]] == offsets[found]
    same_length = np.zeros(len(offsets), dtype=bool)
    same_length[found] = frags.lengths[index[found]].astype(np.uint64) == lengths[found]
    bad = np.flatnonzero(~(increasing & found & same_length))
    if len(bad):
        k = int(bad[0])
        offset = int(offsets[k])
        if not increasing[k]:
            raise EncapsulationError(f"Extended Offset Table offsets must increase (entry {k})",
                                     **where)
        if not found[k]:
            raise EncapsulationError(f"Extended Offset Table entry {k} ({offset}) is not at a "
                                     "fragment item boundary", **where)
        raise EncapsulationError(
            f"Extended Offset Table length {k} ({int(lengths[k])}) differs from its fragment's "
            f"length ({int(frags.lengths[index[k]])})", path=path,
            offset=element_header_offset(ds, EXTENDED_OFFSET_TABLE_LENGTHS),
            tag=EXTENDED_OFFSET_TABLE_LENGTHS)
    first = index.astype(np.int64)
    return FrameTable(frags, first, first + 1)


def _bot_table(ds, info: PixelInfo, bot: np.ndarray, frags: Fragments) -> FrameTable:
    path = _path(ds)
    n = len(frags)
    if not n:
        raise _no_fragments(ds, info)
    (bot_offset, _v, _l), _ = fragments(ds, info)
    where = dict(path=path, offset=bot_offset, tag=info.tag)
    hoffs = frags.header_offsets
    base = int(hoffs[0])
    positions = hoffs - base
    stream_end = int(hoffs[-1]) + _ITEM_HEADER + int(frags.lengths[-1]) - base
    if bot[0] != 0:
        raise EncapsulationError(f"Basic Offset Table starts at {int(bot[0])}, not 0", **where)
    if len(bot) != info.frames:
        raise EncapsulationError(f"Basic Offset Table has {len(bot)} entries for {info.frames} "
                                 "frames", **where)
    increasing = np.ones(len(bot), dtype=bool)
    increasing[1:] = bot[1:] > bot[:-1]
    inside = bot < stream_end
    first = np.searchsorted(positions, bot)
    found = first < n
    found[found] = positions[first[found]] == bot[found]
    bad = np.flatnonzero(~(increasing & inside & found))
    if len(bad):
        k = int(bad[0])
        offset = int(bot[k])
        if not increasing[k]:
            raise EncapsulationError(f"Basic Offset Table offsets must increase (entry {k})",
                                     **where)
        if not inside[k]:
            raise EncapsulationError(f"Basic Offset Table entry {k} ({offset}) points past the "
                                     "fragments", **where)
        raise EncapsulationError(f"Basic Offset Table entry {k} ({offset}) is not at a "
                                 "fragment item boundary", **where)
    first = first.astype(np.int64)
    stop = np.empty_like(first)
    stop[:-1] = first[1:]
    stop[-1] = n
    return FrameTable(frags, first, stop)


def _codestream_ends(buf: np.ndarray, frags: Fragments) -> np.ndarray:
    """Per fragment, whether FFD9 occurs in its last 10 bytes (vectorised, a chunk of
    fragments at a time)."""
    n = len(frags)
    out = np.zeros(n, dtype=bool)
    size = len(buf)
    if size < 2:
        return out
    pair = np.arange(9)
    for s in range(0, n, _TAIL_CHUNK):
        voffs = frags.header_offsets[s:s + _TAIL_CHUNK] + _ITEM_HEADER
        ends = voffs + frags.lengths[s:s + _TAIL_CHUNK]
        starts = np.maximum(ends - 10, voffs)
        ends = np.minimum(ends, size)                 # (as slicing the buffer clips)
        starts = np.minimum(starts, ends)
        pos = starts[:, None] + pair                  # FF at pos, D9 at pos + 1
        valid = pos + 1 < ends[:, None]
        pos = np.where(valid, pos, 0)
        hit = (buf[pos] == 0xFF) & (buf[pos + 1] == 0xD9) & valid
        out[s:s + _TAIL_CHUNK] = hit.any(axis=1)
    return out


def _fragment_table(ds, info: PixelInfo, frags: Fragments) -> FrameTable:
    path = _path(ds)
    n = len(frags)
    frames = info.frames
    if n == 0:
        raise _no_fragments(ds, info)
    where = dict(path=path, offset=element_header_offset(ds, info.tag), tag=info.tag)
    if n == 1 or frames == 1:
        if frames != 1:
            raise EncapsulationError(f"one fragment for {frames} frames", **where)
        return FrameTable(frags, np.zeros(1, dtype=np.int64), np.full(1, n, dtype=np.int64))
    if n == frames:
        first = np.arange(n, dtype=np.int64)
        return FrameTable(frags, first, first + 1)
    if n < frames:
        raise EncapsulationError(f"{n} fragments for {frames} frames and no offset table",
                                 **where)
    buf = np.frombuffer(pixel_buffer(ds), dtype=np.uint8)
    stop = np.flatnonzero(_codestream_ends(buf, frags)).astype(np.int64) + 1
    if not len(stop) or stop[-1] != n:
        stop = np.append(stop, np.int64(n))
    first = np.zeros_like(stop)
    first[1:] = stop[:-1]
    found = len(stop)
    if found < frames:
        raise EncapsulationError(f"found {found} codestreams for {frames} frames", **where)
    if found > frames:
        ctx = ds.__dict__["_ctx"]
        report(getattr(ctx, "validation", "warn"), EncapsulationError(
            f"found {found} codestreams for {frames} frames; extra ones ignored", **where))
    return FrameTable(frags, first, stop)


def frame_table(ds) -> FrameTable:
    """Frame -> fragments (a :class:`FrameTable`, built once): ``table[k]`` is the tuple of
    frame ``k``'s fragments ``(value_offset, length)``."""
    cache = pixel_cache(ds)
    table = cache.get("frame_table")
    if table is not None:
        return table
    info = pixel_info(ds)
    if not info.encapsulated:
        raise EncapsulationError("pixel data is not encapsulated", path=_path(ds),
                                 offset=element_header_offset(ds, info.tag), tag=info.tag)
    _bot_item, frags = fragments(ds, info)
    if EXTENDED_OFFSET_TABLE in ds:
        table = _eot_table(ds, info, frags)
    else:
        bot = _bot_array(ds, info)
        if len(bot):
            table = _bot_table(ds, info, bot, frags)
        else:
            table = _fragment_table(ds, info, frags)
    cache["frame_table"] = table
    return table


def frame_offset(ds, index: int) -> int:
    """The file offset of the item header of frame ``index``'s first fragment."""
    return frame_table(ds).header_offset(index)


def frame_head(ds, index: int, size: int = 64) -> tuple[Union[memoryview, bytes], int]:
    """``(head, length)``: the first ``size`` encoded bytes of frame ``index`` (fewer when the
    frame is shorter) and the frame's total encoded length, without joining its fragments."""
    table = frame_table(ds)
    buf = memoryview(pixel_buffer(ds))
    i, j = table.bounds(index)
    if j - i == 1:
        frags = table.fragments
        voff = int(frags.header_offsets[i]) + _ITEM_HEADER
        length = int(frags.lengths[i])
        return buf[voff:voff + min(length, size)], length
    voffs, lengths = table.filled_parts(index)
    if len(lengths) == 0:
        return b"", 0
    length = int(lengths.sum())
    voff, first = int(voffs[0]), int(lengths[0])
    if first >= size or len(lengths) == 1:
        return buf[voff:voff + min(first, size)], length
    head = bytearray()
    for voff, part_length in zip(voffs[:size].tolist(), lengths[:size].tolist()):
        head += buf[voff:voff + min(part_length, size - len(head))]   # a byte each at least
        if len(head) >= size:
            break
    return bytes(head), length


def _join(owner, voffs: np.ndarray, lengths: np.ndarray, total: int) -> bytes:
    """The fragments' bytes joined into one bytes object of ``total`` bytes, allocated once
    (a BytesIO of that size hands its buffer over): large fragments are copied one by one,
    runs of small ones gathered vectorised, a bounded number of bytes at a time."""
    if total == 0:
        return b""
    out = io.BytesIO()
    out.seek(total - 1)
    out.write(b"\0")
    out.seek(0)
    view = memoryview(owner)
    arr = np.frombuffer(owner, dtype=np.uint8)
    large = np.flatnonzero(lengths >= _SMALL_PART)
    done = 0
    for k in large.tolist() + [len(lengths)]:
        if k > done:     # small fragments done .. k-1
            _gather(out, arr, voffs[done:k], lengths[done:k])
        if k < len(lengths):
            voff = int(voffs[k])
            out.write(view[voff:voff + int(lengths[k])])
        done = k + 1
    data = out.getvalue()
    out.close()
    return data


def _gather(out, arr: np.ndarray, voffs: np.ndarray, lengths: np.ndarray) -> None:
    """Write the bytes of small fragments to ``out``, about ``_GATHER_BYTES`` at a time."""
    ends = np.cumsum(lengths)
    begin = 0
    while begin < len(lengths):
        before = int(ends[begin - 1]) if begin else 0
        stop = int(np.searchsorted(ends, before + _GATHER_BYTES, side="right"))
        stop = max(stop, begin + 1)
        part_lengths = lengths[begin:stop]
        count = int(ends[stop - 1]) - before
        starts_out = ends[begin:stop] - part_lengths - before
        source = np.repeat(voffs[begin:stop] - starts_out, part_lengths)
        source += np.arange(count, dtype=np.int64)
        out.write(arr[source])
        begin = stop


def encapsulated_frame(ds, index: int) -> Union[memoryview, bytes]:
    """The encoded bytes of frame ``index``: a memoryview on the buffer when the frame's bytes
    lie in one fragment, else its fragments joined (bytes, allocated once)."""
    table = frame_table(ds)
    n = pixel_info(ds).frames
    if index < 0:
        index += n
    if not 0 <= index < n:
        raise IndexError(f"frame index {index} out of range for {n} frames")
    i, j = table.bounds(index)
    frags = table.fragments
    owner = pixel_buffer(ds)
    advise = getattr(owner, "advise_willneed", None)
    if j - i == 1:
        voff = frags.header_offsets.item(i) + _ITEM_HEADER
        length = frags.lengths.item(i)
        if advise is not None:  # a memory map: read the frame's range ahead in one go
            advise(voff, length)
        return memoryview(owner)[voff:voff + length]
    if advise is not None:
        start = int(frags.header_offsets[i]) + _ITEM_HEADER
        end = int(frags.header_offsets[j - 1]) + _ITEM_HEADER + int(frags.lengths[j - 1])
        advise(start, end - start)
    voffs, lengths = table.filled_parts(index)
    if len(lengths) == 0:
        return b""
    if len(lengths) == 1:
        voff = int(voffs[0])
        return memoryview(owner)[voff:voff + int(lengths[0])]
    # (clipped to the buffer, as slicing it would clip them)
    lengths = np.clip(np.minimum(voffs + lengths, memoryview(owner).nbytes) - voffs, 0, None)
    return _join(owner, voffs, lengths, int(lengths.sum()))
