"""A file's row of ``scan`` does not depend on the files scanned with it.

A chunk's column is decoded by the nogil finisher, by the vectorised Arrow path, by the
per-row character-set path or value by value in Python (``_slow_column``), depending on
what the chunk holds: one file with a byte beyond ASCII in a UI or CS value, or one element
with another explicit VR, sends the whole column of the chunk to the Python decoding.  That
decoding read a single-valued text column given several values as its first value where the
others keep the whole text: the SOPInstanceUID ``b"1.2\\\\3.4"`` of a file was ``'1.2\\\\3.4'``
scanned alone and ``'1.2'`` scanned beside a file whose UID held a latin-1 byte (112 of the
192 cases below differed).  The fast paths kept an AE value's tab or newline, which the
Python decoding strips as the general reader does, and read the number list ``b"\\\\ "``
as two empty values where the Python decoding read no value.

A fuzzer comparing the views (random bytes in 53 columns, three transfer syntaxes, six
character sets) then found more: a UR value's trailing CR/LF kept alone and stripped beside
such a file; a multi-valued AE of whitespace alone null alone and ``['']`` through the general
reader; PN padding before empty trailing groups (``b"A^B ="``: ``'A^B '`` alone, ``'A^B'``
beside); a Specific Character Set with a leading NUL read as ISO_IR 192 by the nogil reader and
as unknown (latin-1) by the others; an infinity written as FD in an integer column raised
OverflowError and failed the whole scan; DS text with a byte beyond ASCII in a text column
came out as another VR's number (``b"1\\xff"``: ``'65329'``).  A second round found PN values
with a character set of several terms or an escape decoded with their empty groups dropped
before their padding (``'A^B'`` where dcmread reads ``'A^B '``), a "US or SS" tag written as UN
not following PixelRepresentation (33356 for dcmread's -32180), and text of another VR in a
number column read by Python's ``int()`` (LO ``"1_0"``: 10, where IS ``"1_0"`` is null).

Each file here is built byte by byte (explicit VR little endian) with one value in one
column; it is scanned alone, in a chunk with the other files, in a chunk with files that
send that column to the Python decoding, and through the general reader.  The rows must be
the same, and they must hold what the general reader and pydicom read (a single-valued text
column given several values: the whole text, only its ends stripped).
"""
from __future__ import annotations

import itertools
import math
import re
import struct
import warnings

import pytest

import fastdicom
from fastdicom import batch
from test_vr_mismatch import _write

pydicom = pytest.importorskip("pydicom")

# (keyword, tag, dictionary VR); single- and multi-valued columns of the text and number VRs
COLUMNS = [
    ("SOPInstanceUID", 0x00080018, "UI"), ("FrameOfReferenceUID", 0x00200052, "UI"),
    ("RelatedGeneralSOPClassUID", 0x0008001A, "UI"), ("Modality", 0x00080060, "CS"),
    ("ImageType", 0x00080008, "CS"), ("AccessionNumber", 0x00080050, "SH"),
    ("StudyDescription", 0x00081030, "LO"), ("OtherPatientIDs", 0x00101000, "LO"),
    ("PatientName", 0x00100010, "PN"), ("StudyDate", 0x00080020, "DA"),
    ("StudyTime", 0x00080030, "TM"), ("PatientAge", 0x00101010, "AS"),
    ("RetrieveAETitle", 0x00080054, "AE"), ("PerformedStationAETitle", 0x00400241, "AE"),
    ("SeriesNumber", 0x00200011, "IS"), ("ReferencedFrameNumber", 0x00081160, "IS"),
    ("SliceThickness", 0x00180050, "DS"), ("PixelSpacing", 0x00280030, "DS"),
    ("URNCodeValue", 0x00080120, "UR"), ("PerformingPhysicianName", 0x00081050, "PN"),
]
VALUES = [b"A\\B", b" A \\ B ", b"1.2\\3.4", b"1\\2", b" 1.5\\2 ", b"A\\", b"\\B", b"\\",
          b"  ", b"A\tB\\C", b"X\n\\Y\n", b"\tZ\t", b" 7\n", b"Q\x00 ", b"\x00",
          b"\t ", b"\r\n", b"urn:a\r\n", b"A^B =", b"A^B= =", b"  ==", b"= = ", b"A^B =\\C",
          b"A^B=\x00", b"\x00 \tW \t\x00"]
