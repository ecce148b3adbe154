"""fastdicom.charset gives the same strings as pydicom 3 (used here as a test-only oracle)."""
from __future__ import annotations

import warnings

import pytest

from fastdicom.charset import (
    DEFAULT_ENCODING, PN_DELIMITERS, TEXT_DELIMITERS, PersonName, convert_encodings,
    decode_bytes, decode_person_name, decode_text, split_character_set,
)
from fastdicom.errors import DicomError, DicomWarning, MalformedElementError

pydicom = pytest.importorskip("pydicom")
from pydicom import charset as pd_charset  # noqa: E402
from pydicom.dataelem import RawDataElement  # noqa: E402
from pydicom.multival import MultiValue  # noqa: E402
from pydicom.valuerep import PN_DELIMS, TEXT_VR_DELIMS  # noqa: E402
from pydicom.valuerep import PersonName as PdPersonName  # noqa: E402

from _data import CORPUS, require_shared  # noqa: E402


def _require_data() -> None:
    require_shared()


def _corpus_files() -> list:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".tsv", ".md"))


def pd_decode(value, encodings, delims):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd_charset.decode_bytes(value, list(encodings), delims)


def ours_quiet(value, encodings, delims):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return decode_bytes(value, encodings, delims)


# --------------------------------------------------------------------------- convert_encodings

