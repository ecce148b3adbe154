"""UI values padded with whitespace other than spaces and NULs (tab, newline, CR, VT, FF, the
separators 0x1C-0x1F, latin-1 NEL and NBSP): ``scan`` reads them as ``dcmread`` and pydicom do.

pydicom (and the Dataset) read a UI value as ``UID()`` keeps it: the whole value loses its
trailing spaces and NULs, then each value (of a multi-valued one too) its surrounding
whitespace, ``str.strip()`` of the latin-1 text.  The scan kept the other whitespace
(``'1.2.3\\n'`` for b"1.2.3\\n"), through the nogil column finisher and through the Python
decoding alike, and find_series put a file whose SeriesInstanceUID ends with "\\n" in a series
of its own.  The files are built here byte by byte (odd and even value lengths, explicit and
implicit VR little endian); pydicom is the oracle.
"""
from __future__ import annotations

import struct
import sys
import warnings
from pathlib import Path

import pytest

import fastdicom
from fastdicom import batch, testing
from fastdicom.series import InstanceHeader, find_series, scan_instance

pydicom = pytest.importorskip("pydicom")
_series = pytest.importorskip("fastdicom._series")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import oracle  # noqa: E402  (fuzz/oracle.py: the walks against the general reader)

# what str.strip() strips of ASCII (PS3.5 allows none of it in a UID)
SPACES = ["\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x1f"]
SYNTAXES = [testing.EXPLICIT_LE, testing.IMPLICIT_LE]
SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"

# single-valued UI columns, and multi-valued ones (VM 1-n in the dictionary)
SINGLE = {"SOPClassUID": 0x00080016, "SOPInstanceUID": 0x00080018,
          "StudyInstanceUID": 0x0020000D, "SeriesInstanceUID": 0x0020000E,
          "FrameOfReferenceUID": 0x00200052}
MULTI = {"RelatedGeneralSOPClassUID": 0x0008001A, "SOPClassesInStudy": 0x00080062}
KEYWORDS = list(SINGLE) + list(MULTI)


def test_the_columns_are_what_this_test_takes_them_for():
    schema = batch.schema(tuple(KEYWORDS))
    for kw in SINGLE:
        assert str(schema.field(kw).type) == "string"
    for kw in MULTI:
        assert str(schema.field(kw).type) == "list<item: string>"
    # the set is str.strip()'s of ASCII (with space; NEL and NBSP beyond it)
    assert [c for c in map(chr, range(256)) if not c.strip()] == SPACES + [" ", "\x85", "\xa0"]


def _element(tag: int, vr: str, raw: bytes, explicit: bool) -> bytes:
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if not explicit:
        return head + struct.pack("<I", len(raw)) + raw
    if vr in ("OB", "UN"):
        return head + vr.encode() + b"\0\0" + struct.pack("<I", len(raw)) + raw
    return head + vr.encode() + struct.pack("<H", len(raw)) + raw


def _write(path, values: dict, ts=testing.EXPLICIT_LE, ts_raw: bytes | None = None,
           vrs: dict | None = None) -> str:
    """A Part 10 file of the UI ``values`` ({tag: raw bytes}, written as given, odd lengths
    too; with the explicit VR ``vrs[tag]``, UI by default), with Rows (to check the body was
    read in the right encoding)."""
    explicit = ts != testing.IMPLICIT_LE
    els = dict(values)
    els[0x00280010] = None
    vrs = vrs or {}
    body = b"".join(_element(t, "US", struct.pack("<H", 7), explicit) if t == 0x00280010
                    else _element(t, vrs.get(t, "UI"), els[t], explicit) for t in sorted(els))
    meta_ts = ts.encode() + b"\0" * (len(ts) % 2) if ts_raw is None else ts_raw
    meta = b"".join(_element(t, v, raw, True) for t, v, raw in [
        (0x00020001, "OB", b"\0\1"), (0x00020002, "UI", SOP_CLASS.encode()),
        (0x00020003, "UI", b"1.2.3.4"), (0x00020010, "UI", meta_ts)])
    group = _element(0x00020000, "UL", struct.pack("<I", len(meta)), True)
    Path(path).write_bytes(b"\0" * 128 + b"DICM" + group + meta + body)
    return str(path)


