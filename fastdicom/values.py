"""VR → Python value decoding, with the value types pydicom 3 gives.

Numbers: ``int``/``float`` (``DSfloat``/``IS`` for the decimal/integer strings, which are float/int
subclasses keeping their original text; an IS decimal that is not an integer, such as "1.5", is
a ``DSfloat``, as pydicom 3 gives a float, and the Dataset warns); VM > 1: :class:`MultiValue`
(a list);
text: ``str``; PN: :class:`~fastdicom.charset.PersonName`; AT: :class:`BaseTag` (an int);
OB/OW/OF/OD/OL/OV/UN: ``bytes``.  Empty values: ``""`` for text VRs, ``None`` for the others,
``[]`` for SQ (pydicom's ``empty_value_for_VR``).
"""
from __future__ import annotations

import struct
from typing import Any

from . import charset as _charset
from .errors import MalformedElementError, warn_caller

TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
                      "UI", "UR", "UT"})
BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d",
                  "SV": "q", "UV": "Q"}
ALL_VRS = frozenset(TEXT_VRS | BYTES_VRS | set(NUMBER_FORMATS) | {"AT", "DS", "IS", "SQ"})


#: the Palette Color and LUT Descriptors, whose first value (the number of entries) is
#: unsigned even when the element is SS (PS3.3 C.7.6.3.1.5, C.11.1.1)
LUT_DESCRIPTOR_TAGS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})


def unsigned_entries(value: Any) -> Any:
    """A LUT descriptor's decoded SS values with the first, the number of entries, read as
    unsigned (-32768 is 32768), as pydicom 3 reads an explicit SS one; in place."""
    if isinstance(value, list) and value and isinstance(value[0], int) and value[0] < 0:
        value[0] += 65536
    return value


class MultiValue(list):
    """A list of the values of a multi-valued element (VM > 1)."""

    def __str__(self) -> str:  # pydicom prints multi-values as a list of the item strings
        return "[" + ", ".join(repr(str(v)) if isinstance(v, str) else str(v) for v in self) + "]"


class BaseTag(int):
    """A tag value of an AT element."""

    @property
    def group(self) -> int:
        return self >> 16

    @property
    def element(self) -> int:
        return self & 0xFFFF

    def __str__(self) -> str:
        return f"({self >> 16:04X},{self & 0xFFFF:04X})"

    __repr__ = __str__


class DSfloat(float):
    """A decoded DS value: a float that remembers the text it came from."""

    __slots__ = ("original_string",)

    def __new__(cls, text: str):
        value = float.__new__(cls, text)
        value.original_string = text
        return value

    def __str__(self) -> str:
        return self.original_string

    def __repr__(self) -> str:
        return f"'{self.original_string}'"


class IS(int):
    """A decoded IS value: an int that remembers the text it came from."""

    def __new__(cls, text: str):
        try:
            value = int.__new__(cls, text)
        except ValueError:
            as_float = float(text)
            if not as_float.is_integer():
                raise
            value = int.__new__(cls, int(as_float))
        value.original_string = text
        return value

    def __str__(self) -> str:
        return self.original_string

    def __repr__(self) -> str:
        return f"'{self.original_string}'"


def empty_value(vr: str) -> Any:
    if vr == "SQ":
        return []
    if vr == "PN":
        return _charset.PersonName(b"")
    if vr in TEXT_VRS:
        return ""
    return None


def _split_ascii(raw: bytes) -> str | MultiValue:
    items = raw.decode("latin-1").rstrip(" \x00").split("\\")
    return items[0] if len(items) == 1 else MultiValue(items)


def _numbers(raw: bytes, fmt: str, little: bool) -> Any:
    size = struct.calcsize("<" + fmt)
    n = len(raw) // size
    if n * size != len(raw):
        raise MalformedElementError(
            f"value length {len(raw)} is not a multiple of {size} bytes")
    if n == 1:
        return struct.unpack(("<" if little else ">") + fmt, raw)[0]
    if n == 0:
        return ""
    return MultiValue(struct.unpack(f"{'<' if little else '>'}{n}{fmt}", raw))


