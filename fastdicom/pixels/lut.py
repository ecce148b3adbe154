"""Pixel value transforms: modality LUT/rescale, VOI LUT/windowing, palette colour, display.

The functions are named and behave as pydicom 3's ``pydicom.pixels.processing`` functions
(same values, same dtypes) and work on any dataset offering pydicom's vocabulary
(``ds.get(keyword)``, ``keyword in ds``, attribute access, sequences as lists of datasets,
OW values as ``bytes``), so a pydicom ``Dataset`` works as well as a fastdicom one.

Deliberate differences from pydicom, all on inputs where pydicom wraps, overflows or raises:

* LUT indices are computed in 64-bit integers and clamped to the LUT: pydicom stores them in
  the LUT's entry type (or the input's type), so an index past 255 into an 8-bit-entry VOI or
  palette LUT wraps modulo 256 there; here it maps to the last entry.
* A LUT whose data is shorter than its descriptor says raises :class:`PixelDataError` (palette
  and 16-bit data) or, for an expanded segmented palette, clamps to the entries present —
  never an ``IndexError`` or ``struct.error``.
* The second descriptor value (first value mapped) is read as signed when the image's
  PixelRepresentation is 1, even if the dataset decoded it as unsigned.
* When the byte order of OW LUT data cannot be found from the dataset, little endian is
  assumed (pydicom raises ``AttributeError``); non-segmented palette data honours big endian.
* Empty *Window Center*/*Window Width* or *Rescale Slope*/*Intercept* count as absent; an empty
  *VOI LUT Function* counts as LINEAR.
* A *Rescale Slope*/*Intercept* holding several values (their VM is 1), or a rescale or window
  value that is not a finite number, raises :class:`PixelDataError` (pydicom raises a
  ``TypeError`` or ``ValueError`` there, or multiplies element-wise).  *Window Center*/*Width*
  may hold several values (VM 1-n): ``index`` picks one, as in pydicom.
  :func:`to_display_uint8` instead ignores such values (a :class:`DicomWarning`, or the
  error under ``validation="raise"``): an unreadable window shows the data range, an
  unreadable rescale shows the stored values with their data range.
* Errors on bad input are :class:`PixelDataError` (a ``ValueError``, as pydicom raises) and
  name the element at fault: ``.tag``, ``.path`` (a fastdicom data set's file, a pydicom
  FileDataset's ``filename``) and, for a fastdicom data set read from a file, ``.offset``.
  An unsupported VOI LUT entry depth or Presentation LUT Shape is also a
  ``NotImplementedError`` (as pydicom raises); a Supplemental Palette stays a ``ValueError``.
* A Modality LUT of 9 to 15 bits per entry (PS3.3 C.11.1.1.1 allows 8 to 16) gives uint16
  (pydicom fails on numpy's ``uint12``).  A palette lacking any of red, green or blue raises,
  also when an alpha LUT is present.
* Well-known palettes by name (``apply_color_lut(arr, palette="HOT_IRON")``) are not bundled
  (``NotImplementedError``); a one-entry US LUT works (pydicom fails on the scalar value).
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Optional, Sequence

import numpy as np

from fastdicom.errors import PixelDataError, report

__all__ = [
    "apply_modality_lut", "apply_rescale", "apply_voi_lut", "apply_voi", "apply_windowing",
    "apply_color_lut", "apply_presentation_lut", "invert_monochrome1", "to_display_uint8",
    "frame_transforms",
]

logger = logging.getLogger("fastdicom")

_BIG_ENDIAN_TS = "1.2.840.10008.1.2.2"
# Bounds on segmented palette expansion: nesting of indirect segments and total entries.
_MAX_INDIRECT_DEPTH = 32
_MAX_SEGMENTED_ENTRIES = 1 << 20
# segments read while expanding one segmented LUT, indirect re-reads included: indirect
# segments pointing at long runs of empty segments add no entries but cost a walk each
_MAX_SEGMENT_VISITS = 1 << 20

# tags of the elements errors name
_PHOTOMETRIC = 0x00280004
_BITS_STORED = 0x00280101
_WINDOW_CENTER, _WINDOW_WIDTH = 0x00281050, 0x00281051
_RESCALE_INTERCEPT, _RESCALE_SLOPE = 0x00281052, 0x00281053
_VOI_LUT_FUNCTION = 0x00281056
_LUT_DESCRIPTOR, _LUT_DATA = 0x00283002, 0x00283006
_PIXEL_PRESENTATION = 0x00089205
_PRESENTATION_LUT_SHAPE = 0x20500020
# Red, Green, Blue, Alpha: (descriptor, data, segmented data)
_PALETTE_TAGS = {"Red": (0x00281101, 0x00281201, 0x00281221),
                 "Green": (0x00281102, 0x00281202, 0x00281222),
                 "Blue": (0x00281103, 0x00281203, 0x00281223),
                 "Alpha": (0x00281104, 0x00281204, 0x00281224)}


class _UnsupportedLUTError(PixelDataError, NotImplementedError):
    """A LUT entry depth or Presentation LUT Shape this module does not apply: a
    PixelDataError with its element's context that stays a ``NotImplementedError``, as
    pydicom raises there."""


# ---------------------------------------------------------------------------------------------
# helpers over the dataset vocabulary

def _get(ds: Any, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword)`` for pydicom-like datasets, ``getattr`` for anything else."""
    getter = getattr(ds, "get", None)
    if getter is not None:
        try:
            value = getter(keyword, default)
        except (KeyError, TypeError):
            value = default
    else:
        value = getattr(ds, keyword, default)
    return default if value is None else value