@pytest.mark.parametrize("value, expected", [
    (None, ["iso8859"]),
    ("", ["iso8859"]),
    ([], ["iso8859"]),
    ("ISO_IR 100", ["latin_1"]),
    (b"ISO_IR 192 ", ["UTF8"]),
    (["", "ISO 2022 IR 87"], ["iso8859", "iso2022_jp"]),
    ("\\ISO 2022 IR 149", ["iso8859", "euc_kr"]),
    (["ISO 2022 IR 13", "ISO 2022 IR 87"], ["shift_jis", "iso2022_jp"]),
    (["ISO 2022 IR 100", "ISO 2022 IR 100"], ["latin_1", "latin_1"]),   # duplicates kept
    ("GB18030", ["GB18030"]),
    ("latin_1", ["latin_1"]),            # a Python codec name is accepted silently
])
def test_convert_encodings_known(value, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert convert_encodings(value) == expected
    pd_value = split_character_set(value) if isinstance(value, (str, bytes)) else value
    assert convert_encodings(value) == pd_charset.convert_encodings(pd_value or None)


@pytest.mark.parametrize("value", [
    "ISO IR 100", "ISO-IR 144", "ISO_2022-IR 87", "ISO 2022-IR 100", "ISO IR 999",
    "ISO_IR 999", "nonsense", ["ISO_IR 192", "ISO 2022 IR 87"], ["", "GB18030"],
    ["ISO 2022 IR 6", "ISO 2022 IR 87", "ISO_IR 192"], ["ISO 2022 IR 6 ", "ISO 2022 IR 87"],
])
def test_convert_encodings_lenient_same_as_pydicom(value):
    with pytest.warns(DicomWarning):
        ours = convert_encodings(value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pd_charset.convert_encodings(value)
    assert ours == theirs
    with pytest.raises(MalformedElementError):
        convert_encodings(value, validation="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert convert_encodings(value, validation="ignore") == theirs


def test_convert_encodings_warns_every_call_and_message_is_clean():
    for _ in range(2):
        with pytest.warns(DicomWarning, match="Unknown Specific Character Set"):
            assert convert_encodings("ISO_IR 999") == [DEFAULT_ENCODING]


def test_iso_ir_203_supported():
    # newer Defined Term (Latin-9) pydicom 3.0.2 does not know
    assert convert_encodings("ISO_IR 203") == ["iso8859_15"]
    assert decode_bytes(b"\xa4", ["iso8859_15"], TEXT_DELIMITERS) == "\u20ac"


# --------------------------------------------------------------------------- hand-built ISO 2022

JAPANESE_PN = (b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B="
               b"\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B")
KATAKANA_PN = b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J=\x1b$B$d$^$@\x1b(J^\x1b$B$?$m$&\x1b(J"
KOREAN_PN = (b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7="
             b"\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf")
CHINESE_PN = b"Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab="
CASES = [
    (JAPANESE_PN, ["iso8859", "iso2022_jp"]),
    (JAPANESE_PN, ["iso8859", "iso2022_jp", "iso2022_jp_2"]),
    (KATAKANA_PN, ["shift_jis", "iso2022_jp"]),
    (KOREAN_PN, ["iso8859", "euc_kr"]),
    (CHINESE_PN, ["iso8859", "iso_ir_58"]),
    (b"\x1b-L\xbb\xee\xdc\xd0\xdd\xde\xe1\xde\xd2^\xbc\xd8\xe5\xd0\xd8\xdb", ["latin_1", "iso_ir_144"]),
    (b"abc\x1b-L\xbb\xee\r\n\xbb\x1b(B\xe9", ["latin_1", "iso_ir_144"]),
    (b"\x1b-L\xbb\t\xbb\x0c\xbb", ["iso8859", "iso_ir_144"]),
    (b"\x1b$(D\x0f\x0f", ["iso8859", "iso2022_jp_2"]),
    (b"\x1b)I\xb6\xc0\xb6\xc5", ["iso8859", "shift_jis"]),
    (b"\x1b-F\xc1\xc2\\\x1b-H\xe0", ["iso8859", "iso_ir_126", "iso_ir_138"]),
]


@pytest.mark.parametrize("value, encodings", CASES)
@pytest.mark.parametrize("delims", [(TEXT_DELIMITERS, TEXT_VR_DELIMS), (PN_DELIMITERS, PN_DELIMS),
                                    (frozenset(), set())])
def test_iso2022_same_as_pydicom(value, encodings, delims):
    assert ours_quiet(value, encodings, delims[0]) == pd_decode(value, encodings, delims[1])


def test_known_values():
    enc = ["iso8859", "iso2022_jp"]
    assert decode_person_name(JAPANESE_PN, enc) == (
        "Yamada^Tarou", "山田^太郎", "やまだ^たろう")
    assert decode_person_name(KOREAN_PN, ["iso8859", "euc_kr"]) == (
        "Hong^Gildong", "洪^吉洞", "홍^길동")
    # pydicom leaves GB2312's escape sequence in the text - so do we
    assert decode_person_name(CHINESE_PN, ["iso8859", "iso_ir_58"]) == (
        "Zhang^XiaoDong", "\x1b$)A张^\x1b$)A小东", "")
    # single-byte code extension is reset by '^' in PN but not by text delimiters
    v = b"\x1b-L\xc0^\xc0"
    assert decode_bytes(v, ["latin_1", "iso_ir_144"], PN_DELIMITERS) == "\u0420^\u00c0"
    assert decode_bytes(v, ["latin_1", "iso_ir_144"], TEXT_DELIMITERS) == "\u0420^\u0420"


@pytest.mark.parametrize("value, encodings", CASES)
def test_person_name_same_as_pydicom(value, encodings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = PdPersonName(value).decode(encodings)
        ours = PersonName(value, encodings)
        assert ours.components == theirs.components
        assert str(ours) == str(theirs)
        for attr in ("alphabetic", "ideographic", "phonetic", "family_name", "given_name",
                     "middle_name", "name_prefix", "name_suffix"):
            assert getattr(ours, attr) == getattr(theirs, attr), attr
        assert decode_person_name(value, encodings) == (
            theirs.alphabetic, theirs.ideographic, theirs.phonetic)
        assert bool(ours) == bool(theirs)
        assert repr(ours) == repr(theirs)
        assert ours.original_string == value


def test_person_name_behaviour():
    pn = PersonName(b"Doe^John^M^Dr^Jr==", ["iso8859"])
    assert str(pn) == "Doe^John^M^Dr^Jr"
    assert pn.components == ("Doe^John^M^Dr^Jr",)
    assert (pn.family_name, pn.given_name, pn.middle_name, pn.name_prefix, pn.name_suffix) == (
        "Doe", "John", "M", "Dr", "Jr")
    assert pn.ideographic == "" and pn.phonetic == ""
    assert pn == "Doe^John^M^Dr^Jr" and "Doe^John^M^Dr^Jr" == pn
    assert pn == PersonName("Doe^John^M^Dr^Jr")
    assert pn != "Doe"
    assert hash(pn) == hash(PersonName("Doe^John^M^Dr^Jr="))
    assert {pn: 1}["Doe^John^M^Dr^Jr"] == 1
    assert repr(pn) == "'Doe^John^M^Dr^Jr'"
    assert bool(pn) and not PersonName(b"") and not PersonName("")
    # like pydicom: non-empty original bytes are truthy even when every group is empty
    assert bool(PersonName(b"=")) == bool(PdPersonName(b"="))
    assert PersonName(b"").components == () and str(PersonName(b"")) == ""
    assert PersonName(pn) == pn and PersonName(pn).original_string == pn.original_string


# --------------------------------------------------------------------------- decode_text per VR

TEXT_CASES = [
    ("SH", b" a \\ b \x00"), ("LO", b"abc  "), ("LO", b"\\"), ("UC", b"x\\y\\z "),
    ("ST", b" a\\b  \x00"), ("LT", b"line1\r\nline2  "), ("UT", b"  "),
    ("PN", b"Doe^John \\Smith^Ann=Y  \x00"), ("PN", b"Doe^John"), ("PN", b"  "),
    ("AE", b" STORESCP \\ X "), ("AS", b"030Y"), ("CS", b"A \\B \\ "), ("CS", b"ORIGINAL\\PRIMARY"),
    ("DA", b"20200101\\20200102 "), ("DT", b"20200101120000 "), ("TM", b"1200 "),
    ("UI", b"1.2.3\x00"), ("UI", b"1.2\\1.3\x00"), ("UR", b"http://x/ \t"),
    ("LO", b"caf\xe9 "), ("LO", b"\x1b-L\xc0\\\xc1"),
]


@pytest.mark.parametrize("vr, raw", TEXT_CASES)
@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192", "", "\\ISO 2022 IR 144"])
def test_decode_text_same_as_pydicom(vr, raw, charset):
    from pydicom.values import convert_value
    encodings = convert_encodings(charset)
    elem = RawDataElement(0x00100010, vr, len(raw), raw, 0, False, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = convert_value(vr, elem, encodings)
        ours = decode_text(raw, encodings, vr)
    assert _norm(ours) == _norm(theirs)


def test_decode_text_empty():
    assert decode_text(b"", ["iso8859"], "LO") == ""
    assert decode_text(b"", ["iso8859"], "PN") == "" and isinstance(
        decode_text(b"", ["iso8859"], "PN"), PersonName)
    with pytest.raises(ValueError):
        decode_text(b"x", ["iso8859"], "US")


def _norm(value):
    if isinstance(value, (list, MultiValue)):
        return [_norm(v) for v in value]
    if isinstance(value, (PersonName, PdPersonName)):
        return ("PN", str(value))
    return str(value)


# --------------------------------------------------------------------------- garbage

def test_invalid_bytes_replaced_with_warning():
    with pytest.warns(DicomWarning):
        assert decode_bytes(b"ab\xff", ["UTF8"], TEXT_DELIMITERS) == "ab\ufffd"
    with pytest.raises(MalformedElementError) as info:
        decode_bytes(b"ab\xff", ["UTF8"], TEXT_DELIMITERS, validation="raise")
    assert isinstance(info.value, DicomError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_bytes(b"ab\xff", ["UTF8"], TEXT_DELIMITERS, validation="ignore") == "ab\ufffd"


@pytest.mark.parametrize("value, encodings", [
    (b"x\x1b$Bxx\xff", ["UTF8"]),                 # undeclared escape, bad UTF-8 after it
    (b"\x1b%G\xe9", ["iso8859"]),                 # unknown escape: ESC stays (latin-1)
    (b"\x1b$)C\xff\xff", ["iso8859", "euc_kr"]),   # invalid KS X 1001 bytes
    (b"\x1b$B\x7f\x7f", ["iso8859", "iso2022_jp"]),
    (b"\x1b", ["iso8859", "iso2022_jp"]),
    (b"\x1b-L\xc0\r\xff", ["UTF8", "iso_ir_144"]),
])
def test_bad_escapes(value, encodings):
    with pytest.warns(DicomWarning):
        ours = decode_bytes(value, encodings, TEXT_DELIMITERS)
    assert ours == pd_decode(value, encodings, TEXT_VR_DELIMS)
    with pytest.raises(MalformedElementError):
        decode_bytes(value, encodings, TEXT_DELIMITERS, validation="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_bytes(value, encodings, TEXT_DELIMITERS, validation="ignore") == ours


def test_clean_values_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for value, encodings in CASES:
            decode_bytes(value, encodings, TEXT_DELIMITERS)
        decode_bytes(b"\xe9", ["iso8859"], TEXT_DELIMITERS)   # default repertoire is lenient


def test_bad_validation_mode():
    with pytest.raises(ValueError):
        decode_bytes(b"\xff", ["UTF8"], TEXT_DELIMITERS, validation="bogus")


# --------------------------------------------------------------------------- hypothesis

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

SINGLE = ["iso8859", "latin_1", "iso8859_2", "iso8859_3", "iso8859_4", "iso_ir_126",
          "iso_ir_127", "iso_ir_138", "iso_ir_144", "iso_ir_148", "iso_ir_166", "shift_jis",
          "UTF8", "GB18030", "GBK"]
ENCODING_LISTS = [[c] for c in SINGLE] + [
    ["iso8859", "iso2022_jp"], ["shift_jis", "iso2022_jp"], ["iso8859", "euc_kr"],
    ["iso8859", "iso_ir_58"], ["iso8859", "iso2022_jp", "iso2022_jp_2"],
    ["latin_1", "iso_ir_144", "iso_ir_126"], ["UTF8", "iso_ir_138"], ["iso8859", "shift_jis"],
]
ESCAPES = [b"\x1b(B", b"\x1b-A", b"\x1b)I", b"\x1b(J", b"\x1b$B", b"\x1b-F", b"\x1b-L",
           b"\x1b-H", b"\x1b$)C", b"\x1b$(D", b"\x1b$)A", b"\x1b%G", b"\x1b", b"\x1b$", b"\x1b-"]


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=40), codec=st.sampled_from(SINGLE))
def test_roundtrip_single_codec(text, codec):
    raw = text.encode(codec, errors="replace")
    assert ours_quiet(raw, [codec], TEXT_DELIMITERS) == pd_decode(raw, [codec], TEXT_VR_DELIMS)


@settings(max_examples=1500, deadline=None)
@given(chunks=st.lists(st.one_of(st.binary(max_size=8), st.sampled_from(ESCAPES),
                                 st.sampled_from([b"^", b"=", b"\r\n", b"\\", b"\t"])),
                       max_size=10),
       encodings=st.sampled_from(ENCODING_LISTS), pn=st.booleans())
def test_random_bytes_same_as_pydicom(chunks, encodings, pn):
    raw = b"".join(chunks)
    ours_d, theirs_d = (PN_DELIMITERS, PN_DELIMS) if pn else (TEXT_DELIMITERS, TEXT_VR_DELIMS)
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        ours = decode_bytes(raw, encodings, ours_d)
    with warnings.catch_warnings(record=True) as theirs_w:
        warnings.simplefilter("always")
        theirs = pd_charset.decode_bytes(raw, encodings, theirs_d)
    assert ours == theirs
    assert bool(ours_w) == bool(theirs_w)
    assert all(issubclass(w.category, DicomWarning) for w in ours_w)


# --------------------------------------------------------------------------- corpus

STRING_VRS = {"SH", "LO", "UC", "ST", "LT", "UT", "PN", "AE", "AS", "CS", "DA", "DT", "TM",
              "UI", "UR"}
CHARSET_FILES = []


def _check_dataset(ds, problems, stats):
    cs_raw = ds.get_item(0x00080005) if 0x00080005 in ds else None
    encodings = ds._character_set
    encodings = [encodings] if isinstance(encodings, str) else list(encodings)
    if cs_raw is not None and isinstance(cs_raw, RawDataElement) and cs_raw.value:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours_enc = convert_encodings(cs_raw.value)
        if ours_enc != encodings:
            problems.append(("charset", cs_raw.value, ours_enc, encodings))
    for tag in list(ds.keys()):
        try:  # pydicom cannot convert some malformed elements: nothing to compare
            raw = ds.get_item(tag)
            raw_value = raw.value if isinstance(raw, RawDataElement) else None
            elem = ds[tag]
        except Exception:
            stats["skipped"] += 1
            continue
        if elem.VR == "SQ":
            for item in elem.value:
                _check_dataset(item, problems, stats)
            continue
        if raw_value is None or elem.VR not in STRING_VRS:
            continue
        if raw.VR not in (None, elem.VR):      # pydicom fell back to another VR
            continue
        ours = decode_text(raw_value, encodings, elem.VR, validation="ignore")
        stats["elements"] += 1
        if _norm(ours) != _norm(elem.value):
            problems.append((str(tag), elem.VR, _norm(ours), _norm(elem.value)))
        if elem.VR == "PN" and b"\\" not in raw_value:
            stripped = raw_value.rstrip(b"\x00 ")
            theirs = PdPersonName(stripped).decode(encodings)
            if decode_person_name(stripped, encodings, validation="ignore") != (
                    theirs.alphabetic, theirs.ideographic, theirs.phonetic):
                problems.append((str(tag), "PersonName.decode"))


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_same_as_pydicom(path):
    _require_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            ds.keys()
        except Exception as exc:  # pydicom cannot read it: nothing to compare
            pytest.skip(f"pydicom cannot read: {type(exc).__name__}")
        problems, stats = [], {"elements": 0, "skipped": 0}
        try:
            _check_dataset(ds, problems, stats)
        except RecursionError:
            pytest.skip("pydicom RecursionError")
    assert not problems, problems[:5]


def test_corpus_present():
    _require_data()
    names = {p.name for p in _corpus_files()}
    assert {"chrH31.dcm", "chrH32.dcm", "chrI2.dcm", "chrX2.dcm", "chrGB2312.dcm"} <= names
