"""Specific Character Set (0008,0005) handling: text decoding that gives the same strings as pydicom 3.

Public API
----------
``convert_encodings(specific_character_set, *, validation="warn") -> list[str]``
    Defined terms -> Python codec names (pydicom's codec names, e.g. ``"iso8859"`` for the default
    repertoire, which is latin-1 so that non-ASCII bytes in "ASCII" data still decode).
``decode_bytes(value, encodings, delimiters=TEXT_DELIMITERS, *, validation="warn") -> str``
    Decode one byte string, honouring ISO 2022 escape sequences.
``decode_text(raw, encodings, vr, *, validation="warn") -> str | list[str] | PersonName | list[PersonName]``
    Decode a whole element value of a string VR, split multiple values, strip padding.
``decode_person_name(raw, encodings, *, validation="warn") -> tuple[str, str, str]``
    (alphabetic, ideographic, phonetic) of one PN value, each group decoded separately.
``PersonName``
    A PN value (lazy decoding of the raw bytes).

Delimiters that reset the ISO 2022 state (PS3.5 6.1.2.5.3)
-----------------------------------------------------------
* ``TEXT_DELIMITERS`` = {TAB, LF, FF, CR}.  Backslash is *not* in the set: as in pydicom the whole
  value is decoded first and split on ``"\\"`` afterwards (splitting the raw bytes on 0x5C would
  break GBK / GB18030 / Shift-JIS, whose second bytes may be 0x5C).
* ``PN_DELIMITERS`` = {'^'}; '=' is handled by decoding each component group separately.

Padding / splitting per VR (what ``decode_text`` does, identical to pydicom 3's converters)
-----------------------------------------------------------------------------------------
=================  =========================  ===================  =====================================
VR                 charset                    multi-valued split   stripping
=================  =========================  ===================  =====================================
SH LO UC           Specific Character Set     yes, after decoding  each value: trailing ``" "`` and NUL
ST LT UT           Specific Character Set     no                   trailing ``" "`` and NUL
PN                 Specific Character Set     yes, after decoding  raw bytes: trailing ``" "`` and NUL
                   (TEXT_DELIMITERS for the   (whole value)        before decoding; values not stripped
                   whole value, like dcmread)
AE                 latin-1                    yes                  each value: leading+trailing
                                                                   whitespace (``str.strip()``)
AS CS DA DT TM     latin-1                    yes                  whole value: trailing ``" "`` and NUL
                                                                   (inner values keep their spaces)
UI                 latin-1                    yes                  whole value: trailing NUL and ``" "``
DS IS              latin-1                    yes                  whole value: ``str.strip()`` then
                                                                   trailing ``" "``/NUL (strings only;
                                                                   no number conversion here)
UR                 latin-1                    no                   trailing whitespace (``rstrip()``)
=================  =========================  ===================  =====================================

An empty raw value gives ``""`` (``PersonName(b"")`` for PN); one value gives a ``str`` (or
``PersonName``); several give a ``list``.

Validation modes: ``"warn"`` issues :class:`~fastdicom.errors.DicomWarning`, ``"ignore"`` is silent,
``"raise"`` raises :class:`~fastdicom.errors.MalformedElementError` for every recovery below.
Messages never contain decoded values.

Known pydicom-compatible oddities (kept on purpose so values equal pydicom's):
* ``ISO 2022 IR 58`` (GB2312): Python's codec does not consume the ``ESC $ ) A`` designation, so
  the four characters ``"\\x1b$)A"`` stay in the decoded text, exactly as in pydicom 3.
* an unknown / undeclared escape sequence is decoded (escape included) with the first encoding
  using replacement, so with the default repertoire ``"\\x1b"`` stays in the text.

Differences from pydicom 3 (PS3.5 decides):
* a raw Specific Character Set value's terms lose surrounding white space (VR CS, PS3.5 6.2):
  ``" ISO_IR 192"`` and ``"ISO 2022 IR 6\\ ISO 2022 IR 87"`` are ISO_IR 192 and IR 6 + IR 87,
  where pydicom reads an unknown term and decodes the text as latin-1.
* a term that is a Python codec name is used only when that codec reads ASCII as ASCII; pydicom
  also takes ``UNDEFINED``, ``IDNA``, ``PUNYCODE`` (whose decoding fails, so its VR retry reads
  the text as numbers), ``UTF_16``, ``UTF_7`` or ``UNICODE_ESCAPE``.
* ``ISO_IR 203`` and ``ISO 2022 IR 203`` (Latin alphabet No. 9) are ISO 8859-15, as PS3.3
  C.12.1.1.2 defines them; pydicom 3.0 does not know the terms and reads the text as latin-1
  (0xA4 is "\u20ac" here, "\xa4" there).
"""
from __future__ import annotations

