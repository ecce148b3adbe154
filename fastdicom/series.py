"""Series: find, group into stacks, order slices, compute geometry and load volumes.

* :func:`find_series` -- header-only scans (thread pool) grouped by Study/Series Instance UID
  and then into *stacks*: instances of one series that differ in orientation, Rows/Columns,
  pixel spacing, samples/bits, echo number/time, temporal position, trigger time or b-value
  are separate stacks, each a :class:`SeriesInfo` with ``stack`` and ``split_reason``.
* Slices are ordered by projecting ImagePositionPatient on the slice normal (cross product of
  the ImageOrientationPatient row and column directions); without geometry by InstanceNumber
  (with a :class:`~fastdicom.errors.DicomWarning`).  Duplicate positions, missing slices,
  uneven spacing and gantry tilt are reported on :class:`Geometry` and warned.
* :func:`load_series` -- one preallocated array; native pixel data is ``pread`` straight into
  its destination slice (nogil) from a thread pool across files; encapsulated slices are
  decoded in parallel.
* :func:`load_series_4d` -- the stacks of one grid (time points, echoes, b-values, the
  acquisitions of an fMRI run) as one (volume, slice, row, column) array.
* A Siemens mosaic (ImageType MOSAIC) is unpacked: each tile is a slice, placed by the private
  CSA header (:mod:`fastdicom.siemens`); without what that needs it is loaded as stored, with
  an issue.

The hot paths are in :mod:`fastdicom._series` (nogil): the header scan of a chunk of files
(only the tags grouping/sorting/stacking need, plus the Pixel Data offset; anything unusual
falls back to the general ``dcmread`` path per file) and the bulk slice reader (chunks of
files per task; the calling thread works too, helper threads claim chunks one at a time).

Geometry convention (all arrays are indexed ``[slice, row, column]``): ``Volume.affine`` is a
4x4 matrix mapping ``(slice, row, column, 1)`` voxel indices to DICOM patient coordinates
(LPS, millimetres) of the voxel *centre*; ``affine[:3, 3]`` is the centre of the first pixel
of the first slice (``origin``); ``affine[:3, :3] = direction @ diag(spacing)``.
"""
from __future__ import annotations

import dataclasses
import gc
import itertools
import logging
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ._stop import stops_as_themselves
from ._scan import pread_into, read_file

try:  # nogil header extractor and slice reader; the general path is used without it
    from . import _series
except ImportError:  # pragma: no cover - extension not built
    _series = None
from . import tags as _tags
from .dataset import Dataset, Sequence as DicomSequence
from .errors import (DEFAULT_LIMITS, DicomError, InvalidDicomError,
                     LimitExceededError, Limits, PixelDataError, SeriesError, TruncatedError,
                     UnsafePathError, checked_limits, warn_caller)
from .batch import _vr_code, checked_workers

__all__ = ["SeriesInfo", "Volume", "Volume4D", "Geometry", "InstanceHeader", "find_series",
           "load_series", "load_series_4d",
           "raw_floor_load", "scan_instance", "register_cli"]

logger = logging.getLogger("fastdicom")

_PIXEL_TAGS = {0x7FE00010: None, 0x7FE00008: "f4", 0x7FE00009: "f8"}
_BIG_ENDIAN_TS = "1.2.840.10008.1.2.2"
_DEFLATED_TS = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}
_NATIVE_TS = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", _BIG_ENDIAN_TS}

# Tolerances: orientation cosines (two stacks' orientations alike; a cosine vector's length
# and the two vectors' dot product off unit and zero: an issue), pixel spacing (relative),
# slice spacing (relative/absolute; widened to the rounding of positions written with few
# decimals: see compute_geometry).
ORIENTATION_TOLERANCE = 1e-3
SPACING_RELATIVE_TOLERANCE = 1e-3
SLICE_RELATIVE_TOLERANCE = 0.01
SLICE_ABSOLUTE_TOLERANCE = 1e-3
TILT_TOLERANCE_DEGREES = 0.01
# ... and a gantry tilt (a sheared stack) only when it also moves the last slice sideways from
# the first by more than this fraction of a pixel: the rounding of ImagePositionPatient's text
# (2 or 3 decimals) tilts an untilted oblique stack by more than TILT_TOLERANCE_DEGREES
TILT_LATERAL_PIXELS = 0.05


# ---------------------------------------------------------------------------------------------
# header records

@dataclass(eq=False)
class InstanceHeader:
    """What a header-only scan of one file tells about its image (one frame or many)."""

    path: str
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    sop_class: str = ""
    modality: str = ""
    description: str = ""
    series_number: Optional[int] = None
    frame_of_reference: str = ""
    rows: int = 0
    columns: int = 0
    samples: int = 1
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    photometric: str = ""
    planar_configuration: int = 0
    n_frames: int = 1
    position: Optional[tuple] = None
    orientation: Optional[tuple] = None
    spacing: Optional[tuple] = None
    slice_thickness: Optional[float] = None
    spacing_between_slices: Optional[float] = None
    # RT Dose: each frame's offset along the normal (GridFrameOffsetVector, PS3.3 C.8.8.3.2)
    grid_frame_offsets: Optional[tuple] = None
    instance_number: Optional[int] = None
    acquisition_number: Optional[int] = None
    echo_number: Optional[int] = None
    echo_time: Optional[float] = None
    temporal_position: Optional[int] = None
    trigger_time: Optional[float] = None
    b_value: Optional[float] = None
    image_type: tuple = ()
    slope: float = 1.0
    intercept: float = 0.0
    has_rescale: bool = False
    modality_lut: bool = False     # a Modality LUT Sequence (used instead of slope/intercept)
    transfer_syntax: str = ""
    little_endian: bool = True
    pixel_tag: int = 0x7FE00010
    pixel_offset: int = -1         # file offset of the native pixel value (-1: not direct)
    pixel_length: int = 0
    encapsulated: bool = False
    file_size: int = -1
    # enhanced multi-frame: per-frame geometry
    frames: Optional[list] = None  # list of dicts per frame (position, orientation, ...)

    @property
    def dtype(self) -> Optional[np.dtype]:
        return _native_dtype(self)

    @property
    def frame_bytes(self) -> int:
        dt = self.dtype
        return 0 if dt is None else self.rows * self.columns * self.samples * dt.itemsize


