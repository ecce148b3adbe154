"""Tests for fastdicom.testing (the dependency-free writer and synthetic data generators).

pydicom 3 is the independent oracle: everything written here is read back with
``pydicom.dcmread`` and compared element by element.
"""
from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom import encaps  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.errors import InvalidDicomError  # noqa: E402
from pydicom.multival import MultiValue  # noqa: E402
from pydicom.valuerep import PersonName, is_valid_ds  # noqa: E402

from fastdicom import testing as T  # noqa: E402

try:
    import imagecodecs  # noqa: F401
    HAVE_IMAGECODECS = True
except ImportError:  # pragma: no cover
    HAVE_IMAGECODECS = False

needs_imagecodecs = pytest.mark.skipif(not HAVE_IMAGECODECS, reason="imagecodecs not installed")

NATIVE = [T.IMPLICIT_LE, T.EXPLICIT_LE, T.EXPLICIT_BE, T.DEFLATED_LE]


def pydicom_rle(arr: np.ndarray) -> bytes:
    """Frame encoder for tests: pydicom's own (pure Python) RLE Lossless encoder."""
    from pydicom.pixels.encoders import RLELosslessEncoder

    spp = arr.shape[2] if arr.ndim == 3 else 1
    return RLELosslessEncoder.encode(
        np.ascontiguousarray(arr), encoding_plugin="pydicom", rows=arr.shape[0],
        columns=arr.shape[1], samples_per_pixel=spp, bits_allocated=arr.dtype.itemsize * 8,
        bits_stored=arr.dtype.itemsize * 8, pixel_representation=int(arr.dtype.kind == "i"),
        photometric_interpretation="RGB" if spp == 3 else "MONOCHROME2", number_of_frames=1,
        planar_configuration=0)


# ------------------------------------------------------------------------------------------
# Value comparison helpers
# ------------------------------------------------------------------------------------------

def _scalar(x):
    if isinstance(x, PersonName):
        return str(x)
    if isinstance(x, (bytes, str)):
        return x
    if isinstance(x, float):
        return float(x)
    if isinstance(x, int):
        return int(x)
    return x


def actual(elem):
    v = elem.value
    if isinstance(v, (MultiValue, list, tuple)):
        out = [_scalar(x) for x in v]
        return out
    return _scalar(v)


def expected(vr, value, little_endian=True):
    """What pydicom should give back for a written value (normalised like ``actual``)."""
    if vr in ("OB", "OW", "OF", "OL", "OD", "OV", "UN"):
        if isinstance(value, np.ndarray):
            raw = value.astype(value.dtype.newbyteorder("<" if little_endian else ">")).tobytes()
        else:
            raw = bytes(value)
        return raw + b"\0" * (len(raw) % 2)
    vals = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if vr == "DS":
        vals = [float(T.format_ds(v)) for v in vals]
    elif vr in ("IS", "SL", "SS", "SV", "UL", "US", "UV", "AT"):
        vals = [int(v) for v in vals]
    elif vr in ("FL", "FD"):
        vals = [float(v) for v in vals]
    elif vr in ("LT", "ST", "UT", "UR"):
        vals = ["\\".join(str(v) for v in vals).rstrip(" ")]
    else:
        vals = [str(v).rstrip(" ") for v in vals]
    return vals[0] if len(vals) == 1 else vals


def assert_matches(ds, elements, little_endian=True, path="") -> None:
    for el in elements:
        tag, vr, value = el[0], el[1], el[2]
        if tag == 0x7FE00010:
            continue
        assert tag in ds, f"{path}({tag:08X}) missing"
        elem = ds[tag]
        where = f"{path}({tag:08X}) {vr}"
        if vr == "SQ":
            assert elem.VR == "SQ", where
            assert len(elem.value) == len(value or []), where
            for k, (item_ds, item) in enumerate(zip(elem.value, value or [])):
                assert len(item_ds) == len(item), f"{where}[{k}]"
                assert_matches(item_ds, item, little_endian, f"{where}[{k}]/")
            continue
        if elem.VR == "UN" and vr != "UN":
            # implicit VR private element: pydicom cannot know the VR, compare the raw bytes
            raw = T.encode_element(tag, vr, value, explicit=False, little_endian=little_endian,
                                   encoding="latin_1")[8:]
            assert elem.value == raw, where
            continue
        got, want = actual(elem), expected(vr, value, little_endian)
        if want in ("", b"", []):  # pydicom gives None / "" for empty values
            assert got in (None, "", b"", []), where
            continue
        assert got == want, where


# ------------------------------------------------------------------------------------------
# An element of every VR, with a dictionary tag of exactly that VR (so implicit VR works)
# ------------------------------------------------------------------------------------------

