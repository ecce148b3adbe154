"""Frame locator: what the pixel data of a data set looks like and where each frame lives.

:func:`pixel_info` reads the Image Pixel module once per data set, checks it against the bytes
present and the configured limits (in Python integers, before anything is allocated), and
caches the result on the data set.  Native frames live at ``offset + k * stride`` in the
context's buffer; encapsulated frames are located by :mod:`fastdicom.pixels.encaps`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from fastdicom import _dictionary as _dict
from fastdicom.errors import (DicomError, EncapsulationError, LimitExceededError,
                              PixelDataError, UnsupportedTransferSyntaxError, report,
                              status_error)

__all__ = ["PixelInfo", "pixel_info", "num_frames", "pixel_cache", "allocate", "memory_error",
           "native_frame_bits", "element_header_offset", "pixel_buffer", "pixel_index",
           "NATIVE_SYNTAXES", "NATIVE_LAYOUT_FRAME_SYNTAXES", "PIXEL_DATA", "FLOAT_PIXEL_DATA",
           "DOUBLE_FLOAT_PIXEL_DATA"]

PIXEL_DATA = 0x7FE00010
FLOAT_PIXEL_DATA = 0x7FE00008
DOUBLE_FLOAT_PIXEL_DATA = 0x7FE00009
_PIXEL_KEYWORDS = {PIXEL_DATA: "PixelData", FLOAT_PIXEL_DATA: "FloatPixelData",
                   DOUBLE_FLOAT_PIXEL_DATA: "DoubleFloatPixelData"}

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
#: transfer syntaxes whose pixel data is stored natively (not encapsulated)
NATIVE_SYNTAXES = frozenset({IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE,
                             "1.2.840.10008.1.2.4.95"})  # JPIP referenced deflate (no pixels)

#: encapsulated syntaxes whose frames hold native-layout bytes (YBR_FULL_422 subsampled as in
#: native data): Encapsulated Uncompressed Explicit VR LE, Deflated Image Frame Compression
NATIVE_LAYOUT_FRAME_SYNTAXES = frozenset({"1.2.840.10008.1.2.1.98", "1.2.840.10008.1.2.8.1"})

_F_ENCAPSULATED = 32
_F_BIG_ENDIAN = 256


@dataclass
class PixelInfo:
    """The Image Pixel description of one data set, checked against its buffer."""
    tag: int                   # 7FE0,0010 / 0008 / 0009
    keyword: str
    vr: str
    offset: int                # value offset in ctx.buffer
    length: int                # value bytes present (clipped to the buffer)
    index_pos: int             # the pixel element's entry in the element index
    transfer_syntax: str       # as given, or the syntax the data set was read with
    encapsulated: bool
    big_endian: bool
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    planar_configuration: int
    photometric: str
    frames: int
    frames_given: bool         # NumberOfFrames present (shape gets a frame axis when > 1)
    pixels_per_frame: int      # rows * columns * samples
    frame_bits: int            # native-layout bits per frame (YBR_FULL_422: subsampled)
    dtype: np.dtype            # dtype of the returned array (byte order as pydicom)

    @property
    def frame_bytes(self) -> int:
        """Bytes per native frame (bit-packed data: rounded up)."""
        return (self.frame_bits + 7) // 8

    @property
    def frame_shape(self) -> tuple:
        if self.samples_per_pixel == 1:
            return (self.rows, self.columns)
        return (self.rows, self.columns, self.samples_per_pixel)

    @property
    def decoded_frame_bytes(self) -> int:
        return self.pixels_per_frame * self.dtype.itemsize


def allocate(shape, dtype, *, path=None, tag: Optional[int] = None) -> np.ndarray:
    """``np.empty(shape, dtype)`` for decoded pixels; running out of memory raises
    :class:`LimitExceededError` naming the size (the header was checked against
    ``limits.decode_budget``, but the machine may hold less)."""
    try:
        return np.empty(shape, dtype=dtype)
    except MemoryError:
        raise memory_error(int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize,
                           path=path, tag=tag) from None


def memory_error(nbytes: int, *, path=None, tag: Optional[int] = None) -> LimitExceededError:
    """The error for a decoded pixel buffer of ``nbytes`` the machine could not allocate."""
    return LimitExceededError(f"out of memory allocating {nbytes} bytes for decoded pixel data",
                              path=path, tag=tag)


def pixel_cache(ds) -> dict:
    """The per-data-set pixel cache (PixelInfo, frame table...), created on first use."""
    d = ds.__dict__
    cache = d.get("_pixel_cache")
    if cache is None:
        cache = {}
        d["_pixel_cache"] = cache
    return cache


def _context(ds):
    ctx = ds.__dict__.get("_ctx")
    return ctx, getattr(ctx, "path", None)


def _int_value(value, keyword: str, default: Optional[int], *, path, tag: int,
               required: bool = True) -> Optional[int]:
    """An integer header value: missing/empty -> default (or PixelDataError when required and
    no default); multi-valued, text or non-integer values -> PixelDataError."""
    if type(value) is int:
        return value
    if value is None or (isinstance(value, (str, bytes, list)) and len(value) == 0):
        if default is None and required:
            raise PixelDataError(f"the data set has no {keyword} value, needed to read pixel "
                                 "data", path=path, tag=tag)
        return default
    if isinstance(value, (list, tuple)):
        raise PixelDataError(f"{keyword} must hold one value, found {len(value)}", path=path,
                             tag=tag)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float)):
        raise PixelDataError(f"{keyword} is not a number", path=path, tag=tag)
    if isinstance(value, float):
        if not value.is_integer():
            raise PixelDataError(f"{keyword} is not an integer", path=path, tag=tag)
    return int(value)


_ABSENT = object()
_PIXEL_TAGS = (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA)
#: the Image Pixel module values pixel_info reads (NumberOfFrames last)
_MODULE_KEYWORDS = ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "BitsStored",
                    "PixelRepresentation", "PlanarConfiguration", "PhotometricInterpretation",
                    "NumberOfFrames")


def locate(exc: DicomError, ds) -> DicomError:
    """Fill in what ``exc`` lacks of where it happened in ``ds``'s file: the path; the tag
    (a PixelDataError without one is about the Pixel Data); the offset of the tag's element
    when the data set holds it (in the inflated stream for a deflated file).  Returns exc."""
    ctx = ds.__dict__.get("_ctx")
    if ctx is None:
        return exc
    if exc.tag is None and isinstance(exc, PixelDataError):
        exc.tag = next((t for t in _PIXEL_TAGS if ds._element(t) is not None),
                       PIXEL_DATA)
    if exc.offset is None and exc.tag is not None:
        elem = ds._element(exc.tag)
        if elem is not None and elem.header_offset >= 0:   # (not a value set in memory)
            exc.offset = elem.header_offset
            exc.inflated = bool(ctx.inflated)
    return exc.with_context(path=ctx.path)


def _number_of_frames(value, path, ds) -> tuple[int, bool]:
    """(frames, given) of a NumberOfFrames value (of ``ds``, whose element the warning of a
    0 locates)."""
    if value is _ABSENT:
        return 1, False
    if type(value) is int and value >= 1:
        return value, True
    if value is None or (isinstance(value, (str, list)) and len(value) == 0):
        return 1, True  # an empty value counts as absent (pydicom assumes 1 frame)
    if isinstance(value, (list, tuple)):
        raise PixelDataError("NumberOfFrames must hold one value", path=path, tag=0x00280008)
    if isinstance(value, str):
        raise PixelDataError("NumberOfFrames is not an integer", path=path, tag=0x00280008)
    try:
        frames = int(value)
    except (TypeError, ValueError):
        raise PixelDataError("NumberOfFrames is not an integer", path=path,
                             tag=0x00280008) from None
    if frames != value:
        raise PixelDataError("NumberOfFrames is not an integer", path=path, tag=0x00280008)
    if frames == 0:
        # not a valid value (at least 1); pydicom and the series loader read one frame
        error = PixelDataError("NumberOfFrames is 0; read as 1 frame", path=path,
                               tag=0x00280008)
        report("warn", locate(error, ds))
        return 1, True
    if frames < 1:
        raise PixelDataError(f"NumberOfFrames must be at least 1, found {frames}", path=path,
                             tag=0x00280008)
    return frames, True


_DTYPES: dict = {}


def _dtype(tag: int, bits_allocated: int, representation: int, big_endian: bool) -> np.dtype:
    """The dtype pydicom returns (big endian data keeps a big endian dtype); cached."""
    key = (tag, bits_allocated, representation, big_endian)
    dtype = _DTYPES.get(key)
    if dtype is None:
        if tag == FLOAT_PIXEL_DATA:
            base = np.dtype("float32")
        elif tag == DOUBLE_FLOAT_PIXEL_DATA:
            base = np.dtype("float64")
        elif bits_allocated == 1:
            base = np.dtype("uint8")
        else:
            base = np.dtype(f"{'ui'[representation]}{bits_allocated // 8}")
        dtype = _DTYPES[key] = base.newbyteorder(">" if big_endian and base.itemsize > 1
                                                 else "<")
    return dtype


def _transfer_syntax(ds, ctx) -> str:
    # the file meta's, once it is built (the caller may have changed it with the pixel data,
    # as pydicom's compress and decompress steps do), else the one the data set was read with
    meta = ds.__dict__.get("_file_meta")
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if not ts:
        ts = getattr(ctx, "transfer_syntax", None)
    if ts:
        return str(ts).strip()
    # no transfer syntax in the file: the encoding the data set was read with
    if not getattr(ctx, "is_little_endian", True):
        return EXPLICIT_BE
    return IMPLICIT_LE if getattr(ctx, "is_implicit_VR", False) else EXPLICIT_LE


def _module_general(ds, path) -> tuple:
    """What :meth:`ElementIndex.pixel_module` gives, for any data set (modified, or with
    values that are not plain), checked in Python with the errors a bad value deserves."""
    present = [t for t in _PIXEL_TAGS if t in ds]
    if not present:
        raise PixelDataError("the data set has no Pixel Data, Float Pixel Data or Double Float "
                             "Pixel Data element", path=path)
    if len(present) > 1:
        raise PixelDataError("more than one of Pixel Data, Float Pixel Data and Double Float "
                             "Pixel Data is present", path=path, tag=present[1])
    tag = present[0]
    elem = ds[tag]
    (v_rows, v_columns, v_bits, v_samples, v_stored, v_repr, v_planar, photometric,
     v_frames) = [getattr(ds, kw, None) for kw in _MODULE_KEYWORDS[:8]] + \
        [getattr(ds, "NumberOfFrames", _ABSENT)]
    kw = dict(path=path)
    rows = _int_value(v_rows, "Rows", None, tag=0x00280010, **kw)
    columns = _int_value(v_columns, "Columns", None, tag=0x00280011, **kw)
    bits_allocated = _int_value(v_bits, "BitsAllocated", None, tag=0x00280100, **kw)
    samples = _int_value(v_samples, "SamplesPerPixel", 1, tag=0x00280002, **kw)
    bits_stored = _int_value(v_stored, "BitsStored", bits_allocated, tag=0x00280101, **kw)
    representation = _int_value(v_repr, "PixelRepresentation", 0, tag=0x00280103, **kw)
    planar = _int_value(v_planar, "PlanarConfiguration", 0, tag=0x00280006, **kw)
    if isinstance(photometric, list):
        photometric = photometric[0] if photometric else None
    photometric = str(photometric).strip() if photometric else "MONOCHROME2"
    frames, frames_given = _number_of_frames(v_frames, path, ds)
    return (tag, elem._index_pos, elem.VR, elem.flags, elem.offset, elem.length,
            elem.header_offset, rows, columns, bits_allocated, samples, bits_stored,
            representation, planar, photometric, frames, frames_given)


def pixel_info(ds) -> PixelInfo:
    """The checked pixel description of ``ds`` (cached on the data set).  An error about an
    element of the Image Pixel module (or the pixel element) carries that element's offset."""
    cache = pixel_cache(ds)
    info = cache.get("info")
    if info is not None:
        return info
    try:
        return _pixel_info(ds, cache)
    except DicomError as exc:
        if exc.offset is None and exc.tag is not None:
            exc.offset = element_header_offset(ds, exc.tag)
            if exc.offset is not None:
                exc.inflated = bool(getattr(ds.__dict__.get("_ctx"), "inflated", False))
        raise


