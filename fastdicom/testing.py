"""A small, dependency-free DICOM writer and deterministic synthetic data generator.

Used by ``fastdicom demo``, the test-suite, the benchmarks and the ingestion tests.  Only the
standard library and numpy are required; :mod:`imagecodecs` is used (when installed) for the
JPEG-family transfer syntaxes.  Nothing here depends on pydicom.

Low level
---------
* :func:`encode_element` -- one data element, any of the 34 VRs, explicit/implicit, LE/BE.
* :func:`encode_dataset` -- a list of ``(tag, vr, value)`` tuples (sorted by tag).
* :func:`encapsulate` -- encapsulated pixel data items (BOT / fragments / sequence delimiter).
* :func:`write_file` -- preamble + ``DICM`` + file meta group + body in any transfer syntax.
* :func:`uid_from` -- deterministic ``2.25.<int>`` UIDs.

Generators (all deterministic given their seed)
-----------------------------------------------
* :func:`phantom_slice`, :func:`ct_instance_elements`, :func:`write_ct_series`
* :func:`multiframe_frame`, :func:`write_multiframe` (streaming, never holds the whole array)
* :func:`write_mixed_set`, :func:`write_junk`
"""
from __future__ import annotations

import decimal
import io
import math
import os
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

import numpy as np

__all__ = [
    "IMPLICIT_LE", "EXPLICIT_LE", "EXPLICIT_BE", "DEFLATED_LE", "ENCAPSULATED_UNCOMPRESSED",
    "RLE_LOSSLESS", "JPEG_BASELINE", "JPEG_LOSSLESS_SV1", "JPEG_LS_LOSSLESS", "JPEG_2000_LOSSLESS",
    "NATIVE_TRANSFER_SYNTAXES", "CT_IMAGE_STORAGE", "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME", "VRS", "LONG_LENGTH_VRS",
    "uid_from", "format_ds", "format_is", "encode_element", "encode_dataset", "encapsulate",
    "encode_file_meta", "write_file", "is_encapsulated", "builtin_frame_encoder",
    "phantom_slice", "ct_instance_elements", "write_ct_series", "multiframe_frame",
    "write_multiframe", "write_mixed_set", "write_junk", "csa_header_bytes",
]

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
ENCAPSULATED_UNCOMPRESSED = "1.2.840.10008.1.2.1.98"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"

NATIVE_TRANSFER_SYNTAXES = frozenset({IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE})

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
_MF_SC_BYTE = "1.2.840.10008.5.1.4.1.1.7.2"
_MF_SC_WORD = "1.2.840.10008.5.1.4.1.1.7.3"
_MF_SC_TRUE_COLOR = "1.2.840.10008.5.1.4.1.1.7.4"

_UID_NAMESPACE = uuid.UUID("6f1c2b0e-4d0a-5e43-9a55-fa57d1c0a11e")


def uid_from(seed: Any) -> str:
    """Return a deterministic ``2.25.<int>`` UID (PS3.5 B.2) derived from ``seed``.

    Uses a name-based (SHA-1) UUID so the same seed always gives the same UID; at most 44 chars.
    """
    return "2.25.%d" % uuid.uuid5(_UID_NAMESPACE, str(seed)).int


IMPLEMENTATION_CLASS_UID = uid_from("fastdicom implementation class")
IMPLEMENTATION_VERSION_NAME = "FASTDICOM_01"

VRS = ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD", "OF",
       "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
       "UR", "US", "UT", "UV")
# VRs with a 2-byte reserved field + 32-bit length in explicit VR.
LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR",
                             "UT", "UV"})
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                         "TM", "UC", "UI", "UR", "UT"})
# Strings whose bytes are affected by (0008,0005) Specific Character Set.
_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
# Single-valued text VRs: a backslash is an ordinary character, not a delimiter.
_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
_NUMERIC_VRS = {"FL": "f", "FD": "d", "SL": "i", "SS": "h", "SV": "q", "UL": "I", "US": "H",
                "UV": "Q"}