KEYWORDS = [kw for kw, _, _ in COLUMNS]
BASE = {0x00080016: ("UI", b"1.2.840.10008.5.1.4.1.1.7\0")}
# the whitespace Python's str.strip() strips of ASCII text
NUMBER = {"IS": r"[+-]?[0-9]+", "DS": r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"}
SPACE = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"


def _pad(raw: bytes, vr: str) -> bytes:
    return raw + (b"\0" if vr == "UI" else b" ") if len(raw) % 2 else raw


def _files(tmp_path):
    out = []
    for (kw, tag, vr), raw in itertools.product(COLUMNS, VALUES):
        elements = dict(BASE)
        elements.setdefault(0x00080018, ("UI", b"1.2.9\0"))
        elements[tag] = (vr, _pad(raw, vr))
        out.append((kw, vr, _pad(raw, vr), _write(tmp_path / f"v{len(out)}.dcm", elements)))
    return out


def _poison(tmp_path):
    """Per column, a file with a latin-1 byte in it and one whose element has another VR."""
    out = []
    for kw, tag, vr in COLUMNS:
        for k, (pvr, raw) in enumerate([(vr, b"Z\xe9"), ("UT" if vr != "UT" else "LT", b"9 ")]):
            elements = {**BASE, 0x00080018: ("UI", b"1.2.8\0"), tag: (pvr, raw)}
            out.append(_write(tmp_path / f"p{kw}{k}.dcm", elements))
    return out


def _scan(paths, monkeypatch=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if monkeypatch is None:
            return batch.scan(paths, tags=KEYWORDS, workers=1).select(KEYWORDS).to_pylist()
        with monkeypatch.context() as m:
            m.setattr(batch, "_extract",
                      lambda plan, ps, *a, **kw: batch._all_fallback(plan, len(ps)))
            return batch.scan(paths, tags=KEYWORDS, workers=1).select(KEYWORDS).to_pylist()


def _ends(vr: str, text: str) -> str:
    """A text value without its padding, by the rules of ``scan``'s module docstring."""
    if vr == "UI":
        return text.rstrip(" \0").strip(SPACE)
    if vr == "AE":      # (whitespace and NULs in any order: "W \t\0" is "W")
        return text.strip(SPACE + "\0")
    if vr == "UR":
        return text.rstrip(SPACE + "\0")
    if vr == "PN":
        return text.rstrip(" \0").rstrip("=")      # (empty trailing component groups too)
    return text.rstrip(" \0")


def _expected(vr: str, multi: bool, typ: str, raw: bytes):
    """The column's value, from the raw bytes by the documented rules (no fastdicom code)."""
    text = raw.decode("latin-1")
    if vr in ("DS", "IS"):
        values = text.split("\\")
        if not multi:
            values = values[:1]
        elif not text.strip(" \0"):
            return None
        out = []
        for v in values:
            v = v.strip(" \0")
            # PS3.5's forms only (no tab or newline, which Python's int() would take)
            out.append(None if not re.fullmatch(NUMBER[vr], v) else
                       int(v) if vr == "IS" else float(v))
        return out if multi else out[0]
    if not multi:
        return _ends(vr, text)        # (one value or several: the whole text)
    whole = text.rstrip(" \0")
    if not _ends(vr, whole):
        return None                   # padding alone: no value
    values = [_ends(vr, v) for v in whole.split("\\")]
    return None if vr == "PN" and values == [""] else values


def test_a_files_row_does_not_depend_on_its_company(tmp_path, monkeypatch):
    files = _files(tmp_path)
    poison = _poison(tmp_path)
    paths = [p for *_, p in files]
    alone = [_scan([p])[0] for p in paths]
    views = {"together": _scan(paths),
             "with files decoded in Python": _scan(paths + poison)[:len(paths)],
             "general reader": _scan(paths, monkeypatch),
             "general reader, with those files": _scan(paths + poison, monkeypatch)[:len(paths)]}
    schema = batch.schema(tuple(KEYWORDS))
    wrong = []
    for k, (kw, vr, raw, path) in enumerate(files):
        typ = str(schema.field(kw).type)
        want = _expected(vr, typ.startswith("list"), typ, raw)
        got = {"alone": alone[k][kw], **{name: rows[k][kw] for name, rows in views.items()}}
        for name, value in got.items():
            if value != want:
                wrong.append((kw, raw, name, value, want))
    assert not wrong, f"{len(wrong)} values differ, e.g. {wrong[:6]}"


@pytest.mark.parametrize("raw", [b"A\\B", b" A \\ B ", b"X\n\\Y\n", b"\tZ\t", b"Q\x00 ",
                                 b"\x00 \tW \t\x00"])
@pytest.mark.parametrize("kw,tag,vr", [c for c in COLUMNS if c[2] not in ("DS", "IS")])
def test_values_agree_with_the_readers(tmp_path, kw, tag, vr, raw):
    """Each value of a text column is what ``dcmread`` and pydicom read, padding aside; a
    single-valued column given several values holds them all, as one text."""
    raw = _pad(raw, vr)
    path = _write(tmp_path / "f.dcm", {**BASE, 0x00080018: ("UI", b"1.2.9\0"), tag: (vr, raw)}) \
        if kw != "SOPInstanceUID" else _write(tmp_path / "f.dcm", {**BASE, tag: (vr, raw)})
    row = _scan([path])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        readers = [fastdicom.dcmread(path).get(kw), pydicom.dcmread(path).get(kw)]
    got = row[kw]
    for value in readers:
        values = [str(x) for x in value] if isinstance(value, (list, tuple)) or \
            type(value).__name__ == "MultiValue" else [str(value)]
        # padding aside: the scan strips what the docstring says, the readers less
        values = [_ends(vr, v) for v in values]
        if isinstance(got, list):
            assert got == values, (kw, raw, got, value)
        elif got is None:
            assert not "".join(values), (kw, raw, value)
        elif vr == "UR":      # (one value: a backslash is no delimiter there)
            assert [got] == values, (kw, raw, got, value)
        else:
            assert [_ends(vr, x) for x in got.split("\\")] == values, (kw, raw, got, value)


# (keyword, tag, VR written, value bytes, Specific Character Set or other elements, the
# column's value)
ODD = [
    # a float in an integer column: no integer (an infinity raised OverflowError, which
    # failed the whole scan; a fraction was truncated)
    ("Rows", 0x00280010, "FD", struct.pack("<d", math.inf), None, None),
    ("Rows", 0x00280010, "FL", struct.pack("<f", -math.inf), None, None),
    ("Rows", 0x00280010, "FD", struct.pack("<d", math.nan), None, None),
    ("Rows", 0x00280010, "FD", struct.pack("<d", 1.5), None, None),
    ("SeriesNumber", 0x00200011, "FD", struct.pack("<d", -0.75), None, None),
    ("Rows", 0x00280010, "FD", struct.pack("<d", 12.0), None, 12),
    # DS/IS text in a text column: the text (a byte beyond ASCII made it another VR's number)
    ("Manufacturer", 0x00080070, "DS", b"1\xff", b"ISO_IR 192", "1\xff"),
    ("ImageType", 0x00080008, "DS", b"1\xff\\2 ", None, ["1\xff", "2"]),
    ("OtherPatientIDs", 0x00101000, "IS", b"\xc21 ", b"GB18030", ["\xc21"]),
    ("AccessionNumber", 0x00080050, "DS", b" 12 ", None, "12"),
    # a Specific Character Set with a leading NUL is no term the reader knows: latin-1
    ("PatientName", 0x00100010, "PN", b"M\xc3\xbcller", b"\0ISO_IR 192 ", "M\xc3\xbcller"),
    ("PatientName", 0x00100010, "PN", b"M\xc3\xbcller", b"ISO_IR 192\0", "M\xfcller"),
    # PN decoded with a character set of several terms (or escapes) as without: padding,
    # then empty trailing groups, of each value (the groups were dropped first)
    ("PatientName", 0x00100010, "PN", b"A^B =", b"\\ISO 2022 IR 100", "A^B "),
    ("PatientName", 0x00100010, "PN", b"  ==", b"\\ISO 2022 IR 100", "  "),
    ("PerformingPhysicianName", 0x00081050, "PN", b"A^B =", b"\\ISO 2022 IR 100", ["A^B "]),
    ("PerformingPhysicianName", 0x00081050, "PN", b"  ==", b"\\ISO 2022 IR 100", ["  "]),
    ("PatientName", 0x00100010, "PN", b"A^B==\\C ", b"\\ISO 2022 IR 100", "A^B==\\C"),
    ("PatientName", 0x00100010, "PN", b"\x1b(BA^B =", None, "A^B "),
    # text of another VR in a number column: PS3.5's DS/IS forms, as IS text is read
    ("SeriesNumber", 0x00200011, "LO", b"1_0", None, None),
    ("SeriesNumber", 0x00200011, "LO", b"\t12", None, None),
    ("SliceThickness", 0x00180050, "LO", b"inf ", None, None),
    ("SeriesNumber", 0x00200011, "SH", b" 12 ", None, 12),
    # a decimal past the double's range does not fit its type: no value (it was inf)
    ("SliceThickness", 0x00180050, "DS", b"1e400 ", None, None),
    ("PixelSpacing", 0x00280030, "DS", b"-1e999\\2.5 ", None, [None, 2.5]),
    # binary numbers of a length that is no multiple of their size: no value (in a list
    # column through the Python decoding it was [None])
    ("SimpleFrameList", 0x00081161, "UL", b"\x01\x00\x00\x00\x02\x00", None, None),
    ("DiffusionGradientOrientation", 0x00189089, "FD", b"\0" * 12, None, None),
    # a "US or SS" tag written as UN follows PixelRepresentation, as one without a VR
    ("SmallestImagePixelValue", 0x00280106, "UN", b"L\x82", {0x00280103: ("US", b"\1\0")},
     -32180),
    ("SmallestImagePixelValue", 0x00280106, "UN", b"L\x82", {0x00280103: ("US", b"\0\0")},
     33356),
]


@pytest.mark.parametrize("kw,tag,vr,raw,charset,want", ODD)
def test_elements_of_another_vr_on_every_path(tmp_path, monkeypatch, kw, tag, vr, raw, charset,
                                              want):
    base = {**BASE, 0x00080018: ("UI", b"1.2.9\0")}
    if isinstance(charset, dict):
        base.update(charset)        # (other elements the value is read with)
    elif charset is not None:
        base[0x00080005] = ("CS", charset)
    path = _write(tmp_path / "f.dcm", {**base, tag: (vr, _pad(raw, vr))})
    plain = _write(tmp_path / "plain.dcm", {**BASE, 0x00080018: ("UI", b"1.2.8\0")})
    # (a file whose element has another VR: the column of the chunk is decoded in Python)
    other = _write(tmp_path / "other.dcm", {**BASE, 0x00080018: ("UI", b"1.2.7\0"),
                                            tag: ("UT", b"9 ")})
    kws = [kw]

    def scan(paths, fallback=False):
        with warnings.catch_warnings(), monkeypatch.context() as m:
            warnings.simplefilter("ignore")
            if fallback:
                m.setattr(batch, "_extract",
                          lambda plan, ps, *a, **k: batch._all_fallback(plan, len(ps)))
            return batch.scan(paths, tags=kws, workers=1).column(kw).to_pylist()
    views = {"alone": scan([path])[0], "with a plain file": scan([plain, path])[1],
             "beside another VR": scan([other, path])[1], "general reader": scan([path], True)[0],
             "general reader, beside another VR": scan([other, path], True)[1]}
    assert views == dict.fromkeys(views, want)
    if isinstance(want, str) and "\\" not in want:     # (one value: dcmread's str)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert str(fastdicom.dcmread(path).get(kw)) == want