def _native_dtype(h: InstanceHeader) -> Optional[np.dtype]:
    if h.pixel_tag != 0x7FE00010:
        return np.dtype("<" + _PIXEL_TAGS[h.pixel_tag])
    kind = "i" if h.pixel_representation == 1 else "u"
    if h.bits_allocated in (8, 16, 32, 64):
        return np.dtype("<%s%d" % (kind, h.bits_allocated // 8))
    return None


_NUMBER_OF_FRAMES = 0x00280008
_UNDEFINED_LENGTH = 0xFFFFFFFF


def _frame_bits(h: InstanceHeader) -> int:
    """Bits of one native frame of ``h`` as the pixel module counts them (bit-packed data: a
    bit a sample; YBR_FULL_422: subsampled); 8 when Rows, Columns or Bits Allocated is
    missing, so that a frame count is bounded by the bytes present all the same."""
    from .pixels.locator import native_frame_bits
    return native_frame_bits(h.rows, h.columns, h.samples, h.bits_allocated,
                             h.photometric or "") or 8


def _check_frame_count(h: InstanceHeader, length: int, available: int,
                       offset: Optional[int] = None, inflated: bool = False) -> None:
    """Raise :class:`PixelDataError` when the ``h.n_frames`` frames NumberOfFrames declares
    cannot be in the pixel data present: checked before anything is allocated or looped over
    per frame.

    ``length`` is the pixel element's declared value length (0xFFFFFFFF: encapsulated) and
    ``available`` the bytes from its value to the end of the data (the file, or the inflated
    data set), < 0 when not known.  Native frames take their size each, as the pixel module
    reads them; encapsulated frames take a fragment item (8-byte header) each at least, after
    the Basic Offset Table item (a fragment never holds two frames)."""
    n = h.n_frames
    if n <= 1:
        return
    if h.encapsulated:
        if available < 0:
            return
        have = available
        need = 8 * (n + 1)
        what = f"{n} frames in fragments need at least {need} bytes"
    else:
        have = length if available < 0 else min(length, available)
        bits = _frame_bits(h)
        need = (n * bits + 7) // 8
        what = f"{n} frames of {bits} bits need {need} bytes"
    if need > have:
        raise PixelDataError(f"NumberOfFrames does not fit the pixel data: {what}, "
                             f"{max(have, 0)} present", path=h.path, offset=offset,
                             tag=_NUMBER_OF_FRAMES, inflated=inflated)


def _check_header_frames(h: InstanceHeader) -> None:
    """:func:`_check_frame_count` from what an :class:`InstanceHeader` records (the nogil
    header scan's, which reads native pixel data only); native data the header cannot bound
    (deflated: the bytes are the inflated ones) was checked by :func:`scan_instance`."""
    if h.encapsulated:
        _check_frame_count(h, _UNDEFINED_LENGTH, h.file_size)
    elif h.pixel_offset >= 0:
        _check_frame_count(h, h.pixel_length, h.file_size - h.pixel_offset
                           if h.file_size >= 0 else -1)


def _finish_walked_header(h: InstanceHeader) -> InstanceHeader:
    """A header the nogil series walk (``_series.scan_headers``) read, as
    :func:`scan_instance` would give it: the walk does not check NumberOfFrames against the
    pixel bytes present, so this does (PixelDataError: the file is left out)."""
    _check_header_frames(h)
    return h


def _num(value: Any, cast=float) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and
                                             hasattr(value, "__getitem__") and
                                             not isinstance(value, (str, bytes))):
        if len(value) == 0:
            return None
        value = value[0]
    if not isinstance(value, (int, float, str, bytes)):
        # (a number written with a text VR of its own, e.g. PN: a PersonName has a length
        # and no items; it raised TypeError out of find_series)
        value = str(value)
    try:
        if cast is int:
            # an IS value: read as a number, the fraction truncated (as the nogil header scan
            # does); an infinite one ("inf", "1e999") is no integer, as a non-numeric one
            number = float(value)
            return int(number) if math.isfinite(number) else None
        out = cast(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if isinstance(out, float) and not math.isfinite(out):
        return None
    return out


def _vec(value: Any, n: Optional[int]) -> Optional[tuple]:
    """``value`` as a tuple of ``n`` finite floats (``n`` None: one or more); else None."""
    if value is None:
        return None
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if (not vals if n is None else len(vals) != n) or not all(math.isfinite(v) for v in vals):
        return None
    return tuple(vals)


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _items(ds: Any, keyword: str) -> list:
    """The items of sequence ``keyword`` of ``ds``; [] when ``ds`` is not a data set or the
    element is not a sequence (a damaged file can give any VR the keyword's tag)."""
    if not isinstance(ds, Dataset):
        return []
    seq = ds.get(keyword)
    return seq if isinstance(seq, DicomSequence) else []


def _first_item(ds: Any, keyword: str) -> Any:
    items = _items(ds, keyword)
    return items[0] if items and isinstance(items[0], Dataset) else None


def _functional(per_frame: Any, shared: Any, seq_kw: str, kw: str) -> Any:
    for group in (per_frame, shared):
        item = _first_item(group, seq_kw)
        if item is not None:
            v = item.get(kw)
            if v is not None:
                return v
    return None


def _pixel_header(buf: Any, pos: int, explicit: bool, little: bool) -> Optional[tuple]:
    """(tag, value offset, length) of the element header at ``pos`` in ``buf``."""
    mv = memoryview(buf)
    if pos < 0 or pos + 8 > len(mv):
        return None
    from .filereader import element_header
    parsed = element_header(bytes(mv[pos:pos + 12]), explicit, little)
    if parsed is None:
        return None
    tag, hdr_len, length = parsed
    return tag, pos + hdr_len, length


# the root-level tags scan_instance reads through _RawReader (a test checks), and their
# dictionary VRs
_RAW_TAGS = np.array([
    0x00080008, 0x00080016, 0x00080018, 0x00080060, 0x00180050, 0x00180081, 0x00180086,
    0x00180088, 0x00181060, 0x00189087, 0x0020000D, 0x0020000E, 0x00200011, 0x00200012,
    0x00200013, 0x00200032, 0x00200037, 0x00200052, 0x00200100, 0x00280002, 0x00280004,
    0x00280006, 0x00280008, 0x00280010, 0x00280011, 0x00280030, 0x00280100, 0x00280101,
    0x00280103, 0x00281052, 0x00281053, 0x3004000C], np.uint32)
_RAW_VRS = np.array([_vr_code(_tags.dictionary_vr(int(t)) or "") for t in _RAW_TAGS],
                    np.uint16)


class _RawReader:
    """Fast decoding of a few root-level values straight from the element index.  A value
    whose element carries an explicit VR other than the dictionary's (Rows written as IS
    text or SS, a UID as LO...) is the data set's value, read with that VR as ``dcmread``
    reads it."""

    __slots__ = ("index", "order", "ds", "odd")

    def __init__(self, index: Any, little: bool, ds: Any = None) -> None:
        self.index = index
        self.order = "little" if little else "big"
        self.ds = ds
        # the tags (of _RAW_TAGS, those read here) whose element carries an explicit VR other
        # than the dictionary's (nor UN), found at once in C
        self.odd = frozenset(index.vr_mismatches(_RAW_TAGS, _RAW_VRS)) if ds is not None \
            else frozenset()

    def _read(self, tag: int) -> Any:
        """The data set's value of ``tag`` (None when it cannot be read)."""
        try:
            return self.ds[tag].value
        except (KeyError, ValueError, DicomError):
            return None

    def _bytes(self, tag: int) -> Optional[bytes]:
        i = self.index.find(tag, -1)
        if i < 0:
            return None
        return self.index.value(i)

    def _other_text(self, tag: int) -> str:
        """The data set's value of ``tag`` as text (values joined by backslashes)."""
        v = self._read(tag)
        if v is None:
            return ""
        if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
            return v.decode("latin-1") if isinstance(v, bytes) else str(v)
        return "\\".join(str(x) for x in v)

    def text(self, tag: int) -> str:
        if tag in self.odd:
            return self._other_text(tag)
        b = self._bytes(tag)
        return "" if not b else b.decode("latin-1").strip(" \0")

    def uid(self, tag: int) -> str:
        """A UI value as the Dataset (and pydicom's UID()) reads it: trailing spaces and NULs
        off, then surrounding whitespace (tab, newline...)."""
        if tag in self.odd:
            return self._other_text(tag)
        b = self._bytes(tag)
        return "" if not b else b.decode("latin-1").rstrip(" \0").strip()

    def us(self, tag: int) -> Optional[int]:
        if tag in self.odd:
            v = _num(self._read(tag), int)
            return v if v is not None and 0 <= v < 65536 else None
        b = self._bytes(tag)
        if not b or len(b) < 2:
            return None
        return int.from_bytes(b[:2], self.order)

    def fd(self, tag: int) -> Optional[float]:
        if tag in self.odd:
            v = _num(self._read(tag))
            return v if v is not None and math.isfinite(v) else None
        b = self._bytes(tag)
        if not b or len(b) < 8:
            return None
        v = float(np.frombuffer(b[:8], "<f8" if self.order == "little" else ">f8")[0])
        return v if math.isfinite(v) else None

    def number(self, tag: int, cast=float) -> Any:
        if tag in self.odd:
            return _num(self._read(tag), cast)
        b = self._bytes(tag)
        if not b:
            return None
        return _num(b.decode("latin-1").split("\\")[0].strip(" \0"), cast)

    def vector(self, tag: int, n: Optional[int]) -> Optional[tuple]:
        if tag in self.odd:
            v = self._read(tag)
            return _vec(v if isinstance(v, (list, tuple)) or hasattr(v, "__len__") and
                        not isinstance(v, (str, bytes)) else [v], n)
        b = self._bytes(tag)
        if not b:
            return None
        # each value stripped of spaces and NULs, as the nogil header scan (and dcmread's DS
        # values) read it: b"0\0\\0\\2" is (0, 0, 2) whatever the transfer syntax
        return _vec([v.strip(" \0") for v in b.decode("latin-1").split("\\")], n)


def scan_instance(path: Any, limits: Optional[Limits] = None) -> Optional[InstanceHeader]:
    """Header-only scan of one file; None when it holds no image (no Pixel Data)."""
    from .filereader import dcmread

    path = os.fspath(path)
    ds = dcmread(path, stop_before_pixels=True, validation="ignore", limits=limits)
    ctx = ds._ctx
    index = ds._index
    stop = index.stop_offset
    if stop is None or stop < 0:
        if index.n_clipped or index.trailing:
            # the data set ends inside an element: a file cut short, which may have held
            # an image (not a file without one)
            raise TruncatedError("the file ends inside an element, before any Pixel Data",
                                 path=path, offset=len(ctx.buffer))
        return None
    buf = ctx.buffer
    explicit = not ctx.is_implicit_VR
    little = bool(ctx.is_little_endian)
    ph = _pixel_header(buf, stop, explicit, little)
    if ph is None and not ctx.inflated:
        data, _, _ = read_file(path, stop + 12)
        ph = _pixel_header(data, stop, explicit, little)
    if ph is None or ph[0] not in _PIXEL_TAGS:
        return None
    raw = _RawReader(index, little, ds)
    h = InstanceHeader(path=path)
    h.study_uid = raw.uid(0x0020000D)
    h.series_uid = raw.uid(0x0020000E)
    h.sop_uid = raw.uid(0x00080018)
    h.sop_class = raw.uid(0x00080016)
    h.modality = raw.text(0x00080060)
    h.description = _str(ds.get("SeriesDescription")) if index.find(0x0008103E, -1) >= 0 \
        else ""
    h.series_number = raw.number(0x00200011, int)
    h.frame_of_reference = raw.uid(0x00200052)
    h.rows = raw.us(0x00280010) or 0
    h.columns = raw.us(0x00280011) or 0
    h.samples = raw.us(0x00280002) or 1
    h.bits_allocated = raw.us(0x00280100) or 0
    h.bits_stored = raw.us(0x00280101) or h.bits_allocated
    h.pixel_representation = raw.us(0x00280103) or 0
    h.photometric = raw.text(0x00280004)
    h.planar_configuration = raw.us(0x00280006) or 0
    h.n_frames = max(1, raw.number(0x00280008, int) or 1)
    h.position = raw.vector(0x00200032, 3)
    h.orientation = raw.vector(0x00200037, 6)
    h.spacing = raw.vector(0x00280030, 2)
    h.slice_thickness = raw.number(0x00180050)
    h.spacing_between_slices = raw.number(0x00180088)
    h.grid_frame_offsets = raw.vector(0x3004000C, None)
    h.instance_number = raw.number(0x00200013, int)
    h.acquisition_number = raw.number(0x00200012, int)
    h.echo_number = raw.number(0x00180086, int)
    h.echo_time = raw.number(0x00180081)
    h.temporal_position = raw.number(0x00200100, int)
    h.trigger_time = raw.number(0x00181060)
    h.b_value = raw.fd(0x00189087)
    it = raw.text(0x00080008)
    h.image_type = tuple(it.split("\\")) if it else ()
    slope, intercept = raw.number(0x00281053), raw.number(0x00281052)
    h.has_rescale = slope is not None or intercept is not None
    h.modality_lut = index.find(0x00283000, -1) >= 0
    h.slope = slope if slope is not None else 1.0
    h.intercept = intercept if intercept is not None else 0.0
    h.transfer_syntax = _str(ctx.transfer_syntax)
    h.little_endian = little
    h.pixel_tag = ph[0]
    length = ph[2]
    h.encapsulated = length == _UNDEFINED_LENGTH
    if not h.encapsulated and not ctx.inflated and h.transfer_syntax in _NATIVE_TS | {""}:
        h.pixel_offset = ph[1]
        h.pixel_length = length
    try:
        h.file_size = os.stat(path).st_size
    except OSError:
        h.file_size = -1
    if h.n_frames > 1:
        # NumberOfFrames against the bytes present, before anything per frame
        end = h.file_size if h.file_size >= 0 and not ctx.inflated else len(memoryview(buf))
        i = index.find(_NUMBER_OF_FRAMES, -1)
        _check_frame_count(h, length, end - ph[1], offset=index.info(i)[5] if i >= 0 else None,
                           inflated=bool(ctx.inflated))
    if index.find(0x52009230, -1) >= 0 or index.find(0x52009229, -1) >= 0:
        per_frame = _items(ds, "PerFrameFunctionalGroupsSequence")
        shared = _first_item(ds, "SharedFunctionalGroupsSequence")
        _read_functional_groups(h, per_frame, shared)
    return h


def _read_functional_groups(h: InstanceHeader, per_frame: Any, shared: Any) -> None:
    """``h.frames``: per frame, what its Per-frame Functional Groups item (else the Shared
    one) says.  Only the items present are read; the frames without one (a frame count
    checked against the pixel data, :func:`_check_frame_count`) share one record of the
    shared groups."""
    present = min(h.n_frames, len(per_frame))
    frames = [_frame_record(per_frame[i], shared) for i in range(present)]
    if present < h.n_frames:
        frames += [_frame_record(None, shared)] * (h.n_frames - present)
    h.frames = frames
    f0 = frames[0] if frames else {}
    if h.position is None:
        h.position = f0.get("position")
    if h.orientation is None:
        h.orientation = f0.get("orientation")
    if h.spacing is None:
        h.spacing = f0.get("spacing")
    if h.slice_thickness is None:
        h.slice_thickness = f0.get("thickness")
    if not h.has_rescale and f0.get("slope") is not None:
        h.has_rescale = True
        h.slope = f0["slope"]
        h.intercept = f0.get("intercept") or 0.0


def _frame_record(pf: Any, shared: Any) -> dict:
    """The geometry, rescale and dimension values of one frame (``pf``: its Per-frame
    Functional Groups item, or None) with the shared groups' as fallback."""
    pos = _vec(_functional(pf, shared, "PlanePositionSequence", "ImagePositionPatient"), 3)
    ori = _vec(_functional(pf, shared, "PlaneOrientationSequence",
                           "ImageOrientationPatient"), 6)
    spc = _vec(_functional(pf, shared, "PixelMeasuresSequence", "PixelSpacing"), 2)
    thk = _num(_functional(pf, shared, "PixelMeasuresSequence", "SliceThickness"))
    slope = _num(_functional(pf, shared, "PixelValueTransformationSequence",
                             "RescaleSlope"))
    icpt = _num(_functional(pf, shared, "PixelValueTransformationSequence",
                            "RescaleIntercept"))
    content = _first_item(pf, "FrameContentSequence")
    div = content.get("DimensionIndexValues") if content is not None else None
    if div is not None and not isinstance(div, (list, tuple)):
        div = [div]
    if div and not all(isinstance(v, int) for v in div):
        div = None          # not UL (a damaged file): no dimension index
    temporal = _num(content.get("TemporalPositionIndex"), int) if content is not None \
        else None
    return {"position": pos, "orientation": ori, "spacing": spc,
            "thickness": thk, "slope": slope, "intercept": icpt,
            "dimension_index": tuple(int(v) for v in div) if div else None,
            "temporal": temporal}


# ---------------------------------------------------------------------------------------------
# geometry

@dataclass
class Geometry:
    """Ordering and geometry of one stack, with what was found wrong."""

    order: list                      # indices into the stack's instances (or frames), sorted
    ordering: str                    # "position", "instance_number" or "file"
    positions: np.ndarray            # (n, 3) LPS of the sorted slices (NaN when unknown)
    origin: np.ndarray
    direction: np.ndarray            # 3x3, columns = slice, row, column axes
    spacing: tuple                   # (slice, row, column) mm
    affine: np.ndarray
    regular: bool = True
    duplicate_positions: list = field(default_factory=list)   # groups of sorted indices
    missing_slices: list = field(default_factory=list)        # (after sorted index, count)
    uneven_spacing: bool = False
    gantry_tilt_degrees: float = 0.0
    slice_steps: Optional[np.ndarray] = None
    issues: list = field(default_factory=list)

    @property
    def tilted(self) -> bool:
        return abs(self.gantry_tilt_degrees) > TILT_TOLERANCE_DEGREES


def _unit(v: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):    # a damaged huge cosine: an infinite norm, a zero result
        n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _decimal_grid(pos: np.ndarray) -> float:
    """The decimal grid every finite coordinate of ``pos`` lies on (0.01 for positions written
    as "-125.35" or "12.3"), from 1 mm down to 1e-6 mm; 0.0 when finer than that."""
    v = pos[np.isfinite(pos)]
    for d in range(7):
        scaled = v * 10.0 ** d
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6):
            return 10.0 ** -d
    return 0.0


def compute_geometry(positions: Sequence, orientation: Optional[Sequence],
                     pixel_spacing: Optional[Sequence], *, instance_numbers: Sequence = (),
                     slice_thickness: Optional[float] = None, label: str = "",
                     warn: bool = True) -> Geometry:
    """Order slices and derive the affine (see the module docstring for the convention)."""
    n = len(positions)
    issues: list = []
    try:
        spacing_values = [float(v) for v in pixel_spacing]
    except (TypeError, ValueError):
        spacing_values = []
    row_sp, col_sp = spacing_values if len(spacing_values) == 2 else (1.0, 1.0)
    if pixel_spacing is None or _str(pixel_spacing) == "":
        # (the headers of find_series give None for a value that is not two finite numbers)
        issues.append("no PixelSpacing (absent, or not two finite numbers); 1 mm assumed")
    elif len(spacing_values) != 2:
        issues.append(f"PixelSpacing '{_str(pixel_spacing)}' is not two numbers "
                      "(row\\column); 1 mm assumed")
    elif not (math.isfinite(row_sp) and math.isfinite(col_sp) and row_sp > 0 and col_sp > 0):
        # a zero or negative spacing would make the affine singular or mirror the image
        issues.append(f"PixelSpacing {row_sp:g}\\{col_sp:g} is not positive; 1 mm assumed")
        row_sp = col_sp = 1.0
    if orientation is not None:
        o = np.asarray(orientation, float).ravel()[:6]     # (extra values ignored, as before)
        if o.shape != (6,) or not np.isfinite(o).all():
            orientation = None        # not two finite direction cosines: unusable
        else:
            r, c = _unit(o[:3]), _unit(o[3:])
            normal = _unit(np.cross(r, c))
            if not np.any(normal):
                orientation = None
            else:
                lengths = np.linalg.norm(o[:3]), np.linalg.norm(o[3:])
                cosine = float(np.dot(r, c))
                # (PS3.3 C.7.6.2.1.1: unit vectors at right angles)
                if abs(cosine) > ORIENTATION_TOLERANCE or \
                        max(abs(x - 1.0) for x in lengths) > ORIENTATION_TOLERANCE:
                    issues.append("ImageOrientationPatient is not two unit vectors at right "
                                  "angles (lengths %.4g, %.4g; cosine of the angle %.4g): "
                                  "used as unit vectors" % (*lengths, cosine))
    if orientation is None:
        r = np.array([1.0, 0, 0])
        c = np.array([0, 1.0, 0])
        normal = np.array([0, 0, 1.0])
    pos = np.array([p if p is not None and len(p) == 3 else (np.nan,) * 3
                    for p in positions], float).reshape(n, 3)
    # a missing, short or non-finite ImagePositionPatient leaves the stack without geometry
    have_geometry = orientation is not None and n > 0 and bool(np.isfinite(pos).all())
    inst = [i if i is not None else None for i in instance_numbers] if instance_numbers \
        else [None] * n
    if have_geometry:
        proj = pos @ normal
        keys = [(float(proj[i]), inst[i] if inst[i] is not None else 0, i) for i in range(n)]
        order = [k[2] for k in sorted(keys)]
        ordering = "position"
    else:
        if all(v is not None for v in inst) and n:
            order = sorted(range(n), key=lambda i: (inst[i], i))
            ordering = "instance_number"
            msg = "no usable ImagePositionPatient/ImageOrientationPatient; slices ordered by " \
                  "InstanceNumber"
        else:
            order = list(range(n))
            ordering = "file"
            msg = "no usable geometry and no InstanceNumber; slices kept in file order"
        issues.append(msg)
        proj = np.arange(n, dtype=float)

    spos = pos[order]
    sproj = proj[order]
    duplicates: list = []
    missing: list = []
    uneven = False
    tilt = 0.0
    steps = np.diff(sproj) if n > 1 else np.zeros(0)
    # (the magnitude: a negative SpacingBetweenSlices, which some scanners write, turned a
    # single slice's axis against the normal; a nan or inf one made the affine nan)
    default_step = abs(float(slice_thickness)) if slice_thickness \
        and math.isfinite(slice_thickness) else 1.0
    step_vec = normal * default_step
    if have_geometry and n > 1:
        # duplicates: projections equal within the absolute tolerance
        dup_mask = np.abs(steps) <= SLICE_ABSOLUTE_TOLERANCE
        if dup_mask.any():
            groups: list = []
            cur = [0]
            for i, d in enumerate(dup_mask):
                if d:
                    cur.append(i + 1)
                else:
                    if len(cur) > 1:
                        groups.append(cur)
                    cur = [i + 1]
            if len(cur) > 1:
                groups.append(cur)
            duplicates = groups
            issues.append(f"{sum(len(g) for g in groups)} slices share "
                          f"{len(groups)} position(s)")
        real = steps[~dup_mask]
        if real.size:
            nominal = float(np.median(real))
            # positions written with few decimals ("-125.35") move each slice by up to half
            # that grid per coordinate: a step by up to ``grid`` along the normal, and its
            # difference to the nominal step (rounded too) by up to twice that, not unevenly.
            # A grid coarser than an eighth of the step is no rounding but round values
            # (whole-mm positions 1 mm apart): a gap or an uneven step is still told
            grid = min(_decimal_grid(spos) * float(np.abs(normal).sum()),
                       abs(nominal) / 8)
            tol = max(SLICE_RELATIVE_TOLERANCE * abs(nominal), SLICE_ABSOLUTE_TOLERANCE)
            step_tol = max(tol, 2 * grid)
            off = np.abs(real - nominal) > step_tol
            if off.any():
                for i, d in enumerate(steps):
                    if abs(d) <= SLICE_ABSOLUTE_TOLERANCE:
                        continue
                    q = d / nominal
                    k = round(q)
                    # (k steps: the nominal step's own rounding error counts k times)
                    if k >= 2 and abs(d - k * nominal) <= max(k * tol, (k + 1) * grid):
                        missing.append((i, int(k - 1)))
                    elif abs(d - nominal) > step_tol:
                        uneven = True
                if missing:
                    issues.append(f"{sum(m[1] for m in missing)} missing slice(s) "
                                  f"(gaps after sorted slices {[m[0] for m in missing]})")
                if uneven:
                    issues.append("uneven slice spacing (steps %.4g..%.4g mm, nominal %.4g)"
                                  % (float(real.min()), float(real.max()), nominal))
            # the step vector between consecutive slices (in position space)
            n_steps = (n - 1 - sum(len(g) - 1 for g in duplicates)) + sum(m[1] for m in missing)
            n_steps = max(1, n_steps)
            step_vec = (spos[-1] - spos[0]) / n_steps
            along = float(np.dot(step_vec, normal))
            if abs(along) > 0:
                cosang = min(1.0, abs(along) / float(np.linalg.norm(step_vec)))
                tilt = math.degrees(math.acos(cosang))
            # how far the last slice lies sideways of the first (off the normal through it)
            lateral = float(np.linalg.norm(step_vec - along * normal)) * n_steps
            if tilt > TILT_TOLERANCE_DEGREES and \
                    lateral > TILT_LATERAL_PIXELS * min(row_sp, col_sp):
                issues.append("gantry tilt / sheared stack: slices step %.3f degrees off the "
                              "slice normal" % tilt)
            else:
                # the mean step along the normal: the median of steps rounded to a grid
                # (0.625 mm written with one decimal: 0.6 or 0.7) drifts over the stack
                tilt = 0.0
                step_vec = normal * (along if along > 0 else nominal)
    elif n > 1:
        step_vec = normal * default_step
    off_line = _off_line(spos, step_vec, min(row_sp, col_sp)) \
        if have_geometry and n > 2 else None
    if off_line is not None:
        issues.append("slice positions are not on one line: sorted slice %d lies %.4g mm off "
                      "the line of the stack (the affine does not give its position; "
                      "Volume.positions does)" % off_line)
    slice_spacing = float(np.linalg.norm(step_vec)) or default_step
    slice_dir = _unit(step_vec) if np.any(step_vec) else normal
    direction = np.column_stack([slice_dir, c, r])
    spacing = (slice_spacing, row_sp, col_sp)
    origin = spos[0].copy() if n and have_geometry else np.zeros(3)
    if n and not have_geometry and pos.shape[0] and np.isfinite(spos[0]).all():
        origin = spos[0].copy()
    affine = np.eye(4)
    affine[:3, 0] = slice_dir * slice_spacing
    affine[:3, 1] = c * row_sp
    affine[:3, 2] = r * col_sp
    affine[:3, 3] = origin
    regular = not (duplicates or missing or uneven or off_line) and ordering == "position"
    geo = Geometry(order=order, ordering=ordering, positions=spos, origin=origin,
                   direction=direction, spacing=spacing, affine=affine, regular=regular,
                   duplicate_positions=duplicates, missing_slices=missing,
                   uneven_spacing=uneven, gantry_tilt_degrees=tilt, slice_steps=steps,
                   issues=issues)
    if warn:
        for msg in issues:
            warn_caller(f"{label}: {msg}" if label else msg)
    return geo


def _off_line(spos: np.ndarray, step_vec: np.ndarray, pixel: float) -> Optional[tuple]:
    """``(sorted slice, distance in mm)`` of the slice farthest from the line through the
    first slice along ``step_vec``, when it is more than a tenth of a pixel off it (two
    fields of view interleaved in one stack, say); else None."""
    norm = float(np.linalg.norm(step_vec))
    if not norm:
        return None
    u = step_vec / norm
    d = spos - spos[0]
    perp = np.linalg.norm(d - np.outer(d @ u, u), axis=1)
    k = int(np.argmax(perp))
    if perp[k] > max(0.1 * pixel, SLICE_ABSOLUTE_TOLERANCE):
        return k, float(perp[k])
    return None


# ---------------------------------------------------------------------------------------------
# grouping

_SPLIT_FIELDS = (
    ("orientation", "orientation"),
    ("rows/columns", "size"),
    ("pixel spacing", "spacing"),
    ("samples/bits", "layout"),
    ("echo number", "echo_number"),
    ("echo time", "echo_time"),
    ("temporal position", "temporal_position"),
    ("trigger time", "trigger_time"),
    ("b-value", "b_value"),
    ("multi-frame instance", "multiframe"),
    ("acquisition number", "acquisition"),
)


def _round_vec(v: Optional[tuple], step: float) -> Optional[tuple]:
    if v is None:
        return None
    # a value too large to divide by the step (a damaged cosine such as 1e308) is kept as it
    # is: round() of an infinite quotient raises OverflowError
    return tuple(round(x / step) * step + 0.0 if math.isfinite(x / step) else x for x in v)


_KEY_MEMO: dict = {}   # (kind, raw tuple) -> rounded tuple: slices of a stack share them


def _memo_round(kind: int, v: Optional[tuple]) -> Optional[tuple]:
    if v is None:
        return None
    key = (kind, v)
    try:
        r = _KEY_MEMO.get(key)
    except TypeError:   # not hashable (a list)
        key, r = None, None
    if r is None:
        if len(_KEY_MEMO) > 4096:
            _KEY_MEMO.clear()
        r = _round_vec(v, ORIENTATION_TOLERANCE) if kind == 0 else \
            tuple(round(float(x), 4) for x in v)
        if key is not None:
            _KEY_MEMO[key] = r
    return r


def _stack_key(h: InstanceHeader) -> dict:
    return {
        "orientation": _memo_round(0, h.orientation),
        "size": (h.rows, h.columns),
        "spacing": _memo_round(1, h.spacing),
        "layout": (h.samples, h.bits_allocated, h.pixel_representation, h.pixel_tag),
        "echo_number": h.echo_number,
        "echo_time": None if h.echo_time is None else round(h.echo_time, 3),
        "temporal_position": h.temporal_position,
        "trigger_time": None if h.trigger_time is None else round(h.trigger_time, 2),
        "b_value": None if h.b_value is None else round(h.b_value, 1),
        "multiframe": h.path if h.n_frames > 1 else None,
        "acquisition": None,
    }


def _orientation_close(a: Optional[tuple], b: Optional[tuple]) -> bool:
    if a is None or b is None:
        return a is b
    return max(abs(x - y) for x, y in zip(a, b)) <= ORIENTATION_TOLERANCE


def _spacing_close(a: Optional[tuple], b: Optional[tuple]) -> bool:
    """Pixel spacings equal within SPACING_RELATIVE_TOLERANCE (the rounded key alone split
    0.78125 from 0.7812501 across a rounding edge)."""
    if a is None or b is None or len(a) != len(b):
        return a == b
    return all(abs(x - y) <= SPACING_RELATIVE_TOLERANCE * max(abs(x), abs(y))
               for x, y in zip(a, b))


_CLOSE = {"orientation": _orientation_close, "spacing": _spacing_close}


@dataclass(eq=False)
class SeriesInfo:
    """One stack of one series (instances that form one volume)."""

    StudyInstanceUID: str
    SeriesInstanceUID: str
    Modality: str
    SeriesDescription: str
    SeriesNumber: Optional[int]
    stack: int
    split_reason: Optional[str]
    instances: list                  # InstanceHeader, in slice order
    geometry: Optional[Geometry] = None
    duplicates: list = field(default_factory=list)   # paths of same-SOP-UID duplicate files
    skipped: list = field(default_factory=list)      # (path, reason)
    # a Siemens mosaic stack: the layout of its files' tiles, and per slice (in order) the
    # index of its instance and of its tile there
    mosaic: Any = None
    mosaic_tiles: Optional[np.ndarray] = None

    @property
    def num_instances(self) -> int:
        return len(self.instances)

    @property
    def paths(self) -> list:
        return [Path(h.path) for h in self.instances]

    @property
    def num_frames(self) -> int:
        return sum(h.n_frames for h in self.instances)

    @property
    def shape(self) -> tuple:
        h = self.instances[0]
        tail = (h.rows, h.columns) + ((h.samples,) if h.samples > 1 else ())
        if self.mosaic is not None:
            return (len(self.mosaic_tiles), self.mosaic.tile_rows, self.mosaic.tile_columns)
        if len(self.instances) == 1 and h.n_frames > 1:
            shape4 = _multiframe_shape(h)
            return shape4 + tail
        return (len(self.instances),) + tail

    @property
    def dtype(self) -> Optional[np.dtype]:
        dt = self.instances[0].dtype
        return None if dt is None else dt.newbyteorder("=")

    @property
    def issues(self) -> list:
        return list(self.geometry.issues) if self.geometry is not None else []

    def __repr__(self) -> str:
        split = f" split by {self.split_reason}" if self.split_reason else ""
        return (f"<SeriesInfo {self.Modality} {self.SeriesInstanceUID} stack {self.stack}"
                f"{split}: {self.num_instances} instance(s), shape {self.shape}>")


def _multiframe_shape(h: InstanceHeader) -> tuple:
    plan = _frame_plan(h, warn=False)[0]
    return plan.shape


def _frame_plan(h: InstanceHeader, warn: bool = True) -> tuple:
    """(frame index array shaped (n,) or (t, n), Geometry) for a multi-frame instance."""
    _check_header_frames(h)     # (done by the scans; a header made elsewhere may not be)
    frames, grid_issue = h.frames or [], None
    if not frames and h.grid_frame_offsets is not None:
        # RT Dose: the frames' planes from the GridFrameOffsetVector, then ordered and
        # checked as per-frame positions are
        frames, grid_issue = _grid_frames(h)
    order, geo = _plan_of_frames(h, frames, warn)
    if grid_issue:
        geo.issues.append(grid_issue)
        if warn:
            warn_caller(f"{h.path}: {grid_issue}")
    return order, geo


def _plan_of_frames(h: InstanceHeader, frames: list, warn: bool) -> tuple:
    n = h.n_frames
    positions = [f.get("position") for f in frames] if frames else [None] * n
    if len(positions) < n:
        positions += [None] * (n - len(positions))
    orientation = h.orientation
    unplaced = sum(p is None for p in positions)
    if frames and 0 < unplaced < n:
        # some frames placed, some not: no order or slice axis can be trusted (the root
        # position or the positions known would place the others wrongly), so frame order,
        # no geometry, and said so
        geo = _unplaced_frames(h, n)
        geo.positions = np.array([p if p is not None else (np.nan,) * 3 for p in positions],
                                 float).reshape(n, 3)
        if positions[0] is not None:
            geo.origin = geo.positions[0].copy()
            geo.affine[:3, 3] = geo.origin
        msg = (f"{unplaced} of {n} frames have no position (PlanePositionSequence): frames "
               "kept in frame order, slice axis unknown")
        geo.issues.append(msg)
        geo.ordering = "frame"
        geo.regular = False
        if warn:
            warn_caller(f"{h.path}: {msg}")
        return np.arange(n), geo
    if not frames or unplaced:
        order = np.arange(n)
        root = _root_frame_positions(h)
        if root is not None:
            # no per-frame positions: frame k at ImagePositionPatient + k * step along the
            # normal (SpacingBetweenSlices; PS3.3 C.8.4.15 for NM), in frame order
            synth, step, known = root
            geo = compute_geometry(synth, orientation, h.spacing, slice_thickness=step,
                                   warn=False)
            if not known:
                geo.issues.append("no per-frame positions and no SpacingBetweenSlices: frames "
                                  f"placed every {step:g} mm from ImagePositionPatient")
                geo.regular = False
        else:
            geo = _unplaced_frames(h, n)
        geo.ordering = "frame"
        return order, geo
    normal = np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:6])) \
        if orientation else np.array([0, 0, 1.0])
    proj = np.array([float(np.dot(p, normal)) for p in positions])
    # group frames by position (within tolerance)
    uniq: list = []
    slot = np.empty(n, int)
    sorted_idx = np.argsort(proj, kind="stable")
    for i in sorted_idx:
        if uniq and abs(proj[i] - uniq[-1][0]) <= SLICE_ABSOLUTE_TOLERANCE:
            uniq[-1][1].append(int(i))
        else:
            uniq.append((proj[i], [int(i)]))
        slot[i] = len(uniq) - 1
    mixed = _mixed_frame_planes(h, frames)
    counts = {len(u[1]) for u in uniq}

    def told_apart(members: list) -> bool:
        # frames at one position are time points when their temporal position or dimension
        # index tells them apart; else they are frames sharing a position (SeriesError below,
        # as for slices)
        keys = {(frames[f].get("temporal"), frames[f].get("dimension_index")) for f in members}
        return len(keys) == len(members)
    if len(uniq) < n and len(counts) == 1 and not mixed and \
            all(told_apart(m) for _, m in uniq):
        t = counts.pop()

        def tkey(f: int) -> tuple:
            fr = frames[f]
            return (fr.get("temporal") if fr.get("temporal") is not None else 0,
                    fr.get("dimension_index") or (), f)
        grid = np.empty((t, len(uniq)), int)
        for k, (_, members) in enumerate(uniq):
            for j, f in enumerate(sorted(members, key=tkey)):
                grid[j, k] = f
        first = [positions[int(f)] for f in grid[0]]
        geo = compute_geometry(first, orientation, h.spacing,
                               slice_thickness=h.slice_thickness, label=h.path, warn=warn)
        return grid, geo
    geo = compute_geometry(positions, orientation, h.spacing,
                           instance_numbers=list(range(n)),
                           slice_thickness=h.slice_thickness, label=h.path, warn=warn)
    if mixed:
        geo.issues.append(mixed)
        geo.regular = False
        if warn:
            warn_caller(f"{h.path}: {mixed}")
    return np.asarray(geo.order), geo