_MODALITY_LUT_SEQUENCE, _VOI_LUT_SEQUENCE = 0x00283000, 0x00283010


def _items(ds: Any, keyword: str, tag: int) -> Any:
    """The items of sequence ``keyword`` of ``ds`` (None when absent or empty); an element
    of another VR there (a number, a name...) is a PixelDataError naming it (``[0]`` of it
    raised TypeError)."""
    sequence = _get(ds, keyword)
    if not sequence:
        return None
    if not (hasattr(sequence, "__getitem__") and not isinstance(sequence, (str, bytes)) and
            all(hasattr(item, "get") for item in sequence)):
        raise _fail(f"{keyword} is not a sequence of items", ds, tag, _path(ds))
    return sequence


def _values(value: Any) -> list:
    """A multi-valued element's value as a list (a scalar becomes a one-item list)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _is_empty(value: Any) -> bool:
    """True for an absent or zero-length value (None, '', [])."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, (int, float)):
        return False
    return len(_values(value)) == 0


def _path(ds: Any) -> Optional[str]:
    """The file a data set was read from: a fastdicom data set's (items included), a pydicom
    FileDataset's ``filename``; None for one built in memory."""
    ctx = getattr(ds, "__dict__", {}).get("_ctx")
    if ctx is not None:
        path = getattr(ctx, "path", None)
    else:
        path = getattr(ds, "filename", None)
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None


def _where(ds: Any, tag: int, path: Optional[str] = None) -> dict:
    """``path``, ``offset``, ``tag`` (and ``inflated``) for an error about element `tag` of
    `ds` (a data set or sequence item).  The offset (of the element's tag) is known for a
    fastdicom data set read from a file; `path` is the file of the top-level data set (a
    pydicom item does not know it)."""
    d = getattr(ds, "__dict__", {})
    ctx = d.get("_ctx")
    if path is None:
        path = _path(ds)
    offset = None
    if ctx is not None and tag in ds:
        header_offset = getattr(ds[tag], "header_offset", -1)
        if isinstance(header_offset, int) and header_offset >= 0:
            offset = header_offset
    inflated = offset is not None and bool(getattr(ctx, "inflated", False))
    return {"path": path, "offset": offset, "tag": tag, "inflated": inflated}


def _fail(message: str, ds: Any, tag: int, path: Optional[str] = None,
          cls: type = PixelDataError) -> PixelDataError:
    """The error (`cls`) about element `tag` of `ds`, with its file, offset and tag."""
    return cls(message, **_where(ds, tag, path))


def _number(value: Any, name: str, tag: int, ds: Any = None,
            path: Optional[str] = None) -> float:
    """One value of a DS/IS/FD attribute (element `tag` of `ds`) as a finite float;
    PixelDataError when it is not a number (the message names the attribute, never the
    value)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise _fail(f"{name} is not a number", ds, tag, path) from None
    if isinstance(value, (bool, np.bool_)):
        raise _fail(f"{name} is not a number", ds, tag, path)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise _fail(f"{name} is not a number", ds, tag, path) from None
    if not math.isfinite(number):
        raise _fail(f"{name} is not a finite number", ds, tag, path)
    return number


def _single_number(value: Any, name: str, tag: int, ds: Any = None,
                   path: Optional[str] = None) -> float:
    """The value of a VM 1 numeric attribute; PixelDataError when it holds several values or
    is not a finite number."""
    items = _values(value)
    if len(items) != 1:
        raise _fail(f"{name} must hold one value, found {len(items)}", ds, tag, path)
    return _number(items[0], name, tag, ds, path)


def _rescale_parameters(ds: Any) -> Optional[tuple[float, float]]:
    """(slope, intercept), or None when either is absent or empty."""
    slope = _get(ds, "RescaleSlope")
    intercept = _get(ds, "RescaleIntercept")
    if _is_empty(slope) or _is_empty(intercept):
        return None
    return (_single_number(slope, "Rescale Slope", _RESCALE_SLOPE, ds),
            _single_number(intercept, "Rescale Intercept", _RESCALE_INTERCEPT, ds))


def _validation(ds: Any) -> str:
    """The validation mode of a fastdicom data set ("warn" for any other data set)."""
    ctx = getattr(ds, "__dict__", {}).get("_ctx")
    mode = getattr(ctx, "validation", "warn")
    return mode if mode in ("raise", "warn", "ignore") else "warn"


def _is_little_endian(ds: Any) -> bool:
    """Byte order of the dataset's OW values; little endian when it cannot be told."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        ts = _get(meta, "TransferSyntaxUID")
        if ts:
            return str(ts).strip() != _BIG_ENDIAN_TS
    encoding = getattr(ds, "original_encoding", None)
    if isinstance(encoding, tuple) and len(encoding) == 2 and encoding[1] is not None:
        return bool(encoding[1])
    flag = getattr(ds, "is_little_endian", None)
    if flag is not None:
        return bool(flag)
    return True


