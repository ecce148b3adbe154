"""Text decoding through the Dataset API and the scan columns, against pydicom 3 and PS3.5.

tests/test_charset.py compares the decoding functions with pydicom's; here whole files are
built (random text in each character set, sequences whose items declare their own Specific
Character Set) and read back with ``fastdicom.dcmread``, ``fastdicom.scan`` and
``pydicom.dcmread``.
"""
from __future__ import annotations

import random
import warnings

import pytest

import fastdicom
from fastdicom.charset import convert_encodings, split_character_set
from fastdicom.errors import DicomWarning, MalformedElementError
from fastdicom.testing import write_file

pydicom = pytest.importorskip("pydicom")
from pydicom import charset as pd_charset  # noqa: E402
from pydicom.multival import MultiValue as PdMultiValue  # noqa: E402
from pydicom.valuerep import PersonName as PdPersonName  # noqa: E402

SOP = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3.4")]


def _cs(value: str) -> bytes:
    raw = value.encode("latin-1")
    return raw + b" " if len(raw) % 2 else raw


def _even(raw: bytes) -> bytes:
    return raw + b" " if len(raw) % 2 else raw


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _text(value):
    """A value as comparable text: lists item by item, PN by its string."""
    if isinstance(value, (list, PdMultiValue)):
        return [_text(v) for v in value]
    if isinstance(value, PdPersonName) or type(value).__name__ == "PersonName":
        return ("PN", str(value))
    return (type(value).__name__ if isinstance(value, (int, float)) else "str", str(value))


def _scan_row(path, keywords):
    table = _quiet(fastdicom.scan, [str(path)], tags=keywords, workers=1)
    row = table.to_pylist()[0]
    assert row["error_type"] is None, row["error_message"]
    return row


# --------------------------------------------------------------------------- Specific Character Set terms

JAPANESE = "山田^太郎"
JAPANESE_JIS = b"\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"


@pytest.mark.parametrize("raw, expected", [
    (" ISO_IR 192", ["UTF8"]),
    (b"ISO_IR 192 ", ["UTF8"]),
    ("ISO 2022 IR 6\\ ISO 2022 IR 87", ["iso8859", "iso2022_jp"]),
    ("ISO 2022 IR 6 \\ISO 2022 IR 87 ", ["iso8859", "iso2022_jp"]),
    (" \\ISO 2022 IR 149", ["iso8859", "euc_kr"]),
])
def test_charset_terms_lose_surrounding_spaces(raw, expected):
    # PS3.5 6.2, VR CS: leading and trailing spaces are not significant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert convert_encodings(raw) == expected
    assert split_character_set(raw) == [t.strip() for t in (
        raw.decode() if isinstance(raw, bytes) else raw).rstrip(" ").split("\\")]


@pytest.mark.parametrize("charset, raw, expected", [
    (" ISO_IR 192", "Müller^Jürgen".encode("utf-8"), "Müller^Jürgen"),
    ("ISO 2022 IR 6\\ ISO 2022 IR 87", JAPANESE_JIS, JAPANESE),
])
def test_scan_reads_spaced_charset_terms_as_the_dataset(tmp_path, charset, raw, expected):
    """The scan decoded these values with the default repertoire (escape sequences and
    UTF-8 bytes as latin-1 text) while the Dataset API strips the terms."""
    path = tmp_path / "spaced.dcm"
    write_file(path, [(0x00080005, "CS", _cs(charset)), *SOP,
                      (0x00081030, "LO", _even(raw)), (0x00100010, "PN", _even(raw))])
    ds = fastdicom.dcmread(path)
    assert ds.StudyDescription == expected
    assert str(ds.PatientName) == expected
    row = _scan_row(path, ["StudyDescription", "PatientName"])
    assert row["StudyDescription"] == expected
    assert row["PatientName"] == expected


@pytest.mark.parametrize("term", ["UNDEFINED", "IDNA", "PUNYCODE", "UTF_16", "UTF_7",
                                  "UNICODE_ESCAPE", "CP037"])