def element_header_offset(ds, tag: int) -> Optional[int]:
    """The file offset of the header of root-level element ``tag`` of ``ds`` (None when it is
    absent or was set in memory)."""
    try:
        if tag not in ds:
            return None
        offset = ds[tag].header_offset
    except (DicomError, KeyError):
        return None
    return offset if offset is not None and offset >= 0 else None


def _pixel_info(ds, cache: dict) -> PixelInfo:
    ctx, path = _context(ds)
    d = ds.__dict__
    index = d.get("_index")
    module = None
    if index is not None and not d.get("_elements") and "_only" not in d and "_deleted" not in d:
        # unmodified data set read from a buffer: the plain case is decoded in C
        module = index.pixel_module(d["_item"])
        if module is not None and not module[2]:
            # implicit VR: the element resolves the pixel VR (OB or OW, as pydicom)
            module = module[:2] + (ds[module[0]].VR,) + module[3:]
    if module is None:
        module = _module_general(ds, path)
    (tag, index_pos, vr, flags, value_offset, value_length, header_offset, rows, columns,
     bits_allocated, samples, bits_stored, representation, planar, photometric, frames,
     frames_given) = module
    ts = _transfer_syntax(ds, ctx)
    buffer = ctx.buffer if ctx is not None else b""
    if header_offset is not None and header_offset < 0:
        header_offset = None    # (a value set in memory: no offset in a file)
    if value_offset < 0:
        # a value set in memory (ds.PixelData = ..., a copy), not read from the buffer
        buffer, value_offset, value_length, items = _value_in_memory(ds, tag, ts, path, ctx)
        cache["buffer"] = buffer
        if items is not None:
            cache["index"], index_pos, flags = items
    encapsulated = bool(flags & _F_ENCAPSULATED)
    if ts not in NATIVE_SYNTAXES:
        entry = _dict.TRANSFER_SYNTAXES.get(ts)
        if entry is None:
            raise UnsupportedTransferSyntaxError(
                f"unknown transfer syntax {ts!r}: cannot decode its pixel data", path=path,
                tag=tag)
        if entry.get("encapsulated") and not encapsulated:
            raise PixelDataError(f"transfer syntax {ts} needs encapsulated pixel data, found "
                                 "a defined-length value", path=path,
                                 offset=header_offset, tag=tag)
    elif encapsulated:
        raise PixelDataError(f"encapsulated (undefined-length) pixel data under the native "
                             f"transfer syntax {ts}", path=path, offset=header_offset,
                             tag=tag)


    if rows < 1 or columns < 1:
        raise PixelDataError(f"Rows and Columns must be positive, found {rows} x {columns}",
                             path=path, tag=0x00280010)
    if rows > 0xFFFF or columns > 0xFFFF:
        raise PixelDataError(f"Rows and Columns must be at most 65535, found {rows} x {columns}",
                             path=path, tag=0x00280010)
    if bits_allocated not in (1, 8, 16, 32, 64):
        raise PixelDataError(f"Bits Allocated must be 1, 8, 16, 32 or 64, found "
                             f"{bits_allocated}", path=path, tag=0x00280100)
    if samples not in (1, 3):
        raise PixelDataError(f"Samples per Pixel must be 1 or 3, found {samples}", path=path,
                             tag=0x00280002)
    if representation not in (0, 1):
        raise PixelDataError(f"Pixel Representation must be 0 or 1, found {representation}",
                             path=path, tag=0x00280103)
    if planar not in (0, 1):
        planar = 0 if samples == 1 else planar
        if planar not in (0, 1):
            raise PixelDataError(f"Planar Configuration must be 0 or 1, found {planar}",
                                 path=path, tag=0x00280006)
    keyword = _PIXEL_KEYWORDS[tag]
    if tag == PIXEL_DATA:
        if not 1 <= bits_stored <= bits_allocated:
            raise PixelDataError(f"Bits Stored must be 1..{bits_allocated} (Bits Allocated), "
                                 f"found {bits_stored}", path=path, tag=0x00280101)
    elif tag == FLOAT_PIXEL_DATA and bits_allocated != 32:
        raise PixelDataError(f"Float Pixel Data needs Bits Allocated 32, found "
                             f"{bits_allocated}", path=path, tag=0x00280100)
    elif tag == DOUBLE_FLOAT_PIXEL_DATA and bits_allocated != 64:
        raise PixelDataError(f"Double Float Pixel Data needs Bits Allocated 64, found "
                             f"{bits_allocated}", path=path, tag=0x00280100)
    if tag != PIXEL_DATA:
        bits_stored = bits_allocated

    big_endian = ts == EXPLICIT_BE or bool(flags & _F_BIG_ENDIAN)
    dtype = _dtype(tag, bits_allocated, representation, big_endian)

    pixels = rows * columns * samples  # Python ints: no overflow
    native_layout = not encapsulated or ts in NATIVE_LAYOUT_FRAME_SYNTAXES
    if photometric == "YBR_FULL_422" and bits_allocated != 1 and native_layout:
        _check_ybr_full_422(rows, columns, samples, path)
    frame_bits = native_frame_bits(rows, columns, samples, bits_allocated,
                                   photometric if native_layout else "")
    limits = getattr(ctx, "limits", None)
    budget = getattr(limits, "decode_budget", 8 << 30)
    # (one frame here: what a frame read allocates; pixel_array checks all its frames
    # against the budget before it allocates them)
    decoded_frame = pixels * dtype.itemsize
    if decoded_frame > budget:
        raise LimitExceededError(
            f"decoding a frame needs {decoded_frame} bytes ({rows} x {columns} x {samples}), "
            f"more than limits.decode_budget ({budget})", path=path, tag=tag)

    buffer_len = len(buffer)
    offset = int(value_offset)
    length = int(value_length)
    if offset < 0 or offset > buffer_len:
        raise PixelDataError("pixel data value lies outside the data", path=path,
                             offset=header_offset, tag=tag)
    length = max(0, min(length, buffer_len - offset))
    info = PixelInfo(tag=tag, keyword=keyword, vr=vr, offset=offset, length=length,
                     index_pos=index_pos, transfer_syntax=ts, encapsulated=encapsulated,
                     big_endian=big_endian, rows=rows, columns=columns,
                     samples_per_pixel=samples, bits_allocated=bits_allocated,
                     bits_stored=bits_stored, pixel_representation=representation,
                     planar_configuration=planar, photometric=photometric, frames=frames,
                     frames_given=frames_given, pixels_per_frame=pixels,
                     frame_bits=frame_bits, dtype=dtype)
    if not encapsulated:
        _check_native_length(info, path, header_offset, getattr(ctx, "validation", "warn"))
    cache["info"] = info
    return info