import codecs
import re
from functools import lru_cache
from typing import Iterator, Optional, Sequence, Union

from fastdicom._dictionary import CHARACTER_SETS
from fastdicom.errors import MalformedElementError, check_validation, warn_caller

__all__ = [
    "DEFAULT_ENCODING", "TEXT_DELIMITERS", "PN_DELIMITERS", "convert_encodings",
    "split_character_set", "decode_bytes", "decode_text", "decode_person_name", "PersonName",
]

#: Codec of the default repertoire.  latin-1 (like pydicom) so stray 8-bit bytes still decode.
DEFAULT_ENCODING = "iso8859"
TEXT_DELIMITERS = frozenset((0x09, 0x0A, 0x0C, 0x0D))
PN_DELIMITERS = frozenset((0x5E,))

_ESC = b"\x1b"
# Defined term -> codec name (pydicom's names: the decode results depend on them, e.g. "iso8859").
_TERM_TO_CODEC = {term: entry["pydicom_codec"] for term, entry in CHARACTER_SETS.items()}
# Escape sequence (bytes) -> codec name.
_ESCAPE_TO_CODEC = {
    bytes.fromhex(seq): entry["pydicom_codec"]
    for entry in CHARACTER_SETS.values() for seq in entry["escape_sequences"]
}
# Terms that may not be combined with code extensions: the multi-byte non-ISO-2022 sets
# (ISO_IR 192, GB18030, GBK).
_STAND_ALONE = frozenset(
    term for term, entry in CHARACTER_SETS.items()
    if entry["multi_byte"] and not entry["uses_iso2022"]
)
# Codecs whose Python decoder is given the escape sequence itself (Python's ISO 2022 codecs
# interpret it; for GB2312 it ends up as literal text, as in pydicom).
_KEEP_ESCAPE = frozenset(("iso2022_jp", "iso2022_jp_2", "iso_ir_58"))
_SINGLE_BYTE_CODECS = frozenset(
    entry["pydicom_codec"] for entry in CHARACTER_SETS.values() if not entry["multi_byte"]
)

# Codecs in which byte 0x5C is always a backslash (never the 2nd byte of a character), so raw PN
# values may be split on it to keep each value's original bytes.
_BACKSLASH_SAFE = _SINGLE_BYTE_CODECS - {"shift_jis"} | {
    "UTF8", "iso2022_jp", "iso2022_jp_2", "euc_kr", "iso_ir_58", "GB2312"}

_MAX_TERM_IN_MESSAGE = 64


def _term_repr(term: str) -> str:
    if len(term) > _MAX_TERM_IN_MESSAGE:
        term = term[:_MAX_TERM_IN_MESSAGE] + "..."
    return repr(term)


def _report(validation: str, message: str, cause: Optional[BaseException] = None) -> None:
    if validation == "warn":
        warn_caller(message)
    elif validation == "raise":
        raise MalformedElementError(message) from cause
    elif validation != "ignore":
        check_validation(validation)


# --------------------------------------------------------------------------- encodings


def split_character_set(value: Union[bytes, str, None]) -> list[str]:
    """Split a raw Specific Character Set value into its defined terms.

    Trailing spaces/NULs of the whole value are removed, it is split on backslash, and each
    term loses its leading and trailing white space: PS3.5 6.2 (VR CS) makes them
    insignificant, so ``" ISO_IR 192"`` is ``ISO_IR 192`` (pydicom 3 keeps the spaces and
    reads an unknown term).  This is what :class:`fastdicom.Dataset` decodes the element with.
    """
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("latin-1")
    value = value.rstrip(" \x00")
    if not value:
        return []
    return [term.strip() for term in value.split("\\")]


# Byte strings an ASCII-compatible codec decodes as latin-1 does (every ASCII byte to itself,
# no escapes of its own): the backslash, '^' and '=' delimiters must stay what they are.
# (the escape probe first: the escape codecs fail it before they see an invalid escape, which
# they would warn about)
_ASCII_PROBES = (b"\\x41\\u00e9\\N{DIGIT ONE}\\101", b"A+AGE-", b"xn--caf-dma", b"=?=41",
                 bytes(range(128)))