def _numeric_strings(raw: bytes, cls, strip_all: bool) -> Any:
    text = raw.decode("latin-1")
    text = text.strip(" \x00") if strip_all else text.rstrip(" \x00")
    items = text.split("\\")
    out = []
    for item in items:
        item_stripped = item.strip(" \x00")
        out.append(cls(item_stripped) if item_stripped else "")
    return out[0] if len(out) == 1 else MultiValue(out)


def _is_or_float(text: str):
    try:
        return IS(text)
    except ValueError:
        return DSfloat(text)


def _at(raw: bytes, little: bool, validation: str) -> Any:
    n = len(raw) // 4
    if n * 4 != len(raw):
        # PS3.5 table 6.2-1: each AT value is 4 bytes.  pydicom 3 logs it and keeps the
        # complete values (as "ignore" and "warn" do here)
        message = f"value length {len(raw)} is not a multiple of 4 bytes (VR AT)"
        if validation == "raise":
            raise MalformedElementError(message)
        if validation == "warn":
            warn_caller(message + "; the trailing bytes are ignored")
    fmt = "<" if little else ">"
    tags = [BaseTag((g << 16) | e) for g, e in struct.iter_unpack(fmt + "HH", raw[: n * 4])]
    if len(tags) == 1 and len(raw) == 4:
        return tags[0]
    return MultiValue(tags)


def decode_value(vr: str, raw: bytes, *, little_endian: bool = True,
                 encodings: list[str] | None = None, validation: str = "warn") -> Any:
    """Decode the raw bytes of a non-SQ element of VR ``vr`` the way pydicom 3 does."""
    if not raw:
        return empty_value(vr)
    if " or " in vr:  # an ambiguous VR pydicom leaves unresolved
        if vr.startswith("OB") or vr.endswith("OW"):
            return raw
        vr = vr.split(" or ")[0]
    fmt = NUMBER_FORMATS.get(vr)
    try:
        if fmt is not None:
            return _numbers(raw, fmt, little_endian)
        if vr in BYTES_VRS:
            return raw
        if vr in CHARSET_VRS:
            value = _charset.decode_text(raw, encodings or ["iso8859"], vr, validation=validation)
            return MultiValue(value) if isinstance(value, list) else value
        if vr == "UI":
            # each UID without surrounding whitespace, as pydicom's UID() keeps it
            value = _split_ascii(raw)
            if isinstance(value, str):
                return value.strip()
            return MultiValue(v.strip() for v in value)
        if vr == "DS":
            return _numeric_strings(raw, DSfloat, True)
        if vr == "IS":
            try:
                return _numeric_strings(raw, IS, False)
            except ValueError:
                if validation == "raise":
                    raise
                # a decimal that is not an integer: a float, as pydicom 3 gives (its ISfloat)
                return _numeric_strings(raw, _is_or_float, False)
        if vr == "AE":
            items = [s.strip() for s in raw.decode("latin-1").split("\\")]
            return items[0] if len(items) == 1 else MultiValue(items)
        if vr == "UR":
            return raw.decode("latin-1").rstrip()
        if vr == "AT":
            return _at(raw, little_endian, validation)
        if vr in TEXT_VRS:  # AS CS DA DT TM
            return _split_ascii(raw)
    except (ValueError, struct.error) as exc:
        if validation == "raise":
            if isinstance(exc, MalformedElementError):
                raise
            raise MalformedElementError(f"value cannot be decoded as VR {vr}") from None
        return _retry(vr, raw, little_endian, encodings, validation)
    return raw


# pydicom's order of VRs to retry a value that its own VR cannot decode
_RETRY_ORDER = ("SH", "UL", "SL", "US", "SS", "FL", "FD", "OF", "OB", "UI", "DA", "TM", "PN",
                "IS", "DS", "LT", "UN", "AT", "OW", "DT", "UT")


def _retry(vr, raw, little_endian, encodings, validation):
    for other in _RETRY_ORDER:
        if other == vr:
            continue
        try:
            # validation="raise": a lenient recovery raises instead of warning, so no
            # warning filter is needed (warnings.catch_warnings is not thread-safe)
            return decode_value(other, raw, little_endian=little_endian,
                                encodings=encodings, validation="raise")
        except (ValueError, struct.error, UnicodeError, LookupError):
            continue
    return raw



def _install_fast_path() -> None:
    from . import _scan
    _scan._set_value_types(MultiValue, DSfloat, IS)


_install_fast_path()
