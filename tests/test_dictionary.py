"""Tests for the generated data dictionary, fastdicom.tags and fastdicom.uids.

pydicom is used only as an independent oracle.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastdicom import _dictionary as D
from fastdicom import tags, uids

REPO = Path(__file__).resolve().parents[1]
DATA = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()
DICT_DIR = DATA / "dictionary"
GENERATOR = REPO / "tools" / "gen_dictionary.py"
GENERATED = ("_dictionary.py", "_dict_sq.pxi")


def _need_data():
    if not (DICT_DIR / "elements.json").is_file():
        msg = f"shared dictionary data not found at {DICT_DIR}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def data_dir():
    _need_data()
    return DICT_DIR


# ---------------------------------------------------------------------------
# generated files
# ---------------------------------------------------------------------------

def test_generated_files_up_to_date(data_dir, tmp_path):
    subprocess.run([sys.executable, str(GENERATOR), "--source", str(data_dir), "--out-dir", str(tmp_path)],
                   check=True, capture_output=True, cwd=REPO)
    for name in GENERATED:
        fresh = (tmp_path / name).read_bytes()
        committed = (REPO / "fastdicom" / name).read_bytes()
        assert fresh == committed, f"fastdicom/{name} is stale: run python tools/gen_dictionary.py"


def test_generator_deterministic(data_dir, tmp_path):
    outs = []
    for sub in ("a", "b"):
        out = tmp_path / sub
        subprocess.run([sys.executable, str(GENERATOR), "--source", str(data_dir), "--out-dir", str(out)],
                       check=True, capture_output=True, cwd=REPO)
        outs.append([(out / n).read_bytes() for n in GENERATED])
    assert outs[0] == outs[1]


@pytest.mark.parametrize("name", GENERATED)
def test_generated_marker(name):
    first = (REPO / "fastdicom" / name).read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#")
    assert "GENERATED" in first
    assert "tools/gen_dictionary.py" in first
    assert "python tools/gen_dictionary.py" in first


def test_table_shapes():
    assert len(D.ELEMENTS) > 5000
    for tag, entry in D.ELEMENTS.items():
        assert isinstance(tag, int) and 0 <= tag <= 0xFFFFFFFF
        vr, vm, name, retired, keyword = entry
        assert isinstance(vr, str) and isinstance(vm, str) and isinstance(name, str)
        assert isinstance(retired, bool) and isinstance(keyword, str)
        assert not tag & 0x10000, "public dictionary must not hold odd groups"
    for m in D.MASKS:
        assert len(m) == 7 and m[1] & ~m[0] == 0
    pops = [bin(m[0]).count("1") for m in D.MASKS]
    assert pops == sorted(pops, reverse=True), "more specific masks first"
    assert D.ELEMENTS[0xFFFEE000][0] == "NONE"
    assert D.ELEMENTS[0x00280106][0] == "US or SS"
    assert D.ELEMENTS[0x7FE00010][0] == "OB or OW"
    assert "US or SS or OW" in {e[0] for e in D.ELEMENTS.values()}
    for uid, entry in D.UIDS.items():
        assert len(entry) == 5 and isinstance(entry[4], bool)
    for uid, p in D.TRANSFER_SYNTAXES.items():
        assert set(p) == {"explicit_vr", "little_endian", "deflated", "encapsulated", "codec", "lossy",
                          "fragmentable", "retired", "private", "keyword", "name"}
    assert D.CHARACTER_SETS["ISO_IR 100"]["python_codec"]
    assert D.CHARACTER_SETS["ISO_IR 100"]["defined_term"] == "ISO_IR 100"


def test_sq_pxi_matches_elements():
    text = (REPO / "fastdicom" / "_dict_sq.pxi").read_text(encoding="utf-8")
    m = re.search(r"static const uint32_t fastdicom_dict_sq_tags\[(\d+)\] = \{(.*?)\};", text, re.S)
    assert m
    arr = [int(x, 16) for x in re.findall(r"0x([0-9A-F]{8})u", m.group(2))]
    assert len(arr) == int(m.group(1))
    assert arr == sorted(t for t, e in D.ELEMENTS.items() if e[0] == "SQ")
    assert f"_N_SQ_TAGS = {len(arr)}" in text
    assert "cimport" not in "\n".join(line for line in text.splitlines() if not line.startswith("#"))


@pytest.mark.slow
def test_sq_pxi_compiles(tmp_path):
    pytest.importorskip("Cython")
    pyx = tmp_path / "sqcheck.pyx"
    pyx.write_text(
        "# cython: language_level=3\n"
        "from libc.stdint cimport uint32_t\n"
        f'include "{REPO / "fastdicom" / "_dict_sq.pxi"}"\n'
        "def is_sq(uint32_t tag):\n"
        "    cdef bint r\n"
        "    with nogil:\n"
        "        r = dict_is_sq(tag)\n"
        "    return r\n"
    )
    proc = subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-q", str(pyx)],
                          capture_output=True, text=True, cwd=tmp_path)
    if proc.returncode != 0:
        if "error: command" in proc.stderr and "gcc" in proc.stderr:
            pytest.skip("no C compiler")
        pytest.fail(proc.stdout + proc.stderr)
    code = (
        "import sqcheck, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from fastdicom._dictionary import ELEMENTS\n"
        "bad = [t for t, e in ELEMENTS.items() if sqcheck.is_sq(t) != (e[0] == 'SQ')]\n"
        "assert not bad, bad[:10]\n"
        "assert sqcheck.is_sq(0x50102600) and not sqcheck.is_sq(0x50112600)\n"
        "assert not sqcheck.is_sq(0) and not sqcheck.is_sq(0xFFFFFFFF)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


# ---------------------------------------------------------------------------
# public dictionary vs pydicom
# ---------------------------------------------------------------------------

# Documented differences between our 2024d/2026b tables and pydicom 3.0.2's
# (older) bundled dictionary (see ../shared/data/dictionary/SOURCES.md):
KNOWN_KEYWORD_DIFFS = {
    # renamed in the 2024 editions (pydicom 3.0.2 predates the rename)
    0x003A0320: ("SummarizedFilterLookupTableSequence", "SummarizedFilterLookupTable"),
    0x003A0325: ("AnalogFilterTypeCodeSequence", "AnalogFilterType"),
}
KNOWN_RETIRED_DIFFS = {
    0x00102160,  # EthnicGroup: retired in 2026b, applied from DCMTK (SOURCES.md)
}


def test_elements_vs_pydicom():
    dd = pytest.importorskip("pydicom._dicom_dict")
    common = [t for t in D.ELEMENTS if t in dd.DicomDictionary]
    assert len(common) > 5000
    missing = [t for t in dd.DicomDictionary if t not in D.ELEMENTS]
    assert not missing, [hex(t) for t in missing]
    bad = []
    for t in common:
        vr, vm, _name, retired, kw = D.ELEMENTS[t]
        pvr, pvm, _pname, pret, pkw = dd.DicomDictionary[t]
        if (vr, vm) != (pvr, pvm):
            bad.append((hex(t), "vr/vm", (vr, vm), (pvr, pvm)))
        if kw != pkw and KNOWN_KEYWORD_DIFFS.get(t) != (kw, pkw):
            bad.append((hex(t), "keyword", kw, pkw))
        if retired != (pret == "Retired") and t not in KNOWN_RETIRED_DIFFS:
            bad.append((hex(t), "retired", retired, pret))
    assert not bad, bad


def test_functions_vs_pydicom_datadict():
    datadict = pytest.importorskip("pydicom.datadict")
    for t in list(D.ELEMENTS)[::7]:
        if t in KNOWN_KEYWORD_DIFFS:
            continue
        try:
            pvr = datadict.dictionary_VR(t)
        except KeyError:
            continue
        assert tags.dictionary_vr(t) == pvr
        assert tags.dictionary_vm(t) == datadict.dictionary_VM(t)
        assert tags.keyword_for_tag(t) == datadict.keyword_for_tag(t)
        kw = datadict.keyword_for_tag(t)
        if kw:
            assert tags.tag_for_keyword(kw) == datadict.tag_for_keyword(kw) == t


def _mask_examples(mask_x: str):
    for fill in ("0", "2", "A", "E"):
        yield int(mask_x.replace("x", fill), 16)


def test_masks_vs_pydicom():
    dd = pytest.importorskip("pydicom._dicom_dict")
    datadict = pytest.importorskip("pydicom.datadict")
    ours = {(m[0], m[1]) for m in D.MASKS}
    assert len(ours) == len(dd.RepeatersDictionary)
    for mask_x, pentry in dd.RepeatersDictionary.items():
        for t in _mask_examples(mask_x):
            if t & 0x10000:
                continue
            assert tags.keyword_for_tag(t) == datadict.keyword_for_tag(t)
            if t in D.ELEMENTS:  # e.g. (0028,0420) is an exact element, shadowing 002804x0
                continue
            entry = tags.dictionary_entry(t)
            assert entry is not None, (mask_x, hex(t))
            assert entry[0] == pentry[0] and entry[1] == pentry[1] and entry[4] == pentry[4], mask_x
            assert tags.dictionary_name(t) == datadict.dictionary_description(t)


def test_mask_lookups():
    assert tags.keyword_for_tag(0x60023000) == "OverlayData"
    assert tags.dictionary_vr(0x60023000) == "OB or OW"
    assert tags.keyword_for_tag(0x601E0010) == "OverlayRows"
    assert tags.keyword_for_tag(0x50100010) == "NumberOfPoints"  # curve group 50xx (retired)
    assert tags.dictionary_entry(0x50100010)[3] is True
    assert tags.dictionary_vr(0x50002600) == "SQ"
    assert tags.keyword_for_tag(0x00280410) == "RowsForNthOrderCoefficients"
    assert tags.keyword_for_tag(0x10001230) == "EscapeTriplet"
    assert tags.keyword_for_tag(0x7F020010) == "VariablePixelData"
    # odd groups never match public repeaters (pydicom behaves the same)
    assert tags.dictionary_entry(0x60013000) is None
    assert tags.keyword_for_tag(0x60013000) == ""
    # mask keywords map to the base value (pydicom's tag_for_keyword returns None here)
    assert tags.tag_for_keyword("OverlayData") == 0x60003000
    assert tags.tag_for_keyword("CurveData") == 0x50003000
    assert tags.tag_for_keyword("PatientName") == 0x00100010
    assert tags.tag_for_keyword("NoSuchKeyword") is None
    assert tags.tag_for_keyword("") is None


# ---------------------------------------------------------------------------
# names, private helpers
# ---------------------------------------------------------------------------

NAME_CASES = [0x00100010, 0x00110010, 0x00111001, 0x00110000, 0x00090005, 0x00180000, 0x12340000,
              0x12340010, 0x60023000, 0x60013000, 0x00080202, 0xFFFEE000, 0x7FE00010, 0x00291234]


@pytest.mark.parametrize("tag", NAME_CASES)
def test_dictionary_name_matches_dataelement_name(tag):
    dataelem = pytest.importorskip("pydicom.dataelem")
    assert tags.dictionary_name(tag) == dataelem.DataElement(tag, "UN", b"").name


def test_dictionary_name_private_with_creator():
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.Dataset()
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    ds.add_new(0x00191005, "LT", "x")
    assert tags.dictionary_name(0x00191005, "GEMS_ACQU_01") == ds[0x00191005].name
    assert tags.dictionary_name(0x001910FF, "GEMS_ACQU_01") == "Private tag data"
    assert tags.dictionary_name(0x00191005, "No Such Creator") == "Private tag data"


def test_private_helpers():
    assert tags.is_private(0x00091001) and not tags.is_private(0x00100010)
    assert tags.is_private_creator(0x00090010) and tags.is_private_creator(0x000900FF)
    assert not tags.is_private_creator(0x0009000F) and not tags.is_private_creator(0x00091000)
    assert not tags.is_private_creator(0x00100010)
    assert tags.private_creator_tag(0x00291234) == 0x00290012
    assert tags.private_creator_tag(0x0029FF01) == 0x002900FF
    assert tags.is_group_length(0x00080000) and not tags.is_group_length(0x00080001)
    assert tags.tag_repr(0x7FE00010) == "(7FE0,0010)"
    assert tags.tag_repr(0x0008000A) == "(0008,000A)"


def _private_examples():
    """(creator, tag) samples covering every entry of every private table."""
    for creator, table in D.PRIVATE.items():
        for key in table:
            group, low = key >> 16, key & 0xFF
            for block in (0x10, 0x42):
                yield creator, (group << 16) | (block << 8) | low
    for creator, table in D.PRIVATE_EXACT.items():
        for key in table:
            yield creator, key
    for creator, masks in D.PRIVATE_MASKS.items():
        for m in masks:
            yield creator, m[1] | 0x00011000


def test_private_entries_vs_pydicom():
    datadict = pytest.importorskip("pydicom.datadict")
    n = 0
    bad = []
    for creator, tag in _private_examples():
        try:
            pvr, pvm, pname, pret = datadict.get_private_entry(tag, creator)
        except KeyError:
            bad.append((creator, hex(tag), "pydicom: missing"))
            continue
        entry = tags.private_dictionary_entry(tag, creator)
        if entry != (pvr, pvm, pname, bool(pret)):
            bad.append((creator, hex(tag), entry, (pvr, pvm, pname, pret)))
        n += 1
    assert not bad, bad[:20]
    assert n > 10000


def test_private_known_entries():
    assert tags.private_dictionary_entry(0x00191005, "GEMS_ACQU_01")[0] == "LT"
    assert tags.private_dictionary_entry(0x3711100C, "A.L.I. Technologies, Inc.")[2] == "Original Study UID"
    assert tags.private_dictionary_entry(0x00290001, "CANON_MEC_MR3")[0] == "SQ"  # explicit element
    assert tags.private_dictionary_entry(0x600110A0, "PAPYRUS 3.0")[2] == "Label"  # 60xx group wildcard
    assert tags.private_dictionary_entry(0x0027A0A3, "FDMS 1.0")[0] == "US or SS"
    assert tags.private_dictionary_entry(0x00191005, "no such creator") is None
    assert tags.private_dictionary_entry(0x001910FE, "GEMS_ACQU_01") is None


# ---------------------------------------------------------------------------
# parse_tag
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    0x00100010, (0x0010, 0x0010), [0x10, 0x10], ("0010", "0010"), "PatientName", "00100010",
    "(0010,0010)", "(0010, 0010)", "0010,0010", "0x00100010", " 00100010 ",
])
def test_parse_tag_forms(value):
    assert tags.parse_tag(value) == 0x00100010


def test_parse_tag_misc():
    assert tags.parse_tag("OverlayData") == 0x60003000
    assert tags.parse_tag("(7fe0,0010)") == 0x7FE00010
    assert tags.parse_tag("FFFEE000") == 0xFFFEE000
    # the column name scan gives a tag without a keyword reads back as that tag
    assert tags.parse_tag("x00091001") == 0x00091001


def test_scan_column_names_round_trip_as_tags(tmp_path):
    from fastdicom import scan, testing
    testing.write_ct_series(tmp_path, 1, 8, 8)
    first = scan(tmp_path, ["(0009,1001)", 0x00091002, "Rows"])
    names = first.column_names[3:6]
    assert names == ["x00091001", "x00091002", "Rows"]
    again = scan(tmp_path, names)
    assert again.select(names).equals(first.select(names))


@pytest.mark.parametrize("value", ["NoSuchKeyword", "PatientNam", "x0009100", "x000910010"])
def test_parse_tag_unknown_keyword(value):
    with pytest.raises(KeyError):
        tags.parse_tag(value)


@pytest.mark.parametrize("value", [
    -1, 0x100000000, (1, 2, 3), (0x10000, 0), (1.5, 2), "", "12345", "(0010,00100)", "zz-top", None, 1.0, True,
])
def test_parse_tag_invalid(value):
    with pytest.raises(ValueError):
        tags.parse_tag(value)


# ---------------------------------------------------------------------------
# UIDs
# ---------------------------------------------------------------------------

# Transfer syntaxes whose data-driven properties differ from pydicom 3.0.2's
# hard-coded rules (documented in fastdicom/uids.py).
NOT_ENCAPSULATED = {
    "1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.204",
    "1.2.840.10008.1.2.4.205", "1.2.840.10008.1.2.6.1", "1.2.840.10008.1.2.6.2",
    "1.2.840.10008.1.2.7.1", "1.2.840.10008.1.2.7.2", "1.2.840.10008.1.2.7.3",
    "1.2.840.10008.1.20",
}
DEFLATED_JPIP = {"1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"}
PAPYRUS_IMPLICIT = "1.2.840.10008.1.20"


def test_transfer_syntaxes_vs_pydicom():
    puid = pytest.importorskip("pydicom.uid")
    checked = 0
    for uid_str in D.TRANSFER_SYNTAXES:
        ours = uids.UID(uid_str)
        assert ours.is_transfer_syntax
        theirs = puid.UID(uid_str)
        if uid_str not in puid.UID_dictionary:
            # JPEG XL, Deflated Image Frame Compression: newer than pydicom 3.0.2;
            # GE private implicit VR LE / big-endian pixel data: not in pydicom's table
            assert ours.name == D.TRANSFER_SYNTAXES[uid_str]["name"] != uid_str
            continue
        assert ours.name == theirs.name
        assert ours.keyword == theirs.keyword
        assert ours.type == theirs.type
        assert ours.is_retired == theirs.is_retired
        assert ours.is_transfer_syntax == theirs.is_transfer_syntax
        assert ours.is_little_endian == theirs.is_little_endian
        assert ours.is_implicit_VR == theirs.is_implicit_VR or uid_str == PAPYRUS_IMPLICIT
        assert ours.is_deflated == theirs.is_deflated or uid_str in DEFLATED_JPIP
        if uid_str in NOT_ENCAPSULATED:
            assert not ours.is_encapsulated and theirs.is_encapsulated
        else:
            assert ours.is_encapsulated == theirs.is_encapsulated
            assert ours.is_compressed == theirs.is_compressed
        checked += 1
    assert checked >= 55


def test_uid_names_vs_pydicom():
    puid = pytest.importorskip("pydicom.uid")
    for uid_str in D.UIDS:
        if uid_str in puid.UID_dictionary:
            ours, theirs = uids.UID(uid_str), puid.UID(uid_str)
            assert (ours.name, ours.keyword, ours.type, ours.is_retired) == \
                   (theirs.name, theirs.keyword, theirs.type, theirs.is_retired), uid_str


def test_uid_basics():
    u = uids.UID("1.2.3.4\x00")
    assert u == "1.2.3.4" and isinstance(u, str)
    assert u.name == "1.2.3.4" and u.keyword == "" and u.type == "" and not u.is_retired
    assert not u.is_transfer_syntax and u.is_private
    with pytest.raises(ValueError):
        u.is_little_endian
    assert uids.UID("1.2.840.10008.5.1.4.1.1.2").name == "CT Image Storage"
    assert uids.ExplicitVRBigEndian.is_retired
    assert not uids.ExplicitVRBigEndian.is_little_endian
    assert uids.ImplicitVRLittleEndian.is_implicit_VR
    assert uids.DeflatedExplicitVRLittleEndian.is_deflated
    assert uids.JPEGBaseline8Bit.is_compressed and uids.JPEGBaseline8Bit.is_encapsulated
    ge = uids.UID("1.2.840.113619.5.2")
    assert ge.is_transfer_syntax and ge.is_implicit_VR and ge.is_little_endian and ge.is_private


def test_transfer_syntax_constants():
    expected = {
        "ImplicitVRLittleEndian": "1.2.840.10008.1.2",
        "ExplicitVRLittleEndian": "1.2.840.10008.1.2.1",
        "DeflatedExplicitVRLittleEndian": "1.2.840.10008.1.2.1.99",
        "ExplicitVRBigEndian": "1.2.840.10008.1.2.2",
        "RLELossless": "1.2.840.10008.1.2.5",
        "JPEGBaseline8Bit": "1.2.840.10008.1.2.4.50",
        "JPEGExtended12Bit": "1.2.840.10008.1.2.4.51",
        "JPEGLossless": "1.2.840.10008.1.2.4.57",
        "JPEGLosslessSV1": "1.2.840.10008.1.2.4.70",
        "JPEGLSLossless": "1.2.840.10008.1.2.4.80",
        "JPEGLSNearLossless": "1.2.840.10008.1.2.4.81",
        "JPEG2000Lossless": "1.2.840.10008.1.2.4.90",
        "JPEG2000": "1.2.840.10008.1.2.4.91",
        "HTJ2KLossless": "1.2.840.10008.1.2.4.201",
        "HTJ2KLosslessRPCL": "1.2.840.10008.1.2.4.202",
        "HTJ2K": "1.2.840.10008.1.2.4.203",
        "JPEGXLLossless": "1.2.840.10008.1.2.4.110",
        "JPEGXLJPEGRecompression": "1.2.840.10008.1.2.4.111",
        "JPEGXL": "1.2.840.10008.1.2.4.112",
    }
    for kw, uid_str in expected.items():
        const = getattr(uids, kw)
        assert isinstance(const, uids.UID) and const == uid_str
        assert const.keyword == kw  # cross-check against uids.json / transfer_syntaxes.json
        assert D.TRANSFER_SYNTAXES[uid_str]["keyword"] == kw


def test_transfer_syntax_info():
    info = uids.transfer_syntax_info("1.2.840.10008.1.2.4.50")
    assert info == uids.TransferSyntaxInfo(
        uid="1.2.840.10008.1.2.4.50", name=D.TRANSFER_SYNTAXES["1.2.840.10008.1.2.4.50"]["name"],
        explicit_vr=True, little_endian=True, deflated=False, encapsulated=True,
        codec="jpeg-baseline", lossy="yes", retired=False, private=False)
    assert uids.transfer_syntax_info("1.2.840.10008.1.2\x00").explicit_vr is False
    assert uids.transfer_syntax_info("1.2.3") is None
    with pytest.raises(AttributeError):
        info.uid = "x"