def _is_text_codec(name: str) -> bool:
    """True for a Python codec that can stand for a character set: a text codec that reads
    ASCII as ASCII.  (``undefined``, ``idna`` or ``punycode`` raise on any non-ASCII byte and
    turned text into numbers through the VR retry; UTF-16/32, UTF-7, EBCDIC and the
    ``unicode_escape`` codecs read the delimiters as something else.)"""
    try:
        info = codecs.lookup(name)
    except (LookupError, TypeError, ValueError):
        return False
    if not getattr(info, "_is_text_encoding", True):
        return False
    try:
        return all(probe.decode(name) == probe.decode("latin-1") for probe in _ASCII_PROBES)
    except (UnicodeError, LookupError, TypeError, ValueError):
        return False


def _correct_term(term: str) -> tuple[str, Optional[str]]:
    """Codec for a term not in the table and a message if it was not silently accepted."""
    patched = None
    if re.match("^ISO[^_]IR", term):                       # 'ISO IR 100', 'ISO-IR 100'
        patched = "ISO_IR" + term[6:]
    elif re.match("^(?=ISO.2022.IR.)(?!ISO 2022 IR )", term):  # 'ISO_2022-IR 87' ...
        patched = "ISO 2022 IR " + term[12:]
    if patched is not None:
        codec = _TERM_TO_CODEC.get(patched)
        if codec is not None:
            return codec, (f"Incorrect Specific Character Set value {_term_repr(term)}, "
                           f"assuming {patched!r}")
        return DEFAULT_ENCODING, (f"Unknown Specific Character Set value {_term_repr(term)}, "
                                  "using the default repertoire")
    # a Python codec name is accepted silently, as pydicom does, if it reads ASCII as ASCII
    if term and _is_text_codec(term):
        return term, None
    return DEFAULT_ENCODING, (f"Unknown Specific Character Set value {_term_repr(term)}, "
                              "using the default repertoire")


@lru_cache(maxsize=256)
def _convert_cached(terms: tuple) -> tuple[tuple, tuple]:
    codecs_out = []
    issues = []
    for term in terms:
        codec = _TERM_TO_CODEC.get(term)
        if codec is None:
            codec, issue = _correct_term(term)
            if issue:
                issues.append(issue)
        codecs_out.append(codec)
    if len(terms) > 1:
        if terms[0] in _STAND_ALONE:
            issues.append(f"Specific Character Set {terms[0]!r} does not allow code extensions, "
                          "ignoring the other values")
            codecs_out = codecs_out[:1]
        else:
            keep = [codecs_out[0]]
            for term, codec in zip(terms[1:], codecs_out[1:]):
                if term in _STAND_ALONE:
                    issues.append(f"Specific Character Set {term!r} cannot be used as a code "
                                  "extension, ignoring it")
                else:
                    keep.append(codec)
            codecs_out = keep
    return tuple(codecs_out), tuple(issues)


def convert_encodings(specific_character_set: Union[None, str, bytes, Sequence[str]] = None,
                      *, validation: str = "warn") -> list[str]:
    """Return the Python codec names for a Specific Character Set value.

    ``specific_character_set`` is None, a list/tuple of defined terms (used as given, like
    pydicom's ``convert_encodings``), or a ``str``/``bytes`` raw value which is split (and its
    terms stripped) like :func:`split_character_set`.
    An empty first value means the default repertoire.  Misspellings such as ``'ISO IR 100'`` or
    ``'ISO-IR 100'`` are corrected with a warning; a term that already is the name of a Python
    text codec reading ASCII as ASCII is used silently (as pydicom does; other codec names,
    such as ``UNDEFINED``, ``IDNA`` or ``UTF_16``, are unknown terms here); anything else warns
    and becomes the default (``"iso8859"``).  A stand-alone
    set (``ISO_IR 192``, ``GB18030``, ``GBK``) first drops all other values, elsewhere it is
    dropped itself (with a warning).  Duplicates are kept.
    """
    if isinstance(specific_character_set, (str, bytes, bytearray, memoryview)):
        terms = split_character_set(specific_character_set)
    elif specific_character_set is None:
        terms = []
    else:
        terms = list(specific_character_set)
    if not terms:
        terms = [""]
    elif not terms[0]:
        terms[0] = "ISO_IR 6"
    result, issues = _convert_cached(tuple(terms))
    for issue in issues:
        _report(validation, issue)
    return list(result)


# --------------------------------------------------------------------------- decoding