def _unplaced_frames(h: InstanceHeader, n: int) -> Geometry:
    """The geometry of ``n`` frames kept in frame order, without positions (compute_geometry's
    InstanceNumber wording left out: frames have none)."""
    geo = compute_geometry([None] * n, h.orientation, h.spacing,
                           instance_numbers=list(range(n)),
                           slice_thickness=h.slice_thickness, warn=False)
    geo.issues = [i for i in geo.issues if "InstanceNumber" not in i]
    return geo


# how far an absolute GridFrameOffsetVector's first value may lie from the position's (both
# DS text, written with different precision)
_GRID_TOLERANCE = 0.01


def _grid_frames(h: InstanceHeader) -> tuple:
    """([{"position": ...}] per frame, an issue or None) from an RT Dose's
    GridFrameOffsetVector, or ([], why it is not used).  PS3.3 C.8.8.3.2: the offsets run along the normal from
    ImagePositionPatient; a first offset of 0 makes them relative to the first frame, else
    they are absolute z (axial grids only), the first equal to the position's z.  Both read
    as offset - first offset from ImagePositionPatient; in either form they may decrease."""
    offsets, n = h.grid_frame_offsets, h.n_frames
    if len(offsets) != n:
        return [], (f"GridFrameOffsetVector has {len(offsets)} value(s) for {n} frame(s): "
                    "not used")
    root = _root_and_normal(h)
    if root is None:
        return [], None          # no position or orientation: frames stay unplaced
    p, normal = root
    first, issue = offsets[0], None
    if first != 0 and abs(first - float(np.dot(p, normal))) > _GRID_TOLERANCE:
        issue = (f"GridFrameOffsetVector starts at {first:g}, neither 0 (relative) nor the "
                 f"position along the normal, {float(np.dot(p, normal)):g} (absolute): read "
                 "as relative to its first value")
    return [{"position": tuple(p + (o - first) * normal)} for o in offsets], issue