ALL_VR_ELEMENTS = [
    (0x00080005, "CS", "ISO_IR 100"),
    (0x00080054, "AE", ["STORESCP", "ARCHIVE1"]),
    (0x00101010, "AS", "042Y"),
    (0x00280009, "AT", [0x00100010, 0x7FE00010]),
    (0x00080008, "CS", ["ORIGINAL", "PRIMARY", "AXIAL"]),
    (0x00181200, "DA", ["20240102", "19991231"]),
    (0x00140030, "DS", [0.7, -1024, 1e-7, 123456789.123456789, 1 / 3, 2.5e-300]),
    (0x0040A13A, "DT", "20240102123045.123456+0100"),
    (0x00182044, "FL", [1.5, -2.25, 3.0]),
    (0x00081163, "FD", [0.1, 1e300]),
    (0x00081160, "IS", [1, -2, 2147483647, -2147483648]),
    (0x00081080, "LO", ["Größe", "Übersicht"]),
    (0x00080108, "LT", "Line one \\ with backslash\r\nline two"),
    (0x0008041B, "OB", b"\x01\x02\x03"),
    (0x003A032E, "OD", np.array([1.5, -2.0, np.pi], dtype=np.float64)),
    (0x00181638, "OF", np.array([1.5, -2.0, 3.25], dtype=np.float32)),
    (0x00660040, "OL", np.array([1, 2, 2 ** 32 - 1], dtype=np.uint32)),
    (0x00720081, "OV", np.array([1, 2 ** 64 - 1], dtype=np.uint64)),
    (0x00660103, "OW", np.array([1, 2, 0xABCD], dtype=np.uint16)),
    (0x00081048, "PN", ["Müller^Jürgen^^Dr.^", "Doe^Jane"]),
    (0x00080094, "SH", ["555-1234", "x"]),
    (0x0040A162, "SL", [-5, 2 ** 31 - 1, -(2 ** 31)]),
    (0x00189442, "SS", [-32768, 32767, 0]),
    (0x00080081, "ST", "Hauptstraße 1\\2"),
    (0x00720082, "SV", [-(2 ** 63), 2 ** 63 - 1, 5]),
    (0x0014407C, "TM", ["120000.123456", "0101"]),
    (0x00160008, "UC", ["col one", "Zürich"]),
    (0x0008001A, "UI", ["1.2.840.10008.5.1.4.1.1.2", "1.2.3"]),
    (0x00080309, "UL", [0, 2 ** 32 - 1, 7]),
    (0x0072006D, "UN", b"\xde\xad\xbe\xef\x01"),
    (0x0008010E, "UR", "https://example.org/codes?x=1"),
    (0x00080304, "US", [0, 65535, 1]),
    (0x0008030E, "UT", "long text\\" * 3 + "end"),
    (0x00720083, "UV", [0, 2 ** 64 - 1]),
    (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
    (0x00080018, "UI", T.uid_from("all-vrs")),
]

SEQ_ELEMENTS = [
    (0x00080005, "CS", "ISO_IR 100"),
    (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
    (0x00080018, "UI", T.uid_from("seq")),
    (0x0040A730, "SQ", [
        [
            (0x0040A010, "CS", "CONTAINS"),
            (0x0040A040, "CS", "TEXT"),
            (0x0040A160, "UT", "héllo"),
            (0x0040A730, "SQ", [
                [(0x0040A040, "CS", "NUM"), (0x0040A30A, "DS", [1.25, 3])],
                [(0x00081150, "UI", "1.2.3.4"), (0x00280009, "AT", 0x00209157)],
            ]),
        ],
        [],
        [(0x00080100, "SH", "C1"), (0x00080102, "SH", "DCM"), (0x00080104, "LO", "Meaning")],
    ]),
    (0x00081140, "SQ", []),
    (0x00081032, "SQ", [[(0x00080100, "SH", "ZIH"), (0x00080104, "LO", "Ärger")]]),
]


def _read(data: bytes):
    return pydicom.dcmread(io.BytesIO(data))


def _write(elements, **kw) -> bytes:
    buf = io.BytesIO()
    n = T.write_file(buf, elements, **kw)
    assert n == len(buf.getvalue())
    return buf.getvalue()


def _vr_table_all_in_dictionary():
    from pydicom.datadict import dictionary_VR

    for tag, vr, _ in ALL_VR_ELEMENTS:
        assert dictionary_VR(tag) == vr, (hex(tag), vr)


def test_table_covers_all_vrs():
    _vr_table_all_in_dictionary()
    assert {vr for _, vr, _ in ALL_VR_ELEMENTS} | {"SQ"} == set(T.VRS)
    assert len(T.VRS) == 34


# ------------------------------------------------------------------------------------------
# Low level encoding
# ------------------------------------------------------------------------------------------

def test_encode_element_golden_bytes():
    assert T.encode_element(0x00100010, "PN", "Doe^J") == b"\x10\x00\x10\x00PN\x06\x00Doe^J "
    assert T.encode_element(0x00080016, "UI", "1.2.3") == b"\x08\x00\x16\x00UI\x06\x001.2.3\x00"
    assert T.encode_element(0x00280010, "US", 512, little_endian=False) == \
        b"\x00\x28\x00\x10US\x00\x02\x02\x00"
    assert T.encode_element(0x00280010, "US", 512, explicit=False) == \
        b"\x28\x00\x10\x00\x02\x00\x00\x00\x00\x02"
    assert T.encode_element(0x7FE00010, "OB", b"\x01") == \
        b"\xe0\x7f\x10\x00OB\x00\x00\x02\x00\x00\x00\x01\x00"
    assert T.encode_element(0x00280009, "AT", 0x00181063) == \
        b"\x28\x00\x09\x00AT\x04\x00\x18\x00\x63\x10"
    assert T.encode_element(0x00280009, "AT", 0x00181063, little_endian=False) == \
        b"\x00\x28\x00\x09AT\x00\x04\x00\x18\x10\x63"
    assert T.encode_element(0x00100010, "PN", None) == b"\x10\x00\x10\x00PN\x00\x00"
    # long-length VRs have a reserved field and a 32-bit length
    for vr in T.LONG_LENGTH_VRS - {"SQ"}:
        val = b"ab" if vr in ("OB", "OD", "OF", "OL", "OV", "OW", "UN") else \
            ("ab" if vr in ("UC", "UR", "UT") else [1])
        enc = T.encode_element(0x00091010, vr, val)
        assert enc[4:6] == vr.encode() and enc[6:8] == b"\0\0", vr
    # an empty defined-length and an undefined-length empty sequence
    assert T.encode_element(0x00081140, "SQ", []) == b"\x08\x00\x40\x11SQ\0\0\0\0\0\0"
    assert T.encode_element(0x00081140, "SQ", [], undefined_length=True) == \
        b"\x08\x00\x40\x11SQ\0\0\xff\xff\xff\xff\xfe\xff\xdd\xe0\0\0\0\0"


def test_encode_element_errors():
    with pytest.raises(ValueError):
        T.encode_element(0x00100010, "XX", "a")
    with pytest.raises(ValueError):
        T.encode_element(0x00081080, "LO", "a" * 70000)  # 16-bit length overflow
    # implicit VR uses 32-bit lengths for every VR, so this is fine there
    assert len(T.encode_element(0x00081080, "LO", "a" * 70000, explicit=False)) == 70008
    with pytest.raises(ValueError):
        T.encode_element(0x00100010, "PN", "x", undefined_length=True)
    with pytest.raises(ValueError):
        T.encode_element(0x00200013, "IS", 1.5)
    with pytest.raises(ValueError):
        T.encode_element(0x00180050, "DS", float("nan"))


def test_big_endian_bulk_and_numeric():
    arr = np.array([0x0102, 0x0304], dtype=np.uint16)
    assert T.encode_element(0x7FE00010, "OW", arr, little_endian=False)[12:] == b"\x01\x02\x03\x04"
    assert T.encode_element(0x7FE00010, "OW", arr)[12:] == b"\x02\x01\x04\x03"
    # raw bytes are written as given
    assert T.encode_element(0x7FE00010, "OW", b"\x02\x01", little_endian=False)[12:] == b"\x02\x01"
    f = np.array([1.0], dtype=np.float32)
    assert T.encode_element(0x00181638, "OF", f, little_endian=False)[12:] == \
        struct.pack(">f", 1.0)
    assert T.encode_element(0x00720083, "UV", 2 ** 64 - 1, little_endian=False)[12:] == b"\xff" * 8
    assert T.encode_element(0x00720082, "SV", -2, little_endian=False)[12:] == struct.pack(">q", -2)
    assert T.encode_element(0x00182044, "FL", [1.5], little_endian=False)[8:] == \
        struct.pack(">f", 1.5)


@pytest.mark.parametrize("value", [0.7, -1024, 0, 1e-7, 1 / 3, 123456789.123456789, -1e-300,
                                   1e300, 2 ** 60, -(2 ** 62) + 1, 3.14159265358979, 5e-5])
def test_format_ds(value):
    s = T.format_ds(value)
    assert len(s) <= 16 and is_valid_ds(s), s
    assert float(s) == pytest.approx(value, rel=1e-10, abs=0)


def test_format_ds_hypothesis():
    hyp = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    @hyp.given(st.floats(allow_nan=False, allow_infinity=False))
    @hyp.settings(max_examples=300, deadline=None, database=None)
    def check(v):
        s = T.format_ds(v)
        assert len(s) <= 16 and is_valid_ds(s)
        if v != 0 and abs(v) > 1e-290:
            # 16 chars leave >= 9 significant digits even for "-1.23456789e-300"
            assert float(s) == pytest.approx(v, rel=1e-8)

    check()


def test_uid_from():
    a, b = T.uid_from("x"), T.uid_from("y")
    assert a == T.uid_from("x") and a != b
    assert a.startswith("2.25.") and len(a) <= 64
    from pydicom.uid import UID

    assert UID(a).is_valid
    assert T.IMPLEMENTATION_CLASS_UID.startswith("2.25.") and UID(T.IMPLEMENTATION_CLASS_UID).is_valid


# ------------------------------------------------------------------------------------------
# Round trips through pydicom
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ts", NATIVE)
def test_all_vrs_round_trip(ts):
    data = _write(ALL_VR_ELEMENTS, transfer_syntax=ts)
    ds = _read(data)
    assert ds.file_meta.TransferSyntaxUID == ts
    assert_matches(ds, ALL_VR_ELEMENTS, little_endian=ts != T.EXPLICIT_BE)
    if ts != T.IMPLICIT_LE:
        for tag, vr, _ in ALL_VR_ELEMENTS:
            assert ds[tag].VR == vr


@pytest.mark.parametrize("ts", NATIVE)
@pytest.mark.parametrize("undefined", [False, True])
def test_sequences_round_trip(ts, undefined):
    data = _write(SEQ_ELEMENTS, transfer_syntax=ts, undefined_length_sequences=undefined)
    ds = _read(data)
    assert_matches(ds, SEQ_ELEMENTS, little_endian=ts != T.EXPLICIT_BE)
    if undefined and ts != T.DEFLATED_LE:
        assert b"\xff\xff\xff\xff" in data[132:]
    assert ds.ContentSequence[0].ContentSequence[1].FrameIncrementPointer == 0x00209157


def test_sequence_per_element_undefined_length_option():
    els = [(0x00081032, "SQ", [[(0x00080100, "SH", "A")]], {"undefined_length": True}),
           (0x00081140, "SQ", [[(0x00081150, "UI", "1.2")]])]
    body = T.encode_dataset(els)
    assert body.count(b"\xfe\xff\xdd\xe0") == 1 and body.count(b"\xfe\xff\x0d\xe0") == 1
    ds = _read(_write(els))
    assert ds.ProcedureCodeSequence[0].CodeValue == "A"
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2"


@pytest.mark.parametrize("ts", [T.EXPLICIT_LE, T.EXPLICIT_BE, T.DEFLATED_LE])
def test_private_block_and_private_sequence(ts):
    els = [
        (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
        (0x00090010, "LO", "FASTDICOM TEST"),
        (0x00091001, "LO", "private text"),
        (0x00091002, "US", 7),
        (0x00091003, "SQ", [[(0x00100010, "PN", "Inner^Name"), (0x00091101, "FD", 2.5)]]),
        (0x00091004, "OB", b"\x00\x01\x02\x03"),
    ]
    ds = _read(_write(els, transfer_syntax=ts))
    block = ds.private_block(0x0009, "FASTDICOM TEST")
    assert block[0x01].value == "private text"
    assert block[0x02].value == 7
    assert str(block[0x03].value[0].PatientName) == "Inner^Name"
    assert block[0x04].value == b"\x00\x01\x02\x03"
    assert_matches(ds, els, little_endian=ts != T.EXPLICIT_BE)


def test_character_set_follows_specific_character_set():
    els = [(0x00080005, "CS", "ISO_IR 192"), (0x00100010, "PN", "Ωmega^Δelta"),
           (0x00080016, "UI", "1.2.3")]
    data = _write(els)
    assert "Ωmega".encode("utf-8") in data
    assert str(_read(data).PatientName) == "Ωmega^Δelta"
    els[0] = (0x00080005, "CS", "ISO_IR 100")
    els[1] = (0x00100010, "PN", "Müller")
    data = _write(els)
    assert "Müller".encode("latin-1") in data and str(_read(data).PatientName) == "Müller"


# ------------------------------------------------------------------------------------------
# File structure
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ts", NATIVE + [T.RLE_LOSSLESS])
def test_file_meta(ts):
    els = [(0x00080016, "UI", T.CT_IMAGE_STORAGE), (0x00080018, "UI", "1.2.3.4.5"),
           (0x00100010, "PN", "A^B")]
    data = _write(els, transfer_syntax=ts)
    assert data[:128] == b"\0" * 128 and data[128:132] == b"DICM"
    assert data[132:140] == b"\x02\x00\x00\x00UL\x04\x00"  # always explicit VR LE
    group_len = struct.unpack_from("<I", data, 140)[0]
    end = 144 + group_len
    # the first element after the meta group is not group 0002 (in any byte order)
    assert data[end:end + 2] in (b"\x08\x00", b"\x00\x08") or ts == T.DEFLATED_LE
    ds = _read(data)
    fm = ds.file_meta
    assert fm.FileMetaInformationGroupLength == group_len
    assert fm.FileMetaInformationVersion == b"\x00\x01"
    assert fm.MediaStorageSOPClassUID == T.CT_IMAGE_STORAGE
    assert fm.MediaStorageSOPInstanceUID == "1.2.3.4.5"
    assert fm.TransferSyntaxUID == ts
    assert fm.ImplementationClassUID == T.IMPLEMENTATION_CLASS_UID
    assert fm.ImplementationVersionName == "FASTDICOM_01"
    # our own meta parser agrees with the recorded group length
    pos = 144
    while pos < len(data) and struct.unpack_from("<H", data, pos)[0] == 2:
        vr = data[pos + 4:pos + 6].decode()
        if vr in T.LONG_LENGTH_VRS:
            pos += 12 + struct.unpack_from("<I", data, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
    assert pos == end


def test_file_meta_overrides_and_options(tmp_path):
    els = [(0x00100010, "PN", "A^B"), (0x00020016, "AE", "MYAE")]
    data = _write(els, sop_class_uid="1.2.3", sop_instance_uid="4.5.6",
                  implementation_uid="2.25.1")
    fm = _read(data).file_meta
    assert fm.MediaStorageSOPClassUID == "1.2.3" and fm.MediaStorageSOPInstanceUID == "4.5.6"
    assert fm.ImplementationClassUID == "2.25.1" and fm.SourceApplicationEntityTitle == "MYAE"
    # no preamble, no meta: a bare data set
    bare = _write(els[:1], preamble=None, write_meta=False)
    assert bare == T.encode_dataset(els[:1])
    assert str(pydicom.dcmread(io.BytesIO(bare), force=True).PatientName) == "A^B"
    # a path works too
    p = tmp_path / "x.dcm"
    T.write_file(p, els, sop_class_uid="1.2.3", sop_instance_uid="4.5.6",
                 implementation_uid="2.25.1")
    assert p.read_bytes() == data
    with open(tmp_path / "y.dcm", "wb") as fh:
        T.write_file(fh, els, sop_class_uid="1.2.3", sop_instance_uid="4.5.6",
                     implementation_uid="2.25.1")
    assert (tmp_path / "y.dcm").read_bytes() == data
    with pytest.raises(ValueError):
        T.write_file(io.BytesIO(), els, preamble=b"\0" * 10)


def test_deflated_body_is_raw_deflate():
    els = ALL_VR_ELEMENTS
    data = _write(els, transfer_syntax=T.DEFLATED_LE)
    end = 144 + struct.unpack_from("<I", data, 140)[0]
    body = data[end:]
    assert len(data) % 2 == 0
    assert zlib.decompressobj(-15).decompress(body) == T.encode_dataset(els)


@pytest.mark.parametrize("ts", NATIVE)
@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int32])
def test_native_pixel_data(ts, dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    arr = rng.integers(info.min, info.max, size=(2, 7, 9), endpoint=True, dtype=dtype)
    bits = arr.dtype.itemsize * 8
    els = [
        (0x00080016, "UI", T._SC_IMAGE_STORAGE), (0x00080018, "UI", "1.2.3"),
        (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"), (0x00280008, "IS", 2),
        (0x00280010, "US", 7), (0x00280011, "US", 9), (0x00280100, "US", bits),
        (0x00280101, "US", bits), (0x00280102, "US", bits - 1),
        (0x00280103, "US", int(arr.dtype.kind == "i")),
        (0x7FE00010, "OB" if bits == 8 else "OW", arr),
    ]
    ds = _read(_write(els, transfer_syntax=ts))
    np.testing.assert_array_equal(ds.pixel_array, arr)


# ------------------------------------------------------------------------------------------
# Encapsulation
# ------------------------------------------------------------------------------------------

FRAMES = [bytes(range(1, 12)), b"\xaa" * 20, b"\x01\x02\x03" * 7, b"z" * 2]


def _padded(f):
    return f + b"\0" * (len(f) % 2)


@pytest.mark.parametrize("offset_table", ["empty", "bot", "eot"])
@pytest.mark.parametrize("fragments", [1, 3])
def test_encapsulated_offsets(offset_table, fragments):
    if offset_table == "eot" and fragments != 1:
        with pytest.raises(ValueError):
            T.encapsulate(FRAMES, offset_table="eot", fragments_per_frame=fragments)
        return
    els = [(0x00080016, "UI", "1.2.3"), (0x00280008, "IS", len(FRAMES)),
           (0x7FE00010, "OB", FRAMES)]
    data = _write(els, transfer_syntax=T.RLE_LOSSLESS, offset_table=offset_table,
                  fragments_per_frame=fragments)
    ds = _read(data)
    pixel = ds.PixelData
    bot = encaps.parse_basic_offsets(io.BytesIO(pixel))
    fp = io.BytesIO(pixel)
    encaps.parse_basic_offsets(fp)  # leaves fp at the first fragment item
    nr_frags, frag_offsets = encaps.parse_fragments(fp)
    expected_frags = sum(len(T._split(f, fragments)) for f in FRAMES)
    assert nr_frags == expected_frags
    # every fragment is even length
    assert all(len(f) % 2 == 0 for f in encaps.generate_fragments(pixel))
    eot = None
    if offset_table == "bot":
        # frame i starts at the first fragment of frame i, relative to the first fragment item
        starts = [o - frag_offsets[0] for o in frag_offsets]
        idx, first_of_frame = 0, []
        for f in FRAMES:
            first_of_frame.append(starts[idx])
            idx += len(T._split(f, fragments))
        assert bot == first_of_frame
    else:
        assert bot == []
    if offset_table == "eot":
        offs = list(struct.unpack(f"<{len(FRAMES)}Q", ds.ExtendedOffsetTable))
        lens = list(struct.unpack(f"<{len(FRAMES)}Q", ds.ExtendedOffsetTableLengths))
        assert ds["ExtendedOffsetTable"].VR == "OV"
        assert lens == [len(_padded(f)) for f in FRAMES]
        assert offs == [sum(8 + len(_padded(g)) for g in FRAMES[:i]) for i in range(len(FRAMES))]
        eot = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        for i, f in enumerate(FRAMES):
            assert encaps.get_frame(pixel, i, number_of_frames=len(FRAMES),
                                    extended_offsets=eot) == _padded(f)
    else:
        assert "ExtendedOffsetTable" not in ds
    if fragments == 1 or offset_table != "empty":
        # (several fragments per frame without any offset table are ambiguous by design)
        frames = list(encaps.generate_frames(pixel, number_of_frames=len(FRAMES),
                                             extended_offsets=eot))
        assert frames == [_padded(f) for f in FRAMES]
    fp = io.BytesIO(pixel)
    encaps.parse_basic_offsets(fp)
    assert b"".join(encaps.generate_fragments(fp)) == b"".join(
        _padded(g) for f in FRAMES for g in T._split(f, fragments))
    # ends with a sequence delimiter
    assert data.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")


def test_frames_list_for_native_syntax_is_concatenated():
    arr = np.arange(2 * 4 * 4, dtype=np.uint16).reshape(2, 4, 4)
    els = [(0x00080016, "UI", "1.2.3"), (0x00280002, "US", 1),
           (0x00280004, "CS", "MONOCHROME2"), (0x00280008, "IS", 2), (0x00280010, "US", 4),
           (0x00280011, "US", 4), (0x00280100, "US", 16), (0x00280101, "US", 16),
           (0x00280102, "US", 15), (0x00280103, "US", 0),
           (0x7FE00010, "OW", [arr[0].tobytes(), arr[1].tobytes()])]
    np.testing.assert_array_equal(_read(_write(els)).pixel_array, arr)


# ------------------------------------------------------------------------------------------
# Generators
# ------------------------------------------------------------------------------------------

def test_phantom_slice():
    a = T.phantom_slice(512, 512, 0.5)
    assert a.shape == (512, 512) and a.dtype == np.int16
    assert a.min() == -1000 and 600 < a.max() < 800
    assert (a == -850).any() or (a < -800).any()  # lungs in the middle of the volume
    assert np.array_equal(a, T.phantom_slice(512, 512, 0.5))
    assert not np.array_equal(a, T.phantom_slice(512, 512, 0.1))
    assert T.phantom_slice(33, 17, 0.0, dtype=np.float32).dtype == np.float32
    # speed sanity (not a timed assertion: report only)
    t = time.perf_counter()
    for _ in range(5):
        T.phantom_slice(512, 512, 0.3)
    print("phantom_slice 512x512: %.2f ms" % ((time.perf_counter() - t) / 5 * 1000))


def test_ct_instance_elements_round_trip():
    els = T.ct_instance_elements(rows=32, columns=40, index=3, n_slices=10,
                                 study_seed="s", series_seed="r")
    tags = {e[0] for e in els}
    for kw in ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
               "FrameOfReferenceUID", "PatientName", "PatientID", "PatientBirthDate",
               "PatientSex", "StudyDate", "StudyTime", "AccessionNumber", "Modality",
               "SeriesDescription", "SeriesNumber", "InstanceNumber", "ImagePositionPatient",
               "ImageOrientationPatient", "SliceLocation", "SliceThickness", "PixelSpacing",
               "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
               "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
               "RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth",
               "SpecificCharacterSet", "ProcedureCodeSequence", "ReferencedImageSequence",
               "PixelData"]:
        assert pydicom.datadict.tag_for_keyword(kw) in tags, kw
    for ts in NATIVE:
        ds = _read(_write(els, transfer_syntax=ts))
        assert_matches(ds, els, little_endian=ts != T.EXPLICIT_BE)
        assert ds.SOPClassUID == T.CT_IMAGE_STORAGE
        assert str(ds.PatientName) == "Müller^Jürgen^^Dr.^"
        assert ds.ProcedureCodeSequence[0].CodingSchemeDesignator == "FDTEST"
        if ts != T.IMPLICIT_LE:
            assert ds.private_block(0x0009, "FASTDICOM TEST")[0x02].value == 3
        else:
            assert ds.private_block(0x0009, "FASTDICOM TEST")[0x02].value == b"\x03\x00"
        exp = T.phantom_slice(32, 40, 3 / 9).astype(np.int32) + 1024
        np.testing.assert_array_equal(ds.pixel_array, exp)
        assert ds.pixel_array.dtype.kind == "i" and ds.pixel_array.dtype.itemsize == 2
        hu = pydicom.pixels.apply_rescale(ds.pixel_array, ds)
        np.testing.assert_array_equal(hu, T.phantom_slice(32, 40, 3 / 9))


def test_ct_instance_elements_custom_pixels_and_bits_stored():
    arr = np.arange(24, dtype=np.uint16).reshape(4, 6)
    els = T.ct_instance_elements(rows=4, columns=6, pixel_array=arr)
    ds = _read(_write(els))
    assert ds.PixelRepresentation == 0
    np.testing.assert_array_equal(ds.pixel_array, arr)
    els = T.ct_instance_elements(rows=16, columns=16, bits_stored=12, index=2, n_slices=5)
    ds = _read(_write(els, transfer_syntax=T.EXPLICIT_BE))
    assert ds.BitsStored == 12 and ds.HighBit == 11
    px = ds.pixel_array
    assert px.min() >= -2048 and px.max() <= 2047
    exp = np.clip(T.phantom_slice(16, 16, 0.5).astype(np.int32) + 1024, -2048, 2047)
    np.testing.assert_array_equal(px, exp)


@pytest.mark.parametrize("order", ["ascending", "descending", "random"])
def test_write_ct_series(tmp_path, order):
    n = 12
    orientation = (0.9, 0.1, 0.0, -0.1, 0.9, 0.4)
    r = np.array(orientation[:3]) / np.linalg.norm(orientation[:3])
    orientation = tuple(r) + tuple(orientation[3:])
    paths = T.write_ct_series(tmp_path, n, 24, 20, seed=5, instance_number_order=order,
                              slice_thickness=2.0, slice_spacing=2.5,
                              first_position=(-10, -20, -30), orientation=(1, 0, 0, 0, 1, 0),
                              file_prefix="CT")
    assert len(paths) == n and all(p.exists() and p.name.startswith("CT") for p in paths)
    assert [p.name for p in paths] != sorted(p.name for p in paths)  # names shuffled
    dss = [pydicom.dcmread(p) for p in paths]
    z = [float(d.ImagePositionPatient[2]) for d in dss]
    assert z == pytest.approx([-30 + 2.5 * i for i in range(n)])
    assert [float(d.SliceLocation) for d in dss] == pytest.approx(z)
    assert len({d.SeriesInstanceUID for d in dss}) == 1
    assert len({d.SOPInstanceUID for d in dss}) == n
    inst = [int(d.InstanceNumber) for d in dss]
    if order == "ascending":
        assert inst == list(range(1, n + 1))
    elif order == "descending":
        assert inst == list(range(n, 0, -1))
    else:
        assert sorted(inst) == list(range(1, n + 1)) and inst != list(range(1, n + 1))
    for i, d in enumerate(dss):
        exp = T.phantom_slice(24, 20, i / (n - 1)).astype(np.int32) + 1024
        np.testing.assert_array_equal(d.pixel_array, exp)
        assert float(d.SliceThickness) == 2.0


def test_write_ct_series_defaults_and_oblique(tmp_path):
    o = (np.cos(0.3), np.sin(0.3), 0.0, 0.0, 0.0, -1.0)  # oblique coronal-ish
    paths = T.write_ct_series(tmp_path, 5, 16, 16, shuffle_names=False, orientation=o)
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    dss = [pydicom.dcmread(p) for p in paths]
    normal = np.cross(o[:3], o[3:])
    proj = [float(np.dot(np.array(d.ImagePositionPatient, dtype=float), normal)) for d in dss]
    assert np.allclose(np.diff(proj), 1.25, atol=1e-3)
    assert np.allclose([float(d.SliceLocation) for d in dss], proj, atol=1e-3)


@pytest.mark.parametrize("ts", NATIVE)
def test_write_ct_series_native_syntaxes(tmp_path, ts):
    paths = T.write_ct_series(tmp_path, 3, 32, 32, transfer_syntax=ts, seed=1)
    for i, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        assert ds.file_meta.TransferSyntaxUID == ts
        np.testing.assert_array_equal(
            ds.pixel_array, T.phantom_slice(32, 32, i / 2).astype(np.int32) + 1024)


ENCAPSULATED_LOSSLESS = [
    pytest.param(T.RLE_LOSSLESS, pydicom_rle, id="rle-pydicom"),
    pytest.param(T.JPEG_LOSSLESS_SV1, None, id="jpeg-lossless", marks=needs_imagecodecs),
    pytest.param(T.JPEG_LS_LOSSLESS, None, id="jpeg-ls", marks=needs_imagecodecs),
    pytest.param(T.JPEG_2000_LOSSLESS, None, id="j2k", marks=needs_imagecodecs),
]


@pytest.mark.parametrize("ts,encoder", ENCAPSULATED_LOSSLESS)
def test_write_ct_series_encapsulated(tmp_path, ts, encoder):
    paths = T.write_ct_series(tmp_path, 3, 32, 40, transfer_syntax=ts, frame_encoder=encoder,
                              offset_table="bot")
    for i, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        assert ds.file_meta.TransferSyntaxUID == ts
        assert encaps.parse_basic_offsets(io.BytesIO(ds.PixelData)) == [0]
        np.testing.assert_array_equal(
            ds.pixel_array, T.phantom_slice(32, 40, i / 2).astype(np.int32) + 1024)


def test_builtin_encoder_missing_raises(tmp_path):
    with pytest.raises(ValueError):
        T.write_ct_series(tmp_path, 1, 8, 8, transfer_syntax="1.2.840.10008.1.2.4.100")


@pytest.mark.parametrize("ts", NATIVE)
@pytest.mark.parametrize("dtype,spp,fill", [
    (np.uint16, 1, "phantom"), (np.int16, 1, "random"), (np.uint8, 1, "ramp"),
    (np.uint8, 3, "phantom"), (np.uint16, 1, "ramp"),
])
def test_write_multiframe_native(tmp_path, ts, dtype, spp, fill):
    n, rows, cols = 7, 12, 10
    p = T.write_multiframe(tmp_path / "mf.dcm", n, rows, cols, dtype=dtype, transfer_syntax=ts,
                           samples_per_pixel=spp, fill=fill, seed=3, chunk_frames=3)
    ds = pydicom.dcmread(p)
    assert int(ds.NumberOfFrames) == n
    exp = np.stack([T.multiframe_frame(i, n, rows, cols, dtype=dtype, samples_per_pixel=spp,
                                       fill=fill, seed=3) for i in range(n)])
    np.testing.assert_array_equal(ds.pixel_array, exp)
    assert ds.PhotometricInterpretation == ("RGB" if spp == 3 else "MONOCHROME2")


def test_multiframe_bits_stored_and_odd_length(tmp_path):
    p = T.write_multiframe(tmp_path / "odd.dcm", 3, 5, 5, dtype=np.uint8, fill="random")
    assert p.stat().st_size % 2 == 0
    np.testing.assert_array_equal(
        pydicom.dcmread(p).pixel_array,
        np.stack([T.multiframe_frame(i, 3, 5, 5, dtype=np.uint8, fill="random") for i in range(3)]))
    p = T.write_multiframe(tmp_path / "b12.dcm", 4, 8, 8, dtype=np.uint16, bits_stored=12,
                           fill="random")
    ds = pydicom.dcmread(p)
    assert ds.BitsStored == 12 and int(ds.pixel_array.max()) <= 4095


@pytest.mark.parametrize("ts,encoder", ENCAPSULATED_LOSSLESS)
@pytest.mark.parametrize("offset_table", ["empty", "bot", "eot"])
def test_write_multiframe_encapsulated(tmp_path, ts, encoder, offset_table):
    n, rows, cols = 5, 16, 12
    frags = 2 if offset_table == "bot" else 1
    p = T.write_multiframe(tmp_path / "mf.dcm", n, rows, cols, dtype=np.uint16,
                           transfer_syntax=ts, frame_encoder=encoder, fill="phantom",
                           offset_table=offset_table, fragments_per_frame=frags, chunk_frames=2)
    ds = pydicom.dcmread(p)
    exp = np.stack([T.multiframe_frame(i, n, rows, cols) for i in range(n)])
    np.testing.assert_array_equal(ds.pixel_array, exp)
    pixel = ds.PixelData
    bot = encaps.parse_basic_offsets(io.BytesIO(pixel))
    eot = None
    if offset_table == "eot":
        eot = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        assert bot == []
    elif offset_table == "bot":
        assert len(bot) == n and bot[0] == 0
    else:
        assert bot == []
    enc = encoder or T.builtin_frame_encoder(ts, 16)
    for i in range(n):
        frame = encaps.get_frame(pixel, i, number_of_frames=n, extended_offsets=eot)
        assert frame == _padded(enc(exp[i]))


def test_write_multiframe_rgb_rle(tmp_path):
    p = T.write_multiframe(tmp_path / "rgb.dcm", 3, 9, 11, dtype=np.uint8, samples_per_pixel=3,
                           transfer_syntax=T.RLE_LOSSLESS, frame_encoder=pydicom_rle)
    ds = pydicom.dcmread(p)
    exp = np.stack([T.multiframe_frame(i, 3, 9, 11, dtype=np.uint8, samples_per_pixel=3)
                    for i in range(3)])
    np.testing.assert_array_equal(ds.pixel_array, exp)


@needs_imagecodecs
def test_write_multiframe_jpeg_baseline(tmp_path):
    p = T.write_multiframe(tmp_path / "jb.dcm", 2, 32, 32, dtype=np.uint8,
                           transfer_syntax=T.JPEG_BASELINE)
    ds = pydicom.dcmread(p)
    exp = np.stack([T.multiframe_frame(i, 2, 32, 32, dtype=np.uint8) for i in range(2)])
    assert np.abs(ds.pixel_array.astype(int) - exp).mean() < 4  # lossy


def test_write_multiframe_functional_groups(tmp_path):
    n = 6
    p = T.write_multiframe(tmp_path / "fg.dcm", n, 8, 8, functional_groups=True,
                           spacing=(0.5, 0.6), slice_thickness=2.0,
                           transfer_syntax=T.EXPLICIT_BE)
    ds = pydicom.dcmread(p)
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.5, 0.6]
    assert float(shared.PixelMeasuresSequence[0].SliceThickness) == 2.0
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == \
        [1, 0, 0, 0, 1, 0]
    per = ds.PerFrameFunctionalGroupsSequence
    assert len(per) == n
    z = [float(it.PlanePositionSequence[0].ImagePositionPatient[2]) for it in per]
    assert z == pytest.approx([2.0 * i for i in range(n)])
    assert ds.pixel_array.shape == (n, 8, 8)


def test_multiframe_streaming_is_chunk_independent_and_deterministic(tmp_path):
    kw = dict(dtype=np.uint16, fill="random", seed=9)
    a = T.write_multiframe(tmp_path / "a.dcm", 10, 16, 16, chunk_frames=3, **kw).read_bytes()
    b = T.write_multiframe(tmp_path / "b.dcm", 10, 16, 16, chunk_frames=64, **kw).read_bytes()
    assert a == b
    c = T.write_multiframe(tmp_path / "c.dcm", 10, 16, 16, chunk_frames=4,
                           transfer_syntax=T.DEFLATED_LE, **kw).read_bytes()
    d = T.write_multiframe(tmp_path / "d.dcm", 10, 16, 16, chunk_frames=4,
                           transfer_syntax=T.DEFLATED_LE, **kw).read_bytes()
    assert c == d and len(c) % 2 == 0
    e = T.write_multiframe(tmp_path / "e.dcm", 10, 16, 16, chunk_frames=3, dtype=np.uint16,
                           fill="random", seed=10).read_bytes()
    assert e != a


def test_determinism_ct_series(tmp_path):
    a = T.write_ct_series(tmp_path / "a", 4, 32, 32, seed=2, instance_number_order="random")
    b = T.write_ct_series(tmp_path / "b", 4, 32, 32, seed=2, instance_number_order="random")
    c = T.write_ct_series(tmp_path / "c", 4, 32, 32, seed=3, instance_number_order="random")
    assert [p.name for p in a] == [p.name for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    assert a[0].read_bytes() != c[0].read_bytes()
    assert pydicom.dcmread(a[0]).StudyInstanceUID != pydicom.dcmread(c[0]).StudyInstanceUID


def test_write_mixed_set(tmp_path):
    paths = T.write_mixed_set(tmp_path / "m", 14, seed=4, rle_encoder=pydicom_rle,
                              rows=24, columns=24)
    assert len(paths) == 14
    seen = set()
    for p in paths:
        ds = pydicom.dcmread(p)
        seen.add(ds.file_meta.TransferSyntaxUID)
        hu = ds.pixel_array.astype(np.int32) - 1024
        assert hu.shape == (ds.Rows, ds.Columns)
        assert hu.min() >= -1000 - 20 and hu.max() <= 800
    want = set(NATIVE) | {T.RLE_LOSSLESS}
    if HAVE_IMAGECODECS:
        want.add(T.JPEG_LOSSLESS_SV1)
    assert seen == want
    again = T.write_mixed_set(tmp_path / "m2", 14, seed=4, rle_encoder=pydicom_rle,
                              rows=24, columns=24)
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(paths, again))


def test_write_junk(tmp_path):
    junk = T.write_junk(tmp_path, seed=1)
    assert set(junk) >= {"empty", "text", "truncated_header", "truncated_pixels", "no_dicm",
                         "dicm_only", "valid"}
    assert junk["empty"].stat().st_size == 0
    valid = junk["valid"].read_bytes()
    assert pydicom.dcmread(junk["valid"]).Rows == 32
    for kind in ("empty", "text", "no_dicm", "random"):
        with pytest.raises((InvalidDicomError, EOFError, OSError, ValueError)):
            pydicom.dcmread(junk[kind])
    th = junk["truncated_header"].read_bytes()
    tp = junk["truncated_pixels"].read_bytes()
    assert valid.startswith(th) and valid.startswith(tp)
    assert len(th) < valid.index(b"\xe0\x7f\x10\x00") < len(tp) < len(valid)
    # no_dicm: preamble followed directly by a data set
    nd = junk["no_dicm"].read_bytes()
    assert nd[128:132] != b"DICM"
    assert str(pydicom.dcmread(io.BytesIO(nd[128:]), force=True).PatientName) == \
        "Müller^Jürgen^^Dr.^"
    with pytest.raises(Exception):
        pydicom.dcmread(junk["truncated_pixels"]).pixel_array  # noqa: B018
    assert T.write_junk(tmp_path / "again", seed=1)["truncated_header"].read_bytes() == th


def test_ct_instance_explicit_position():
    els = T.ct_instance_elements(rows=8, columns=8, position=(1.5, -2.25, 7.125),
                                 orientation=(0, 1, 0, 0, 0, -1))
    ds = _read(_write(els))
    assert [float(v) for v in ds.ImagePositionPatient] == [1.5, -2.25, 7.125]
    assert float(ds.SliceLocation) == pytest.approx(-1.5)  # normal = (-1, 0, 0)


def test_random_elements_round_trip_hypothesis():
    hyp = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                          blacklist_characters="\\"), max_size=40)
    lo = text.map(lambda t: t.strip()[:64])
    values = st.fixed_dictionaries({
        # "=" and "^" are PN structure (pydicom normalises empty groups), keep them out
        0x00100010: st.tuples(st.just("PN"), lo.map(lambda t: t.replace("=", "").replace(
            "^", "").strip())),
        0x00081080: st.tuples(st.just("LO"), st.lists(lo, min_size=1, max_size=4)),
        0x00189442: st.tuples(st.just("SS"), st.lists(st.integers(-2 ** 15, 2 ** 15 - 1),
                                                      min_size=1, max_size=5)),
        0x00080309: st.tuples(st.just("UL"), st.lists(st.integers(0, 2 ** 32 - 1),
                                                      min_size=1, max_size=3)),
        0x00720082: st.tuples(st.just("SV"), st.lists(st.integers(-2 ** 63, 2 ** 63 - 1),
                                                      min_size=1, max_size=3)),
        0x00081163: st.tuples(st.just("FD"), st.lists(st.floats(allow_nan=False), min_size=2,
                                                      max_size=2)),
        0x00140030: st.tuples(st.just("DS"), st.lists(
            st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
            min_size=1, max_size=4)),
        0x00081160: st.tuples(st.just("IS"), st.lists(st.integers(-2 ** 31, 2 ** 31 - 1),
                                                      min_size=1, max_size=4)),
        0x0008041B: st.tuples(st.just("OB"), st.binary(max_size=33)),
    })

    @hyp.given(values, st.sampled_from(NATIVE), st.booleans())
    @hyp.settings(max_examples=int(__import__("os").environ.get("HYP_N", 60)), deadline=None, database=None)
    def check(vals, ts, undefined):
        els = [(0x00080005, "CS", "ISO_IR 100")] + [(t, vr, v) for t, (vr, v) in vals.items()]
        els.append((0x00081032, "SQ", [[(t, vr, v) for t, (vr, v) in vals.items()]]))
        ds = _read(_write(els, transfer_syntax=ts, undefined_length_sequences=undefined))
        assert_matches(ds, els, little_endian=ts != T.EXPLICIT_BE)

    check()