def decode_bytes(value: bytes, encodings: Sequence[str],
                 delimiters: Union[frozenset, set] = TEXT_DELIMITERS, *,
                 validation: str = "warn") -> str:
    """Decode one value with ``encodings`` (from :func:`convert_encodings`).

    Without an ESC byte this is a single ``bytes.decode`` with the first encoding.  Otherwise the
    value is cut before every ESC; a part starting with a known escape sequence of a declared
    encoding is decoded with it, up to the first delimiter (after which the first encoding
    applies again); the leading part and everything unknown use the first encoding.  Bytes that
    cannot be decoded become U+FFFD (with a warning; ``"raise"`` raises instead).
    """
    first = encodings[0]
    if _ESC not in value:
        try:
            return value.decode(first)
        except UnicodeDecodeError as exc:
            _report(validation, f"Value cannot be decoded with {first!r}, "
                                "using replacement characters", exc)
            return value.decode(first, "replace")
        except LookupError as exc:
            _report(validation, f"Unknown encoding {_term_repr(first)}, "
                                "using the default repertoire", exc)
            return value.decode(DEFAULT_ENCODING)
    parts = value.split(_ESC)
    out = []
    if parts[0]:
        out.append(_decode_plain(parts[0], encodings, validation))
    for part in parts[1:]:
        out.append(_decode_escaped(_ESC + part, encodings, delimiters, validation))
    return "".join(out)


def _decode_plain(fragment: bytes, encodings: Sequence[str], validation: str) -> str:
    first = encodings[0]
    try:
        return fragment.decode(first)
    except UnicodeDecodeError as exc:
        _report(validation, f"Value cannot be decoded with {', '.join(encodings)}, "
                            "using replacement characters", exc)
        return fragment.decode(first, "replace")


def _decode_escaped(fragment: bytes, encodings: Sequence[str], delimiters, validation: str) -> str:
    first = encodings[0]
    size = 4 if fragment[1:3] in (b"$(", b"$)") else 3
    codec = _ESCAPE_TO_CODEC.get(fragment[:size])
    if codec is None or not (codec in encodings or codec == DEFAULT_ENCODING):
        _report(validation, "Unknown or undeclared ISO 2022 escape sequence in value, "
                            f"decoding with {first!r}")
        return fragment.decode(first, "replace")
    try:
        if codec in _KEEP_ESCAPE:
            return fragment.decode(codec)
        body = fragment[size:]
        cut = -1
        for delim in delimiters:
            pos = body.find(delim)
            if pos >= 0 and (cut < 0 or pos < cut):
                cut = pos
        if cut < 0:
            return body.decode(codec)
        return body[:cut].decode(codec) + body[cut:].decode(first)
    except UnicodeDecodeError as exc:
        _report(validation, f"Value cannot be decoded with {', '.join(encodings)}, "
                            "using replacement characters", exc)
        return fragment.decode(first, "replace")


_CUSTOM_MULTI = frozenset(("SH", "LO", "UC"))
_CUSTOM_SINGLE = frozenset(("ST", "LT", "UT"))
_DEFAULT_MULTI = frozenset(("AS", "CS", "DA", "DT", "TM"))


def _one_or_list(values: list):
    return values[0] if len(values) == 1 else values


def decode_text(raw: bytes, encodings: Sequence[str], vr: str, *,
                validation: str = "warn"):
    """Decode the value of a string VR like pydicom 3's value converters (see module docstring).

    Returns ``""`` when empty, a ``str`` for one value, a ``list[str]`` for several; for PN the
    values are :class:`PersonName` objects.
    """
    if not raw:
        return PersonName(b"", encodings) if vr == "PN" else ""
    if vr in _CUSTOM_MULTI:
        text = decode_bytes(raw, encodings, TEXT_DELIMITERS, validation=validation)
        if "\\" not in text:
            return text.rstrip("\x00 ")
        return [v.rstrip("\x00 ") for v in text.split("\\")]
    if vr in _CUSTOM_SINGLE:
        return decode_bytes(raw, encodings, TEXT_DELIMITERS, validation=validation).rstrip("\x00 ")
    if vr == "PN":
        return _decode_pn_values(raw, encodings, validation)
    text = raw.decode("latin-1")
    if vr in _DEFAULT_MULTI or vr == "UI":
        return _one_or_list(text.rstrip(" \x00").split("\\"))
    if vr == "AE":
        return _one_or_list([v.strip() for v in text.split("\\")])
    if vr in ("DS", "IS"):
        return _one_or_list(text.strip().rstrip(" \x00").split("\\"))
    if vr == "UR":
        return text.rstrip()
    raise ValueError(f"decode_text does not handle VR {vr!r}")


def _decode_pn_values(raw: bytes, encodings: Sequence[str], validation: str):
    stripped = raw.rstrip(b"\x00 ")
    text = decode_bytes(stripped, encodings, TEXT_DELIMITERS, validation=validation)
    values = text.split("\\")
    if len(values) == 1:
        return PersonName(values[0], encodings, original_string=stripped)
    raw_parts = stripped.split(b"\\")
    if len(raw_parts) != len(values) or not all(enc in _BACKSLASH_SAFE for enc in encodings):
        raw_parts = [None] * len(values)
    return [PersonName(v, encodings, original_string=r) for v, r in zip(values, raw_parts)]