def _root_and_normal(h: InstanceHeader) -> Optional[tuple]:
    """(ImagePositionPatient, unit normal) of a multi-frame instance that records one position
    and orientation for all its frames; None without both (or with an unusable one)."""
    root, ori = h.position, h.orientation
    if root is None or ori is None or len(root) != 3 or len(ori) < 6:
        return None
    o = np.asarray(ori[:6], float)
    p = np.asarray(root, float)
    normal = np.cross(o[:3], o[3:6])
    norm = float(np.linalg.norm(normal))
    if not (np.isfinite(p).all() and np.isfinite(normal).all()) or norm < 1e-6:
        return None
    return p, normal / norm


def _root_frame_positions(h: InstanceHeader) -> Optional[tuple]:
    """(positions, step, step known) of the frames of a multi-frame instance that records one
    ImagePositionPatient and ImageOrientationPatient for all of them; None without both."""
    root = _root_and_normal(h)
    if root is None:
        return None
    p, normal = root
    sbs = h.spacing_between_slices
    known = sbs is not None and math.isfinite(sbs) and sbs > 0
    thk = h.slice_thickness
    step = float(sbs) if known else (float(thk) if thk is not None and math.isfinite(thk)
                                     and thk > 0 else 1.0)
    return [tuple(p + k * step * normal) for k in range(h.n_frames)], step, known


def _mixed_frame_planes(h: InstanceHeader, frames: list) -> Optional[str]:
    """What is wrong when frames of a multi-frame instance lie in planes of different
    orientations or pixel spacings (a 3-plane localizer, say): one affine cannot describe
    them; else None."""
    for key, what in (("orientation", "orientation"), ("spacing", "pixel spacing")):
        first = getattr(h, key)
        if first is None:
            continue
        for k, fr in enumerate(frames):
            v = fr.get(key)
            if v is not None and not _CLOSE[key](tuple(first), tuple(v)):
                return (f"frames differ in {what} (frame {k}: {tuple(v)} against "
                        f"{tuple(first)}): one affine cannot describe them")
    return None


def _iter_inputs(paths_or_directory: Any, recursive: bool) -> tuple:
    """Expand inputs to (file paths, [DicomDir], the paths given that are not folders,
    [(folder, PermissionError)] of the folders a walk may not list); DICOMDIRs are
    followed."""
    import stat
    from .dicomdir import read_dicomdir

    if isinstance(paths_or_directory, (str, os.PathLike)):
        items = [paths_or_directory]
    else:
        items = list(paths_or_directory)
    files: list = []
    dicomdirs: list = []
    explicit: set = set()
    real_dirs: dict = {}
    unlisted: list = []
    for item in items:
        p = _normalised(item)
        try:
            mode = os.lstat(p).st_mode
        except (OSError, ValueError):   # (ValueError: a NUL byte in the path)
            mode = 0                    # missing or unreadable: the scan reports it
        if stat.S_ISDIR(mode) or (stat.S_ISLNK(mode) and os.path.isdir(p)):
            found: list = []
            _walk_dir(p, recursive, found, unlisted)
            found.sort()
            files.extend(found)
            continue
        explicit.add(p)
        key = None                      # a symlink or a missing file: realpath below
        if stat.S_ISREG(mode):
            # the canonical path from the folder's, resolved once per folder (realpath of
            # every file would lstat each component of its path)
            folder, _, name = (p if p[:1] == "/" and "/.." not in p
                               else os.path.abspath(p)).rpartition("/")
            real = real_dirs.get(folder)
            if real is None:
                real = real_dirs[folder] = os.path.realpath(folder or "/")
            key = _child(real, name)
        files.append((p, key))
    out: list = []
    seen: set = set()
    for f, key in files:
        name = f.rpartition("/")[2]
        if len(name) == 8 and name.upper() == "DICOMDIR":
            try:
                dd = read_dicomdir(f)
            except (DicomError, OSError) as exc:
                if f in explicit or isinstance(exc, UnsafePathError):
                    raise
                # damaged, found by a walk: its folder's files are walked anyway
                warn_caller(f"DICOMDIR left out: {exc}")
                continue
            dicomdirs.append(dd)
            _add_referenced(dd, seen, out)
            continue
        if key is None:
            try:
                key = os.path.realpath(f)
            except ValueError:          # a NUL byte: the scan reports the path
                key = f
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out, dicomdirs, explicit, unlisted


def _add_referenced(dd, seen: set, out: list) -> None:
    """Append to ``out`` the files DICOMDIR ``dd`` references whose real path is not in
    ``seen`` (added to it).  A referenced file that is absent or not a file goes to the scan
    too, which leaves it out with a warning (a DICOMDIR whose files were all gone said only
    "no image series found")."""
    for ref in dd.paths:
        key = os.path.realpath(ref)
        if key not in seen:
            seen.add(key)
            out.append(str(ref))


def _normalised(item) -> str:
    """``os.fspath(Path(item))`` (a path normalised as pathlib does: no empty or "."
    components, no trailing slash), without building a Path for a str that is normal
    already."""
    if type(item) is str and item and "//" not in item and "/./" not in item \
            and item[-1] != "/" and not item.endswith("/.") and not item.startswith("./") \
            and item != ".":
        return item
    return os.fspath(Path(item))


def _child(folder: str, name: str) -> str:
    """The path of ``name`` in ``folder`` (one slash between them, also under "/")."""
    return folder + name if folder.endswith("/") else folder + "/" + name


def _walk_dir(top: str, recursive: bool, out: list, unlisted: list) -> None:
    """Append (path, canonical path) of the files under ``top`` (like ``Path.rglob("*")`` /
    ``iterdir()`` + ``is_file()``: symlinked files are included, symlinked folders are not
    entered), and (folder, PermissionError) to ``unlisted`` for each folder it may not list
    (one that vanished meanwhile is not an error; other errors raise, as they did).  The
    canonical path is derived from the folder's ``realpath`` without a system call per file
    (only symlinks are resolved one by one)."""
    stack = [(top, os.path.realpath(top))]
    while stack:
        folder, real = stack.pop()
        prefix = _child(real, "")
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError as exc:
            unlisted.append((folder, exc))
            continue
        for e in entries:
            try:
                if e.is_symlink():
                    if e.is_file():
                        out.append((e.path, os.path.realpath(e.path)))
                elif e.is_dir():
                    if recursive:
                        stack.append((e.path, prefix + e.name))
                elif e.is_file():
                    out.append((e.path, prefix + e.name))
            except OSError:
                continue


def _default_workers(workers: Optional[int]) -> int:
    if workers is None:
        return max(1, min(8, os.cpu_count() or 1))
    return checked_workers(workers)


_HELPERS: Optional[ThreadPoolExecutor] = None
_HELPERS_LOCK = threading.Lock()


def _helpers() -> ThreadPoolExecutor:
    """A process-wide pool of helper threads (started lazily, kept for later calls, so a
    small series does not pay for thread start-up)."""
    global _HELPERS
    with _HELPERS_LOCK:
        if _HELPERS is None:
            _HELPERS = ThreadPoolExecutor(max(4, min(32, os.cpu_count() or 1)),
                                          thread_name_prefix="fastdicom-series")
        return _HELPERS


def _forget_helpers() -> None:
    """In a forked child: the parent's helper threads did not come along (a task submitted
    to them would wait forever); a new pool is made on demand."""
    global _HELPERS, _HELPERS_LOCK
    _HELPERS = None
    _HELPERS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helpers)


def _run_chunks(fn: Any, tasks: Sequence, workers: int) -> None:
    """Call ``fn(task)`` for every task on ``workers`` threads: the calling thread and
    ``workers - 1`` helpers claim tasks one at a time, so a helper that gets no CPU (a busy
    machine) costs nothing -- the caller simply does more of the work."""
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            fn(t)
        return
    counter = itertools.count()
    n = len(tasks)
    failed: list = []

    def worker() -> None:
        while not failed:
            i = next(counter)       # atomic under the GIL
            if i >= n:
                return
            try:
                fn(tasks[i])
            except BaseException as exc:
                failed.append(exc)
                raise

    pool = _helpers()
    futures = [pool.submit(worker) for _ in range(min(workers, n) - 1)]
    try:
        worker()
    except BaseException:
        pass
    for f in futures:       # helpers may still write into shared results: wait for them
        try:
            f.result()
        except BaseException:
            pass
    if failed:
        raise failed[0]