def _descriptor(item: Any, keyword: str, tag: int, pixel_representation: Any,
                path: Optional[str] = None) -> tuple[int, int, int]:
    """(number of entries, first value mapped, bits per entry) of the LUT descriptor
    `keyword` (element `tag`) of `item`."""
    items = _values(_get(item, keyword))
    if len(items) != 3:
        raise _fail(f"a LUT descriptor needs 3 values, found {len(items)}", item, tag, path)
    try:
        entries, first_map, depth = (int(v) for v in items)
    except (TypeError, ValueError, OverflowError):
        raise _fail("a LUT descriptor value is not an integer", item, tag, path) from None
    entries &= 0xFFFF
    if entries == 0:
        entries = 1 << 16
    if pixel_representation == 1 and first_map >= 0x8000:
        first_map -= 0x10000
    return entries, first_map, depth & 0xFFFF


def _lut_indices(arr: np.ndarray, first_map: int, nr_entries: int) -> np.ndarray:
    """Indices into a LUT of `nr_entries`: values below `first_map` → 0, past the end → last."""
    if arr.dtype.kind == "f":
        # pydicom truncates (value - first_map) towards zero; it is >= 0 where it matters.
        shifted = np.floor(arr - float(first_map))
        np.clip(shifted, 0, nr_entries - 1, out=shifted)
        return shifted.astype(np.intp)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    shifted = arr.astype(np.int64) - first_map
    np.clip(shifted, 0, nr_entries - 1, out=shifted)
    return shifted.astype(np.intp, copy=False)