def _decode_groups(raw: bytes, encodings: Sequence[str], validation: str) -> tuple:
    groups = [decode_bytes(g, encodings, PN_DELIMITERS, validation=validation)
              for g in raw.split(b"=")]
    while groups and not groups[-1]:
        groups.pop()
    return tuple(groups)


def decode_person_name(raw: bytes, encodings: Sequence[str], *,
                       validation: str = "warn") -> tuple[str, str, str]:
    """(alphabetic, ideographic, phonetic) of one PN value (no backslash splitting).

    Each '='-separated group is decoded on its own with ``PN_DELIMITERS`` (all groups use the
    full ``encodings`` list), exactly like pydicom's ``PersonName(raw, encodings)``.  Missing
    groups are ``""``; groups beyond the third are ignored here (see ``PersonName.components``).
    """
    groups = _decode_groups(raw, encodings or [DEFAULT_ENCODING], validation)
    groups = groups + ("", "", "")
    return groups[0], groups[1], groups[2]


class PersonName:
    """A PN value.

    ``PersonName(raw_bytes, encodings)`` decodes lazily, group by group (like pydicom's
    ``PersonName(bytes, encodings)``); ``PersonName(text, encodings, original_string=raw)``
    wraps an already decoded value (what :func:`decode_text` produces for PN elements).
    ``str()`` joins the groups with '=' with trailing empty groups removed.
    """

    __slots__ = ("original_string", "encodings", "_components", "_validation")

    def __init__(self, value: Union[bytes, str, "PersonName"] = b"",
                 encodings: Optional[Sequence[str]] = None, *,
                 original_string: Optional[bytes] = None, validation: str = "warn") -> None:
        self._validation = validation
        if isinstance(value, PersonName):
            self.original_string = value.original_string
            self.encodings = value.encodings if encodings is None else tuple(encodings)
            self._components = value.components
            return
        self.encodings = None if encodings is None else (
            (encodings,) if isinstance(encodings, str) else tuple(encodings))
        if isinstance(value, (bytes, bytearray, memoryview)):
            self.original_string = bytes(value)
            self._components = None
        elif isinstance(value, str):
            self.original_string = original_string
            groups = value.split("=")
            while groups and not groups[-1]:
                groups.pop()
            self._components = tuple(groups)
        else:
            raise TypeError("PersonName needs bytes, str or PersonName")

    @property
    def components(self) -> tuple:
        """The decoded component groups (alphabetic, ideographic, phonetic), trailing empty
        groups removed (so between 0 and 3 entries for valid data)."""
        if self._components is None:
            self._components = _decode_groups(self.original_string,
                                              self.encodings or (DEFAULT_ENCODING,),
                                              self._validation)
        return self._components

    def _group(self, i: int) -> str:
        comps = self.components
        return comps[i] if i < len(comps) else ""

    def _name_part(self, i: int) -> str:
        parts = self._group(0).split("^")
        return parts[i] if i < len(parts) else ""

    alphabetic = property(lambda self: self._group(0), doc="First (alphabetic) group.")
    ideographic = property(lambda self: self._group(1), doc="Second (ideographic) group.")
    phonetic = property(lambda self: self._group(2), doc="Third (phonetic) group.")
    family_name = property(lambda self: self._name_part(0), doc="Alphabetic family name.")
    given_name = property(lambda self: self._name_part(1), doc="Alphabetic given name.")
    middle_name = property(lambda self: self._name_part(2), doc="Alphabetic middle name.")
    name_prefix = property(lambda self: self._name_part(3), doc="Alphabetic name prefix.")
    name_suffix = property(lambda self: self._name_part(4), doc="Alphabetic name suffix.")

    def family_comma_given(self) -> str:
        return f"{self.family_name}, {self.given_name}"

    def __str__(self) -> str:
        return "=".join(self.components)

    def __repr__(self) -> str:
        return repr(str(self))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PersonName):
            return str(self) == str(other)
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        return hash(str(self))

    def __len__(self) -> int:
        return len(str(self))

    def __iter__(self) -> Iterator[str]:
        return iter(str(self))

    def __contains__(self, item: object) -> bool:
        return item in str(self)

    def __bool__(self) -> bool:
        if self.original_string:
            return True
        comps = self.components
        return bool(comps) and (len(comps) > 1 or bool(comps[0]))
