"""Tag helpers over the generated data dictionary (:mod:`fastdicom._dictionary`).

Tags are plain ints ``0xGGGGEEEE``.  Lookup semantics follow pydicom 3's
``pydicom.datadict`` so that results can be compared directly:

* public lookups try the exact table first, then the repeating-group masks
  (``60xx3000`` ...), the latter only for non-private (even-group) tags;
* "private" means an odd group number (as in pydicom, this includes the
  reserved groups 0001/0003/0005/0007/FFFF);
* private-dictionary lookups try, in order, the explicit element number, the
  block-relative element ``(gggg,xxee)`` and the group wildcard ``(ggxx,xxee)``.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ._dictionary import (
    ELEMENTS,
    KEYWORD_TO_TAG,
    MASKS,
    PRIVATE,
    PRIVATE_EXACT,
    PRIVATE_MASKS,
)

__all__ = [
    "tag_for_keyword",
    "keyword_for_tag",
    "dictionary_entry",
    "dictionary_vr",
    "dictionary_vm",
    "dictionary_name",
    "dictionary_keyword",
    "dictionary_is_retired",
    "private_dictionary_entry",
    "is_private",
    "is_private_creator",
    "private_creator_tag",
    "is_group_length",
    "tag_repr",
    "parse_tag",
]

_ELEMENTS_get = ELEMENTS.get


@lru_cache(maxsize=4096)
def _mask_entry(tag: int) -> tuple | None:
    if tag & 0x10000:  # private groups never match the public repeaters
        return None
    for mask, value, *entry in MASKS:
        if tag & mask == value:
            return tuple(entry)
    return None


def dictionary_entry(tag: int) -> tuple | None:
    """``(vr, vm, name, retired, keyword)`` for a public tag, or ``None``."""
    entry = _ELEMENTS_get(tag)
    if entry is None:
        entry = _mask_entry(tag)
    return entry


def tag_for_keyword(keyword: str) -> int | None:
    """Tag for a DICOM keyword; repeating-group keywords give their base
    value (``"OverlayData"`` -> ``0x60003000``).  ``None`` when unknown."""
    return KEYWORD_TO_TAG.get(keyword)


def keyword_for_tag(tag: int) -> str:
    """Keyword of a public tag (masks included); ``""`` when unknown."""
    entry = dictionary_entry(tag)
    return entry[4] if entry is not None else ""


dictionary_keyword = keyword_for_tag


def dictionary_vr(tag: int) -> str | None:
    """VR string (``"US or SS"`` style for ambiguous ones, ``"NONE"`` for items)."""
    entry = dictionary_entry(tag)
    return entry[0] if entry is not None else None


def dictionary_vm(tag: int) -> str | None:
    entry = dictionary_entry(tag)
    return entry[1] if entry is not None else None


def dictionary_is_retired(tag: int) -> bool | None:
    entry = dictionary_entry(tag)
    return entry[3] if entry is not None else None


def private_dictionary_entry(tag: int, creator: str) -> tuple | None:
    """``(vr, vm, name, retired)`` from the vendor private dictionaries."""
    exact = PRIVATE_EXACT.get(creator)
    if exact is not None:
        entry = exact.get(tag)
        if entry is not None:
            return entry
    block = PRIVATE.get(creator)
    if block is not None:
        entry = block.get(tag & 0xFFFF00FF)
        if entry is not None:
            return entry
    masks = PRIVATE_MASKS.get(creator)
    if masks is not None:
        for mask, value, *entry in masks:
            if tag & mask == value:
                return tuple(entry)
    return None


def dictionary_name(tag: int, creator: str | None = None) -> str:
    """Element name as pydicom's ``DataElement.name`` reports it.

    * public tags: the dictionary name; unknown ``(gggg,0000)``: ``"Group Length"``;
      other unknown public tags: ``""``;
    * private tags with *creator* known in the private dictionary: ``"[name]"``;
    * private tags without creator whose element is ``0x00xx``: ``"Private Creator"``;
    * other private tags: ``"Private tag data"``.
    """
    if tag & 0x10000:
        if creator:
            entry = private_dictionary_entry(tag, creator)
            if entry is not None:
                return f"[{entry[2]}]"
        elif (tag & 0xFF00) == 0:
            return "Private Creator"
        return "Private tag data"
    entry = dictionary_entry(tag)
    if entry is not None:
        return entry[2]
    if tag & 0xFFFF == 0:
        return "Group Length"
    return ""


def is_private(tag: int) -> bool:
    """Odd group number."""
    return bool(tag & 0x10000)


def is_private_creator(tag: int) -> bool:
    """Odd group and element 0x0010-0x00FF (a private creator slot)."""
    return bool(tag & 0x10000) and 0x0010 <= (tag & 0xFFFF) <= 0x00FF


def private_creator_tag(tag: int) -> int:
    """The ``(gggg,00xx)`` slot reserving the block of private element ``(gggg,xxyy)``."""
    return (tag & 0xFFFF0000) | ((tag >> 8) & 0xFF)


def is_group_length(tag: int) -> bool:
    return tag & 0xFFFF == 0


def tag_repr(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


_HEX_TAG = re.compile(r"\s*\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?\s*")
_HEX_PREFIXED = re.compile(r"\s*0[xX]([0-9A-Fa-f]{1,8})\s*")
# the column name scan gives a tag without a keyword (private tags): x + 8 hex digits
_COLUMN_NAME = re.compile(r"x([0-9A-Fa-f]{8})")


def parse_tag(value) -> int:
    """Normalise *value* to an int tag.

    Accepts an int, a ``(group, element)`` tuple/list, a keyword
    (``"PatientName"``), or a hex string ``"00100010"``, ``"0x00100010"``,
    ``"(0010,0010)"``, ``"0010,0010"``, or ``"x00091001"`` (the column name
    :func:`fastdicom.scan` gives a tag without a keyword).  Unknown keywords raise ``KeyError``;
    anything else invalid raises ``ValueError``.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a tag: {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"tag out of range: {value:#x}")
        return int(value)
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"tag tuple must be (group, element): {value!r}")
        group, elem = value
        if isinstance(group, str):
            group = int(group, 16)
        if isinstance(elem, str):
            elem = int(elem, 16)
        if isinstance(group, bool) or isinstance(elem, bool) \
                or not isinstance(group, int) or not isinstance(elem, int):
            raise ValueError(f"tag tuple must hold ints: {value!r}")
        if not (0 <= group <= 0xFFFF and 0 <= elem <= 0xFFFF):
            raise ValueError(f"group/element out of range: {value!r}")
        return (group << 16) | elem
    if isinstance(value, str):
        tag = KEYWORD_TO_TAG.get(value)
        if tag is not None:
            return tag
        m = _HEX_TAG.fullmatch(value)
        if m is not None:
            return (int(m.group(1), 16) << 16) | int(m.group(2), 16)
        m = _HEX_PREFIXED.fullmatch(value) or _COLUMN_NAME.fullmatch(value)
        if m is not None:
            return int(m.group(1), 16)
        if value.isidentifier():
            raise KeyError(f"unknown DICOM keyword: {value!r}")
        raise ValueError(f"cannot parse tag from {value!r}")
    raise ValueError(f"cannot parse tag from {type(value).__name__} {value!r}")
