"""A tag whose element carries an explicit VR other than the dictionary's: ``scan`` reads it
with that VR, as ``dcmread`` and pydicom do.

The nogil column finisher read every element with the dictionary's VR: Rows written as IS
text ``b"512 "`` became 12597 (the text's first two bytes as a US), Rows written as SS -5 became
65531, as UL 70000 became 4464, InstanceNumber written as US was no value, and a text tag
kept or lost padding by the dictionary VR's rule (PatientID written as UI ``b"ABC\\n"``,
AccessionNumber as DS ``b" 12 "``).  The files are built here byte by byte (explicit VR
little endian), one odd element each, in a chunk with files whose elements carry the
dictionary's VR; pydicom is the oracle.
"""
from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pytest

import fastdicom
from fastdicom import batch

pydicom = pytest.importorskip("pydicom")

EXPLICIT_LE = b"1.2.840.10008.1.2.1\0"
SOP_CLASS = b"1.2.840.10008.5.1.4.1.1.7\0"

# (keyword, tag, VR written, value bytes); the column's dictionary VR differs from it
CASES = [
    ("Rows", 0x00280010, "IS", b"512 "),
    ("Rows", 0x00280010, "SS", struct.pack("<h", -5)),
    ("Rows", 0x00280010, "UL", struct.pack("<I", 70000)),
    ("Columns", 0x00280011, "DS", b"64"),
    ("InstanceNumber", 0x00200013, "US", struct.pack("<H", 7)),
    ("InstanceNumber", 0x00200013, "SL", struct.pack("<i", -70000)),
    ("SliceThickness", 0x00180050, "FD", struct.pack("<d", 1.5)),
    ("SliceThickness", 0x00180050, "LO", b" 1.5"),
    ("PixelSpacing", 0x00280030, "FL", struct.pack("<ff", 0.5, 0.25)),
    ("PatientID", 0x00100020, "UI", b"ABC\n"),
    ("PatientID", 0x00100020, "CS", b" ABC"),
    ("AccessionNumber", 0x00080050, "DS", b" 12 "),
    ("StudyDescription", 0x00081030, "CS", b" head "),
    ("SOPInstanceUID", 0x00080018, "LO", b"1.2.3\n"),
    ("SeriesNumber", 0x00200011, "LO", b" 12 "),
]
KEYWORDS = sorted({kw for kw, *_ in CASES})
TAGS = {kw: tag for kw, tag, *_ in CASES}
# the elements of every file, with the dictionary's VRs
PLAIN = {0x00080018: ("UI", b"1.2.9\0"), 0x00080050: ("SH", b"A1"),
         0x00081030: ("LO", b"chest "), 0x00100020: ("LO", b"P1"),
         0x00180050: ("DS", b"2.5 "), 0x00200011: ("IS", b"3 "), 0x00200013: ("IS", b"4 "),
         0x00280010: ("US", struct.pack("<H", 16)), 0x00280011: ("US", struct.pack("<H", 16)),
         0x00280030: ("DS", b"0.7\\0.7 ")}


def _element(tag: int, vr: str, raw: bytes) -> bytes:
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if vr in ("OB", "UN", "UT", "UC", "UR", "OW"):
        return head + vr.encode() + b"\0\0" + struct.pack("<I", len(raw)) + raw
    return head + vr.encode() + struct.pack("<H", len(raw)) + raw


def _write(path: Path, elements: dict) -> str:
    meta = b"".join(_element(t, v, raw) for t, v, raw in [
        (0x00020001, "OB", b"\0\1"), (0x00020002, "UI", SOP_CLASS),
        (0x00020003, "UI", b"1.2.3.4"), (0x00020010, "UI", EXPLICIT_LE)])
    group = _element(0x00020000, "UL", struct.pack("<I", len(meta)))
    body = b"".join(_element(t, *elements[t]) for t in sorted(elements))
    path.write_bytes(b"\0" * 128 + b"DICM" + group + meta + body)
    return str(path)


def _column_form(value, typ):
    """A reader's value in the form of the scan's column of Arrow type ``typ``."""
    if value is None or value == "":
        return None
    if str(typ).startswith("list"):
        items = list(value) if not isinstance(value, (str, bytes)) else [value]
        cast = float if "double" in str(typ) else int if "int" in str(typ) else str
        return [cast(x) for x in items]
    if "int" in str(typ):
        return int(value)
    if "double" in str(typ):
        return float(value)
    return str(value)


def _scan(paths, fallback: bool, monkeypatch):
    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fallback:
            m.setattr(batch, "_extract",
                      lambda plan, ps, *a, **kw: batch._all_fallback(plan, len(ps)))
        return batch.scan(paths, tags=KEYWORDS, workers=1)