def _padded_values(c: str) -> dict:
    """Each UI column padded with ``c``: leading, trailing, both, doubled, before a trailing
    NUL or space, values of odd and of even length."""
    b = c.encode("latin-1")
    return {
        0x00080016: b + SOP_CLASS.encode(),                       # 26: even, leading
        0x00080018: b"1.2.3" + b,                                  # 6: even, trailing
        0x0020000D: b + b"1.2.34",                                 # 7: odd, leading
        0x0020000E: b + b"1.2.5" + b + b,                          # 8: even, both sides
        0x00200052: b"1.2.6" + b + b"\0",                          # 7: odd, then a NUL
        0x0008001A: b + b"1.2" + b + b"\\1.3" + b + b" \\" + b + b"1.45 ",  # each value
        0x00080062: b + b,                                         # whitespace alone
    }


EXPECTED = {"SOPClassUID": SOP_CLASS, "SOPInstanceUID": "1.2.3", "StudyInstanceUID": "1.2.34",
            "SeriesInstanceUID": "1.2.5", "FrameOfReferenceUID": "1.2.6",
            "RelatedGeneralSOPClassUID": ["1.2", "1.3", "1.45"], "SOPClassesInStudy": None}


def _all_fallback(monkeypatch):
    """Every file through scan's per-file general reader (the Python column decoding)."""
    monkeypatch.setattr(batch, "_extract",
                        lambda plan, paths, *a, **kw: batch._all_fallback(plan, len(paths)))