def _lut_words(data: Any, nr_entries: int, ds: Any, exact: bool, item: Any,
               path: Optional[str]) -> np.ndarray:
    """LUT Data (US list or OW bytes; element (0028,3006) of `item`) as an array of integers
    (16-bit words for bytes)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if len(raw) < 2 * nr_entries or (exact and len(raw) != 2 * nr_entries):
            raise _fail(f"LUT Data holds {len(raw)} bytes, the descriptor asks for "
                        f"{nr_entries} 16-bit entries", item, _LUT_DATA, path)
        dtype = "<u2" if _is_little_endian(ds) else ">u2"
        return np.frombuffer(raw, dtype=dtype, count=nr_entries).astype(np.int64)
    try:
        values = np.asarray(_values(data), dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise _fail("LUT Data is not a list of integers", item, _LUT_DATA, path) from None
    if values.size < nr_entries:
        # (as for OW data: a LUT shorter than its descriptor is refused, not clamped)
        raise _fail(f"LUT Data holds {values.size} entries, the descriptor asks for "
                    f"{nr_entries}", item, _LUT_DATA, path)
    return values


def _as_entry_type(words: np.ndarray, dtype: str, item: Any, tag: int,
                   path: Optional[str]) -> np.ndarray:
    info = np.iinfo(dtype)
    if words.size and (words.min() < info.min or words.max() > info.max):
        raise _fail(f"LUT Data holds values that do not fit {dtype} entries", item, tag, path)
    return words.astype(dtype)


# ---------------------------------------------------------------------------------------------
# the transforms of one frame of an enhanced multi-frame image

#: the functional groups that hold a frame's pixel value transforms (PS3.3 C.7.6.16.2.9
#: Pixel Value Transformation, C.7.6.16.2.10 Frame VOI LUT, with or without its LUT)
_TRANSFORM_GROUPS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")


class _FrameTransforms:
    """`ds` as one frame sees it: an element of the frame's Pixel Value Transformation or
    Frame VOI LUT item (its Per-frame Functional Groups item's, else the Shared one's) stands
    in for the top-level element of the same tag; everything else is `ds`'s.  Errors name
    the element where it is (items keep their file's offsets)."""

    def __init__(self, ds: Any, items: list) -> None:
        self._ds, self._items = ds, items
        ctx = getattr(ds, "__dict__", {}).get("_ctx")
        if ctx is not None:
            self.__dict__["_ctx"] = ctx         # (the file, for _path and _validation)
        self.filename = getattr(ds, "filename", None)

    def _holder(self, key: Any) -> Any:
        for item in self._items:
            try:
                if key in item:
                    return item
            except (KeyError, TypeError, ValueError):
                continue
        return self._ds

    def get(self, keyword: str, default: Any = None) -> Any:
        return self._holder(keyword).get(keyword, default)

    def __contains__(self, key: Any) -> bool:
        return key in self._holder(key)

    def __getitem__(self, key: Any) -> Any:
        return self._holder(key)[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._holder(name), name)


def frame_transforms(ds: Any, frame: int) -> Any:
    """`ds` with the rescale, window and LUTs that frame `frame` (0-based) of an enhanced
    multi-frame image declares in its functional groups, for the functions of this module;
    `ds` itself when its functional groups declare none."""
    items = []
    per_frame = _get(ds, "PerFrameFunctionalGroupsSequence")
    shared = _get(ds, "SharedFunctionalGroupsSequence")
    groups = []
    try:
        if per_frame and 0 <= frame < len(per_frame):
            groups.append(per_frame[frame])
        if shared:
            groups.append(shared[0])
    except TypeError:       # not a sequence (a damaged file): no functional groups
        return ds
    for group in groups:
        if not hasattr(group, "get"):
            continue
        for keyword in _TRANSFORM_GROUPS:
            sequence = _get(group, keyword)
            try:
                item = sequence[0] if sequence else None
            except TypeError:
                item = None
            if item is not None and hasattr(item, "get"):
                items.append(item)
    return _FrameTransforms(ds, items) if items else ds


# ---------------------------------------------------------------------------------------------
# modality

def _modality_descriptor(item: Any, ds: Any, path: Optional[str]) -> tuple[int, int, int]:
    """The LUT Descriptor of Modality LUT Sequence item `item` of `ds`, its bits per entry
    checked (PS3.3 C.11.1.1.1: 8 to 16, stored in 8 bits for 8, else in 16)."""
    nr_entries, first_map, depth = _descriptor(
        item, "LUTDescriptor", _LUT_DESCRIPTOR, _get(ds, "PixelRepresentation"), path)
    if not 8 <= depth <= 16:
        raise _fail(f"Modality LUT entries of {depth} bits are not supported (8 to 16)",
                    item, _LUT_DESCRIPTOR, path)
    return nr_entries, first_map, depth


def apply_modality_lut(arr: np.ndarray, ds: Any) -> np.ndarray:
    """Apply the Modality LUT Sequence or Rescale Slope/Intercept to `arr`.

    Returns uint8/uint16 (per the LUT descriptor) for a Modality LUT, float64 for a rescale,
    or `arr` itself when neither is present.
    """
    sequence = _items(ds, "ModalityLUTSequence", _MODALITY_LUT_SEQUENCE)
    if sequence:
        item = sequence[0]
        path = _path(ds)
        nr_entries, first_map, depth = _modality_descriptor(item, ds, path)
        dtype = "uint8" if depth == 8 else "uint16"
        data = _get(item, "LUTData")
        if data is None:
            raise _fail("the Modality LUT Sequence item has no LUT Data", item, _LUT_DATA,
                        path)
        lut = _as_entry_type(_lut_words(data, nr_entries, ds, True, item, path), dtype, item,
                             _LUT_DATA, path)
        if lut.size == 0:
            raise _fail("the Modality LUT Data is empty", item, _LUT_DATA, path)
        return lut[_lut_indices(arr, first_map, min(nr_entries, lut.size))]
    return _rescaled(arr, ds)


def _rescaled(arr: np.ndarray, ds: Any) -> np.ndarray:
    """`arr` through Rescale Slope/Intercept (float64), or `arr` when they are absent."""
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        rescale = _rescale_parameters(ds)
        if rescale is not None:
            out = arr.astype(np.float64) * rescale[0]
            out += rescale[1]
            return out
    return arr


apply_rescale = apply_modality_lut


# ---------------------------------------------------------------------------------------------
# VOI

def _window_parameters(ds: Any, index: int) -> Optional[tuple[float, float]]:
    center = _get(ds, "WindowCenter")
    width = _get(ds, "WindowWidth")
    if _is_empty(center) or _is_empty(width):
        return None
    centers, widths = _values(center), _values(width)
    shorter, longer = sorted((len(centers), len(widths)))
    if shorter > 1 and -longer <= index < longer and not -shorter <= index < shorter:
        # PS3.3 C.11.2.1.2: several windows give Window Center and Width as many values
        # each; window `index` exists in one only (an IndexError, in pydicom)
        tag = _WINDOW_CENTER if len(centers) == shorter else _WINDOW_WIDTH
        raise _fail(f"Window Center holds {len(centers)} values, Window Width "
                    f"{len(widths)}: window {index} is missing", ds, tag)
    # As pydicom: `index` only applies to multi-valued elements (VM 1-n).
    center = centers[index] if len(centers) > 1 else centers[0]
    width = widths[index] if len(widths) > 1 else widths[0]
    return (_number(center, "Window Center", _WINDOW_CENTER, ds),
            _number(width, "Window Width", _WINDOW_WIDTH, ds))


def _has_lut(item: Any) -> bool:
    """Whether a LUT item holds a LUT Descriptor and LUT Data (both Type 1, yet left empty
    by some writers: such an item counts as no LUT for display)."""
    return _get(item, "LUTDescriptor") is not None and _get(item, "LUTData") is not None


def _has_voi_lut(ds: Any) -> bool:
    sequence = _items(ds, "VOILUTSequence", _VOI_LUT_SEQUENCE)
    return bool(sequence) and _has_lut(sequence[0])


def apply_voi_lut(arr: np.ndarray, ds: Any, index: int = 0,
                  prefer_lut: bool = True) -> np.ndarray:
    """Apply the VOI LUT Sequence or the window (VOI LUT Module) to `arr`.

    When both are present `prefer_lut` chooses the LUT (default) or the window.
    """
    valid_voi = _has_voi_lut(ds)
    valid_window = not _is_empty(_get(ds, "WindowCenter")) \
        and not _is_empty(_get(ds, "WindowWidth"))
    if valid_voi and (prefer_lut or not valid_window):
        return apply_voi(arr, ds, index)
    if valid_window:
        return apply_windowing(arr, ds, index)
    return arr


def apply_voi(arr: np.ndarray, ds: Any, index: int = 0) -> np.ndarray:
    """Apply item `index` of the VOI LUT Sequence to `arr` (uint8 or uint16 output)."""
    sequence = _items(ds, "VOILUTSequence", _VOI_LUT_SEQUENCE)
    if not sequence:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        logger.warning("Applying a VOI LUT on a float input array may give incorrect results")
    item = sequence[index]
    path = _path(ds)
    nr_entries, first_map, depth = _descriptor(
        item, "LUTDescriptor", _LUT_DESCRIPTOR, _get(ds, "PixelRepresentation"), path)
    if depth == 8:
        dtype = "uint8"
    elif 10 <= depth <= 16:
        dtype = "uint16"
    else:
        # (a NotImplementedError too, as pydicom raises)
        raise _fail(f"'{depth}' bits per LUT entry is not supported", item, _LUT_DESCRIPTOR,
                    path, cls=_UnsupportedLUTError)
    data = _get(item, "LUTData")
    if data is None:
        raise _fail("the VOI LUT Sequence item has no LUT Data", item, _LUT_DATA, path)
    lut = _as_entry_type(_lut_words(data, nr_entries, ds, False, item, path), dtype, item,
                         _LUT_DATA, path)
    if lut.size == 0:
        raise _fail("the VOI LUT Data is empty", item, _LUT_DATA, path)
    return lut[_lut_indices(arr, first_map, min(nr_entries, lut.size))]


def _output_range(ds: Any) -> tuple[float, float]:
    """Range of the modality output the window maps onto (pydicom's rule)."""
    bits_stored = _get(ds, "BitsStored")
    if _is_empty(bits_stored):
        raise _fail("windowing needs (0028,0101) Bits Stored", ds, _BITS_STORED)
    number = _single_number(bits_stored, "Bits Stored", _BITS_STORED, ds)
    if number != int(number):
        raise _fail("Bits Stored is not an integer", ds, _BITS_STORED)
    bits_stored = int(number)
    sequence = _items(ds, "ModalityLUTSequence", _MODALITY_LUT_SEQUENCE)
    if sequence:
        _, _, depth = _modality_descriptor(sequence[0], ds, _path(ds))
        y_min, y_max = 0, 2 ** depth - 1
    elif _is_empty(_get(ds, "PixelRepresentation")) or _get(ds, "PixelRepresentation") == 0:
        # (absent: unsigned, as the pixel data are read)
        y_min, y_max = 0, 2 ** bits_stored - 1
    else:
        y_min, y_max = -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    rescale = _rescale_parameters(ds)
    if rescale is not None:
        slope, intercept = rescale
        return y_min * slope + intercept, y_max * slope + intercept
    return y_min, y_max


def _window(arr: np.ndarray, center: float, width: float, function: str,
            y_min: float, y_max: float, ds: Any = None) -> np.ndarray:
    """Window `arr` onto [y_min, y_max] as float64 (PS3.3 C.11.2.1.2 and C.11.2.1.3); errors
    name the elements of `ds` the window came from."""
    y_range = y_max - y_min
    out = arr.astype(np.float64)
    if function in ("LINEAR", "LINEAR_EXACT"):
        if function == "LINEAR":
            if width < 1:
                raise _fail(
                    "the Window Width must be at least 1 for a 'LINEAR' windowing operation",
                    ds, _WINDOW_WIDTH)
            center -= 0.5
            width -= 1
        elif width <= 0:
            raise _fail(
                "the Window Width must be greater than 0 for a 'LINEAR_EXACT' windowing "
                "operation", ds, _WINDOW_WIDTH)
        below = out <= (center - width / 2)
        above = out > (center + width / 2)
        between = ~(below | above)
        values = out[between]
        out[below] = y_min
        out[above] = y_max
        if values.size:
            out[between] = ((values - center) / width + 0.5) * y_range + y_min
        return out
    if function == "SIGMOID":
        if width <= 0:
            raise _fail(
                "the Window Width must be greater than 0 for a 'SIGMOID' windowing operation",
                ds, _WINDOW_WIDTH)
        with np.errstate(over="ignore"):
            return y_range / (1 + np.exp(-4 * (out - center) / width)) + y_min
    raise _fail(f"unsupported (0028,1056) VOI LUT Function {function!r}", ds,
                _VOI_LUT_FUNCTION)


def _voi_function(ds: Any) -> str:
    function = _get(ds, "VOILUTFunction")
    if _is_empty(function):
        return "LINEAR"
    return str(function).strip().upper()


def apply_windowing(arr: np.ndarray, ds: Any, index: int = 0) -> np.ndarray:
    """Apply window `index` (Window Center/Width, VOI LUT Function) to `arr` (float64 out)."""
    window = _window_parameters(ds, index)
    if window is None:
        return arr
    photometric = str(_get(ds, "PhotometricInterpretation", "")).strip()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise _fail(
            "windowing needs a (0028,0004) Photometric Interpretation of MONOCHROME1 or "
            f"MONOCHROME2, found {photometric!r}", ds, _PHOTOMETRIC)
    y_min, y_max = _output_range(ds)
    return _window(arr, window[0], window[1], _voi_function(ds), y_min, y_max, ds)


# ---------------------------------------------------------------------------------------------
# palette colour

def _expand_segmented(data: Sequence[int], eight_bit: bool, little_endian: bool,
                      nr_segments: Optional[int] = None, last_value: Optional[int] = None,
                      depth: int = 0, visits: Optional[list] = None) -> list[int]:
    """Expand Segmented Palette Color LUT Data (PS3.3 C.7.9.2) into its entries.

    Indirect offsets index the decoded entries, as pydicom reads them.  ``visits`` ([count])
    bounds the segments read in all, indirect re-reads included.
    """
    if visits is None:
        visits = [0]
    if depth > _MAX_INDIRECT_DEPTH:
        raise PixelDataError("segmented palette LUT: indirect segments nested too deeply")
    lut: list[int] = []
    offset = 0
    segments = 0
    size = len(data)
    while offset + 1 < size:   # a trailing pad entry is ignored
        opcode, length = data[offset], data[offset + 1]
        offset += 2
        if opcode == 0:        # discrete
            lut.extend(data[offset:offset + length])
            offset += length
        elif opcode == 1:      # linear
            if lut:
                y0 = lut[-1]
            elif last_value is not None:
                y0 = last_value
            else:
                raise PixelDataError(
                    "segmented palette LUT: the first segment cannot be a linear segment")
            if offset >= size:
                raise PixelDataError("segmented palette LUT: a linear segment is truncated")
            y1 = data[offset]
            offset += 1
            if y0 == y1:
                lut.extend([y1] * length)
            elif length:
                step = (y1 - y0) / length
                lut.extend(np.around(np.linspace(y0 + step, y1, length)).astype(int).tolist())
        elif opcode == 2:      # indirect
            if not lut:
                raise PixelDataError(
                    "segmented palette LUT: the first segment cannot be an indirect segment")
            if offset + (4 if eight_bit else 2) > size:
                raise PixelDataError("segmented palette LUT: an indirect segment is truncated")
            if eight_bit:
                b0, b1, b2, b3 = data[offset:offset + 4]
                if little_endian:
                    target = (b3 << 8 | b2) << 16 | (b1 << 8 | b0)
                else:
                    target = (b2 << 8 | b3) << 16 | (b0 << 8 | b1)
                offset += 4
            else:
                target = data[offset + 1] << 16 | data[offset]
                offset += 2
            lut.extend(_expand_segmented(data[target:], eight_bit, little_endian,
                                         length, lut[-1], depth + 1, visits))
        else:
            raise PixelDataError(f"segmented palette LUT: unknown segment type {opcode}")
        if len(lut) > _MAX_SEGMENTED_ENTRIES:
            raise PixelDataError("segmented palette LUT expands past "
                                 f"{_MAX_SEGMENTED_ENTRIES} entries")
        segments += 1
        visits[0] += 1
        if visits[0] > _MAX_SEGMENT_VISITS:
            raise PixelDataError("segmented palette LUT: more than "
                                 f"{_MAX_SEGMENT_VISITS} segments read (indirect loops)")
        if segments == nr_segments:
            break
    return lut


_CHANNELS = ("Red", "Green", "Blue", "Alpha")


def apply_color_lut(arr: np.ndarray, ds: Any = None, palette: Any = None) -> np.ndarray:
    """Map palette indices in `arr` to RGB (or RGBA) through the dataset's Palette Color LUTs.

    Output is uint8 or uint16, with a trailing axis of 3 (or 4 with an alpha LUT).  Values
    below the first value mapped take the first entry, values past the end the last entry.
    Well-known palettes by name (`palette`) are not shipped: pass a dataset holding one.
    """
    if palette:
        raise NotImplementedError(
            "well-known colour palettes are not bundled; read the palette's SOP instance and "
            "pass it as `ds`")
    if ds is None:
        raise ValueError("Either 'ds' or 'palette' is required")
    path = _path(ds)
    if _get(ds, "PixelPresentation") in ("MIXED", "COLOR"):
        raise _fail("Use of this function with the Supplemental Palette Color Lookup "
                    "Table Module is not currently supported", ds, _PIXEL_PRESENTATION, path)
    red_descriptor, red_data, red_segmented = _PALETTE_TAGS["Red"]
    if "RedPaletteColorLookupTableDescriptor" not in ds:
        raise _fail("No suitable Palette Color Lookup Table Module found", ds,
                    red_descriptor, path)

    nr_entries, first_map, nominal_depth = _descriptor(
        ds, "RedPaletteColorLookupTableDescriptor", red_descriptor,
        _get(ds, "PixelRepresentation"), path)
    little_endian = _is_little_endian(ds)

    luts: list[np.ndarray] = []
    missing: list[int] = []         # tags of the red, green or blue data absent or empty
    if "RedPaletteColorLookupTableData" in ds:
        raw = [_get(ds, f"{c}PaletteColorLookupTableData") for c in _CHANNELS]
        first = raw[0]
        if not isinstance(first, (bytes, bytearray, memoryview)):
            raise _fail("Palette Color LUT Data must be OW bytes", ds, red_data, path)
        length = len(first)
        if length == nr_entries or (nr_entries % 2 and length == nr_entries + 1):
            dtype = np.dtype("u1")      # 8-bit entries (an odd count padded to even)
        elif length == 2 * nr_entries:
            dtype = np.dtype("<u2" if little_endian else ">u2")
        else:
            raise _fail(
                f"The bit depth of the LUT data '{length * 8 / nr_entries:.1f}' is invalid "
                "(only 8 or 16 bits per entry allowed)", ds, red_data, path)
        for channel, data in zip(_CHANNELS, raw):
            tag = _PALETTE_TAGS[channel][1]
            if data:
                if not isinstance(data, (bytes, bytearray, memoryview)):
                    raise _fail("Palette Color LUT Data must be OW bytes", ds, tag, path)
                if len(data) != length:
                    raise _fail("LUT data must be the same length", ds, tag, path)
                lut = np.frombuffer(bytes(data), dtype=dtype, count=nr_entries)
                luts.append(lut.astype(dtype.newbyteorder("=")))
            elif channel != "Alpha":
                missing.append(tag)
    elif "SegmentedRedPaletteColorLookupTableData" in ds:
        if nominal_depth not in (8, 16):
            raise _fail(
                f"The bit depth of the LUT data '{nominal_depth:.1f}' is invalid "
                "(only 8 or 16 bits per entry allowed)", ds, red_descriptor, path)
        width = nominal_depth // 8
        entry = np.dtype(f"u{width}").newbyteorder("<" if little_endian else ">")
        out_dtype = np.dtype(f"uint{nominal_depth}")
        size = None
        for channel in _CHANNELS:
            tag = _PALETTE_TAGS[channel][2]
            data = _get(ds, f"Segmented{channel}PaletteColorLookupTableData")
            if data:
                raw = bytes(data)
                words = np.frombuffer(raw, dtype=entry, count=len(raw) // width).tolist()
                try:
                    expanded = _expand_segmented(words, width == 1, little_endian)
                except PixelDataError as exc:
                    # (raised without context, deep in the expansion of this element)
                    where = _where(ds, tag, path)
                    exc.inflated = exc.inflated or where.pop("inflated")
                    raise exc.with_context(**where)
                lut = _as_entry_type(np.asarray(expanded, dtype=np.int64), out_dtype.name,
                                     ds, tag, path)
                if lut.size == 0:
                    raise _fail("a segmented palette LUT expands to no entries", ds, tag,
                                path)
                if size is not None and lut.size != size:
                    raise _fail("LUT data must be the same length", ds, tag, path)
                size = lut.size
                luts.append(lut)
            elif channel != "Alpha":
                missing.append(tag)
        # Lenient: an expansion shorter than the descriptor clamps to its own last entry.
        if size is not None:
            nr_entries = min(nr_entries, size)
    else:
        raise _fail("No suitable Palette Color Lookup Table Module found", ds, red_data, path)
    if missing:
        # red, green and blue are all required (pydicom fails too): two channels made a
        # grey + alpha image
        raise _fail(f"the palette has {3 - len(missing)} of its red, green and blue LUTs",
                    ds, missing[0], path)

    indices = _lut_indices(arr, first_map, nr_entries)
    return np.stack([lut[indices] for lut in luts], axis=-1)


# ---------------------------------------------------------------------------------------------
# presentation and display

def apply_presentation_lut(arr: np.ndarray, ds: Any) -> np.ndarray:
    """Apply the Presentation LUT Sequence or Presentation LUT Shape to `arr` (P-values)."""
    sequence = _get(ds, "PresentationLUTSequence")
    if sequence:
        item = sequence[0]
        path = _path(ds)
        nr_entries, _, bit_depth = _descriptor(item, "LUTDescriptor", _LUT_DESCRIPTOR, 0, path)
        itemsize = 8 if bit_depth <= 8 else 16
        data = _get(item, "LUTData")
        if isinstance(data, (bytes, bytearray, memoryview)):
            raw = bytes(data)[:nr_entries * itemsize // 8]
            if len(raw) * 8 // itemsize < nr_entries:
                raise _fail("the Presentation LUT Data is shorter than its descriptor", item,
                            _LUT_DATA, path)
            order = "<" if _is_little_endian(ds) else ">"
            lut = np.frombuffer(raw, dtype=f"{order}u{itemsize // 8}").astype(f"uint{itemsize}")
        else:
            try:
                lut = np.asarray(_values(data), dtype=np.int64)
            except (TypeError, ValueError, OverflowError):
                raise _fail("LUT Data is not a list of integers", item, _LUT_DATA,
                            path) from None
            lut = _as_entry_type(lut, "uint16", item, _LUT_DATA, path)
        if itemsize - bit_depth > 0:
            lut = lut & ((1 << bit_depth) - 1)
        scaled = arr.astype("float32")
        scaled -= scaled.min()
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled /= scaled.max() / (nr_entries - 1)
        scaled = np.nan_to_num(scaled, nan=0.0)
        return lut[np.clip(scaled.astype(np.intp), 0, lut.size - 1)]
    shape = _get(ds, "PresentationLUTShape")
    if shape is not None:
        transform = str(shape).strip().upper()
        if transform not in ("IDENTITY", "INVERSE"):
            # (a NotImplementedError too, as pydicom raises)
            raise _fail(f"A (2050,0020) 'Presentation LUT Shape' value of '{shape}' is not "
                        "supported", ds, _PRESENTATION_LUT_SHAPE, cls=_UnsupportedLUTError)
        if transform == "INVERSE":
            return arr.max() - arr
    return arr


def invert_monochrome1(arr: np.ndarray, ds: Any) -> np.ndarray:
    """Invert MONOCHROME1 stored values so that larger means brighter; others pass through.

    Integer values are reflected within the Bits Stored range (``max - value`` when unsigned,
    ``-1 - value`` when signed), keeping the dtype; values outside the range are clipped first.
    Float arrays (after a rescale or windowing) are reflected within their own min/max.
    """
    if str(_get(ds, "PhotometricInterpretation", "")).strip() != "MONOCHROME1":
        return arr
    if arr.dtype.kind == "f":
        if arr.size == 0:
            return arr.copy()
        return (np.nanmin(arr) + np.nanmax(arr)) - arr
    bits = int(_get(ds, "BitsStored", arr.dtype.itemsize * 8))
    if arr.dtype.kind == "i" or _get(ds, "PixelRepresentation") == 1:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1
    info = np.iinfo(arr.dtype)
    low, high = max(low, info.min), min(high, info.max)
    wide = np.clip(arr.astype(np.int64), low, high)
    return (low + high - wide).astype(arr.dtype)


def _scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float64) - low) * (255.0 / (high - low))
    np.clip(scaled, 0, 255, out=scaled)
    return np.rint(scaled).astype(np.uint8)


def _has_frame_axis(arr: np.ndarray, ds: Any) -> bool:
    samples = int(_get(ds, "SamplesPerPixel", 1) or 1)
    return arr.ndim == (4 if samples > 1 else 3)


def _select_frame(arr: np.ndarray, ds: Any, frame: Optional[int]) -> np.ndarray:
    if frame is None:
        return arr
    if not _has_frame_axis(arr, ds):
        if frame != 0:
            raise IndexError(f"frame {frame} requested from a single-frame image")
        return arr
    return arr[frame]


def to_display_uint8(arr: np.ndarray, ds: Any, *, frame: Optional[int] = None,
                     window: Optional[tuple[float, float]] = None) -> np.ndarray:
    """Displayable 8-bit pixels: modality LUT → VOI → MONOCHROME1 inversion → 0..255.

    The VOI step uses `window` = (center, width) when given, else the dataset's first VOI
    LUT or window, else the min/max of the data.  RGB/YBR input (already RGB, as pixel_array
    returns it) is scaled from Bits Stored to 8 bits; PALETTE COLOR goes through the palette.
    `frame` picks one frame of a multi-frame array, and the rescale and window that frame's
    functional groups declare (:func:`frame_transforms`).

    A Window Center/Width that is not a number is ignored (the data range is shown); a Rescale
    Slope/Intercept that is not one number is ignored together with the dataset's window and
    VOI LUT, which are in rescaled units.  A Modality or VOI LUT item without LUT Descriptor
    or LUT Data counts as no LUT.  Each is reported as a DicomWarning (raised under
    the data set's ``validation="raise"``).
    """
    arr = np.asarray(arr)
    if frame is not None:
        frames = arr.shape[0] if _has_frame_axis(arr, ds) else 1
        ds = frame_transforms(ds, frame + frames if frame < 0 else frame)
    arr = _select_frame(arr, ds, frame)
    photometric = str(_get(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper()

    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        if rgb.dtype == np.uint8:
            return rgb
        return _scale_to_uint8(rgb, 0, np.iinfo(rgb.dtype).max)

    if arr.ndim >= 3 and arr.shape[-1] in (3, 4) and photometric not in (
            "MONOCHROME1", "MONOCHROME2"):
        if arr.dtype == np.uint8:
            return arr
        if arr.dtype.kind in "ui":
            bits = int(_get(ds, "BitsStored", arr.dtype.itemsize * 8))
            return _scale_to_uint8(arr, 0, (1 << bits) - 1)
        return _scale_to_uint8(arr, float(np.nanmin(arr)), float(np.nanmax(arr)))

    dataset_voi = True
    modality_lut = _items(ds, "ModalityLUTSequence", _MODALITY_LUT_SEQUENCE)
    if modality_lut and not _has_lut(modality_lut[0]):
        logger.info("ignoring an empty Modality LUT Sequence item for display")
        modality_lut = None
    if not modality_lut:
        try:
            _rescale_parameters(ds)
        except PixelDataError as exc:
            # stored values shown with their data range: the dataset's window and VOI LUT
            # are in rescaled units, so they are ignored too
            report(_validation(ds), exc)
            dataset_voi = False
    if not dataset_voi:
        values = arr
    else:
        values = apply_modality_lut(arr, ds) if modality_lut else _rescaled(arr, ds)
    display: Optional[np.ndarray] = None
    if window is not None:
        center, width = float(window[0]), float(window[1])
        function = _voi_function(ds)
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            function = "LINEAR"
        if function == "LINEAR" and width < 1:
            function = "LINEAR_EXACT"
        display = _window(values, center, max(width, np.finfo(float).tiny), function, 0, 255)
        low, high = 0.0, 255.0
    elif dataset_voi and _has_voi_lut(ds):
        display = apply_voi(values, ds)
        item = _items(ds, "VOILUTSequence", _VOI_LUT_SEQUENCE)[0]
        _, _, depth = _descriptor(item, "LUTDescriptor", _LUT_DESCRIPTOR, 0, _path(ds))
        low, high = 0.0, float((1 << depth) - 1)
    elif dataset_voi:
        try:
            parameters = _window_parameters(ds, 0)
        except PixelDataError as exc:      # not a number: show the data range
            report(_validation(ds), exc)
            parameters = None
        if parameters is not None:
            try:
                display = _window(values, parameters[0], parameters[1], _voi_function(ds),
                                  0, 255, ds)
                low, high = 0.0, 255.0
            except PixelDataError as exc:   # an unusable window: show the data range
                logger.info("ignoring the dataset's window for display: %s", exc.message)
    if display is None:
        display = values
        if display.size:
            low, high = float(np.nanmin(display)), float(np.nanmax(display))
        else:
            low, high = 0.0, 0.0
    out = _scale_to_uint8(np.nan_to_num(display, nan=low), low, high)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out