def test_codec_names_that_do_not_read_ascii_are_unknown_terms(tmp_path, term):
    """A Python codec name was taken as the character set whatever the codec: the value then
    failed to decode and the VR retry turned LO text into numbers (UNDEFINED, IDNA,
    PUNYCODE), or the delimiters were read as other characters (UTF-16, EBCDIC...)."""
    with pytest.warns(DicomWarning, match="Unknown Specific Character Set"):
        assert convert_encodings(term) == ["iso8859"]
    with pytest.raises(MalformedElementError):
        convert_encodings(term, validation="raise")
    path = tmp_path / "codec.dcm"
    write_file(path, [(0x00080005, "CS", _cs(term)), *SOP,
                      (0x00081030, "LO", b"caf\xe9\\x "), (0x00100010, "PN", b"A\xe9^B ")])
    ds = _quiet(fastdicom.dcmread, path)
    assert _quiet(getattr, ds, "StudyDescription") == ["café", "x"]
    assert str(_quiet(getattr, ds, "PatientName")) == "Aé^B"
    row = _scan_row(path, ["StudyDescription", "PatientName"])
    assert row["StudyDescription"] == "café\\x"
    assert row["PatientName"] == "Aé^B"


@pytest.mark.parametrize("term, codec", [("latin_1", "latin_1"), ("ASCII", "ASCII"),
                                         ("cp1252", "cp1252"), ("SHIFT_JIS", "SHIFT_JIS")])
def test_codec_names_reading_ascii_still_accepted(term, codec):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert convert_encodings(term) == [codec]
    assert _quiet(pd_charset.convert_encodings, [term]) == [codec]


# --------------------------------------------------------------------------- AT