@pytest.mark.parametrize("fallback", [False, True], ids=["nogil", "general reader"])
def test_element_with_another_vr_is_read_with_it(tmp_path, monkeypatch, fallback):
    paths = [_write(tmp_path / "plain0.dcm", PLAIN)]
    for k, (kw, tag, vr, raw) in enumerate(CASES):
        paths.append(_write(tmp_path / f"odd{k}.dcm", {**PLAIN, tag: (vr, raw)}))
    paths.append(_write(tmp_path / "plain1.dcm", PLAIN))
    table = _scan(paths, fallback, monkeypatch)
    types = {kw: table.schema.field(kw).type for kw in KEYWORDS}
    rows = table.to_pylist()
    for path, row in zip(paths, rows):
        assert row["error_type"] is None, (path, row["error_message"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, theirs = fastdicom.dcmread(path), pydicom.dcmread(path)
        for kw in KEYWORDS:
            want = _column_form(ours.get(kw), types[kw])
            assert _column_form(theirs.get(kw), types[kw]) == want, (path, kw)
            assert row[kw] == want, (path, kw, row[kw], want)


def test_the_binary_cases_are_misread_by_the_dictionary_vr():
    """Each case whose VR or dictionary VR is binary would give another value read with the
    dictionary's VR than with its own (the test above tells the two readings apart)."""
    from fastdicom import tags as _tags
    from fastdicom.values import decode_value
    binary = {"US", "SS", "UL", "SL", "FL", "FD"}
    checked = 0
    for kw, tag, vr, raw in CASES:
        dvr = _tags.dictionary_vr(tag)
        if vr not in binary and dvr not in binary:
            continue
        own = decode_value(vr, raw, little_endian=True, validation="ignore")
        try:
            dictionary = decode_value(dvr, raw, little_endian=True, validation="ignore")
        except (ValueError, UnicodeError):
            dictionary = None
        assert str(own) != str(dictionary), (kw, vr, raw)
        checked += 1
    assert checked >= 8


def _patch(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))


def test_series_reads_numbers_with_their_own_vr(tmp_path):
    """The series readers (the nogil header walk and scan_instance) read Rows written as IS
    text as dcmread does: 16, not 13873 (the text "16" as a US), so find_series gives the
    right shape and load_series the same volume as the files with US."""
    import numpy as np

    from fastdicom import testing
    from fastdicom.series import InstanceHeader, find_series, load_series, scan_instance
    _series = pytest.importorskip("fastdicom._series")
    plain = testing.write_ct_series(tmp_path / "plain", 3, 16, 16, seed=2)
    odd = testing.write_ct_series(tmp_path / "odd", 3, 16, 16, seed=2)
    for f in odd:
        _patch(f, b"\x28\x00\x10\x00US\x02\x00\x10\x00", b"\x28\x00\x10\x00IS\x02\x0016")
    assert fastdicom.dcmread(str(odd[0])).Rows == 16        # (the oracle: "16" as IS)
    for f in odd:
        assert scan_instance(str(f)).rows == 16
        # the nogil walk leaves such a file to the general path (False), as its files with
        # US are its own
        assert _series.scan_headers([str(f)], InstanceHeader)[0] is False
    assert _series.scan_headers([str(plain[0])], InstanceHeader)[0].rows == 16
    (info,) = find_series([str(tmp_path / "odd")])
    assert info.shape == (3, 16, 16)
    got = load_series(str(tmp_path / "odd")).array
    want = load_series(str(tmp_path / "plain")).array
    assert got.shape == (3, 16, 16) and np.array_equal(got, want)


def test_series_reads_text_with_its_own_vr(tmp_path):
    """A slice whose SeriesInstanceUID is written as LO ``"1.2.5\\n"`` is read as dcmread
    reads it ('1.2.5\\n', not the UID rule's '1.2.5'), by both series walks, so find_series
    does not put it with the slices of UID "1.2.5"; Modality written as LO keeps its
    leading space as dcmread keeps it."""
    from fastdicom import testing
    from fastdicom.series import InstanceHeader, find_series, scan_instance
    _series = pytest.importorskip("fastdicom._series")
    files = testing.write_ct_series(tmp_path / "s", 3, 8, 8, seed=4)
    uid = fastdicom.dcmread(str(files[0])).SeriesInstanceUID
    enc = uid.encode()
    pad = b"\0" if len(enc) % 2 else b""
    for f in files:
        # every slice: the same series UID, padded to the same length
        _patch(f, b"\x20\x00\x0e\x00UI" + struct.pack("<H", len(enc) + len(pad)) + enc + pad,
               b"\x20\x00\x0e\x00UI" + struct.pack("<H", 6) + b"1.2.5\0")
    _patch(files[0], b"\x20\x00\x0e\x00UI\x06\x001.2.5\0", b"\x20\x00\x0e\x00LO\x06\x001.2.5\n")
    _patch(files[0], b"\x08\x00\x60\x00CS\x02\x00CT", b"\x08\x00\x60\x00LO\x02\x00 C")
    odd = fastdicom.dcmread(str(files[0]))
    assert (odd.SeriesInstanceUID, odd.Modality) == ("1.2.5\n", " C")   # (the oracle)
    assert pydicom.dcmread(str(files[0])).SeriesInstanceUID == "1.2.5\n"
    h = scan_instance(str(files[0]))
    assert (h.series_uid, h.modality) == ("1.2.5\n", " C")
    assert _series.scan_headers([str(files[0])], InstanceHeader)[0] is False
    assert _series.scan_headers([str(files[1])], InstanceHeader)[0].series_uid == "1.2.5"
    found = sorted((s.SeriesInstanceUID, len(s.instances))
                   for s in find_series([str(tmp_path / "s")]))
    assert found == [("1.2.5", 2), ("1.2.5\n", 1)]


def test_raw_reader_tags_cover_what_scan_instance_reads():
    """_RawReader finds the elements with another VR among _RAW_TAGS only: every tag
    scan_instance reads through it must be one of them."""
    import inspect
    import re

    from fastdicom import series
    src = inspect.getsource(series.scan_instance)
    read = {int(t, 16) for t in re.findall(r"raw\.\w+\((0x[0-9A-Fa-f]{8})", src)}
    assert len(read) >= 25
    assert read <= {int(t) for t in series._RAW_TAGS}, sorted(map(hex, read - set(
        int(t) for t in series._RAW_TAGS)))