_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\0\0\0\0"


def _value_in_memory(ds, tag: int, ts: str, path, ctx) -> tuple:
    """``(buffer, offset, length, items)`` for a pixel value set in memory: its bytes, and
    for an encapsulated transfer syntax ``items``, ``(index, position, flags)``: the value's
    items (Basic Offset Table and fragments, as ``encapsulate`` gives them) indexed as the
    scan of a file indexes them, else None."""
    value = ds[tag].value
    try:
        buffer = memoryview(value).cast("B")
    except TypeError:
        raise PixelDataError(f"pixel data set in memory must be bytes-like, not "
                             f"{type(value).__name__}", path=path, tag=tag) from None
    entry = _dict.TRANSFER_SYNTAXES.get(ts)
    if ts in NATIVE_SYNTAXES or entry is None or not entry.get("encapsulated"):
        return buffer, 0, len(buffer), None
    from fastdicom._scan import scan
    if buffer[-8:] == _SEQUENCE_DELIMITER:
        buffer = buffer[:-8]
    # (one copy: the element as a file holds it, delimiter included)
    data = b"".join((struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"OB", 0, 0xFFFFFFFF),
                     buffer, _SEQUENCE_DELIMITER))
    limits = getattr(ctx, "limits", None)
    index = scan(data, 0, len(data), max_elements=getattr(limits, "max_elements", 10_000_000),
                 allow_clip=False)
    if index.status != 0:
        error = status_error(index.status, path=path, tag=index.error_tag or tag)
        raise EncapsulationError(f"encapsulated pixel data set in memory is not a sequence of "
                                 f"items ({error})", path=path, tag=tag)
    pos = index.find(tag, -1)
    _tag, _vr, flags, voff, length, _hoff = index.info(pos)
    return memoryview(data), voff, length, (index, pos, flags)