def test_at_length_not_multiple_of_four(tmp_path):
    """PS3.5 table 6.2-1: an AT value is 4 bytes.  The 2 trailing bytes were dropped silently,
    even with validation="raise"; the value kept is pydicom's."""
    path = tmp_path / "at.dcm"
    write_file(path, [*SOP, (0x00209165, "AT", b"\x08\x00\x05\x00\x01\x02")])
    with pytest.warns(DicomWarning, match="multiple of 4"):
        value = fastdicom.dcmread(path)[0x00209165].value
    assert list(value) == [0x00080005]
    assert list(value) == list(_quiet(pydicom.dcmread, path)[0x00209165].value)
    with pytest.raises(MalformedElementError):
        fastdicom.dcmread(path, validation="raise")[0x00209165].value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(fastdicom.dcmread(path, validation="ignore")[0x00209165].value) == [
            0x00080005]
    # whole values stay quiet
    write_file(path, [*SOP, (0x00209165, "AT", [0x00080005, 0x00100010])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(fastdicom.dcmread(path)[0x00209165].value) == [0x00080005, 0x00100010]


# --------------------------------------------------------------------------- random files

CHARSETS = [
    "", "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 126",
    "ISO_IR 127", "ISO_IR 138", "ISO_IR 144", "ISO_IR 148", "ISO_IR 166", "ISO_IR 13",
    "ISO_IR 192", "GB18030", "GBK", "\\ISO 2022 IR 87", "ISO 2022 IR 13\\ISO 2022 IR 87",
    "\\ISO 2022 IR 149", "\\ISO 2022 IR 58", "\\ISO 2022 IR 87\\ISO 2022 IR 159",
    "ISO 2022 IR 100\\ISO 2022 IR 144", "ISO 2022 IR 6\\ISO 2022 IR 126\\ISO 2022 IR 138",
    "ISO_IR 192\\ISO 2022 IR 87", "ISO IR 100", "ISO-IR 144", "ISO_IR 999", "latin_1",
    "ISO_IR 100\\", "\\",
]
# terms with spaces around them (insignificant in CS, PS3.5 6.2): scan and Dataset only
SPACED = [" ISO_IR 192", "ISO 2022 IR 6\\ ISO 2022 IR 87", " \\ISO 2022 IR 149",
          "ISO_IR 144 \\ISO 2022 IR 87"]
_POOLS: dict = {}


def _pool(encodings):
    key = tuple(encodings)
    if key not in _POOLS:
        chars = []
        points = [*range(0x20, 0x7F), *range(0xA0, 0x600), *range(0x3000, 0xA000, 11),
                  *range(0xAC00, 0xD7A4, 17), *range(0xFF61, 0xFFA0)]
        for point in points:
            char = chr(point)
            if char in "\\=^":
                continue
            for encoding in encodings:
                try:
                    pd_charset._encode_string_impl(char, encoding)
                except (UnicodeError, ValueError, LookupError, IndexError):
                    continue
                chars.append(char)
                break
        _POOLS[key] = chars
    return _POOLS[key]


def _encode(rnd, encodings, length):
    text = "".join(rnd.choice(_pool(encodings)) for _ in range(length))
    return _quiet(pd_charset.encode_string, text, encodings) if text else b""


def _value(rnd, vr, encodings):
    if vr == "PN":
        names = []
        for _ in range(rnd.choice([1, 1, 2])):
            groups = [b"^".join(_encode(rnd, encodings, rnd.randint(0, 4))
                                for _ in range(rnd.randint(1, 3)))
                      for _ in range(rnd.randint(1, 3))]
            names.append(b"=".join(groups))
        raw = b"\\".join(names)
    elif vr == "LO":
        raw = b"\\".join(_encode(rnd, encodings, rnd.randint(0, 8))
                         for _ in range(rnd.choice([1, 2, 3])))
    else:
        raw = b"\r\n".join(_encode(rnd, encodings, rnd.randint(0, 10))
                           for _ in range(rnd.randint(1, 3)))
    return _even(raw + rnd.choice([b"", b" ", b"\x00"]))


def _encodings(charset):
    terms = [t.strip() for t in charset.split("\\")] if charset else None
    return _quiet(pd_charset.convert_encodings, terms)


def _random_file(rnd, path, charset, item_charset):
    encodings, item_encodings = _encodings(charset), _encodings(item_charset)
    elements = [*SOP, (0x00081030, "LO", _value(rnd, "LO", encodings)),
                (0x00100010, "PN", _value(rnd, "PN", encodings)),
                (0x00081060, "PN", _value(rnd, "PN", encodings)),
                (0x00104000, "LT", _value(rnd, "LT", encodings)),
                (0x00080081, "ST", _value(rnd, "ST", encodings))]
    if charset:
        elements.append((0x00080005, "CS", _cs(charset)))
    inherits = [(0x00100010, "PN", _value(rnd, "PN", encodings)),
                (0x00081030, "LO", _value(rnd, "LO", encodings))]
    own = [(0x00100010, "PN", _value(rnd, "PN", item_encodings)),
           (0x00081030, "LO", _value(rnd, "LO", item_encodings)),
           (0x00081111, "SQ", [[(0x00100010, "PN", _value(rnd, "PN", item_encodings))]])]
    if item_charset:
        own.append((0x00080005, "CS", _cs(item_charset)))
    elements.append((0x00081115, "SQ", [inherits, own]))
    write_file(path, elements)


def _compare(ours, theirs, where, problems):
    for their in theirs:
        tag = int(their.tag)
        mine = ours[tag]
        if their.VR == "SQ":
            for n, (ours_item, their_item) in enumerate(zip(mine.value, their.value)):
                _compare(ours_item, their_item, f"{where}{tag:08X}[{n}].", problems)
            continue
        if _text(mine.value) != _text(their.value):
            problems.append((where, f"{tag:08X}", _text(mine.value), _text(their.value)))


def _scan_items(value, pn):
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        for part in ("" if item is None else str(item)).split("\\"):
            part = part.rstrip(" \x00")
            out.append(part.rstrip("=") if pn else part)
    return [p for p in out if p]


@pytest.mark.parametrize("seed", range(4))
def test_random_files_dataset_and_scan_same_as_pydicom(tmp_path, seed):
    """Every element at every level equals pydicom's, and every top-level text column of the
    scan the Dataset's value (up to the scan's documented padding rules).  Items declaring
    their own Specific Character Set are included."""
    rnd = random.Random(seed)
    problems = []
    keywords = ["StudyDescription", "PatientName", "NameOfPhysiciansReadingStudy",
                "PatientComments", "InstitutionAddress"]
    for n, charset in enumerate(CHARSETS + SPACED):
        path = tmp_path / f"r{n}.dcm"
        _random_file(rnd, path, charset, rnd.choice(CHARSETS))
        ours = _quiet(fastdicom.dcmread, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if charset not in SPACED:     # pydicom reads these as unknown terms
                _compare(ours, pydicom.dcmread(path), f"{charset!r}: ", problems)
            row = _scan_row(path, keywords)
            for keyword in keywords:
                element = ours.data_element(keyword)
                pn = element.VR == "PN"
                if _scan_items(row[keyword], pn) != _scan_items(element.value, pn):
                    problems.append((charset, keyword, row[keyword], str(element.value)))
    assert not problems, problems[:5]