_BULK_VRS = {"OB": 1, "UN": 1, "OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_BULK_DTYPES = {"OW": "u2", "OF": "f4", "OL": "u4", "OD": "f8", "OV": "u8"}

_CHARSETS = {
    "": "latin_1", "ISO_IR 6": "latin_1", "ISO_IR 100": "latin_1", "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3", "ISO_IR 110": "iso8859_4", "ISO_IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6", "ISO_IR 126": "iso8859_7", "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9", "ISO_IR 203": "iso8859_15", "ISO_IR 13": "shift_jis",
    "ISO_IR 166": "tis_620", "ISO_IR 192": "utf_8", "GB18030": "gb18030", "GBK": "gbk",
}

_ITEM = 0xFFFEE000
_ITEM_DELIM = 0xFFFEE00D
_SEQ_DELIM = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_EOT = 0x7FE00001
_EOT_LENGTHS = 0x7FE00002

Element = tuple  # (tag: int, vr: str, value: Any)


# --------------------------------------------------------------------------------------------
# Value formatting
# --------------------------------------------------------------------------------------------

def format_ds(value: Any) -> str:
    """Format a number as a valid Decimal String (at most 16 characters, no NaN/inf)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        s = str(int(value))
        if len(s) <= 16:
            return s
        value = float(value)
    v = float(value)
    if not math.isfinite(v):
        raise ValueError("DS values must be finite")
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    s = repr(v)
    if len(s) <= 16:
        return s
    for precision in range(15, 0, -1):
        s = "%.*g" % (precision, v)
        if not math.isfinite(float(s)):
            # rounding overflowed (values next to the float maximum): truncate instead
            with decimal.localcontext() as ctx:
                ctx.prec, ctx.rounding = precision, decimal.ROUND_DOWN
                s = "%.*g" % (precision, float(+decimal.Decimal(v)))
                if not math.isfinite(float(s)):
                    s = ("{:.%dE}" % (precision - 1)).format(+decimal.Decimal(v))
                    s = s.replace("E+", "e+").replace("E-", "e-")
        if len(s) <= 16 and math.isfinite(float(s)):
            return s
    raise ValueError("cannot format value as a 16-character DS")  # pragma: no cover


def format_is(value: Any) -> str:
    """Format an integer (or integral float) as a valid Integer String."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value != int(value):
        raise ValueError("IS values must be integral")
    i = int(value)
    if not -(2 ** 31) <= i < 2 ** 31:
        raise ValueError("IS value out of range")
    return str(i)


def _is_multi(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _string_bytes(vr: str, value: Any, encoding: str) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        items = list(value) if _is_multi(value) else [value]
        parts = []
        for item in items:
            if item is None:
                parts.append("")
            elif vr == "DS":
                parts.append(format_ds(item))
            elif vr == "IS":
                parts.append(format_is(item))
            elif vr == "DA" and hasattr(item, "strftime") and not isinstance(item, str):
                parts.append(item.strftime("%Y%m%d"))
            elif vr == "TM" and hasattr(item, "strftime") and not isinstance(item, str):
                parts.append(item.strftime("%H%M%S.%f"))
            elif vr == "DT" and hasattr(item, "strftime") and not isinstance(item, str):
                parts.append(item.strftime("%Y%m%d%H%M%S.%f"))
            else:
                parts.append(str(item))
        text = "\\".join(parts)
        raw = text.encode(encoding if vr in _CHARSET_VRS else "ascii")
    if len(raw) % 2:
        raw += b"\0" if vr == "UI" else b" "
    return raw


def _numeric_bytes(vr: str, value: Any, little_endian: bool) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    code = _NUMERIC_VRS[vr]
    if isinstance(value, np.ndarray):
        dtype = np.dtype(code).newbyteorder("<" if little_endian else ">")
        if value.dtype.kind == "f" and code not in "fd" and not np.all(value == np.round(value)):
            raise ValueError(f"{vr} values must be integral")
        return np.ascontiguousarray(value.reshape(-1).astype(dtype, casting="unsafe")).tobytes()
    values = list(value) if _is_multi(value) else [value]
    if code in "fd":
        values = [float(v) for v in values]
    else:
        ints = []
        for v in values:
            if isinstance(v, float) and v != int(v):
                raise ValueError(f"{vr} values must be integral")
            ints.append(int(v))
        values = ints
    try:
        return struct.pack(("<" if little_endian else ">") + code * len(values), *values)
    except struct.error as exc:
        raise ValueError(f"{vr} value out of range: {exc}") from None


def _at_bytes(value: Any, little_endian: bool) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    tags = list(value) if _is_multi(value) else [value]
    fmt = ("<" if little_endian else ">") + "HH" * len(tags)
    flat = []
    for t in tags:
        t = int(t)
        flat += [(t >> 16) & 0xFFFF, t & 0xFFFF]
    return struct.pack(fmt, *flat)


def _bulk_bytes(vr: str, value: Any, little_endian: bool) -> bytes:
    if value is None:
        return b""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        word = _BULK_VRS[vr]
        if not little_endian and arr.dtype.itemsize > 1 and arr.dtype.kind in "iufc":
            raw = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
        elif not little_endian and word > 1 and arr.dtype.itemsize == 1:
            raw = arr.tobytes()
            if len(raw) % word:
                raw += b"\0" * (word - len(raw) % word)
            raw = np.frombuffer(raw, dtype="<" + _BULK_DTYPES[vr]).astype(
                ">" + _BULK_DTYPES[vr]).tobytes()
        else:
            raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes() if arr.dtype.itemsize > 1 \
                else arr.tobytes()
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    elif vr in _BULK_DTYPES:
        # A plain list of numbers: pack per the VR's element type.
        dt = np.dtype(_BULK_DTYPES[vr]).newbyteorder("<" if little_endian else ">")
        raw = np.asarray(value).astype(dt).tobytes()
    else:
        raw = bytes(value)
    if len(raw) % 2:
        raw += b"\0"
    return raw


# --------------------------------------------------------------------------------------------
# Element / data set encoding
# --------------------------------------------------------------------------------------------

def _tag_bytes(tag: int, little_endian: bool) -> bytes:
    return struct.pack("<HH" if little_endian else ">HH", (tag >> 16) & 0xFFFF, tag & 0xFFFF)


def _header(tag: int, vr: str, length: int, explicit: bool, little_endian: bool) -> bytes:
    e = "<" if little_endian else ">"
    t = _tag_bytes(tag, little_endian)
    if not explicit:
        return t + struct.pack(e + "I", length)
    if vr in LONG_LENGTH_VRS:
        return t + vr.encode("ascii") + b"\0\0" + struct.pack(e + "I", length)
    if length > 0xFFFF:
        raise ValueError(f"value of ({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} is too long "
                         f"({length} bytes) for a 16-bit length field")
    return t + vr.encode("ascii") + struct.pack(e + "H", length)


def _item_header(tag: int, length: int, little_endian: bool) -> bytes:
    return _tag_bytes(tag, little_endian) + struct.pack("<I" if little_endian else ">I", length)


def _encode_items(items: Iterable[Any], explicit: bool, little_endian: bool,
                  undefined_length: bool, encoding: str) -> bytes:
    out = []
    for item in items:
        if isinstance(item, (bytes, bytearray, memoryview)):
            body = bytes(item)  # pre-encoded item content
        else:
            body = encode_dataset(list(item), explicit=explicit, little_endian=little_endian,
                                  encoding=encoding, undefined_length=undefined_length)
        if undefined_length:
            out.append(_item_header(_ITEM, _UNDEFINED, little_endian) + body
                       + _item_header(_ITEM_DELIM, 0, little_endian))
        else:
            out.append(_item_header(_ITEM, len(body), little_endian) + body)
    return b"".join(out)


def encode_element(tag: int, vr: str, value: Any, *, explicit: bool = True,
                   little_endian: bool = True, undefined_length: bool = False,
                   encoding: str = "latin_1") -> bytes:
    """Encode one data element (header + value) and return its bytes.

    ``value`` types by VR:

    * string VRs: ``str`` / list of ``str`` (joined with ``\\``), ``bytes`` (used as is);
      DS/IS also accept numbers, DA/TM/DT accept ``date``/``time``/``datetime``.  Padded to
      even length with a space (NUL for UI).  Text is encoded with ``encoding`` for the
      character-set dependent VRs (LO LT PN SH ST UC UT), ASCII otherwise.
    * FL FD SL SS SV UL US UV: a number, a sequence of numbers or an array (packed with the
      requested endianness); ``bytes`` are used as is.
    * AT: an ``int`` tag ``0xGGGGEEEE`` or a list of them.
    * OB OD OF OL OV OW UN: ``bytes`` (as given, padded with NUL to even length) or a numpy
      array (byte-swapped per element when big endian).  With ``undefined_length=True`` a
      list of ``bytes`` is written as encapsulated items (use :func:`encapsulate` to build
      the list, the first item being the Basic Offset Table) followed by a sequence delimiter.
    * SQ: a list of items, each a list of ``(tag, vr, value)`` tuples (or pre-encoded
      ``bytes``); ``undefined_length=True`` writes undefined-length sequence *and* items
      with delimitation items.

    ``None`` gives an empty (zero-length) value.
    """
    vr = vr.upper()
    if vr not in VRS:
        raise ValueError(f"unknown VR {vr!r}")
    tag = int(tag)
    if vr == "SQ":
        body = _encode_items(value or [], explicit, little_endian, undefined_length, encoding)
        if undefined_length:
            return (_header(tag, vr, _UNDEFINED, explicit, little_endian) + body
                    + _item_header(_SEQ_DELIM, 0, little_endian))
        return _header(tag, vr, len(body), explicit, little_endian) + body
    if undefined_length:
        if vr not in ("OB", "OW", "UN"):
            raise ValueError(f"undefined length is not allowed for VR {vr}")
        if not isinstance(value, (list, tuple)):
            raise TypeError("undefined-length OB/OW/UN values must be a list of item bytes")
        items = []
        for frag in value:
            frag = bytes(frag)
            if len(frag) % 2:
                frag += b"\0"
            items.append(_item_header(_ITEM, len(frag), little_endian) + frag)
        return (_header(tag, vr, _UNDEFINED, explicit, little_endian) + b"".join(items)
                + _item_header(_SEQ_DELIM, 0, little_endian))
    if vr in _STRING_VRS:
        raw = _string_bytes(vr, value, encoding)
    elif vr in _NUMERIC_VRS:
        raw = _numeric_bytes(vr, value, little_endian)
    elif vr == "AT":
        raw = _at_bytes(value, little_endian)
    else:
        raw = _bulk_bytes(vr, value, little_endian)
    return _header(tag, vr, len(raw), explicit, little_endian) + raw


def _charset_encoding(elements: Sequence[Element], default: str) -> str:
    for el in elements:
        if int(el[0]) == 0x00080005:
            value = el[2]
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode("ascii", "replace")
            terms = list(value) if _is_multi(value) else str(value or "").split("\\")
            terms = [str(t).strip() for t in terms if str(t).strip()]
            if len(terms) == 1 and terms[0] in _CHARSETS:
                return _CHARSETS[terms[0]]
            return default
    return default


def encode_dataset(elements: Iterable[Element], *, explicit: bool = True,
                   little_endian: bool = True, encoding: str | None = None,
                   undefined_length: bool = False) -> bytes:
    """Encode ``(tag, vr, value)`` tuples (sorted by tag) and return the data set bytes.

    An element may also be a 4-tuple ``(tag, vr, value, options)`` where ``options`` is a
    dict of extra keyword arguments for :func:`encode_element` (e.g. ``undefined_length``).
    ``undefined_length=True`` makes every SQ in the data set undefined-length.  The text
    encoding follows (0008,0005) if present (single-byte charsets and UTF-8), else
    ``encoding`` (default Latin-1).
    """
    elements = list(elements)
    enc = _charset_encoding(elements, encoding or "latin_1")
    out = []
    for el in sorted(elements, key=lambda e: int(e[0])):
        tag, vr, value = el[0], el[1], el[2]
        opts = dict(el[3]) if len(el) > 3 and el[3] else {}
        if "undefined_length" not in opts and vr.upper() == "SQ":
            opts["undefined_length"] = undefined_length
        opts.setdefault("encoding", enc)
        out.append(encode_element(tag, vr, value, explicit=explicit,
                                  little_endian=little_endian, **opts))
    return b"".join(out)


# --------------------------------------------------------------------------------------------
# Encapsulation and files
# --------------------------------------------------------------------------------------------

def is_encapsulated(transfer_syntax: str) -> bool:
    """True for transfer syntaxes whose pixel data is encapsulated (everything non-native)."""
    return transfer_syntax not in NATIVE_TRANSFER_SYNTAXES


def _split(frame: bytes, n: int) -> list[bytes]:
    n = max(1, min(int(n), max(1, len(frame) // 2)))
    size = -(-len(frame) // n)
    size += size % 2  # keep every fragment but the last even so no padding lands mid-frame
    return [frame[i:i + size] for i in range(0, len(frame), size)] or [b""]


def encapsulate(frames: Sequence[bytes], *, offset_table: str = "empty",
                fragments_per_frame: int = 1) -> tuple[list[bytes], bytes | None, bytes | None]:
    """Split encoded frames into encapsulated items.

    Returns ``(items, eot_offsets, eot_lengths)`` where ``items[0]`` is the Basic Offset Table
    item value (empty unless ``offset_table == "bot"``) followed by the fragments (each padded
    to even length), suitable for ``encode_element(0x7FE00010, "OB", items,
    undefined_length=True)``.  With ``offset_table == "eot"`` the two Extended Offset Table
    values (``<u8`` bytes, for (7FE0,0001) and (7FE0,0002) OV) are returned as well; the
    offsets are measured from the first byte of the first fragment's item tag, the lengths are
    the (even) fragment value lengths.  ``offset_table`` is one of ``"empty"``, ``"bot"``,
    ``"eot"``.
    """
    if offset_table not in ("empty", "bot", "eot"):
        raise ValueError("offset_table must be 'empty', 'bot' or 'eot'")
    if offset_table == "eot" and fragments_per_frame != 1:
        raise ValueError("the Extended Offset Table requires one fragment per frame")
    fragments: list[bytes] = []
    offsets: list[int] = []
    lengths: list[int] = []
    pos = 0
    for frame in frames:
        frame = bytes(frame)
        offsets.append(pos)
        frame_len = 0
        for frag in _split(frame, fragments_per_frame):
            if len(frag) % 2:
                frag += b"\0"
            fragments.append(frag)
            pos += 8 + len(frag)
            frame_len += len(frag)
        lengths.append(frame_len)
    bot = b""
    eot = eot_len = None
    if offset_table == "bot":
        if pos > 0xFFFFFFFF:
            raise ValueError("encapsulated data too large for a Basic Offset Table; use 'eot'")
        bot = struct.pack(f"<{len(offsets)}I", *offsets)
    elif offset_table == "eot":
        eot = struct.pack(f"<{len(offsets)}Q", *offsets)
        eot_len = struct.pack(f"<{len(lengths)}Q", *lengths)
    return [bot] + fragments, eot, eot_len


def encode_file_meta(*, transfer_syntax: str, sop_class_uid: str, sop_instance_uid: str,
                     implementation_uid: str = IMPLEMENTATION_CLASS_UID,
                     implementation_version: str | None = IMPLEMENTATION_VERSION_NAME,
                     extra: Iterable[Element] = ()) -> bytes:
    """Return the File Meta Information group (0002) in explicit VR little endian, including
    a correct (0002,0000) group length.  ``extra`` elements (group 0002) override defaults."""
    meta: dict[int, Element] = {
        0x00020001: (0x00020001, "OB", b"\x00\x01"),
        0x00020002: (0x00020002, "UI", sop_class_uid),
        0x00020003: (0x00020003, "UI", sop_instance_uid),
        0x00020010: (0x00020010, "UI", transfer_syntax),
        0x00020012: (0x00020012, "UI", implementation_uid),
    }
    if implementation_version is not None:
        meta[0x00020013] = (0x00020013, "SH", implementation_version)
    for el in extra:
        meta[int(el[0])] = el
    meta.pop(0x00020000, None)
    body = encode_dataset(list(meta.values()), explicit=True, little_endian=True)
    return encode_element(0x00020000, "UL", len(body)) + body


def _open_out(path_or_fileobj: Any) -> tuple[BinaryIO, bool]:
    if hasattr(path_or_fileobj, "write"):
        return path_or_fileobj, False
    return open(os.fspath(path_or_fileobj), "wb"), True


def _find(elements: Sequence[Element], tag: int) -> Any:
    for el in elements:
        if int(el[0]) == tag:
            return el[2]
    return None


def write_file(path_or_fileobj: Any, elements: Iterable[Element], *,
               transfer_syntax: str = EXPLICIT_LE,
               preamble: bytes | None = b"\0" * 128,
               write_meta: bool = True,
               sop_class_uid: str | None = None,
               sop_instance_uid: str | None = None,
               implementation_uid: str = IMPLEMENTATION_CLASS_UID,
               implementation_version: str | None = IMPLEMENTATION_VERSION_NAME,
               offset_table: str = "empty",
               fragments_per_frame: int = 1,
               undefined_length_sequences: bool = False) -> int:
    """Write a DICOM Part 10 file; return the number of bytes written.

    ``preamble`` (128 bytes) is followed by ``b"DICM"``; ``None`` writes neither.  The file
    meta group is always explicit VR little endian; ``elements`` of group 0002 are moved into
    it (overriding the defaults).  MediaStorageSOPClass/InstanceUID come from (0008,0016) /
    (0008,0018) unless given.  The body is encoded per ``transfer_syntax``: implicit LE,
    explicit LE, explicit BE, deflated (raw deflate of explicit LE, padded to even length) or,
    for any other UID, explicit LE with encapsulated pixel data: give (7FE0,0010) as a list of
    encoded frame byte strings and it is written as undefined-length OB with a Basic Offset
    Table item (``offset_table`` ``"empty"``/``"bot"``, or ``"eot"`` for an empty BOT plus
    Extended Offset Table (7FE0,0001)/(7FE0,0002) OV), ``fragments_per_frame`` fragments per
    frame and a sequence delimiter.  For native syntaxes a list of frames is concatenated.
    """
    elements = list(elements)
    meta_extra = [el for el in elements if (int(el[0]) >> 16) == 0x0002]
    body_elements = [el for el in elements if (int(el[0]) >> 16) != 0x0002]

    explicit = transfer_syntax != IMPLICIT_LE
    little_endian = transfer_syntax != EXPLICIT_BE
    out_elements = []
    for el in body_elements:
        if int(el[0]) == _PIXEL_DATA and isinstance(el[2], (list, tuple)):
            frames = el[2]
            if is_encapsulated(transfer_syntax):
                items, eot, eot_len = encapsulate(frames, offset_table=offset_table,
                                                  fragments_per_frame=fragments_per_frame)
                out_elements.append((_PIXEL_DATA, "OB", items, {"undefined_length": True}))
                if eot is not None:
                    out_elements.append((_EOT, "OV", eot))
                    out_elements.append((_EOT_LENGTHS, "OV", eot_len))
            else:
                out_elements.append((el[0], el[1], b"".join(bytes(f) for f in frames)) + el[3:])
        else:
            out_elements.append(el)

    body = encode_dataset(out_elements, explicit=explicit, little_endian=little_endian,
                          undefined_length=undefined_length_sequences)
    if transfer_syntax == DEFLATED_LE:
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = comp.compress(body) + comp.flush()
        if len(body) % 2:
            body += b"\0"

    parts = []
    if preamble is not None:
        if len(preamble) != 128:
            raise ValueError("the preamble must be exactly 128 bytes")
        parts += [bytes(preamble), b"DICM"]
    if write_meta:
        sop_class = sop_class_uid or _find(body_elements, 0x00080016) or _SC_IMAGE_STORAGE
        sop_inst = sop_instance_uid or _find(body_elements, 0x00080018) \
            or uid_from(zlib.crc32(body))
        parts.append(encode_file_meta(transfer_syntax=transfer_syntax,
                                      sop_class_uid=str(sop_class), sop_instance_uid=str(sop_inst),
                                      implementation_uid=implementation_uid,
                                      implementation_version=implementation_version,
                                      extra=meta_extra))
    parts.append(body)
    data = b"".join(parts)
    fh, close = _open_out(path_or_fileobj)
    try:
        fh.write(data)
    finally:
        if close:
            fh.close()
    return len(data)


# --------------------------------------------------------------------------------------------
# Frame encoders
# --------------------------------------------------------------------------------------------

FrameEncoder = Callable[[np.ndarray], bytes]


def _unsigned_view(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    """Two's complement bit pattern of a signed frame, masked to ``bits_stored`` bits."""
    if arr.dtype.kind == "i":
        u = arr.view(arr.dtype.str.replace("i", "u"))
        if bits_stored < arr.dtype.itemsize * 8:
            u = u & np.array((1 << bits_stored) - 1, dtype=u.dtype)
        return np.ascontiguousarray(u)
    return np.ascontiguousarray(arr)


def builtin_frame_encoder(transfer_syntax: str, bits_stored: int | None = None
                          ) -> FrameEncoder | None:
    """Return a frame encoder for ``transfer_syntax`` or None if none is available.

    RLE uses ``fastdicom.pixels.rle.rle_encode_frame`` if it is built; the JPEG family
    (baseline 8-bit, lossless SV1, JPEG-LS lossless, JPEG 2000 lossless) uses imagecodecs.
    Encapsulated uncompressed (1.2.840.10008.1.2.1.98) writes the raw little-endian frame.
    """
    if transfer_syntax == ENCAPSULATED_UNCOMPRESSED:
        return lambda a: np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    if transfer_syntax == RLE_LOSSLESS:
        try:
            from fastdicom.pixels.rle import rle_encode_frame  # type: ignore
        except Exception:
            return None
        return rle_encode_frame
    try:
        import imagecodecs  # type: ignore
    except ImportError:
        return None

    def bits(a: np.ndarray) -> int:
        return int(bits_stored or a.dtype.itemsize * 8)

    if transfer_syntax == JPEG_BASELINE:
        def enc(a: np.ndarray) -> bytes:
            if a.dtype != np.uint8:
                raise ValueError("JPEG baseline needs 8-bit unsigned frames")
            return bytes(imagecodecs.jpeg8_encode(a, level=95, subsampling="444"))
        return enc
    if transfer_syntax == JPEG_LOSSLESS_SV1:
        return lambda a: bytes(imagecodecs.jpeg8_encode(
            _unsigned_view(a, bits(a)), lossless=True, predictor=1, bitspersample=bits(a)))
    if transfer_syntax == JPEG_LS_LOSSLESS:
        return lambda a: bytes(imagecodecs.jpegls_encode(_unsigned_view(a, bits(a)), level=0))
    if transfer_syntax == JPEG_2000_LOSSLESS:
        return lambda a: bytes(imagecodecs.jpeg2k_encode(
            np.ascontiguousarray(a), level=0, codecformat="J2K", reversible=True,
            bitspersample=bits(a), mct=False))
    return None


def _resolve_encoder(transfer_syntax: str, frame_encoder: FrameEncoder | None,
                     bits_stored: int | None) -> FrameEncoder:
    if frame_encoder is not None:
        return frame_encoder
    enc = builtin_frame_encoder(transfer_syntax, bits_stored)
    if enc is None:
        raise ValueError(f"no frame encoder available for transfer syntax {transfer_syntax}; "
                         "pass frame_encoder=")
    return enc


# --------------------------------------------------------------------------------------------
# Phantom and CT series
# --------------------------------------------------------------------------------------------

def phantom_slice(rows: int, columns: int, z_fraction: float, dtype: Any = np.int16
                  ) -> np.ndarray:
    """A cheap deterministic CT-like axial slice in Hounsfield units.

    Air background (-1000), a body ellipse of soft tissue (40) with a fat ring (-100), two
    lungs (-850) that shrink towards the ends of the volume, a spine (bone, 700) with a
    marrow core (300), an aorta (contrast, 200) and a faint deterministic texture.
    ``z_fraction`` in [0, 1] is the position along the scanned range.
    """
    z = float(np.clip(z_fraction, 0.0, 1.0))
    y = (np.arange(rows, dtype=np.float32) + 0.5) * np.float32(2.0 / rows) - np.float32(1.0)
    x = (np.arange(columns, dtype=np.float32) + 0.5) * np.float32(2.0 / columns) - np.float32(1.0)
    out = np.full((rows, columns), -1000, dtype=np.int16)

    def paint(cx: float, cy: float, ax: float, ay: float, hu: int) -> None:
        if ax <= 0 or ay <= 0:
            return
        dx = (x - np.float32(cx)) * np.float32(1.0 / ax)
        dy = (y - np.float32(cy)) * np.float32(1.0 / ay)
        # restrict to the bounding box for speed
        r0, r1 = np.searchsorted(y, cy - ay), np.searchsorted(y, cy + ay)
        c0, c1 = np.searchsorted(x, cx - ax), np.searchsorted(x, cx + ax)
        if r1 <= r0 or c1 <= c0:
            return
        mask = (dy[r0:r1, None] ** 2 + dx[None, c0:c1] ** 2) <= np.float32(1.0)
        out[r0:r1, c0:c1][mask] = hu

    body = 0.82 + 0.08 * math.sin(math.pi * z)
    paint(0.0, 0.05, body, body * 0.72, -100)                 # fat ring
    paint(0.0, 0.05, body * 0.93, body * 0.66, 40)            # soft tissue
    lung = max(0.0, math.sin(math.pi * z)) ** 0.5
    paint(-0.36, -0.02, 0.26 * lung, 0.40 * lung, -850)       # right lung
    paint(0.36, -0.02, 0.24 * lung, 0.38 * lung, -850)        # left lung
    paint(0.0, 0.40, 0.11, 0.10, 700)                         # vertebral body
    paint(0.0, 0.40, 0.06, 0.055, 300)                        # marrow
    paint(0.0, 0.56, 0.035, 0.06, 700)                        # spinous process
    paint(0.07 + 0.03 * z, 0.18, 0.055, 0.055, 200)           # aorta
    paint(0.25, 0.25 - 0.2 * z, 0.08, 0.06, 60)               # an organ wandering in z
    # faint texture: cheap separable pattern (no RNG so it is bit-exact everywhere)
    tex = (np.sin(y * np.float32(37.0 + 5 * z))[:, None] * np.float32(6.0)
           + np.cos(x * np.float32(29.0))[None, :] * np.float32(6.0))
    tissue = out > -500
    out[tissue] += tex.astype(np.int16)[tissue]
    return out.astype(dtype, copy=False)


def _normal(orientation: Sequence[float]) -> np.ndarray:
    r = np.asarray(orientation[:3], dtype=float)
    c = np.asarray(orientation[3:6], dtype=float)
    return np.cross(r, c)


def _fmt_seed(seed: Any) -> str:
    return str(seed)


def ct_instance_elements(*, rows: int = 512, columns: int = 512, index: int = 0,
                         n_slices: int = 1, study_seed: Any = "study-0",
                         series_seed: Any = "series-0",
                         position: Sequence[float] | None = None,
                         orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
                         spacing: Sequence[float] = (0.7, 0.7),
                         slice_thickness: float = 1.25,
                         slice_spacing: float | None = None,
                         first_position: Sequence[float] | None = None,
                         pixel_array: np.ndarray | None = None,
                         bits_stored: int = 16,
                         instance_number: int | None = None,
                         patient_name: str = "Müller^Jürgen^^Dr.^",
                         patient_id: str | None = None,
                         series_number: int = 1,
                         private: bool = True,
                         sequences: bool = True) -> list[Element]:
    """Return the ``(tag, vr, value)`` elements of a realistic CT Image Storage instance.

    ``position`` defaults to ``first_position + index * slice_spacing * normal`` (first
    position defaults to centring the field of view at z = -(n_slices-1)*spacing/2).  Pixel
    data is the :func:`phantom_slice` (stored = HU + 1024, i.e. RescaleIntercept -1024) as an
    int16 array written as OW, or ``pixel_array`` as given (PixelRepresentation / Bits
    Allocated follow its dtype).  Includes SpecificCharacterSet ISO_IR 100, a Latin-1 PN, a
    private block (0009,0010) "FASTDICOM TEST" with (0009,1001) LO, (0009,1002) US,
    (0009,1003) SL, (0009,1004) FD, and ProcedureCodeSequence / ReferencedImageSequence.
    """
    orientation = tuple(float(v) for v in orientation)
    spacing = tuple(float(v) for v in spacing)
    step = float(slice_thickness if slice_spacing is None else slice_spacing)
    normal = _normal(orientation)
    if position is None:
        if first_position is None:
            half_r = rows * spacing[0] / 2.0
            half_c = columns * spacing[1] / 2.0
            r = np.asarray(orientation[:3])
            c = np.asarray(orientation[3:])
            first = -half_c * r - half_r * c - normal * step * (n_slices - 1) / 2.0
        else:
            first = np.asarray(first_position, dtype=float)
        pos = first + normal * step * index
    else:
        pos = np.asarray(position, dtype=float)
    pos = [round(float(v), 4) + 0.0 for v in pos]
    slice_location = round(float(np.dot(pos, normal)), 4) + 0.0

    study_uid = uid_from(("study", _fmt_seed(study_seed)))
    series_uid = uid_from(("series", _fmt_seed(study_seed), _fmt_seed(series_seed)))
    frame_uid = uid_from(("for", _fmt_seed(study_seed), _fmt_seed(series_seed)))
    sop_uid = uid_from(("sop", _fmt_seed(study_seed), _fmt_seed(series_seed), index))
    h = uuid.uuid5(_UID_NAMESPACE, str(study_seed)).int
    patient_id = patient_id or "FD%08d" % (h % 10 ** 8)
    study_date = "20%02d%02d%02d" % (10 + h % 15, 1 + (h >> 8) % 12, 1 + (h >> 16) % 28)
    study_time = "%02d%02d%02d.%06d" % ((h >> 24) % 24, (h >> 32) % 60, (h >> 40) % 60,
                                          (h >> 48) % 1000000)
    birth_date = "19%02d%02d%02d" % (30 + (h >> 56) % 60, 1 + (h >> 64) % 12, 1 + (h >> 72) % 28)
    sex = "MF"[(h >> 80) % 2]
    accession = "A%07d" % ((h >> 88) % 10 ** 7)

    if pixel_array is None:
        hu = phantom_slice(rows, columns, index / max(1, n_slices - 1))
        lo, hi = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
        pixels = np.clip(hu.astype(np.int32) + 1024, lo, hi).astype(np.int16)
        pixel_rep, bits_alloc = 1, 16
    else:
        pixels = np.ascontiguousarray(pixel_array)
        if pixels.shape[:2] != (rows, columns):
            rows, columns = int(pixels.shape[0]), int(pixels.shape[1])
        pixel_rep = 1 if pixels.dtype.kind == "i" else 0
        bits_alloc = pixels.dtype.itemsize * 8
        bits_stored = min(bits_stored, bits_alloc)

    els: list[Element] = [
        (0x00080005, "CS", "ISO_IR 100"),
        (0x00080008, "CS", ["ORIGINAL", "PRIMARY", "AXIAL"]),
        (0x00080016, "UI", CT_IMAGE_STORAGE),
        (0x00080018, "UI", sop_uid),
        (0x00080020, "DA", study_date),
        (0x00080021, "DA", study_date),
        (0x00080030, "TM", study_time),
        (0x00080031, "TM", study_time),
        (0x00080050, "SH", accession),
        (0x00080060, "CS", "CT"),
        (0x00080070, "LO", "FASTDICOM"),
        (0x00080090, "PN", "Referring^Ärztin"),
        (0x00081030, "LO", "CT THORAX/ABDOMEN"),
        (0x0008103E, "LO", "Axial %.2fmm synthetic" % slice_thickness),
        (0x00100010, "PN", patient_name),
        (0x00100020, "LO", patient_id),
        (0x00100030, "DA", birth_date),
        (0x00100040, "CS", sex),
        (0x00180050, "DS", slice_thickness),
        (0x00180060, "DS", 120),
        (0x00200010, "SH", "S%d" % (h % 100000)),
        (0x0020000D, "UI", study_uid),
        (0x0020000E, "UI", series_uid),
        (0x00200011, "IS", series_number),
        (0x00200013, "IS", index + 1 if instance_number is None else instance_number),
        (0x00200032, "DS", pos),
        (0x00200037, "DS", list(orientation)),
        (0x00200052, "UI", frame_uid),
        (0x00201041, "DS", slice_location),
        (0x00280002, "US", 1),
        (0x00280004, "CS", "MONOCHROME2"),
        (0x00280010, "US", rows),
        (0x00280011, "US", columns),
        (0x00280030, "DS", list(spacing)),
        (0x00280100, "US", bits_alloc),
        (0x00280101, "US", bits_stored),
        (0x00280102, "US", bits_stored - 1),
        (0x00280103, "US", pixel_rep),
        (0x00281050, "DS", [40, 400]),
        (0x00281051, "DS", [400, 1500]),
        (0x00281052, "DS", -1024),
        (0x00281053, "DS", 1),
        (0x00281054, "LO", "HU"),
        (_PIXEL_DATA, "OW" if bits_alloc > 8 else "OB", pixels),
    ]
    if private:
        els += [
            (0x00090010, "LO", "FASTDICOM TEST"),
            (0x00091001, "LO", "slice %d of %d" % (index + 1, n_slices)),
            (0x00091002, "US", index),
            (0x00091003, "SL", [-index, n_slices]),
            (0x00091004, "FD", float(slice_location)),
        ]
    if sequences:
        els.append((0x00081032, "SQ", [[
            (0x00080100, "SH", "ZIH123"),
            (0x00080102, "SH", "FDTEST"),
            (0x00080104, "LO", "CT Thorax/Abdomen mit KM"),
        ]]))
        if index > 0:
            els.append((0x00081140, "SQ", [[
                (0x00081150, "UI", CT_IMAGE_STORAGE),
                (0x00081155, "UI",
                 uid_from(("sop", _fmt_seed(study_seed), _fmt_seed(series_seed), index - 1))),
            ]]))
    return els


def _encode_pixels_for(transfer_syntax: str, elements: list[Element],
                       frame_encoder: FrameEncoder | None, bits_stored: int) -> list[Element]:
    if not is_encapsulated(transfer_syntax):
        return elements
    enc = _resolve_encoder(transfer_syntax, frame_encoder, bits_stored)
    out = []
    for el in elements:
        if int(el[0]) == _PIXEL_DATA and isinstance(el[2], np.ndarray):
            out.append((_PIXEL_DATA, "OB", [enc(el[2])]))
        else:
            out.append(el)
    return out


def write_ct_series(directory: Any, n_slices: int = 64, rows: int = 512, columns: int = 512, *,
                    transfer_syntax: str = EXPLICIT_LE, shuffle_names: bool = True,
                    seed: int = 0, spacing: Sequence[float] = (0.7, 0.7),
                    slice_thickness: float = 1.25, slice_spacing: float | None = None,
                    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
                    first_position: Sequence[float] | None = None,
                    instance_number_order: str = "ascending", bits_stored: int = 16,
                    file_prefix: str = "IM", frame_encoder: FrameEncoder | None = None,
                    offset_table: str = "empty") -> list[Path]:
    """Write a CT series, one file per slice, and return the paths **in slice order**.

    Slice ``i`` is at ``first_position + i * slice_spacing * normal`` (``slice_spacing``
    defaults to ``slice_thickness``); the default first position centres the volume on the
    origin.  Files are named ``{file_prefix}{k:05d}.dcm``; with ``shuffle_names`` the number
    ``k`` is a seeded permutation of the slice index.  ``instance_number_order`` is
    ``"ascending"`` (1..n along the normal), ``"descending"`` or ``"random"``.
    Encapsulated transfer syntaxes use ``frame_encoder`` or :func:`builtin_frame_encoder`.
    """
    if instance_number_order not in ("ascending", "descending", "random"):
        raise ValueError("instance_number_order must be ascending, descending or random")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = rng.permutation(n_slices) if shuffle_names else np.arange(n_slices)
    if instance_number_order == "ascending":
        inst = np.arange(1, n_slices + 1)
    elif instance_number_order == "descending":
        inst = np.arange(n_slices, 0, -1)
    else:
        inst = rng.permutation(n_slices) + 1
    width = max(5, len(str(n_slices)))
    paths = []
    for i in range(n_slices):
        els = ct_instance_elements(
            rows=rows, columns=columns, index=i, n_slices=n_slices,
            study_seed="study-%s" % seed, series_seed="series-%s" % seed,
            orientation=orientation, spacing=spacing, slice_thickness=slice_thickness,
            slice_spacing=slice_spacing, first_position=first_position,
            bits_stored=bits_stored, instance_number=int(inst[i]),
            patient_id="FDPAT%06d" % (int(seed) % 10 ** 6) if isinstance(seed, int) else None)
        els = _encode_pixels_for(transfer_syntax, els, frame_encoder, bits_stored)
        path = directory / ("%s%0*d.dcm" % (file_prefix, width, int(names[i])))
        write_file(path, els, transfer_syntax=transfer_syntax, offset_table=offset_table)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Multi-frame
# --------------------------------------------------------------------------------------------

def multiframe_frame(i: int, n_frames: int, rows: int, columns: int, *, dtype: Any = np.uint16,
                     samples_per_pixel: int = 1, fill: str = "phantom", seed: int = 0,
                     bits_stored: int | None = None) -> np.ndarray:
    """Frame ``i`` exactly as :func:`write_multiframe` writes it (shape ``(rows, columns)`` or
    ``(rows, columns, samples_per_pixel)``), values within ``bits_stored`` bits."""
    dtype = np.dtype(dtype)
    bits = int(bits_stored or dtype.itemsize * 8)
    if dtype.kind == "i":
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    if fill == "phantom":
        hu = phantom_slice(rows, columns, i / max(1, n_frames - 1)).astype(np.int32)
        if dtype.itemsize == 1:
            base = (hu + 1000) * 255 // 2000
        elif dtype.kind == "i":
            base = hu
        else:
            base = hu + 1024
        base = np.clip(base, lo, hi)
        if samples_per_pixel == 1:
            frame = base
        else:
            chans = [base, np.clip(base[::-1, :], lo, hi), np.clip(base[:, ::-1], lo, hi)]
            frame = np.stack((chans * samples_per_pixel)[:samples_per_pixel], axis=-1)
    elif fill == "random":
        rng = np.random.default_rng([int(seed), int(i)])
        shape = (rows, columns) if samples_per_pixel == 1 else (rows, columns, samples_per_pixel)
        frame = rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)
    elif fill == "ramp":
        base = np.arange(rows * columns, dtype=np.int64).reshape(rows, columns) + i * 97 + seed
        if samples_per_pixel > 1:
            base = base[..., None] + np.arange(samples_per_pixel, dtype=np.int64) * 31
        frame = lo + (base % (hi - lo + 1))
    else:
        raise ValueError("fill must be 'phantom', 'random' or 'ramp'")
    return np.ascontiguousarray(frame.astype(dtype))


def _multiframe_header(n_frames: int, rows: int, columns: int, dtype: np.dtype,
                       samples_per_pixel: int, photometric: str, bits_stored: int, seed: Any,
                       functional_groups: bool, spacing: Sequence[float],
                       slice_thickness: float) -> list[Element]:
    if samples_per_pixel > 1:
        sop_class = _MF_SC_TRUE_COLOR
    else:
        sop_class = _MF_SC_BYTE if dtype.itemsize == 1 else _MF_SC_WORD
    h = uuid.uuid5(_UID_NAMESPACE, "mf-%s" % seed).int
    els: list[Element] = [
        (0x00080005, "CS", "ISO_IR 100"),
        (0x00080008, "CS", ["DERIVED", "SECONDARY"]),
        (0x00080016, "UI", sop_class),
        (0x00080018, "UI", uid_from(("mf-sop", seed))),
        (0x00080020, "DA", "20240101"),
        (0x00080030, "TM", "120000"),
        (0x00080050, "SH", "MF%06d" % (h % 10 ** 6)),
        (0x00080060, "CS", "OT"),
        (0x00080064, "CS", "WSD"),
        (0x00100010, "PN", "Multi^Frame"),
        (0x00100020, "LO", "FDMF%06d" % (h % 10 ** 6)),
        (0x0020000D, "UI", uid_from(("mf-study", seed))),
        (0x0020000E, "UI", uid_from(("mf-series", seed))),
        (0x00200011, "IS", 1),
        (0x00200013, "IS", 1),
        (0x00200052, "UI", uid_from(("mf-for", seed))),
        (0x00280002, "US", samples_per_pixel),
        (0x00280004, "CS", photometric),
        (0x00280008, "IS", n_frames),
        (0x00280010, "US", rows),
        (0x00280011, "US", columns),
        (0x00280100, "US", dtype.itemsize * 8),
        (0x00280101, "US", bits_stored),
        (0x00280102, "US", bits_stored - 1),
        (0x00280103, "US", 1 if dtype.kind == "i" else 0),
    ]
    if samples_per_pixel > 1:
        els.append((0x00280006, "US", 0))
    if functional_groups:
        step = float(slice_thickness)
        els.append((0x52009229, "SQ", [[
            (0x00289110, "SQ", [[
                (0x00280030, "DS", [float(spacing[0]), float(spacing[1])]),
                (0x00180050, "DS", step),
            ]]),
            (0x00209116, "SQ", [[
                (0x00200037, "DS", [1, 0, 0, 0, 1, 0]),
            ]]),
        ]]))
        x0 = -columns * float(spacing[1]) / 2.0
        y0 = -rows * float(spacing[0]) / 2.0
        per_frame = []
        for f in range(n_frames):
            per_frame.append([
                (0x00209113, "SQ", [[
                    (0x00200032, "DS", [x0, y0, round(f * step, 4)]),
                ]]),
            ])
        els.append((0x52009230, "SQ", per_frame))
    return els


class _Sink:
    """A write target that optionally raw-deflates everything written to it."""

    def __init__(self, fh: BinaryIO, deflate: bool) -> None:
        self.fh = fh
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15) if deflate else None
        self.n = 0

    def write(self, data: bytes) -> None:
        if self.comp is not None:
            data = self.comp.compress(data)
        self.fh.write(data)
        self.n += len(data)

    def close(self) -> None:
        if self.comp is not None:
            tail = self.comp.flush()
            self.fh.write(tail)
            self.n += len(tail)
            if self.n % 2:
                self.fh.write(b"\0")
                self.n += 1


def write_multiframe(path: Any, n_frames: int, rows: int, columns: int, *,
                     dtype: Any = np.uint16, transfer_syntax: str = EXPLICIT_LE,
                     samples_per_pixel: int = 1, photometric: str | None = None,
                     fill: str = "phantom", seed: int = 0, chunk_frames: int = 64,
                     bits_stored: int | None = None, functional_groups: bool = False,
                     frame_encoder: FrameEncoder | None = None, offset_table: str = "empty",
                     fragments_per_frame: int = 1, spacing: Sequence[float] = (0.7, 0.7),
                     slice_thickness: float = 1.0) -> Path:
    """Write a (possibly huge) multi-frame image in streaming fashion and return its path.

    Frames are generated ``chunk_frames`` at a time by :func:`multiframe_frame` (``fill`` is
    ``"phantom"``, ``"random"`` or ``"ramp"``) so the whole array is never in memory.  Native
    syntaxes (implicit/explicit LE, explicit BE with byte-swapped OW, deflated) write one
    defined-length OB/OW element; encapsulated syntaxes encode each frame with
    ``frame_encoder`` (or :func:`builtin_frame_encoder`) and write it as fragments, then seek
    back to fill the Basic / Extended Offset Table when ``offset_table`` asks for one.
    ``photometric`` defaults to MONOCHROME2 (1 sample) or RGB (3 samples).  With
    ``functional_groups`` a SharedFunctionalGroupsSequence (PixelMeasures, PlaneOrientation)
    and a PerFrameFunctionalGroupsSequence (PlanePosition per frame) are added.
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    bits = int(bits_stored or dtype.itemsize * 8)
    photometric = photometric or ("MONOCHROME2" if samples_per_pixel == 1 else "RGB")
    header = _multiframe_header(n_frames, rows, columns, dtype, samples_per_pixel, photometric,
                                bits, seed, functional_groups, spacing, slice_thickness)
    encapsulated = is_encapsulated(transfer_syntax)
    explicit = transfer_syntax != IMPLICIT_LE
    little = transfer_syntax != EXPLICIT_BE
    if encapsulated and offset_table == "eot" and fragments_per_frame != 1:
        raise ValueError("the Extended Offset Table requires one fragment per frame")
    enc = _resolve_encoder(transfer_syntax, frame_encoder, bits) if encapsulated else None
    if encapsulated and offset_table == "eot":
        header = header + [(_EOT, "OV", b"\0" * (8 * n_frames)),
                           (_EOT_LENGTHS, "OV", b"\0" * (8 * n_frames))]

    body_head = encode_dataset(header, explicit=explicit, little_endian=little)
    meta = encode_file_meta(transfer_syntax=transfer_syntax, sop_class_uid=_find(header, 0x00080016),
                            sop_instance_uid=_find(header, 0x00080018))
    frame_bytes = rows * columns * samples_per_pixel * dtype.itemsize
    total = frame_bytes * n_frames
    vr = "OW" if dtype.itemsize > 1 else "OB"

    def chunks() -> Iterator[np.ndarray]:
        for start in range(0, n_frames, max(1, int(chunk_frames))):
            stop = min(n_frames, start + max(1, int(chunk_frames)))
            yield from (multiframe_frame(i, n_frames, rows, columns, dtype=dtype,
                                         samples_per_pixel=samples_per_pixel, fill=fill,
                                         seed=seed, bits_stored=bits)
                        for i in range(start, stop))

    with open(path, "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM" + meta)
        body_start = fh.tell()
        if not encapsulated:
            sink = _Sink(fh, transfer_syntax == DEFLATED_LE)
            sink.write(body_head)
            sink.write(_header(_PIXEL_DATA, vr, total + total % 2, explicit, little))
            out_dt = dtype.newbyteorder("<" if little else ">")
            for start in range(0, n_frames, max(1, int(chunk_frames))):
                stop = min(n_frames, start + max(1, int(chunk_frames)))
                block = np.stack([multiframe_frame(i, n_frames, rows, columns, dtype=dtype,
                                                   samples_per_pixel=samples_per_pixel,
                                                   fill=fill, seed=seed, bits_stored=bits)
                                  for i in range(start, stop)])
                sink.write(block.astype(out_dt, copy=False).tobytes())
            if total % 2:
                sink.write(b"\0")
            sink.close()
            return path

        fh.write(body_head)
        # positions of the EOT values (to be filled in afterwards)
        eot_pos = eot_len_pos = None
        if offset_table == "eot":
            marker = _header(_EOT, "OV", 8 * n_frames, explicit, little)
            eot_pos = body_start + body_head.index(marker) + len(marker)
            marker2 = _header(_EOT_LENGTHS, "OV", 8 * n_frames, explicit, little)
            eot_len_pos = body_start + body_head.index(marker2) + len(marker2)
        fh.write(_header(_PIXEL_DATA, "OB", _UNDEFINED, explicit, little))
        bot_len = 4 * n_frames if offset_table == "bot" else 0
        fh.write(_item_header(_ITEM, bot_len, little))
        bot_pos = fh.tell()
        fh.write(b"\0" * bot_len)
        first = fh.tell()
        offsets, lengths = [], []
        for frame in chunks():
            data = bytes(enc(frame))
            offsets.append(fh.tell() - first)
            flen = 0
            for frag in _split(data, fragments_per_frame):
                if len(frag) % 2:
                    frag += b"\0"
                fh.write(_item_header(_ITEM, len(frag), little) + frag)
                flen += len(frag)
            lengths.append(flen)
        fh.write(_item_header(_SEQ_DELIM, 0, little))
        end = fh.tell()
        if offset_table == "bot":
            if offsets and offsets[-1] > 0xFFFFFFFF:
                raise ValueError("encapsulated data too large for a Basic Offset Table")
            fh.seek(bot_pos)
            fh.write(struct.pack(f"<{n_frames}I", *offsets))
        elif offset_table == "eot":
            fh.seek(eot_pos)
            fh.write(struct.pack(f"<{n_frames}Q", *offsets))
            fh.seek(eot_len_pos)
            fh.write(struct.pack(f"<{n_frames}Q", *lengths))
        fh.seek(end)
    return path


# --------------------------------------------------------------------------------------------
# Mixed sets and junk
# --------------------------------------------------------------------------------------------

def write_mixed_set(directory: Any, n: int = 64, seed: int = 0, *,
                    rle_encoder: FrameEncoder | None = None, rows: int = 64, columns: int = 64,
                    n_series: int = 4) -> list[Path]:
    """Write ``n`` small CT instances cycling through transfer syntaxes, return their paths.

    Syntaxes: implicit LE, explicit LE, explicit BE, deflated, plus RLE (if ``rle_encoder`` is
    given or fastdicom's RLE encoder is built) and JPEG lossless SV1 (if imagecodecs is
    installed).  Instances are spread over ``n_series`` series of one study; sizes vary a
    little (``rows``/``columns`` +-25%) and names are ``MX{k:05d}.dcm``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    syntaxes: list[tuple[str, FrameEncoder | None]] = [
        (IMPLICIT_LE, None), (EXPLICIT_LE, None), (EXPLICIT_BE, None), (DEFLATED_LE, None)]
    rle = rle_encoder or builtin_frame_encoder(RLE_LOSSLESS)
    if rle is not None:
        syntaxes.append((RLE_LOSSLESS, rle))
    jpeg = builtin_frame_encoder(JPEG_LOSSLESS_SV1, 16)
    if jpeg is not None:
        syntaxes.append((JPEG_LOSSLESS_SV1, jpeg))
    rng = np.random.default_rng(seed)
    paths = []
    n_series = max(1, int(n_series))
    per_series = -(-n // n_series)
    for k in range(n):
        ts, enc = syntaxes[k % len(syntaxes)]
        s = k % n_series
        r = int(rows * rng.uniform(0.75, 1.25))
        c = int(columns * rng.uniform(0.75, 1.25))
        els = ct_instance_elements(rows=r, columns=c, index=k // n_series, n_slices=per_series,
                                   study_seed="mixed-%s" % seed,
                                   series_seed="mixed-%s-%d" % (seed, s),
                                   series_number=s + 1)
        els = _encode_pixels_for(ts, els, enc, 16)
        path = directory / ("MX%05d.dcm" % k)
        write_file(path, els, transfer_syntax=ts)
        paths.append(path)
    return paths


def write_junk(directory: Any, seed: int = 0) -> dict[str, Path]:
    """Write junk / edge-case files for ingestion tests; return ``{kind: path}``.

    Kinds: ``empty`` (0 bytes), ``text`` (non-DICOM text), ``truncated_header`` (a valid file
    cut inside the data set header elements), ``truncated_pixels`` (cut inside Pixel Data),
    ``no_dicm`` (128-byte preamble followed by a data set but no ``DICM``), ``dicm_only``
    (preamble + ``DICM`` and nothing else), ``random`` (random bytes) and ``valid`` (an intact
    small file the truncated ones were cut from).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    els = ct_instance_elements(rows=32, columns=32, study_seed="junk-%s" % seed,
                               series_seed="junk-%s" % seed)
    buf = io.BytesIO()
    write_file(buf, els)
    full = buf.getvalue()
    pix = full.index(b"\xe0\x7f\x10\x00")
    meta_end = 132 + 12 + struct.unpack_from("<I", full, 140)[0]
    out = {
        "empty": b"",
        "text": ("This is not a DICOM file, seed %s.\n" % seed).encode() * 20,
        "truncated_header": full[:meta_end + int(rng.integers(20, 120))],
        "truncated_pixels": full[:pix + 12 + int(rng.integers(100, 32 * 32 * 2 - 100))],
        "no_dicm": b"\0" * 128 + encode_dataset(els),
        "dicm_only": b"\0" * 128 + b"DICM",
        "random": rng.integers(0, 256, size=4096, dtype=np.uint8).tobytes(),
        "valid": full,
    }
    paths = {}
    for kind, data in out.items():
        p = directory / ("junk_%s.dcm" % kind if kind != "text" else "junk_text.txt")
        p.write_bytes(data)
        paths[kind] = p
    return paths


def _csa_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csa_header_bytes(entries: dict) -> bytes:
    """A Siemens CSA header in the SV10 layout (see :mod:`fastdicom.siemens`) holding
    ``entries`` (name -> list of item texts): counts (names starting NumberOf) as US, other
    numbers as FD, other text as LO, each entry padded with two empty items as Siemens does."""
    out = [b"SV10", b"\x04\x03\x02\x01", struct.pack("<2I", len(entries), 77)]
    for name, items in entries.items():
        vr = "US" if name.startswith("NumberOf") else \
            "FD" if all(_csa_numeric(t) for t in items) else "LO"
        out.append(struct.pack("<64si4s3i", name.encode(), len(items), vr.encode(), 3,
                               len(items) + 2, 77))
        for text in list(items) + ["", ""]:
            value = text.encode() + b"\0" if text else b""
            out.append(struct.pack("<4i", len(value), len(value), 77, len(value)))
            out.append(value + b"\0" * (-len(value) % 4))
    return b"".join(out)