def pixel_buffer(ds):
    """The buffer the pixel description's offsets refer to: the file's, or the bytes of a
    value set in memory (after :func:`pixel_info`)."""
    buffer = pixel_cache(ds).get("buffer")
    return ds.__dict__["_ctx"].buffer if buffer is None else buffer


def pixel_index(ds):
    """The element index holding the pixel element's items: the file's, or that of a value
    set in memory (after :func:`pixel_info`)."""
    index = pixel_cache(ds).get("index")
    return ds.__dict__["_index"] if index is None else index


def native_frame_bits(rows: int, columns: int, samples: int, bits_allocated: int,
                      photometric: str) -> int:
    """Bits of one frame in native layout: a bit a sample for Bits Allocated 1; YBR_FULL_422
    subsampled (Y Y Cb Cr per pair of pixels)."""
    pixels = rows * columns * samples
    if bits_allocated == 1:
        return pixels
    bits = pixels * bits_allocated
    return bits // 3 * 2 if photometric == "YBR_FULL_422" else bits


def _check_ybr_full_422(rows: int, columns: int, samples: int, path) -> None:
    """YBR_FULL_422 in native layout (native data, and the frames of Encapsulated
    Uncompressed / Deflated Image Frame; PS3.3 C.7.6.3.1.2, PS3.5 8.2) stores each
    horizontal pair of pixels as Y1 Y2 Cb Cr: it needs 3 samples per pixel and an even
    number of columns (pydicom fails on these with a numpy ValueError, or pairs pixels
    across rows)."""
    if samples != 3:
        raise PixelDataError(f"YBR_FULL_422 needs Samples per Pixel 3, found {samples}",
                             path=path, tag=0x00280002)
    if columns % 2:
        raise PixelDataError(f"YBR_FULL_422 pixel data stores pixels in horizontal pairs: "
                             f"Columns must be even, found {columns}", path=path,
                             tag=0x00280011)