def _chunk_bounds(n: int, parts: int) -> list:
    """``parts`` (at most ``n``) contiguous (start, stop) ranges covering ``range(n)``."""
    parts = max(1, min(parts, n))
    edges = [n * k // parts for k in range(parts + 1)]
    return [(edges[k], edges[k + 1]) for k in range(parts) if edges[k + 1] > edges[k]]


def _scan_all(paths: list, workers: int, explicit: set, limits: Limits = DEFAULT_LIMITS
              ) -> tuple:
    from .dicomdir import is_dicomdir
    headers: list = []
    skipped: list = []
    directories: list = []      # files named explicitly that are DICOMDIRs by their header
    unreadable: list = []       # files of a walk that could not be read (not: not DICOM)
    damaged: list = []          # files of a walk that are DICOM but damaged (truncated...)

    def one(p: str):
        if "\0" in p:                   # no file has that name (open would refuse it)
            return None, ValueError(f"embedded null byte in {p!r}")
        try:
            return scan_instance(p, limits), None
        except (DicomError, OSError, ValueError, OverflowError) as exc:
            # a file that cannot be read, or whose header holds values that cannot be
            # (a number a conversion refuses): that file is left out, the scan goes on
            return None, exc

    def checked(h: Any) -> tuple:
        try:
            return _finish_walked_header(h), None
        except PixelDataError as exc:
            return None, exc

    if _series is not None and paths:
        # nogil header extraction in a few big chunks; files it cannot handle exactly
        # (unusual encodings, functional groups, anything malformed) take the general path
        if workers > 1 and len(paths) >= 64:
            bounds = _chunk_bounds(len(paths), max(workers * 4, len(paths) // 64))
            parts: list = [None] * len(bounds)

            def scan_part(k: int) -> None:
                b = bounds[k]
                parts[k] = _series.scan_headers(paths[b[0]:b[1]], InstanceHeader,
                                                max_depth=limits.max_depth)
            _run_chunks(scan_part, range(len(bounds)), workers)
            fast = [r for part in parts for r in part]
        else:
            fast = _series.scan_headers(paths, InstanceHeader, max_depth=limits.max_depth)
        slow = [p for p, r in zip(paths, fast) if r is False]
        if workers > 1 and len(slow) > 8:
            with ThreadPoolExecutor(workers) as pool:
                slow_results = iter(list(pool.map(one, slow, chunksize=16)))
        else:
            slow_results = iter([one(p) for p in slow])
        results = [(r, None) if r is None else checked(r) if r is not False
                   else next(slow_results) for r in fast]
    elif workers > 1 and len(paths) > 8:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, paths, chunksize=16))
    else:
        results = [one(p) for p in paths]
    for p, (h, exc) in zip(paths, results):
        if exc is not None:
            if isinstance(exc, UnsafePathError):
                raise exc
            skipped.append((p, f"{type(exc).__name__}: {exc}"))
            if p in explicit:
                warn_caller(f"{p}: not readable as DICOM ({type(exc).__name__})")
            elif isinstance(exc, OSError):
                unreadable.append((p, exc))
            elif isinstance(exc, InvalidDicomError):
                logger.debug("skipping %s: %s", p, exc)     # not DICOM
            else:
                damaged.append((p, exc))
        elif h is not None:
            headers.append(h)
        elif p in explicit and is_dicomdir(p):
            directories.append(p)       # a DICOMDIR by its header, under another name
        elif p in explicit:
            warn_caller(f"{p}: holds no image (no Pixel Data), left out")
        else:
            logger.debug("skipping %s: no image (no Pixel Data)", p)
    _warn_left_out(unreadable, "file", "could not be read")
    _warn_left_out(damaged, "DICOM file", "is damaged")
    return headers, skipped, directories


def _warn_left_out(failed: list, noun: str, what: str) -> None:
    """One warning for the (path, OSError) pairs of a walk that were left out (a file or
    folder that cannot be read may hold slices; files that are not DICOM are only logged)."""
    if not failed:
        return
    p, exc = failed[0]
    more = f" ({p}: {type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
    more += f", and {len(failed) - 1} more)" if len(failed) > 1 else ")"
    n = len(failed)
    what = what.replace("is ", "are ") if n > 1 else what
    warn_caller(f"{n} {noun}{'s' if n > 1 else ''} {what} and {'are' if n > 1 else 'is'}"
                f" left out{more}")


def _build_stacks(headers: list, warn: bool = True, limits: Limits = DEFAULT_LIMITS,
                  warn_split: bool = True) -> list:
    series: dict = {}
    for h in headers:
        series.setdefault((h.study_uid, h.series_uid), []).append(h)
        if h.modality == "RTDOSE" and not h.has_rescale and not h.modality_lut:
            _dose_grid_scaling(h, limits, warn)
    result: list = []
    for (study, uid), members in series.items():
        # drop exact duplicates (same SOP Instance UID), keep the first path of a copy whose
        # pixel data is all in its file (a copy cut short is kept only when no other is)
        by_sop: dict = {}
        dups: list = []
        unique: list = []
        for h in sorted(members, key=lambda x: (x.pixel_offset >= 0 and
                                                 _bytes_missing(x, x.pixel_length), x.path)):
            if h.sop_uid and h.sop_uid in by_sop:
                dups.append(h.path)
                continue
            if h.sop_uid:
                by_sop[h.sop_uid] = h
            unique.append(h)
        if dups and warn:
            warn_caller(f"series {uid}: {len(dups)} duplicate file(s) of the same SOP "
                        "instance ignored (listed in SeriesInfo.duplicates)")
        groups: list = []   # (key dict, [headers])
        exact: dict = {}    # key values -> members (same group as the tolerant search finds)
        for h in unique:
            key = _stack_key(h)
            hkey = tuple(key.values())
            members = exact.get(hkey)
            if members is not None:
                members.append(h)
                continue
            for gkey, gmembers in groups:
                if all(_CLOSE[k](gkey[k], key[k]) if k in _CLOSE else gkey[k] == key[k]
                       for k in key):
                    gmembers.append(h)
                    exact[hkey] = gmembers
                    break
            else:
                groups.append((key, [h]))
                exact[hkey] = groups[-1][1]
        # repeated positions with different acquisition numbers: split by acquisition
        refined: list = []
        for key, gm in groups:
            acq = {h.acquisition_number for h in gm}
            if len(acq) > 1 and key["orientation"] is not None and \
                    all(h.position is not None for h in gm):
                pos = [tuple(round(v, 3) for v in h.position) for h in gm]
                if len(set(pos)) < len(pos):
                    for a in sorted(acq, key=lambda x: (x is None, x or 0)):
                        k2 = dict(key, acquisition=a)
                        refined.append((k2, [h for h in gm if h.acquisition_number == a]))
                    continue
            refined.append((key, gm))
        groups = sorted(refined, key=lambda g: (-len(g[1]), g[1][0].path))
        reason = None
        if len(groups) > 1:
            differing = [name for name, k in _SPLIT_FIELDS
                         if len({repr(g[0][k]) for g in groups}) > 1]
            reason = ", ".join(differing) or "unknown"
        mosaic = None
        for k, (key, gm) in enumerate(groups):
            first = gm[0]
            info = SeriesInfo(StudyInstanceUID=study, SeriesInstanceUID=uid,
                              Modality=first.modality, SeriesDescription=first.description,
                              SeriesNumber=first.series_number, stack=k,
                              split_reason=reason, instances=gm, duplicates=dups if k == 0
                              else [])
            if len(gm) == 1 and first.n_frames > 1:
                info.geometry = _frame_plan(first, warn=warn)[1]
            else:
                label = f"series {uid}" + (f" stack {k}" if len(groups) > 1 else "")
                info.geometry = compute_geometry(
                    [h.position for h in gm], first.orientation, first.spacing,
                    instance_numbers=[h.instance_number for h in gm],
                    slice_thickness=first.spacing_between_slices or first.slice_thickness,
                    label=label, warn=warn)
                info.instances = [gm[i] for i in info.geometry.order]
                info.geometry.order = list(range(len(gm)))
            mosaic = _unpack_mosaic(info, limits) or mosaic
            result.append(info)
        if mosaic and warn:     # once per series, however many stacks its files make
            warn_caller(f"series {uid}: {mosaic}")
        if len(groups) > 1 and warn and warn_split:
            warn_caller(f"series {uid} splits into {len(groups)} stacks by {reason}")
    result.sort(key=lambda s: (s.StudyInstanceUID, s.SeriesNumber if s.SeriesNumber
                               is not None else -1, s.SeriesInstanceUID, s.stack))
    return result


_DOSE_GRID_SCALING = 0x3004000E


def _dose_grid_scaling(h: InstanceHeader, limits: Limits, warn: bool) -> None:
    """RT Dose: the stored values times DoseGridScaling are the dose in DoseUnits (PS3.3
    C.8.8.3); it becomes the rescale slope of a dose without one (or a Modality LUT) of its
    own, so ``load_series(rescale=True)`` gives the dose.  Its element is read here (the
    header scan does not keep it); one that is not a positive number is not used, and said
    so."""
    from .filereader import dcmread
    try:
        ds = dcmread(h.path, specific_tags=[_DOSE_GRID_SCALING], force=True, limits=limits)
        elem = ds.get(_DOSE_GRID_SCALING)
        if elem is None:
            return
        value = _num(elem.value)
    except (DicomError, OSError):
        value = None
    if value is None or not value > 0:
        if warn:
            warn_caller(f"{h.path}: DoseGridScaling is not a positive number; not applied")
        return
    h.slope = value
    h.has_rescale = True


#: the ImageType value of a Siemens mosaic: one image whose tiles are the slices of a volume
_MOSAIC = "MOSAIC"
_MOSAIC_ISSUE = ("Siemens mosaic (ImageType MOSAIC) not unpacked ({}): the affine and "
                 "positions describe the mosaic, not its slices")


def _unpack_mosaic(info: "SeriesInfo", limits: Limits = DEFAULT_LIMITS) -> Optional[str]:
    """Unpack a stack of Siemens mosaics: its geometry becomes that of the slices its tiles
    hold, ``info.mosaic`` / ``info.mosaic_tiles`` say where each slice is (see
    :mod:`fastdicom.siemens`).  When that cannot be done (no CSA header, say), the stack is
    loaded as stored and an issue says why.  None when the stack is no mosaic or is
    unpacked; else the issue."""
    if info.geometry is None or not any(_MOSAIC in h.image_type for h in info.instances):
        return None
    try:
        if not all(_MOSAIC in h.image_type for h in info.instances):
            raise DicomError("some of its files are not mosaics")
        layouts = [_mosaic_of(h, limits) for h in info.instances]
    except (DicomError, OSError) as exc:
        reason = exc.message if isinstance(exc, DicomError) else f"{type(exc).__name__}: {exc}"
    else:
        reason = None
        first = info.instances[0]
        geo = compute_geometry(list(np.concatenate([lay.positions for lay in layouts])),
                               first.orientation, first.spacing,
                               slice_thickness=first.spacing_between_slices or
                               first.slice_thickness, warn=False)
        if len({lay.images for lay in layouts}) > 1:
            reason = "its files hold different numbers of images"
        elif geo.duplicate_positions:
            reason = f"{len(layouts)} mosaics at the same positions"
    if reason is not None:
        issue = _MOSAIC_ISSUE.format(reason)
        info.geometry.issues.append(issue)
        return issue
    tiles = np.array([(i, k) for i, lay in enumerate(layouts) for k in range(lay.images)],
                     np.int64).reshape(-1, 2)
    info.mosaic = layouts[0]
    info.mosaic_tiles = tiles[geo.order]
    geo.order = list(range(len(tiles)))
    info.geometry = geo
    return None


def _mosaic_of(h: InstanceHeader, limits: Limits) -> Any:
    """The :class:`~fastdicom.siemens.MosaicLayout` of one mosaic file (its private headers
    are read: the header scan does not keep them)."""
    from .filereader import dcmread
    from .siemens import MR_CREATOR, csa_image_header, mosaic_layout
    if h.n_frames != 1 or h.samples != 1:
        raise DicomError("a mosaic of several frames or samples")
    ds = dcmread(h.path, stop_before_pixels=True, force=True, limits=limits)
    try:
        images = int(ds.private_block(0x0019, MR_CREATOR)[0x0A].value)
    except (KeyError, ValueError, TypeError, OverflowError):  # (absent, or not one number)
        images = None
    csa = csa_image_header(ds)
    if csa is None:
        raise DicomError("no Siemens CSA image header")
    return mosaic_layout(csa, h.rows, h.columns, h.position, h.orientation, h.spacing,
                         h.spacing_between_slices or h.slice_thickness, images)


@stops_as_themselves
def find_series(paths_or_directory: Any, *, recursive: bool = True,
                workers: Optional[int] = None, limits: Optional[Limits] = None) -> list:
    """Find the series (one :class:`SeriesInfo` per stack) among files, folders, DICOMDIRs.

    Header-only scans run in a thread pool.  Files that are not DICOM or hold no image are
    left out (logged; a warning for files named explicitly); files of a walk that cannot be
    read (permissions, I/O errors, gone) and folders it may not list are left out with one
    :class:`DicomWarning` each, naming how many and the first.  A DICOMDIR is followed (a
    file named DICOMDIR, or a file named explicitly whose header says Media Storage
    Directory, whatever its name); a Referenced File ID leaving its folder raises
    :class:`UnsafePathError`.  A damaged DICOMDIR raises when named, and is left out with a
    warning when a folder walk finds it.  A file
    whose NumberOfFrames does not fit its pixel data is left out as a damaged one; one whose
    pixel data alone is cut short keeps its place (loading it raises, or with
    ``errors="skip"`` zero-fills it), and of copies of one SOP instance a whole one is kept.
    ``limits`` bounds the header reads as in :func:`fastdicom.dcmread` (a file past them is
    left out as a damaged one).
    """
    return _find_series(paths_or_directory, recursive, workers, checked_limits(limits))[0]


def _find_series(paths_or_directory: Any, recursive: bool, workers: Optional[int],
                 limits: Limits = DEFAULT_LIMITS, warn_split: bool = True) -> tuple:
    """(the stacks :func:`find_series` finds, [(path, reason)] of the files left out because
    they could not be read or are damaged); ``warn_split=False``: no warning that a series
    splits into stacks (for a caller that loads them all)."""
    paths, _, explicit, unlisted = _iter_inputs(paths_or_directory, recursive)
    _warn_left_out(unlisted, "folder", "could not be listed")
    # many small objects are made here; a cyclic GC pass over them all costs more than the
    # header scan itself and frees nothing (no cycles)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        n = _default_workers(workers)
        headers, skipped, directories = _scan_all(paths, n, explicit, limits)
        if directories:
            # Media Storage Directories named explicitly under another name than DICOMDIR
            # (PS3.10 names it so; copies are often renamed): followed as a DICOMDIR is
            from .dicomdir import read_dicomdir
            known = {os.path.realpath(p) for p in paths}
            refs: list = []
            for d in directories:
                _add_referenced(read_dicomdir(d), known, refs)
            more, more_skipped, _ = _scan_all(refs, n, set(), limits)
            headers += more
            skipped += more_skipped
        return _build_stacks(headers, limits=limits, warn_split=warn_split), skipped
    finally:
        if gc_was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------
# loading

@dataclass(eq=False)
class Volume:
    """A loaded stack.  ``array`` is (slice, row, column[, sample]) or (t, slice, row, column).

    ``affine`` maps ``(slice, row, column, 1)`` indices to LPS millimetres at voxel centres;
    ``origin`` is the centre of voxel (0, 0, 0); ``direction`` columns are the unit slice, row
    and column axes; ``spacing`` is (slice, row, column) in mm.  ``rescale_slope`` /
    ``rescale_intercept`` are per slice (per frame for 4-D, shaped like ``array.shape[:-2]``).
    ``paths`` are the slices' files (the one file of a multi-frame instance);
    ``frame_indices`` the frame (multi-frame) or the mosaic tile (Siemens mosaic) of each slice.
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple
    origin: np.ndarray
    direction: np.ndarray
    paths: list
    positions: np.ndarray
    rescale_slope: np.ndarray
    rescale_intercept: np.ndarray
    rescaled: bool
    series: SeriesInfo
    geometry: Geometry
    skipped: list = field(default_factory=list)
    frame_indices: Optional[np.ndarray] = None

    @property
    def shape(self) -> tuple:
        return self.array.shape

    def index_to_lps(self, index: Sequence) -> np.ndarray:
        """LPS mm of the voxel centre at ``(slice, row, column)``."""
        return (self.affine @ np.r_[np.asarray(index, float)[:3], 1.0])[:3]

    def __repr__(self) -> str:
        return (f"<Volume {self.array.shape} {self.array.dtype} spacing "
                f"{tuple(round(s, 4) for s in self.spacing)}>")


def raw_floor_load(paths: Sequence, offsets: Sequence, out: np.ndarray, *,
                   workers: int = 1) -> np.ndarray:
    """The raw-read floor: per file open + pread of the pixel bytes into ``out[k]``."""
    def one(k: int) -> None:
        pread_into(paths[k], out[k].view(np.uint8).reshape(-1), int(offsets[k]))
    if workers <= 1:
        for k in range(len(paths)):
            one(k)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(len(paths))))
    return out


def _check_errors_arg(errors: str) -> None:
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")


def _frame_table_of(path: str, limits: Limits, last: list) -> None:
    """Check the frame table of an encapsulated file (raises when frames are missing from
    it), keeping the file read in ``last`` ([path, dataset]) for the frames' decoding."""
    from .filereader import dcmread
    try:
        from .pixels.encaps import frame_table
    except ImportError:  # pixel module not built: decoding fails later, frame by frame
        return
    try:
        ds = dcmread(path, validation="ignore", limits=limits)
        frame_table(ds)
    except DicomError as exc:
        raise exc.with_context(path=path)
    last[:] = [path, ds]


def _decode_frame(path: str, frame: int, last: Optional[list] = None,
                  limits: Limits = DEFAULT_LIMITS, expect_size: int = -1) -> np.ndarray:
    """Decode one frame with fastdicom's pixel module (non-direct layouts, codecs).
    ``last`` ([path, dataset], one per thread) keeps the file last read: the frames of a
    multi-frame file are decoded from one read of its header and frame table, not one each.
    ``expect_size`` >= 0: the size the header scan found (a file of another size now was
    replaced or changed since: PixelDataError, as for native slices)."""
    from .filereader import dcmread
    try:
        from .pixels import get_frame  # type: ignore[attr-defined]
    except ImportError as exc:  # pixel module not built
        raise PixelDataError(f"cannot decode pixel data here: {exc}", path=path) from None
    if last is not None and last[0] == path:
        ds = last[1]
    else:
        ds = dcmread(path, validation="ignore", limits=limits)
        if expect_size >= 0:
            if os.stat(path).st_size != expect_size:
                raise PixelDataError("file changed since the header scan (size differs)",
                                     path=path)
        if last is not None:
            last[:] = [path, ds]
    return np.asarray(get_frame(ds, frame))


def _modality_lut(src: np.ndarray, path: str, local: Any, limits: Limits) -> np.ndarray:
    """``src`` through the Modality LUT Sequence of ``path`` (its header read once per thread
    and file, in ``local.lut_ds``)."""
    from .filereader import dcmread
    from .pixels.lut import apply_modality_lut
    cached = getattr(local, "lut_ds", None)
    if cached is None or cached[0] != path:
        cached = local.lut_ds = (path, dcmread(path, stop_before_pixels=True,
                                               validation="ignore", limits=limits))
    try:
        return apply_modality_lut(src, cached[1])
    except DicomError as exc:
        raise exc.with_context(path=path, tag=0x00283000)


def _sign_extend(a: np.ndarray, bits_stored: int) -> None:
    shift = a.dtype.itemsize * 8 - bits_stored
    if shift > 0:
        np.left_shift(a, shift, out=a)
        np.right_shift(a, shift, out=a)


def _fix_stored_bits(a: np.ndarray, h: "InstanceHeader") -> None:
    """The samples of raw native pixel data as decoded (as :func:`fastdicom.pixels.get_frame`
    and pydicom give them): with Bits Stored below Bits Allocated, signed samples are
    sign-extended and unsigned ones lose the bits above High Bit (overlay bits, garbage)."""
    shift, signed = _stored_bits_shift(h)
    if not shift:
        return
    if signed:
        _sign_extend(a, h.bits_stored)
    else:
        np.bitwise_and(a, (1 << h.bits_stored) - 1, out=a)


@stops_as_themselves
def load_series(source: Any, *, rescale: bool = False, dtype: Any = None,
                workers: Optional[int] = None, progress: bool = False, errors: str = "raise",
                out: Optional[np.ndarray] = None, stack: Optional[int] = None,
                limits: Optional[Limits] = None) -> Volume:
    """Load one stack as a :class:`Volume` (see its docstring for the geometry convention).

    ``source`` is a :class:`SeriesInfo`, a folder, a file or a list of paths (which must hold
    exactly one stack, else :class:`SeriesError` lists them; ``stack=`` picks one when the
    input is a single series).  ``rescale=True`` applies the per-slice modality LUT (rescale
    slope/intercept) into float32 (or ``dtype``).  An integer ``dtype`` takes values rounded
    to the nearest integer (half to even) and raises ValueError for a value outside its range
    (no silent wrap or truncation).  ``out`` is a destination array of the
    volume's shape and dtype (e.g. ``np.memmap``).  ``errors="skip"`` zero-fills and lists
    slices that cannot be read instead of raising.  Nothing is allocated for frames that are
    not in the files: native frames short of bytes raise (all of them with "skip"), and a
    volume with decoded (compressed) frames must fit ``limits.decode_budget``.
    """
    _check_errors_arg(errors)
    limits = checked_limits(limits)
    if isinstance(source, SeriesInfo):
        info = source
    else:
        stacks, left_out = _find_series(source, True, workers, limits)
        if not stacks:
            if not left_out:
                raise SeriesError("no image series found in the input")
            # name the file (the first of them) that was left out, and why
            path, reason = left_out[0]
            more = f" and {len(left_out) - 1} more" if len(left_out) > 1 else ""
            raise SeriesError(f"no image series found in the input: {path}{more} left out "
                              f"({reason})", path=path)
        if stack is not None:
            uids = {(s.StudyInstanceUID, s.SeriesInstanceUID) for s in stacks}
            if len(uids) > 1:
                raise SeriesError(_describe_stacks("several series in the input", stacks))
            chosen = [s for s in stacks if s.stack == stack]
            if not chosen:
                raise SeriesError(f"no stack {stack}; the input has " +
                                  _describe_stacks("", stacks))
            info = chosen[0]
        elif len(stacks) > 1:
            raise SeriesError(_describe_stacks("the input holds several stacks; pass a "
                                               "SeriesInfo from find_series()", stacks))
        else:
            info = stacks[0]
    if info.mosaic is not None:
        return _load_mosaic(info, rescale=rescale, dtype=dtype, workers=workers,
                            progress=progress, errors=errors, out=out, limits=limits)
    headers = info.instances
    if not headers:
        raise SeriesError("empty series")
    first = headers[0]
    multiframe = len(headers) == 1 and first.n_frames > 1
    geo = info.geometry
    if geo is None:
        raise SeriesError("series has no geometry")
    if geo.duplicate_positions and not multiframe:
        dup = sum(len(g) for g in geo.duplicate_positions)
        if errors == "raise":
            raise SeriesError(f"{dup} slices share positions; the stack is not one volume "
                              "(errors='skip' keeps the first of each position)")
    for h in headers:
        if (h.rows, h.columns, h.samples, h.bits_allocated) != \
                (first.rows, first.columns, first.samples, first.bits_allocated):
            raise SeriesError("instances differ in Rows/Columns/SamplesPerPixel/"
                              "BitsAllocated", path=h.path)

    skipped: list = []
    # plan: list of (dest index tuple, path, frame index, header)
    if multiframe:
        grid, geo = _frame_plan(first, warn=False)
        bad = [i for i in geo.issues if i.startswith("frames differ")]
        if geo.duplicate_positions:
            bad.append(f"{sum(len(g) for g in geo.duplicate_positions)} frames share "
                       "positions; the frames are not one volume")
        if bad and errors == "raise":
            raise SeriesError("; ".join(bad) + " (errors='skip' loads them as they are)",
                              path=first.path)
        for msg in bad:
            warn_caller(f"{first.path}: {msg}")
        grid = np.asarray(grid)
        lead = grid.shape
        plan = [(np.unravel_index(i, lead), first.path, int(f), first)
                for i, f in enumerate(grid.reshape(-1))]
        frame_info = first.frames or []
        slopes = np.ones(lead)
        icpts = np.zeros(lead)
        for i, f in enumerate(grid.reshape(-1)):
            fr = frame_info[int(f)] if int(f) < len(frame_info) else {}
            s = fr.get("slope")
            slopes.reshape(-1)[i] = s if s is not None else first.slope
            ic = fr.get("intercept")
            icpts.reshape(-1)[i] = ic if ic is not None else first.intercept
        paths = [Path(first.path)]
        frame_indices = grid
    else:
        keep = list(range(len(headers)))
        if geo.duplicate_positions:
            drop = set()
            for g in geo.duplicate_positions:
                drop.update(g[1:])
            for i in sorted(drop):
                skipped.append((headers[i].path, "duplicate position"))
            keep = [i for i in keep if i not in drop]
            warn_caller(f"{len(drop)} slice(s) at duplicate positions skipped")
            headers = [headers[i] for i in keep]
            # (the step of a single slice left: SpacingBetweenSlices as find_series takes it)
            geo = compute_geometry([h.position for h in headers], first.orientation,
                                   first.spacing, slice_thickness=first.spacing_between_slices
                                   or first.slice_thickness, warn=False)
            headers = [headers[i] for i in geo.order]
        lead = (len(headers),)
        plan = [((k,), h.path, 0, h) for k, h in enumerate(headers)]
        slopes = np.array([h.slope for h in headers], float)
        icpts = np.array([h.intercept for h in headers], float)
        paths = _path_objects([h.path for h in headers])
        frame_indices = None

    raw_dtype = first.dtype
    if raw_dtype is None and not first.encapsulated:
        raw_dtype = None  # decoded by the pixel module (e.g. 1-bit)
    sample_shape = (first.rows, first.columns) + ((first.samples,) if first.samples > 1
                                                  else ())
    shape = tuple(lead) + sample_shape
    if rescale:
        target = np.dtype(dtype) if dtype is not None else np.dtype(np.float32)
    elif dtype is not None:
        target = np.dtype(dtype)
    else:
        target = raw_dtype.newbyteorder("=") if raw_dtype is not None else None
    # nothing is allocated for frames whose bytes are not in the files (a damaged Rows or
    # Columns would ask for gigabytes): the first one raises, or all of them with "skip"
    short: list = []
    decoded = False
    sizes: dict = {}        # per header: its frame size on disk, 0 if left to the decoder
    for item in plan:
        h, frame = item[3], item[2]
        fb = sizes.get(id(h))
        if fb is None:
            fb = sizes[id(h)] = _direct_frame_bytes(h)
        if not fb:
            decoded = True
        elif _bytes_missing(h, (frame + 1) * fb):
            short.append(item)
    if short and (errors == "raise" or len(short) == len(plan)):
        _, path, frame, h = short[0]
        raise PixelDataError(
            (f"none of the {len(plan)} frames is in the pixel data; the first: " if
             errors != "raise" else "") +
            f"frame {frame} needs bytes {frame * h.frame_bytes}..{(frame + 1) * h.frame_bytes}"
            f" of the pixel data, which declares {h.pixel_length} bytes at offset "
            f"{h.pixel_offset} of a file of {h.file_size}",
            path=path, tag=h.pixel_tag)
    decoded = decoded and out is None
    # the one file of a multi-frame volume is read once for the checks, the probe and the
    # calling thread's frames
    first_read: list = [None, None]
    if decoded and multiframe and first.encapsulated:
        _frame_table_of(first.path, limits, first_read)   # all its frames in fragments, or raise
    if target is None:
        # dtype only known after decoding the first frame
        probe = _decode_frame(first.path, plan[0][2], first_read if multiframe else None,
                              limits=limits)
        target = probe.dtype
    if decoded and math.prod(shape) * target.itemsize > limits.decode_budget:
        raise LimitExceededError(
            f"the volume {shape} needs {math.prod(shape) * target.itemsize} bytes, more than "
            f"limits.decode_budget ({limits.decode_budget})", path=first.path,
            tag=first.pixel_tag)
    if out is not None:
        if tuple(out.shape) != shape:
            raise ValueError(f"out has shape {tuple(out.shape)}, the volume is {shape}")
        if out.dtype != target:
            raise ValueError(f"out has dtype {out.dtype}, the volume needs {target}")
        array = out
    else:
        # (np.zeros: zeroed pages the kernel maps on first touch: a slice that fails before
        # anything is written to it stays zero without being written, so slices declaring a
        # huge size that fail to decode do not make the process touch that size)
        try:
            array = (np.empty if errors == "raise" else np.zeros)(shape, dtype=target)
        except MemoryError:
            # (headers declaring more than the process may map: an error of the input)
            raise LimitExceededError(
                f"the volume {shape} of {target} needs {math.prod(shape) * target.itemsize} "
                "bytes, which cannot be allocated", path=first.path,
                tag=first.pixel_tag) from None
    if not rescale and len(set(zip(slopes.ravel().tolist(), icpts.ravel().tolist()))) > 1:
        warn_caller(f"rescale slope/intercept differ between "
                    f"{'frames' if multiframe else 'slices'}; use rescale=True or the "
                    "per-slice Volume.rescale_slope/intercept")

    frame_bytes = first.frame_bytes
    direct_dtype = raw_dtype is not None and array.dtype == raw_dtype.newbyteorder("=") \
        and array[(0,) * len(lead)].flags.c_contiguous

    import threading
    local = threading.local()
    if first_read[0] is not None:
        local.last = first_read

    def scratch() -> np.ndarray:
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = np.empty(sample_shape, dtype=raw_dtype.newbyteorder("="))
            local.buf = buf
        return buf

    def direct_ok(h: InstanceHeader, frame: int) -> bool:
        return (raw_dtype is not None and sizes[id(h)] > 0 and
                h.pixel_length >= frame_bytes * (frame + 1))

    def finish_raw(a: np.ndarray, h: InstanceHeader) -> None:
        if not h.little_endian and a.dtype.itemsize > 1:
            a.byteswap(inplace=True)
        _fix_stored_bits(a, h)

    def one(item: tuple) -> Optional[tuple]:
        idx, path, frame, h = item
        dest = array[idx]
        touched = out is not None      # (the caller's array: zeroed on failure whatever)
        try:
            if direct_ok(h, frame):
                touched = touched or direct_dtype
                target_buf = dest if direct_dtype else scratch()
                got = pread_into(path, target_buf.view(np.uint8).reshape(-1),
                                 h.pixel_offset + frame * frame_bytes,
                                 expect_size=h.file_size)
                if got != frame_bytes:  # (got < 0: the size is not the scan's)
                    raise _short_read(h, path, got, frame, frame_bytes)
                finish_raw(target_buf, h)
                src = target_buf
            else:
                last = getattr(local, "last", None)
                if last is None:
                    last = local.last = [None, None]
                src = _decode_frame(path, frame, last if multiframe else None, limits,
                                    h.file_size)
                if src.shape != sample_shape:
                    raise PixelDataError(f"decoded frame has shape {src.shape}, expected "
                                         f"{sample_shape}", path=path, tag=h.pixel_tag)
            k = np.ravel_multi_index(idx, lead) if len(lead) > 1 else idx[0]
            touched = True
            if rescale and h.modality_lut:
                # the Modality LUT Sequence maps stored values (PS3.3 C.11.1), as
                # pydicom's apply_modality_lut does; slope and intercept do not apply
                _store(dest, _modality_lut(src, path, local, limits), path)
            elif rescale:
                s = float(slopes.reshape(-1)[k])
                ic = float(icpts.reshape(-1)[k])
                if dest.dtype == np.float64:
                    np.multiply(src, s, out=dest, casting="unsafe")
                    if ic:
                        dest += ic
                else:
                    # slope * x + intercept in float64, rounded once to the target type:
                    # rounding the product first lost up to an ulp of it where the
                    # intercept cancels most of it (5e-5 on 0.3 = 600 * 0.5 - 299.7)
                    wide = getattr(local, "wide", None)
                    if wide is None or wide.shape != src.shape:
                        wide = local.wide = np.empty(src.shape, np.float64)
                    np.multiply(src, s, out=wide, casting="unsafe")
                    if dest.dtype.kind == "f":
                        np.add(wide, ic, out=dest, casting="unsafe")
                    else:
                        np.add(wide, ic, out=wide)
                        _store(dest, wide, path)
            elif src is not dest:
                _store(dest, src, path)
            return None
        except (DicomError, OSError) as exc:
            if errors == "raise":
                if isinstance(exc, DicomError):
                    raise exc.with_context(path=path)
                raise
            if touched:
                dest[...] = 0
            return (path, f"{type(exc).__name__}: {exc}")

    n_workers = _default_workers(workers)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(plan), unit="slice", desc="load_series")
        except ImportError:
            logger.warning("progress=True needs tqdm")
    bulk = _bulk_plan(headers, array, raw_dtype, frame_bytes, multiframe, rescale,
                      direct_dtype, len(lead))
    if workers is None and bulk is not None and len(headers) * frame_bytes < (16 << 20):
        n_workers = 1       # a small volume: waking helper threads costs more than it saves
    try:
        if bulk is not None:
            results = _bulk_read(headers, array, frame_bytes, bulk, n_workers, bar, errors)
        elif n_workers == 1 or len(plan) < 2:
            results = []
            for item in plan:
                results.append(one(item))
                if bar is not None:
                    bar.update(1)
        else:
            with ThreadPoolExecutor(n_workers) as pool:
                if bar is None:
                    chunk = max(1, len(plan) // (n_workers * 8))
                    results = list(pool.map(one, plan, chunksize=chunk))
                else:
                    futures = [pool.submit(one, item) for item in plan]
                    results = []
                    for fut in futures:
                        results.append(fut.result())
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    for r in results:
        if r is not None:
            skipped.append(r)
    if any(r is not None for r in results):
        warn_caller(f"{sum(r is not None for r in results)} slice(s) could not be read and "
                    "were zero-filled (listed in Volume.skipped)")
    return Volume(array=array, affine=geo.affine.copy(), spacing=tuple(geo.spacing),
                  origin=geo.origin.copy(), direction=geo.direction.copy(), paths=paths,
                  positions=np.asarray(geo.positions), rescale_slope=slopes,
                  rescale_intercept=icpts, rescaled=bool(rescale), series=info, geometry=geo,
                  skipped=skipped, frame_indices=frame_indices)


def _load_mosaic(info: SeriesInfo, *, out: Optional[np.ndarray], **kw: Any) -> Volume:
    """:func:`load_series` of a stack of Siemens mosaics: the mosaics are loaded as stored,
    then their tiles are copied into the slices, in the order of ``info.mosaic_tiles``."""
    lay, tiles = info.mosaic, info.mosaic_tiles
    headers = info.instances
    # the files as stored, in the stack's order: one 2-D image each
    plain = compute_geometry([None] * len(headers), None, headers[0].spacing, warn=False)
    stored = dataclasses.replace(info, mosaic=None, mosaic_tiles=None, geometry=plain)
    mosaics = load_series(stored, **kw)
    shape = (len(tiles), lay.tile_rows, lay.tile_columns)
    if out is not None:
        if tuple(out.shape) != shape:
            raise ValueError(f"out has shape {tuple(out.shape)}, the volume is {shape}")
        if out.dtype != mosaics.array.dtype:
            raise ValueError(f"out has dtype {out.dtype}, the volume needs "
                             f"{mosaics.array.dtype}")
        array = out
    else:
        array = np.empty(shape, mosaics.array.dtype)
    for k, (i, t) in enumerate(tiles.tolist()):
        array[k] = lay.tile(mosaics.array[i], t)
    geo = info.geometry
    which = tiles[:, 0]
    return Volume(array=array, affine=geo.affine.copy(), spacing=tuple(geo.spacing),
                  origin=geo.origin.copy(), direction=geo.direction.copy(),
                  paths=[mosaics.paths[i] for i in which.tolist()],
                  positions=np.asarray(geo.positions),
                  rescale_slope=mosaics.rescale_slope[which],
                  rescale_intercept=mosaics.rescale_intercept[which],
                  rescaled=mosaics.rescaled, series=info, geometry=geo,
                  skipped=mosaics.skipped, frame_indices=tiles[:, 1].copy())


# the fields whose values order the volumes of a 4-D load (order="time"), first to last
_TIME_FIELDS = ("temporal_position", "trigger_time", "acquisition_number", "echo_number",
                "echo_time", "b_value")


@dataclass
class Volume4D:
    """Stacks of one geometry loaded as one array: ``array`` is (volume, slice, row, column
    [, sample]), and ``volumes[k]`` is the :class:`Volume` of stack ``stacks[k]``, its
    ``array`` a view of ``array[k]``.  ``affine``, ``spacing``, ``origin`` and ``direction``
    are the shared geometry (of the slice, row and column axes; the first axis has none).
    ``labels[k]`` holds the first instance's value of each field in ``varying`` (the fields
    of :data:`_TIME_FIELDS` whose values differ between the stacks)."""

    array: np.ndarray
    volumes: list
    stacks: list
    affine: np.ndarray
    spacing: tuple
    origin: np.ndarray
    direction: np.ndarray
    varying: tuple
    labels: list

    @property
    def shape(self) -> tuple:
        return self.array.shape

    def __repr__(self) -> str:
        by = f" by {', '.join(self.varying)}" if self.varying else ""
        return f"<Volume4D {self.array.shape} {self.array.dtype}{by}>"


def _time_key(info: SeriesInfo) -> tuple:
    h = info.instances[0]
    key = []
    for name in _TIME_FIELDS:
        v = getattr(h, name)
        key.append((v is None, v if v is not None else 0))
    return tuple(key) + ((h.instance_number is None, h.instance_number or 0), h.path)


def _same_geometry(a: SeriesInfo, b: SeriesInfo) -> Optional[str]:
    """Why stacks ``a`` and ``b`` are not volumes of one grid (None when they are)."""
    if a.shape != b.shape:
        return f"shape {b.shape}, not {a.shape}"
    ga, gb = a.geometry, b.geometry
    if ga is None or gb is None:
        return "no geometry"
    if not _orientation_close(a.instances[0].orientation, b.instances[0].orientation):
        return "another orientation"
    if not _spacing_close(tuple(ga.spacing), tuple(gb.spacing)):
        return (f"spacing {tuple(round(v, 4) for v in gb.spacing)}, not "
                f"{tuple(round(v, 4) for v in ga.spacing)}")
    pa, pb = np.asarray(ga.positions, float), np.asarray(gb.positions, float)
    if pa.shape != pb.shape:
        return "another number of slice positions"
    finite = np.isfinite(pa) & np.isfinite(pb)
    if not np.array_equal(np.isfinite(pa), np.isfinite(pb)):
        return "slice positions known for other slices"
    # (a hundredth of the finest voxel spacing: positions written with 2 or 3 decimals)
    tol = max(SLICE_ABSOLUTE_TOLERANCE, 0.01 * min(ga.spacing))
    if finite.any() and float(np.max(np.abs(pa[finite] - pb[finite]))) > tol:
        return "other slice positions"
    return None


def _stack_bytes_check(info: SeriesInfo, errors: str) -> bool:
    """Before a 4-D array is allocated: the native frames of ``info`` are in its files (the
    first short one raises, or with "skip" only when none is); True when some of its frames
    are left to the decoder."""
    decoded = False
    short = []
    headers = info.instances
    for h in headers:
        fb = _direct_frame_bytes(h)
        if not fb:
            decoded = True
            continue
        if _bytes_missing(h, h.n_frames * fb):
            short.append(h)
    if short and (errors == "raise" or len(short) == len(headers)):
        h = short[0]
        raise PixelDataError(
            f"the pixel data declares {h.pixel_length} bytes at offset {h.pixel_offset} of a "
            f"file of {h.file_size}; its {h.n_frames} frame(s) need "
            f"{h.n_frames * _direct_frame_bytes(h)}", path=h.path, tag=h.pixel_tag)
    return decoded


@stops_as_themselves
def load_series_4d(source: Any, *, rescale: bool = False, dtype: Any = None,
                   workers: Optional[int] = None, progress: bool = False,
                   errors: str = "raise", order: str = "time",
                   limits: Optional[Limits] = None) -> Volume4D:
    """Load the stacks of one grid (an fMRI run, a dynamic or multi-echo series, the b-values
    of a diffusion series) as one array, (volume, slice, row, column).

    ``source`` is a list of :class:`SeriesInfo` (e.g. the stacks :func:`find_series` split a
    series into), or a folder, file or list of paths holding exactly one series (all its
    stacks are taken).  Every stack must be a 3-D volume of the same shape, orientation,
    spacing and slice positions as the first, else :class:`SeriesError` names the stack and
    what differs.  ``order="time"`` sorts the volumes by TemporalPositionIdentifier,
    TriggerTime, AcquisitionNumber, EchoNumbers, EchoTime, then the b-value (missing values
    last), ``"given"`` keeps the order of ``source``.  ``rescale``, ``dtype``, ``workers``,
    ``progress``, ``errors`` and ``limits`` are :func:`load_series`'s, per stack; the native
    frames of every stack are checked against the bytes of its files before the array is
    allocated, and with frames to decode the whole array must fit ``limits.decode_budget``.
    """
    _check_errors_arg(errors)
    if order not in ("time", "given"):
        raise ValueError(f"order must be 'time' or 'given', not {order!r}")
    limits = checked_limits(limits)
    if isinstance(source, SeriesInfo):
        stacks = [source]
    elif isinstance(source, (list, tuple)) and source and \
            all(isinstance(s, SeriesInfo) for s in source):
        stacks = list(source)
    else:
        # (the split into stacks is what is loaded: no warning that the series splits)
        stacks, left_out = _find_series(source, True, workers, limits, warn_split=False)
        if not stacks:
            raise SeriesError("no image series found in the input" + (
                f": {left_out[0][0]} left out ({left_out[0][1]})" if left_out else ""),
                path=left_out[0][0] if left_out else None)
        if len({(s.StudyInstanceUID, s.SeriesInstanceUID) for s in stacks}) > 1:
            raise SeriesError(_describe_stacks("several series in the input", stacks))
    if not stacks:
        raise SeriesError("no stacks to load")
    if order == "time":
        stacks = sorted(stacks, key=_time_key)
    first = stacks[0]
    if len(first.shape) != 3 and not (len(first.shape) == 4 and first.instances[0].samples > 1):
        raise SeriesError(f"stack {first.stack} is {len(first.shape)}-D {first.shape}, not a "
                          "3-D volume (load it with load_series)",
                          path=first.instances[0].path)
    decoded = False
    for k, s in enumerate(stacks):
        why = None if k == 0 else _same_geometry(first, s)
        if why is not None:
            raise SeriesError(f"volume {k} (series {s.SeriesInstanceUID} stack {s.stack}) is "
                              f"not on the grid of volume 0: {why}", path=s.instances[0].path)
        decoded = _stack_bytes_check(s, errors) or decoded
    kw = dict(rescale=rescale, dtype=dtype, workers=workers, progress=progress,
              errors=errors, limits=limits)
    v0 = load_series(first, **kw)
    shape = (len(stacks),) + v0.array.shape
    target = v0.array.dtype
    nbytes = math.prod(shape) * target.itemsize
    if decoded and nbytes > limits.decode_budget:
        raise LimitExceededError(
            f"the 4-D array {shape} needs {nbytes} bytes, more than limits.decode_budget "
            f"({limits.decode_budget})", path=first.instances[0].path)
    try:
        array = (np.empty if errors == "raise" else np.zeros)(shape, dtype=target)
    except MemoryError:
        raise LimitExceededError(f"the 4-D array {shape} of {target} needs {nbytes} bytes, "
                                 "which cannot be allocated",
                                 path=first.instances[0].path) from None
    array[0] = v0.array
    v0.array = array[0]
    volumes = [v0]
    for s in stacks[1:]:
        try:
            volumes.append(load_series(s, out=array[len(volumes)], **kw))
        except ValueError as exc:
            if isinstance(exc, DicomError):
                raise
            # (a stack whose raw dtype, or with errors="skip" whose slices left, are
            # not the first's: out= refuses it)
            hint = "; pass dtype= or rescale=True" if "dtype" in str(exc) else ""
            raise SeriesError(f"series {s.SeriesInstanceUID} stack {s.stack}: {exc}{hint}",
                              path=s.instances[0].path) from None
    varying = tuple(name for name in _TIME_FIELDS
                    if len({getattr(s.instances[0], name) for s in stacks}) > 1)
    labels = [{name: getattr(s.instances[0], name) for name in varying} for s in stacks]
    return Volume4D(array=array, volumes=volumes, stacks=stacks, affine=v0.affine.copy(),
                    spacing=v0.spacing, origin=v0.origin.copy(),
                    direction=v0.direction.copy(), varying=varying, labels=labels)


def _bytes_missing(h: InstanceHeader, need: int) -> bool:
    """The first ``need`` bytes of the native pixel data of ``h`` are not in its value or
    not in the file (as the header scan found them)."""
    return h.pixel_length < need or (h.file_size >= 0 and h.pixel_offset + need > h.file_size)


def _direct_frame_bytes(h: InstanceHeader) -> int:
    """The size of a frame of ``h`` in the native pixel data the header scan found, when its
    bytes are the decoded frame; 0 for frames left to the decoder (encapsulated, deflated,
    1-bit; colour frames that decoding changes: planar configuration 1 is interleaved, YBR
    is converted to RGB, as :func:`fastdicom.pixels.get_frame` does)."""
    if h.pixel_offset < 0 or h.dtype is None or h.photometric == "YBR_FULL_422":
        return 0
    if h.samples != 1 and (h.planar_configuration != 0 or h.photometric.startswith("YBR")):
        return 0
    return h.frame_bytes


def _path_objects(strs: list) -> list:
    """``[Path(s) for s in strs]``, with the folder parsed once per folder (pathlib's child
    constructor when it has one; the plain constructor otherwise)."""
    child = getattr(Path, "_make_child_relpath", None)
    if child is None:
        return [Path(s) for s in strs]
    parents: dict = {}
    out = []
    sep = os.sep
    for s in strs:
        head, _, name = s.rpartition(sep)
        if not head or not name or name in (".", ".."):
            out.append(Path(s))
            continue
        parent = parents.get(head)
        if parent is None:
            parent = parents[head] = Path(head)
        out.append(child(parent, name))
    return out


def _stored_bits_shift(h: InstanceHeader) -> tuple:
    """``(shift, signed)``: the bits above High Bit in each sample of ``h`` (0 when Bits
    Stored fills Bits Allocated, or for float pixel data) and whether they are sign bits."""
    if h.pixel_tag == 0x7FE00010 and 0 < h.bits_stored < h.bits_allocated:
        return h.bits_allocated - h.bits_stored, h.pixel_representation == 1
    return 0, False


def _store(dest: np.ndarray, values: np.ndarray, path: Any) -> None:
    """``values`` into ``dest``.  An integer ``dest`` takes them rounded to the nearest
    integer (half to even; a cast would truncate toward zero) and refuses, with ValueError,
    values outside its range (a cast would wrap them: 60000 into int16 is -5536) or not
    finite; a floating ``dest`` takes them as a cast does."""
    if dest.dtype.kind in "iu" and values.size and \
            not np.can_cast(values.dtype, dest.dtype, "safe"):
        if values.dtype.kind == "f":
            values = np.rint(values)
        info = np.iinfo(dest.dtype)
        lo, hi = values.min(), values.max()
        if not (info.min <= lo and hi <= info.max):      # (NaN fails both)
            raise ValueError(f"{path}: values {lo:g}..{hi:g} do not fit the volume's dtype "
                             f"{dest.dtype} ({info.min}..{info.max}); pass a wider dtype")
    np.copyto(dest, values, casting="unsafe")


def _bulk_plan(headers: list, array: np.ndarray, raw_dtype: Any, frame_bytes: int,
               multiframe: bool, rescale: bool, direct_dtype: bool, ndim_lead: int) -> Any:
    """(itemsize, shift, signed) when every slice can be read by the nogil bulk reader
    straight into its row of ``array`` (native little-endian layout, one frame per file,
    no rescale; ``shift``: the bits above High Bit, sign-extended or cleared), else None."""
    if _series is None or multiframe or rescale or not direct_dtype or ndim_lead != 1 or \
            raw_dtype is None or frame_bytes <= 0 or not array.flags.c_contiguous or \
            sys.byteorder != "little":
        return None
    itemsize = raw_dtype.itemsize
    bits = _stored_bits_shift(headers[0])
    if bits[0] and itemsize not in (1, 2, 4):
        return None
    for h in headers:
        if h.pixel_length < frame_bytes or not h.little_endian or \
                _direct_frame_bytes(h) != frame_bytes or _stored_bits_shift(h) != bits:
            return None
    return (itemsize if bits[0] else 1, bits[0], bits[1])


def _bulk_read(headers: list, array: np.ndarray, frame_bytes: int, bulk: tuple,
               n_workers: int, bar: Any, errors: str) -> list:
    """Read every slice with :func:`fastdicom._series.read_slices` (nogil, a few big chunks of
    files per thread, each file: open + fstat + pread into its row + close)."""
    n = len(headers)
    itemsize, shift, signed = bulk
    bpaths = [os.fsencode(h.path) for h in headers]
    offsets = np.fromiter((h.pixel_offset for h in headers), np.int64, n)
    sizes = np.fromiter((h.file_size for h in headers), np.int64, n)
    dest = array.reshape(n, -1).view(np.uint8)
    got = np.zeros(n, np.int64)

    def run(bounds: tuple) -> None:
        _series.read_slices(bpaths, offsets, sizes, dest, bounds[0], bounds[1], got,
                            itemsize, shift, signed=signed)
        if bar is not None:
            bar.update(bounds[1] - bounds[0])

    if n_workers <= 1 or n < 2:
        _run_chunks(run, _chunk_bounds(n, 1 if bar is None else max(1, n // 32)), 1)
    else:
        # chunks of about 8 MiB: per-chunk overhead vanishes, and threads claiming chunks
        # one at a time stay balanced even when one of them gets less CPU or a slow disk
        nchunks = max(n_workers * 4, (n * frame_bytes) >> 23)
        if bar is not None:
            nchunks = max(nchunks, n // 32)
        _run_chunks(run, _chunk_bounds(n, nchunks), n_workers)
    results: list = [None] * n
    bad = np.flatnonzero(got != frame_bytes)
    for k in bad.tolist():
        h = headers[k]
        r = int(got[k])
        if r <= -1000:
            err = -r - 1000
            exc: Exception = OSError(err, os.strerror(err), h.path)
        else:   # (one frame per file)
            exc = _short_read(h, h.path, r, 0, frame_bytes)
        if errors == "raise":
            raise exc
        dest[k] = 0
        results[k] = (h.path, f"{type(exc).__name__}: {exc}")
    return results


def _short_read(h: Any, path: Any, got: int, frame: int, frame_bytes: int) -> PixelDataError:
    """The error of a read of frame ``frame`` that gave ``got`` of its ``frame_bytes`` bytes
    (-1: the file's size is no longer the header scan's), at the frame's offset."""
    where = dict(path=path, offset=h.pixel_offset + frame * frame_bytes, tag=h.pixel_tag)
    if got == -1:
        return PixelDataError("file changed since the header scan (size differs)", **where)
    return PixelDataError("file changed or pixel data shorter than expected "
                          f"({got} of {frame_bytes} bytes)", **where)


def _describe_stacks(prefix: str, stacks: list) -> str:
    # a series UID found in two studies (a copied or damaged file) is told apart by study
    studies: dict = {}
    for s in stacks:
        studies.setdefault(s.SeriesInstanceUID, set()).add(s.StudyInstanceUID)
    lines = [(f"study {s.StudyInstanceUID} " if len(studies[s.SeriesInstanceUID]) > 1 else "")
             + f"{s.SeriesInstanceUID} stack {s.stack} ({s.Modality}, {s.num_instances} "
             f"instance(s), shape {s.shape}" +
             (f", split by {s.split_reason}" if s.split_reason else "") + ")"
             for s in stacks]
    return (prefix + ": " if prefix else "") + "; ".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI

def _cmd_series(args: Any) -> int:
    # (each stack's line says how its series splits: no warning that it does)
    stacks = _find_series(args.path, not args.no_recursive, None, DEFAULT_LIMITS,
                          warn_split=False)[0]
    if not stacks:
        print("no image series found")
        return 1
    for s in stacks:
        g = s.geometry
        spacing = "x".join("%.4g" % v for v in g.spacing) if g else "?"
        extra = f"  split: {s.split_reason}" if s.split_reason else ""
        print(f"{s.SeriesInstanceUID}  stack {s.stack}  {s.Modality or '-':4s} "
              f"{s.num_instances:5d} inst  shape {s.shape}  {s.dtype}  spacing {spacing} mm"
              f"  {s.SeriesDescription!r}{extra}")
        if g is not None:
            for issue in g.issues:
                print(f"    ! {issue}")
    return 0


def _cmd_load(args: Any) -> int:
    suffix = os.path.splitext(args.output)[1].lower()
    if suffix not in (".npy", ".npz"):
        print("fastdicom load: error: -o must name a .npz (array, affine, spacing) or a .npy "
              f"(array) file, not {args.output!r}", file=sys.stderr)
        return 2
    # (--4d loads every stack of a series: no warning that it splits into stacks)
    stacks = _find_series(args.path, True, None, DEFAULT_LIMITS, warn_split=not args.four_d)[0]
    chosen = [s for s in stacks if args.series is None or s.SeriesInstanceUID == args.series]
    if args.stack is not None:
        chosen = [s for s in chosen if s.stack == args.stack]
    # with --4d every stack of one series is loaded, else one stack
    one, many, narrow = ("series", "series", "--series") if args.four_d else \
        ("stack", "stacks", "--series/--stack")
    units = {(s.StudyInstanceUID, s.SeriesInstanceUID) for s in chosen} if args.four_d \
        else chosen
    if len(units) != 1:
        if not stacks:
            msg = f"no image series found in {args.path}"
        elif not chosen:
            msg = _describe_stacks(f"no {one} matches {narrow}; found", stacks)
        else:
            msg = _describe_stacks(f"several {many} match; use {narrow}", chosen)
        raise SeriesError(msg)
    kw = dict(rescale=args.rescale, workers=args.workers, progress=args.progress)
    vol = load_series_4d(chosen, **kw) if args.four_d else load_series(chosen[0], **kw)
    # written at exactly the path given (np.savez would add ".npz" to "x.npy")
    with open(args.output, "wb") as fh:
        if suffix == ".npy":
            np.save(fh, vol.array)
        else:
            np.savez(fh, array=vol.array, affine=vol.affine, spacing=np.asarray(vol.spacing))
    print(f"wrote {args.output}: {vol.array.shape} {vol.array.dtype}")
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``series`` and ``load`` subcommands to an argparse subparsers object."""
    p = subparsers.add_parser("series", help="list series and stacks under a folder")
    p.add_argument("path", nargs="+")
    p.add_argument("--no-recursive", action="store_true")
    p.set_defaults(func=_cmd_series)
    q = subparsers.add_parser("load", help="load one stack into an .npz (array, affine, "
                                           "spacing)")
    q.add_argument("path", nargs="+")
    q.add_argument("--series", help="SeriesInstanceUID")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--stack", type=int, default=None)
    g.add_argument("--4d", dest="four_d", action="store_true",
                   help="every stack of the series as one (volume, slice, row, column) array, "
                   "sorted by time (see load_series_4d)")
    q.add_argument("-o", "--output", required=True,
                   help="a .npz (array, affine, spacing) or a .npy (the array alone)")
    q.add_argument("--rescale", action="store_true")
    from .cli import _positive_int
    q.add_argument("--workers", type=_positive_int, default=None)
    q.add_argument("--progress", action="store_true")
    q.set_defaults(func=_cmd_load)