def _scan_rows(paths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = batch.scan(paths, tags=KEYWORDS, workers=1)
    rows = table.to_pylist()
    for row in rows:
        assert row["error_type"] is None, row
    return rows


def _scan_both(paths, monkeypatch):
    """The scan's rows of ``paths`` through its nogil walk, then through its general reader."""
    fast = _scan_rows(paths)
    with monkeypatch.context() as m:
        _all_fallback(m)
        return fast, _scan_rows(paths)


def _as_column(value, multi):
    """A Dataset's or pydicom's value in the form of a scan column."""
    if value is None:
        return None
    if not isinstance(value, str):      # a MultiValue (pydicom's is not a list)
        return [str(v) for v in value]
    value = str(value)
    if multi:
        return [value] if value != "" else None     # no value: null (as an empty one)
    return value


def _readers(path):
    """{keyword: value} of dcmread and of pydicom, in scan's column form."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [{kw: _as_column(ds.get(kw), kw in MULTI) for kw in KEYWORDS}
                for ds in (fastdicom.dcmread(path), pydicom.dcmread(path))]


def _nogil_columns(paths, tags):
    """Whether scan's nogil walk read every file and its column finisher every UI column
    of ``tags`` (none left to the Python decoding)."""
    plan = batch._scan_plan(tuple(KEYWORDS), False)
    r = batch._extract(plan, paths, False)
    decoded = [r["decoded"][plan.pos[t]] for t in tags]
    return bool((r["status"] == 0).all()) and all(d is not None and not d[0] for d in decoded)


def _check(paths, monkeypatch, expected=None, nogil=True):
    """scan (nogil path, then the Python fallback) == dcmread == pydicom for every column;
    ``nogil``: the first read is the nogil one, column finishing included."""
    assert _nogil_columns(paths, list(SINGLE.values()) + list(MULTI.values())) == nogil
    fast, general = _scan_both(paths, monkeypatch)
    for path, f, g in zip(paths, fast, general):
        ours, theirs = _readers(path)
        assert ours == theirs, path
        for kw in KEYWORDS:
            assert (f[kw], g[kw]) == (ours[kw], ours[kw]), (path, kw)
            if expected is not None:
                assert f[kw] == expected[kw], (path, kw)
    return fast


@pytest.mark.parametrize("ts", SYNTAXES, ids=["explicit", "implicit"])
def test_uid_columns_lose_surrounding_whitespace(tmp_path, monkeypatch, ts):
    paths = [_write(tmp_path / f"f{k}.dcm", _padded_values(c), ts)
             for k, c in enumerate(SPACES)]
    _check(paths, monkeypatch, EXPECTED)


@pytest.mark.parametrize("ts", SYNTAXES, ids=["explicit", "implicit"])
def test_uid_columns_decoded_value_by_value_in_python(tmp_path, monkeypatch, ts):
    """A file whose UIDs hold bytes beyond ASCII sends its columns (all rows of its chunk) to
    the per-value Python decoding (_py_value); latin-1 NEL and NBSP are whitespace there
    (the nogil finisher strips ASCII only and leaves such values to it)."""
    paths = [_write(tmp_path / f"f{k}.dcm", _padded_values(c), ts)
             for k, c in enumerate(SPACES + ["\x85", "\xa0"])]
    odd = {t: b"1.2\xe97" + b"\n" for t in SINGLE.values()}
    odd.update({t: b"\xa01.2\xe97\\1.3\x85 " for t in MULTI.values()})
    paths.append(_write(tmp_path / "odd.dcm", odd, ts))
    rows = _check(paths, monkeypatch, nogil=False)
    tags = list(SINGLE.values()) + list(MULTI.values())
    assert _nogil_columns(paths[:len(SPACES)], tags)
    assert not _nogil_columns(paths[len(SPACES):len(SPACES) + 1], tags)
    assert not _nogil_columns(paths[len(SPACES) + 1:len(SPACES) + 2], tags)
    for row in rows[:-1]:
        assert {kw: row[kw] for kw in KEYWORDS} == EXPECTED
    assert rows[-1]["SOPInstanceUID"] == "1.2\xe97"
    assert rows[-1]["SOPClassesInStudy"] == ["1.2\xe97", "1.3"]


@pytest.mark.parametrize("ts", SYNTAXES, ids=["explicit", "implicit"])
def test_nul_and_whitespace_together_as_pydicom_reads_them(tmp_path, monkeypatch, ts):
    """Only the whole value's trailing spaces and NULs go before the whitespace: a NUL kept
    by pydicom (leading, inside a value, before whitespace) is kept by the scan too."""
    cases = [b"\x001.2.3\n", b"1.2.3\x00\n", b"1.2.3\n\x00", b" \t1.2 \x00", b"\n \x00 ",
             b"\x00\n", b"\t\x00\t", b"1.2\x00\\1.3\n", b"1.2\n\\\x001.3\x00 ", b"\\\n",
             b" \\ ", b"1.2\\\x00", b"\r\n\r\n"]
    paths = []
    for k, raw in enumerate(cases):
        values = {t: raw for t in list(SINGLE.values()) + list(MULTI.values())
                  if b"\\" not in raw or t in MULTI.values()}
        paths.append(_write(tmp_path / f"f{k}.dcm", values, ts))
    rows = _check(paths, monkeypatch)
    assert rows[0]["SOPInstanceUID"] == "\x001.2.3"
    assert rows[1]["SOPInstanceUID"] == "1.2.3\x00"
    assert rows[2]["SOPInstanceUID"] == "1.2.3"
    assert rows[5]["SOPClassesInStudy"] == ["\x00"]
    assert rows[7]["SOPClassesInStudy"] == ["1.2\x00", "1.3"]
    assert rows[12]["SOPInstanceUID"] == "" and rows[12]["SOPClassesInStudy"] is None


@pytest.mark.parametrize("syntax", [testing.EXPLICIT_LE, testing.IMPLICIT_LE,
                                    testing.EXPLICIT_BE, testing.DEFLATED_LE])
@pytest.mark.parametrize("pad", ["{}\n", "{} \t", "\t {}", "\r\n{}\x1f\x00"])
def test_transfer_syntax_with_whitespace(tmp_path, syntax, pad):
    """The transfer_syntax column, and the encoding the walk reads the body with, follow the
    Transfer Syntax UID as the general reader reads it."""
    raw = pad.format(syntax).encode()
    p = tmp_path / "f.dcm"
    els = [(0x00080016, "UI", SOP_CLASS), (0x00080018, "UI", b"1.2.3\n"),
           (0x00280010, "US", 7)]
    testing.write_file(p, els, transfer_syntax=syntax)
    data = p.read_bytes()
    old = testing.encode_element(0x00020010, "UI", syntax)
    new = testing.encode_element(0x00020010, "UI", raw)
    assert data.count(old) == 1
    start = data.index(b"\x02\x00\x00\x00UL")
    length = struct.unpack("<I", data[start + 8:start + 12])[0] + len(new) - len(old)
    data = data.replace(old, new)
    p.write_bytes(data[:start + 8] + struct.pack("<I", length) + data[start + 12:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = fastdicom.dcmread(p)
        theirs = pydicom.dcmread(p)
        row = batch.scan([str(p)], tags=["SOPInstanceUID", "Rows"]).to_pylist()[0]
    assert str(ds.file_meta.TransferSyntaxUID) == str(theirs.file_meta.TransferSyntaxUID) \
        == syntax
    assert (row["transfer_syntax"], row["SOPInstanceUID"], row["Rows"]) == \
        (syntax, "1.2.3", 7)
    plan = batch._scan_plan(("SOPInstanceUID", "Rows"), False)
    assert batch._extract(plan, [str(p)], False)["status"].tolist() == [0]   # the nogil walk
    assert oracle.walks_agree(p) is not None


def _ct_files(directory, n, series_raw, study_raw, for_raw, ts=testing.EXPLICIT_LE):
    """``n`` slices of one CT series; slice k's SeriesInstanceUID, StudyInstanceUID and
    FrameOfReferenceUID replaced by ``series_raw(uid, k)`` etc. (raw bytes)."""
    paths = []
    for k in range(n):
        els = testing.ct_instance_elements(rows=8, columns=8, index=k, n_slices=n,
                                           instance_number=k + 1, sequences=False,
                                           private=False)
        out = []
        for el in els:
            tag = el[0]
            for t, fn in ((0x0020000E, series_raw), (0x0020000D, study_raw),
                          (0x00200052, for_raw)):
                if tag == t:
                    el = (tag, "UI", fn(str(el[2]), k))
            out.append(el)
        p = Path(directory) / f"IM{k}.dcm"
        testing.write_file(p, out, transfer_syntax=ts)
        paths.append(p)
    return paths


@pytest.mark.parametrize("ts", SYNTAXES, ids=["explicit", "implicit"])
@pytest.mark.parametrize("c", SPACES + [" "])
def test_find_series_groups_as_dcmread_reads_the_uids(tmp_path, monkeypatch, ts, c):
    """A slice whose SeriesInstanceUID (StudyInstanceUID, FrameOfReferenceUID) is padded with
    whitespace is in the same series as the others, on the nogil header walk and on the
    general path alike, under the UIDs dcmread reads."""
    import fastdicom.series as series_module
    b = c.encode()
    paths = _ct_files(tmp_path, 4,
                      lambda u, k: u.encode() + (b if k == 1 else b""),
                      lambda u, k: (b if k == 2 else b"") + u.encode(),
                      lambda u, k: (b + u.encode() + b + b"\0") if k == 3 else u.encode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dss = [fastdicom.dcmread(p) for p in paths]
    uids = {(str(d.StudyInstanceUID), str(d.SeriesInstanceUID), str(d.FrameOfReferenceUID))
            for d in dss}
    assert len(uids) == 1
    study, series, frame = uids.pop()
    for p, d in zip(paths, dss):
        fast = _series.scan_headers([str(p)], InstanceHeader)[0]
        assert fast is not False, p          # the nogil walk took it
        general = scan_instance(p)
        assert (fast.study_uid, fast.series_uid, fast.frame_of_reference, fast.sop_uid) == \
            (general.study_uid, general.series_uid, general.frame_of_reference,
             general.sop_uid) == (study, series, frame, str(d.SOPInstanceUID))
        assert oracle.walks_agree(p)
    found = find_series(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(series_module, "_series", None)
        general_found = find_series(tmp_path)
    for stacks in (found, general_found):
        assert len(stacks) == 1
        s = stacks[0]
        assert (s.StudyInstanceUID, s.SeriesInstanceUID, s.num_instances) == \
            (study, series, 4)


BYTES = [b"1", b"2", b".", b"\\", b" ", b"\x00", b"\t", b"\n", b"\r", b"\x0b", b"\x1c", b"\x1f",
         b"\x85", b"\xa0", b"\xe9"]


def _random_uid(rng, backslash=True) -> bytes:
    raw = b"".join(rng.choice(BYTES) for _ in range(rng.randint(0, 8)))
    return raw if backslash else raw.replace(b"\\", b"")


@pytest.mark.parametrize("seed", [1, 2])
def test_random_uid_bytes_as_pydicom_reads_them(tmp_path, monkeypatch, seed):
    """Random UI values of digits, dots, backslashes, spaces, NULs, whitespace and bytes beyond
    ASCII: scan (nogil and fallback) == dcmread == pydicom (single-valued columns without a
    backslash: a Dataset reads a list there)."""
    import random
    rng = random.Random(seed)
    for it in range(12):
        paths = []
        for k in range(8):
            values = {t: _random_uid(rng, False) for t in SINGLE.values()}
            values.update({t: _random_uid(rng) for t in MULTI.values()})
            paths.append(_write(tmp_path / f"f{it}_{k}.dcm", values, rng.choice(SYNTAXES)))
        fast, general = _scan_both(paths, monkeypatch)
        for path, f, g in zip(paths, fast, general):
            ours, theirs = _readers(path)
            for kw in KEYWORDS:
                assert f[kw] == g[kw] == ours[kw] == theirs[kw], (path, kw)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_uid_bytes_walks_agree_with_the_general_readers(tmp_path, seed):
    """The same bytes in the UIDs of a CT slice (single-valued ones with backslashes too):
    scan's walk and the series walk read them as their general readers do (fuzz/oracle.py)."""
    import random
    rng = random.Random(seed)
    p = tmp_path / "f.dcm"
    for _ in range(60):
        els = []
        for el in testing.ct_instance_elements(rows=4, columns=4, sequences=False,
                                               private=False):
            if el[0] in (0x00080016, 0x00080018, 0x0020000D, 0x0020000E, 0x00200052):
                el = (el[0], "UI", _random_uid(rng))
            els.append(el)
        testing.write_file(p, els, transfer_syntax=rng.choice(SYNTAXES + [testing.EXPLICIT_BE]),
                           sop_instance_uid="1.2.3")
        oracle.walks_agree(p)


# UI tags written with another text VR, as the fuzzer found them: the general reader (and
# pydicom) read such an element with its own VR's rules, so its whitespace stays
OTHER_VR_CASES = [
    ("LO", 0x00080018, b"1.2.3\n"), ("SH", 0x00080018, b"\t1.2 "), ("SH", 0x0020000E, b"\x0c"),
    ("LO", 0x0020000D, b" 1.2.9"), ("ST", 0x00200052, b"\x85\\\xa0 \x00.1"),
    ("CS", 0x0008001A, b"1.2\\ \x00\t\x00"), ("SH", 0x0008001A, b"\x0c"),
    ("LO", 0x00080062, b"1.2\\\n1.3 "), ("UN", 0x00080018, b" 1.2.3\n\0"),
]


@pytest.mark.parametrize("vr,tag,raw", OTHER_VR_CASES)
def test_ui_tag_with_another_vr_is_read_with_that_vr(tmp_path, monkeypatch, vr, tag, raw):
    """A UI tag whose element carries another explicit VR (LO, SH, CS, ST) keeps what that
    VR keeps (scan stripped it as a UID: '1.2.3' where dcmread and pydicom read '1.2.3\\n');
    UN is read as the dictionary's UI.  In a chunk beside files with the UI VR, through
    the nogil walk and the general reader alike."""
    plain = {t: b"1.2.7" for t in SINGLE.values()}
    paths = [_write(tmp_path / "a.dcm", plain),
             _write(tmp_path / "b.dcm", {**plain, tag: raw}, vrs={tag: vr}),
             _write(tmp_path / "c.dcm", {**plain, 0x0008001A: b" 1.2.8\t"})]
    fast, general = _scan_both(paths, monkeypatch)
    for path, f, g in zip(paths, fast, general):
        ours, theirs = _readers(path)
        assert ours == theirs, path
        for kw in KEYWORDS:
            assert f[kw] == g[kw] == ours[kw], (path, kw)
    kw = {v: k for k, v in {**SINGLE, **MULTI}.items()}[tag]
    if vr != "UN" and raw.strip(b" \x00") != raw.strip():
        # (the cases whose whitespace a UID would lose)
        assert fast[1][kw] not in (None, "", [])