def _check_native_length(info: PixelInfo, path, header_offset, validation="warn") -> None:
    """Too few bytes -> PixelDataError; excess bytes are ignored, and whole frames beyond
    the frame count reported (``validation``): pydicom 3 returns them, the frame count
    (NumberOfFrames, 1 without it) decides here."""
    needed = (info.frame_bits * info.frames + 7) // 8
    actual = info.length
    if info.photometric != "YBR_FULL_422" and info.frame_bits and \
            actual * 8 >= info.frame_bits * (info.frames + 1):
        extra = actual * 8 // info.frame_bits - info.frames
        declared = "NumberOfFrames declares" if info.frames_given else \
            "of a data set without NumberOfFrames"
        report(validation, PixelDataError(
            f"pixel data holds {extra} whole frame(s) more than the {info.frames} {declared}; "
            "they are ignored", path=path, offset=header_offset, tag=info.tag))
    if actual < needed:
        raise PixelDataError(
            f"pixel data holds {actual} bytes, {needed} expected for {info.frames} frame(s) of "
            f"{info.rows} x {info.columns} x {info.samples_per_pixel} at "
            f"{info.bits_allocated} bits", path=path, offset=header_offset, tag=info.tag)
    if info.photometric == "YBR_FULL_422" and actual > needed + needed % 2:
        full = needed // 2 * 3
        if actual >= full + full % 2:
            raise PixelDataError(
                "pixel data is a third larger than YBR_FULL_422 allows: the Photometric "
                "Interpretation is probably RGB or YBR_FULL", path=path,
                offset=header_offset, tag=info.tag)


def num_frames(ds) -> int:
    """Number of frames of the pixel data of ``ds`` (1 without NumberOfFrames)."""
    return pixel_info(ds).frames


def element_raw(ds, tag: int) -> Optional[bytes]:
    """The raw value bytes of a root-level element, or None when absent."""
    if tag not in ds:
        return None
    elem = ds[tag]
    index = ds.__dict__.get("_index")
    if index is not None and elem._index_pos >= 0:
        return index.value(elem._index_pos)
    value: Any = elem.value
    return bytes(value) if value is not None else b""
