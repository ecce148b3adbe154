"""Dataset API and value types against pydicom (independent oracle) on generated files."""
import io
import warnings

import numpy as np
import pytest

import fastdicom
from fastdicom.charset import PersonName
from fastdicom.testing import EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, DEFLATED_LE, write_file
from conformance import compare_datasets

pydicom = pytest.importorskip("pydicom")

ALL_VRS = [
    (0x00080005, "CS", "ISO_IR 100"),
    (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
    (0x00080018, "UI", "1.2.3.4.5"),
    (0x00080020, "DA", "20240102"),
    (0x00080030, "TM", "101112.5"),
    (0x0008002A, "DT", "20240102101112"),
    (0x00080054, "AE", ["AE_ONE", "AE_TWO"]),
    (0x00080060, "CS", "CT"),
    (0x00081030, "LO", "Brain ü"),
    (0x00081150, "UI", "1.2"),
    (0x00100010, "PN", "Müller^Jürgen"),
    (0x00100020, "LO", "ID-1"),
    (0x00101010, "AS", "042Y"),
    (0x00104000, "LT", "line one\r\nline two"),
    (0x00181000, "LO", ["A", "B"]),
    (0x00181150, "IS", 12),
    (0x00185100, "CS", "HFS"),
    (0x00200032, "DS", [1.5, -2.25, 3.0]),
    (0x00209161, "UI", "1.2.3"),
    (0x00280010, "US", 4),
    (0x00280011, "US", 2),
    (0x00280030, "DS", [0.5, 0.5]),
    (0x00281052, "DS", -1024),
    (0x00209165, "AT", [0x00100010, 0x00200032]),
    (0x00189219, "SS", -3),
    (0x00189087, "FD", 1000.5),
    (0x00189089, "FD", [1.0, 0.0, 0.0]),
    (0x0018602C, "FD", 0.25),
    (0x00720076, "FL", [1.5, 2.5]),
    (0x00720066, "UL", 7),
    (0x00720062, "SL", -7),
    (0x00720082, "SV", -(2 ** 40)),
    (0x00720083, "UV", 2 ** 40),
    (0x0040A30A, "DS", "1.25"),
    (0x00287FE0, "UR", "http://example.com/x"),
    (0x00081199, "SQ", [[(0x00081150, "UI", "1.2.840.10008.5.1.4.1.1.2"),
                         (0x00081155, "UI", "9.8.7")],
                        [(0x00081150, "UI", "1.2.5")]]),
    (0x00090010, "LO", "FASTDICOM TEST"),
    (0x00091001, "LO", "private text"),
    (0x00091002, "US", 77),
    (0x0040A160, "UT", "some unlimited text"),
    (0x00400280, "ST", "short text"),
    (0x00189373, "OD", np.arange(4, dtype="<f8").tobytes()),
    (0x00660016, "OF", np.arange(4, dtype="<f4").tobytes()),
    (0x00660040, "OL", np.arange(4, dtype="<u4").tobytes()),
    (0x00420011, "OB", b"\x00\x01\x02\x03"),
    (0x7FE00010, "OW", np.arange(8, dtype="<u2").tobytes()),
]


@pytest.fixture(params=[EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED_LE])
def sample(request):
    buf = io.BytesIO()
    write_file(buf, ALL_VRS, transfer_syntax=request.param)
    return buf.getvalue()


def test_every_vr_matches_pydicom(sample):
    fd = fastdicom.dcmread(sample)
    pd = pydicom.dcmread(io.BytesIO(sample))
    assert compare_datasets(fd, pd) == []
    assert compare_datasets(fd.file_meta, pd.file_meta) == []


def test_pydicom_vocabulary(sample):
    ds = fastdicom.dcmread(sample)
    assert ds.PatientID == "ID-1"
    assert ds["PatientID"].value == "ID-1"
    assert ds[0x00100020].value == "ID-1"
    assert ds[(0x0010, 0x0020)].value == "ID-1"
    assert "PatientID" in ds and 0x00100020 in ds and "PatientSex" not in ds
    assert ds.get("PatientSex", "none") == "none"
    assert ds.get(0x00100020).value == "ID-1"
    tags = [e.tag for e in ds]
    assert tags == sorted(tags) and len(ds) == len(tags)
    elem = ds["PatientName"]
    assert isinstance(elem.value, PersonName)
    assert elem.value.family_name == "Müller" and elem.keyword == "PatientName"
    assert elem.name == "Patient's Name" and elem.VM == 1 and elem.offset > 0
    assert ds.ImagePositionPatient == [1.5, -2.25, 3.0]
    assert isinstance(ds.InstanceNumber if "InstanceNumber" in ds else ds[0x00181150].value, int)
    assert ds.file_meta.TransferSyntaxUID in (EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED_LE)
    seq = ds[0x00081199].value
    assert len(seq) == 2 and seq[0][0x00081155].value == "9.8.7"
    block = ds.private_block(0x0009, "FASTDICOM TEST")
    if ds.is_implicit_VR:  # unknown private creator: UN bytes, as in pydicom
        assert block[0x02].VR == "UN" and block[0x02].value == (77).to_bytes(2, "little")
    else:
        assert block[0x02].value == 77 and block[0x01].value == "private text"
    with pytest.raises(AttributeError):
        ds.PatientSex
    with pytest.raises(KeyError):
        ds[0x00100040]


def test_header_only_and_specific_tags(tmp_path, sample):
    path = tmp_path / "x.dcm"
    path.write_bytes(sample)
    ds = fastdicom.dcmread(path, stop_before_pixels=True)
    assert 0x7FE00010 not in ds and ds.Rows == 4
    ds = fastdicom.dcmread(path, specific_tags=["PatientID", 0x00280010])
    assert [e.tag for e in ds] == [0x00080005, 0x00100020, 0x00280010]
    for mode in ("mmap", "read"):
        full = fastdicom.dcmread(path, mode=mode)
        assert full[0x7FE00010].value == np.arange(8, dtype="<u2").tobytes() or \
            full.file_meta.TransferSyntaxUID == EXPLICIT_BE


def test_open_keeps_mapping_alive(tmp_path, sample):
    path = tmp_path / "x.dcm"
    path.write_bytes(sample)
    with fastdicom.open(path) as f:
        ds = f.dataset
        view = memoryview(f.buffer)
    assert ds.PatientID == "ID-1"
    assert bytes(view[128:132]) == b"DICM"


def test_no_preamble_requires_force():
    buf = io.BytesIO()
    write_file(buf, ALL_VRS[:5], preamble=None, write_meta=False, transfer_syntax=IMPLICIT_LE)
    with pytest.raises(fastdicom.InvalidDicomError):
        fastdicom.dcmread(buf.getvalue())
    ds = fastdicom.dcmread(buf.getvalue(), force=True)
    assert ds.SOPInstanceUID == "1.2.3.4.5"


def test_to_json_and_to_pydicom(sample):
    ds = fastdicom.dcmread(sample)
    pd = pydicom.dcmread(io.BytesIO(sample))
    assert ds.to_json_dict() == pd.to_json_dict()
    converted = ds.to_pydicom()
    assert converted.PatientID == pd.PatientID and converted.Rows == pd.Rows
    assert str(converted.PatientName) == str(pd.PatientName)


def test_errors_carry_context(tmp_path):
    path = tmp_path / "bad.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00" + b"1.2")
    with pytest.raises(fastdicom.TruncatedError) as info:
        fastdicom.dcmread(path)
    assert info.value.path == str(path) and info.value.offset == 132 and info.value.tag == 0x00020010
    with pytest.raises(fastdicom.InvalidDicomError):
        fastdicom.dcmread(b"")


def test_new_dataset_and_modification(sample):
    ds = fastdicom.Dataset()
    ds.PatientID = "X1"
    ds.Rows = 7
    assert ds.PatientID == "X1" and ds.Rows == 7 and len(ds) == 2
    assert [e.keyword for e in ds] == ["PatientID", "Rows"]
    assert ds.to_json_dict() == {"00100020": {"vr": "LO", "Value": ["X1"]},
                                 "00280010": {"vr": "US", "Value": [7]}}
    read = fastdicom.dcmread(sample)
    assert read.PatientID == "ID-1"
    read.PatientID = "changed"
    assert read.PatientID == "changed" and read["PatientID"].value == "changed"
    del read.PatientID
    assert "PatientID" not in read
    with pytest.raises(AttributeError):
        read.PatientID


def test_large_sequences_are_indexed_on_first_access():
    from fastdicom.dataset import DEFER_SQ_BYTES
    items = [[(0x00209111, "SQ", [[(0x00209157, "UL", [1, k])]]),
              (0x00209113, "SQ", [[(0x00200032, "DS", [0.5, 1.5, float(k)])]])]
             for k in range(3000)]
    elements = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.4.1"), (0x00080018, "UI", "1.2.3"),
                (0x00100020, "LO", "ID"), (0x52009230, "SQ", items)]
    for ts in (EXPLICIT_LE, IMPLICIT_LE):
        buf = io.BytesIO()
        write_file(buf, elements, transfer_syntax=ts)
        data = buf.getvalue()
        assert len(data) > 2 * DEFER_SQ_BYTES
        ds = fastdicom.dcmread(data)
        assert len(ds._index) < 20  # the per-frame items were not indexed at read time
        pd = pydicom.dcmread(io.BytesIO(data))
        assert compare_datasets(ds, pd) == []
        seq = ds.PerFrameFunctionalGroupsSequence
        assert len(seq) == 3000
        assert seq[2999].PlanePositionSequence[0].ImagePositionPatient == [0.5, 1.5, 2999.0]


def test_depth_limit_holds_across_deferred_sequences():
    from fastdicom.dataset import DEFER_SQ_BYTES
    # nest defined-length sequences, each padded past the deferral size, 70 deep
    inner = [(0x00100020, "LO", "x" * 64)]
    for _ in range(70):
        pad = (0x00091001, "OB", b"\0" * DEFER_SQ_BYTES)
        inner = [(0x00091010 - 0x1000, "LO", "FASTDICOM TEST"), pad, (0x00400260, "SQ", [inner])]
        inner = sorted(inner)
    buf = io.BytesIO()
    write_file(buf, [(0x00080016, "UI", "1.2"), (0x00080018, "UI", "1.2.3")] + inner)
    ds = fastdicom.dcmread(buf.getvalue())
    with pytest.raises(fastdicom.NestingTooDeepError):
        node = ds
        for _ in range(80):
            node = node[0x00400260].value[0]


def _charset_file(charset, patient_id: bytes, extra=()) -> bytes:
    from fastdicom import testing
    out = []
    for tag, vr, v in testing.ct_instance_elements(rows=4, columns=4, private=False,
                                                   sequences=False):
        if tag == 0x00080005:
            if charset is None:
                continue
            v = charset
        if tag == 0x00100020:
            v = patient_id
        elif isinstance(v, str) and not v.isascii():
            v = v.encode("ascii", "replace")      # the rest stays plain ASCII
        out.append((tag, vr, v))
    out += list(extra)
    out.sort(key=lambda e: e[0])
    buf = io.BytesIO()
    write_file(buf, out)
    return buf.getvalue()


@pytest.mark.parametrize("charset", [None, "", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 100",
                                     "ISO_IR 192", "ISO_IR 144", "GB18030", "ISO_IR 101",
                                     "ISO 2022 IR 6\\ISO 2022 IR 87", "ISO_IR 13"])
def test_keyword_fast_path_charset_matches_general_decoder(charset):
    """ds.<Keyword> (C fast path, which decides the charset itself for a root data set) gives
    what the general decoder gives for the element, for every kind of Specific Character Set."""
    raw = "Müller-Щ".encode("utf-8")
    data = _charset_file(charset, raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = fastdicom.dcmread(data).PatientID
        ds = fastdicom.dcmread(data)
        general = ds[0x00100020].value
    assert fast == general


def test_changing_specific_character_set_redecodes_values_not_read_yet():
    """Setting or deleting SpecificCharacterSet after other values were read: values read
    afterwards follow the new character set (a cached choice is dropped)."""
    data = _charset_file("ISO_IR 192", "Müller".encode("utf-8"))
    ds = fastdicom.dcmread(data)
    assert ds.PatientID == "Müller"
    ds = fastdicom.dcmread(data)
    ds.Modality
    ds.SpecificCharacterSet = "ISO_IR 100"
    assert ds.PatientID == "Müller".encode("utf-8").decode("latin-1")
    ds = fastdicom.dcmread(data)
    ds.Modality
    del ds.SpecificCharacterSet
    assert "SpecificCharacterSet" not in ds
    assert ds.PatientID == ds[0x00100020].value != "Müller"


def test_dcmread_refuses_what_it_cannot_read_with_a_type_error(tmp_path):
    from fastdicom import dcmread, testing
    testing.write_ct_series(tmp_path, 1, 8, 8)
    path = next(tmp_path.iterdir())
    with open(path, "r") as text, pytest.raises(TypeError, match="binary mode"):
        dcmread(text)
    for bad in (None, 3, 1.5):
        with pytest.raises(TypeError, match="not " + type(bad).__name__):
            dcmread(bad)
    with open(path, "rb") as binary:
        assert dcmread(binary).Rows == 8
    # limits must be a Limits (an int or a dict gave an AttributeError deep inside)
    import fastdicom
    for bad in (5, {"max_depth": 8}):
        with pytest.raises(TypeError, match="fastdicom.Limits"):
            dcmread(path, limits=bad)
        with pytest.raises(TypeError, match="fastdicom.Limits"):
            fastdicom.open(path, limits=bad)
    assert dcmread(path, limits=fastdicom.Limits(max_depth=8)).Rows == 8


# -- pydicom vocabulary: dir(filters), iterall, data_element, group_dataset, slicing ----------

def _nested_file() -> bytes:
    inner = [[(0x00081150, "UI", "1.2.3"), (0x00081155, "UI", "1.2.3.4")]]
    items = [[(0x00080100, "SH", "C1"), (0x00400441, "SQ", inner)],
             [(0x00080100, "SH", "C2")]]
    buf = io.BytesIO()
    write_file(buf, [(0x00080060, "CS", "CT"), (0x00081140, "SQ", items),
                     (0x00100010, "PN", "Doe^John"), (0x00100020, "LO", "ID1"),
                     (0x00100030, "DA", "20000101"), (0x00200013, "IS", "3")])
    return buf.getvalue()


def test_iterall_is_depth_first_into_items():
    ds = fastdicom.dcmread(_nested_file())
    assert [e.tag for e in ds.iterall()] == [
        0x00080060, 0x00081140, 0x00080100, 0x00400441, 0x00081150, 0x00081155, 0x00080100,
        0x00100010, 0x00100020, 0x00100030, 0x00200013]


def test_dir_filters_data_element_group_and_slices():
    ds = fastdicom.dcmread(_nested_file())
    assert ds.dir() == ["InstanceNumber", "Modality", "PatientBirthDate", "PatientID",
                        "PatientName", "ReferencedImageSequence"]
    assert ds.dir("patient", "NUMBER") == ["InstanceNumber", "PatientBirthDate", "PatientID",
                                           "PatientName"]
    assert ds.data_element("PatientID").value == "ID1"
    assert ds.data_element("Rows") is None and ds.data_element("NotAKeyword") is None
    group = ds.group_dataset(0x0010)
    assert list(group.keys()) == [0x00100010, 0x00100020, 0x00100030]
    assert group.PatientName == "Doe^John" and "Modality" not in group
    assert list(ds[0x00081140:0x00100030].keys()) == [0x00081140, 0x00100010, 0x00100020]
    assert list(ds[::2].keys()) == [0x00080060, 0x00100010, 0x00100030]
    assert list(ds["PatientName":].keys()) == [0x00100010, 0x00100020, 0x00100030,
                                               0x00200013]


def test_pydicom_vocabulary_matches_pydicom_on_corpus():
    pydicom = pytest.importorskip("pydicom")
    from _data import require_shared
    corpus = require_shared() / "corpus"
    checked = 0
    for rel in ("pydicom/test_files/CT_small.dcm", "pydicom/test_files/rtplan.dcm",
                "pydicom/test_files/image_dfl.dcm", "pydicom/test_files/MR_small.dcm",
                "pydicom/test_files/chr_SQ_in_latin1.dcm"):
        path = corpus / rel
        if not path.exists():
            continue
        ds, ref = fastdicom.dcmread(path), pydicom.dcmread(str(path))
        assert [e.tag for e in ds.iterall()] == [e.tag for e in ref.iterall()], rel
        for filters in ((), ("patient",), ("UID", "date")):
            assert ds.dir(*filters) == ref.dir(*filters), (rel, filters)
        for group in (0x0008, 0x0010, 0x0028, 0x300A):
            assert list(ds.group_dataset(group).keys()) == \
                list(ref.group_dataset(group).keys()), (rel, group)
        for s in (slice(0x00080000, 0x00200000), slice(0x00100000, None, 3),
                  slice(None, 0x00280000, 2)):
            assert list(ds[s].keys()) == list(ref[s].keys()), (rel, s)
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize("text", ["1.25", "-179.2\\-179.2\\0", " 7.25", "3.5 ", "+5", "-0",
                                  "1e3", "1E-3", ".5", "1.", "nan", "-inf",
                                  "12345678901234\\0.000001", "1.5\\", "x1\\2"])
def test_ds_values_of_the_fast_path_equal_the_python_type(text):
    # ds.<Keyword> builds DS values in C (DSfloat allocated, its original_string slot set
    # directly): the same type, value, text, pickling and copying as DSfloat(text) and as the
    # general decoder's element value
    import copy
    import pickle
    from fastdicom.values import DSfloat
    buf = io.BytesIO()
    write_file(buf, [(0x00180050, "DS", text.encode()), (0x00200032, "DS", text.encode())])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = fastdicom.dcmread(buf.getvalue()).ImagePositionPatient
        general = fastdicom.dcmread(buf.getvalue())[0x00200032].value
    items = [t.strip(" ") for t in text.strip(" ").split("\\")]
    as_list = fast if isinstance(fast, list) else [fast]
    assert len(as_list) == len(items) and repr(fast) == repr(general)
    if text == "x1\\2":
        assert as_list == ["x1", "2"]      # an invalid number: the value is kept as text
        return
    for v, t in zip(as_list, items):
        if not t:
            assert v == ""
            continue
        try:
            want = DSfloat(t)
        except ValueError:
            assert type(v) is not DSfloat
            continue
        assert type(v) is DSfloat and v.original_string == t and str(v) == t
        assert (v == want) or (v != v and want != want)
        back = pickle.loads(pickle.dumps(v))
        assert type(back) is DSfloat and back.original_string == t
        assert copy.deepcopy(v).original_string == t


class _CountingIndex:
    """An ElementIndex stand-in that counts the searches made through it."""

    def __init__(self, index):
        self._index, self.finds = index, 0

    def find(self, tag, parent=-1):
        self.finds += 1
        return self._index.find(tag, parent)

    def __getattr__(self, name):
        return getattr(self._index, name)


@pytest.mark.parametrize("descending", [False, True])
def test_iterating_many_elements_searches_no_tag(descending):
    # iteration looked each tag up again from the first child: quadratic (100,000 private
    # elements, 800 KB: 30 s ascending, 60 s descending).  Now the listing of the level's
    # tags keeps their positions; the values agree with pydicom's
    import struct
    tags = sorted(((0x0011 + 2 * (k // 0xF000)) << 16 | (0x1000 + k % 0xF000)
                   for k in range(3000)), reverse=descending)
    body = b"".join(struct.pack("<HHI", t >> 16, t & 0xFFFF, 2) + struct.pack("<H", t & 0xFFFF)
                    for t in tags)
    buf = io.BytesIO()
    write_file(buf, [], transfer_syntax=IMPLICIT_LE)
    data = buf.getvalue() + body
    ds = fastdicom.dcmread(data)
    counting = _CountingIndex(ds.__dict__["_index"])
    ds.__dict__["_index"] = counting
    got = [(e.tag, e.value) for e in ds if e.tag >> 16 != 2]
    assert counting.finds == 0
    assert got == [(t, struct.pack("<H", t & 0xFFFF)) for t in sorted(tags)]
    # lookups after the listing use it too, and agree with the search
    assert ds[tags[17]].value == struct.pack("<H", tags[17] & 0xFFFF) and tags[17] in ds
    assert 0x00111000 - 1 not in ds and counting.finds == 0
    ref = pydicom.dcmread(io.BytesIO(data), force=True)
    assert [(e.tag, e.value) for e in ref] == got


def _small_image(pixels: bytes, transfer_syntax=EXPLICIT_LE, **extra) -> bytes:
    elements = [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3.4"),
                (0x00280002, "US", 1), (0x00280004, "CS", "MONOCHROME2"),
                (0x00280010, "US", 2), (0x00280011, "US", 2), (0x00280100, "US", 8),
                (0x00280101, "US", 8), (0x00280102, "US", 7), (0x00280103, "US", 0),
                *extra.get("more", ()), (0x7FE00010, "OB", pixels)]
    buf = io.BytesIO()
    write_file(buf, elements, transfer_syntax=transfer_syntax)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["bytes", "file"])
def test_pixels_follow_changes_to_the_data_set(tmp_path, mode):
    # pixel_array after the data set changed: the new values (pydicom as oracle), never the
    # pixels described and cached before the change
    pydicom = pytest.importorskip("pydicom")
    data = _small_image(bytes([1, 2, 3, 4]))
    path = tmp_path / "x.dcm"
    path.write_bytes(data)

    def both():
        src = data if mode == "bytes" else path
        return fastdicom.dcmread(src), pydicom.dcmread(io.BytesIO(data))

    def same(fd, pd):
        got, want = fd.pixel_array, pd.pixel_array
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        return got

    fd, pd = both()
    same(fd, pd)
    for ds in (fd, pd):
        ds.PixelData = bytes([9, 8, 7, 6])     # after a first decode
    assert same(fd, pd).tolist() == [[9, 8], [7, 6]]
    fd, pd = both()
    same(fd, pd)
    for ds in (fd, pd):
        ds.Rows, ds.Columns = 1, 4
    assert same(fd, pd).tolist() == [[1, 2, 3, 4]]
    fd, pd = both()
    for ds in (fd, pd):                        # set before any decode
        ds.PixelData = bytes([5, 5, 5, 5])
    assert same(fd, pd).tolist() == [[5, 5], [5, 5]]
    fd, pd = both()
    for ds in (fd, pd):
        del ds.PixelData
        ds.PixelData = bytes([5, 6, 7, 8])
    assert "PixelData" in fd
    assert same(fd, pd).tolist() == [[5, 6], [7, 8]]
    assert fd.frame(0).tolist() == [[5, 6], [7, 8]]


def test_an_element_set_again_after_del_is_visible():
    ds = fastdicom.dcmread(_small_image(bytes(4)))
    del ds.SOPClassUID
    assert "SOPClassUID" not in ds and ds.get("SOPClassUID") is None
    ds.SOPClassUID = "1.2.3"
    assert "SOPClassUID" in ds and ds.SOPClassUID == "1.2.3"
    assert ds[0x00080016].value == "1.2.3"
    assert [e.tag for e in ds][:2] == [0x00080016, 0x00080018]
    del ds[0x00080016]
    assert 0x00080016 not in ds


def test_pixel_data_set_in_memory(tmp_path):
    ds = fastdicom.Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 2, 3, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.array([1, 0xFFF, 2047, 0x800, 0xF00F, 5], "<u2").tobytes()
    # 12-bit two's complement in 16-bit words, the bits above High Bit ignored
    assert ds.pixel_array.tolist() == [[1, -1, 2047], [-2048, 15, 5]]
    ds.NumberOfFrames = 2
    with pytest.raises(fastdicom.PixelDataError, match="24 expected"):
        ds.pixel_array
    ds.NumberOfFrames = 1
    ds.PixelData = 12
    with pytest.raises(fastdicom.PixelDataError, match="bytes-like"):
        ds.pixel_array
    # a file read and given new native pixels: not read from the file's old offset
    path = tmp_path / "x.dcm"
    path.write_bytes(_small_image(bytes([1, 2, 3, 4])))
    read = fastdicom.dcmread(path)
    read.PixelData = bytearray([4, 3, 2, 1])
    assert read.pixel_array.tolist() == [[4, 3], [2, 1]]
    assert read.frame(-1).tolist() == [[4, 3], [2, 1]]


def _explicit(*elements) -> bytes:
    import struct

    def el(tag, vr, val):
        return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(val)) + val
    meta = el(0x00020010, "UI", b"1.2.840.10008.1.2.1\0")
    return (b"\0" * 128 + b"DICM" + el(0x00020000, "UL", struct.pack("<I", len(meta))) + meta
            + b"".join(el(*e) for e in elements))


def test_numeric_value_of_a_wrong_length_is_bytes_with_a_warning_not_text():
    # 12 bytes of FD, 6 of UL: not text (a retry as SH made '' and '\x01' of them)
    data = _explicit((0x00189087, "FD", b"\0" * 12), (0x00289001, "UL", b"\x01\0\0\0\0\0"))
    ds = fastdicom.dcmread(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ds[0x00189087].value == b"\0" * 12
        assert ds.DataPointRows == b"\x01\0\0\0\0\0"
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "not a multiple of 8" in messages[0] and "(0018,9087)" in messages[0]
    assert "not a multiple of 4" in messages[1] and "(0028,9001)" in messages[1]
    strict = fastdicom.dcmread(data, validation="raise")
    with pytest.raises(fastdicom.MalformedElementError) as info:
        strict.DiffusionBValue
    assert info.value.tag == 0x00189087 and info.value.offset == 132 + 12 + 28


def test_value_errors_carry_offset_and_tag():
    data = _explicit((0x00080005, "CS", b"ISO_IR 192"), (0x00100010, "PN", b"\xff\xfeab"))
    ds = fastdicom.dcmread(data, validation="raise")
    with pytest.raises(fastdicom.MalformedElementError) as info:
        ds.PatientName
    assert info.value.tag == 0x00100010 and info.value.offset is not None


def test_specific_tags_hide_what_the_data_set_reads_for_itself():
    # resolving an implicit VR reads Bits Allocated and a private creator: they stay hidden
    import struct

    def el(tag, val):
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(val)) + val
    body = struct.pack("<HH2sH", 2, 0x10, b"UI", 18) + b"1.2.840.10008.1.2\0"
    data = (b"\0" * 128 + b"DICM" + struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(body)) + body
            + el(0x00100020, b"ID") + el(0x00190010, b"GEMS_ACQU_01")
            + el(0x00191002, b"\x01\0\0\0") + el(0x00280100, b"\x10\x00")
            + el(0x7FE00010, b"\x01\x02"))
    ds = fastdicom.dcmread(data, specific_tags=["PixelData", 0x00191002])
    before = list(ds.keys())
    assert before == [0x00191002, 0x7FE00010]
    # (the private VR from its creator's dictionary, read though not requested)
    assert [e.VR for e in ds] == ["SL", "OW"]
    assert list(ds.keys()) == before and len(ds) == 2
    assert "BitsAllocated" not in ds and ds.get("BitsAllocated") is None
    ds.PatientID = "set"            # an element set is part of the data set
    assert "PatientID" in ds and ds.PatientID == "set" and len(ds) == 3


def test_keyword_value_follows_the_element_value():
    data = _explicit((0x00100020, "LO", b"OLD "))
    ds = fastdicom.dcmread(data)
    assert ds.PatientID == "OLD"          # cached on the data set
    ds["PatientID"].value = "NEW"
    assert ds.PatientID == "NEW"
    for elem in ds:                        # the anonymisation pattern
        elem.value = "X"
    assert ds.PatientID == "X"
    new = fastdicom.Dataset()
    new.PatientName = "A^B"
    assert new.PatientName == "A^B"
    new["PatientName"].value = "C^D"
    assert new.PatientName == "C^D"


@pytest.mark.parametrize("pr", [0, 1])
@pytest.mark.parametrize("entries", [1, 4])
def test_implicit_lut_descriptor_and_data_vrs_as_pydicom(pr, entries):
    # implicit VR: the descriptor is SS when Pixel Representation is 1, LUT Data is OW
    # unless the descriptor declares one entry (pydicom 3), and the VOI LUT applied to the
    # pixels is pydicom's
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels import apply_voi_lut
    from pydicom.uid import ImplicitVRLittleEndian
    from fastdicom.pixels import lut
    ds = Dataset()
    ds.PixelRepresentation = pr
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 16
    item = Dataset()
    item.add_new(0x00283002, "SS" if pr else "US", [entries, -1 if pr else 65535, 16])
    item.add_new(0x00283006, "OW", np.arange(entries, dtype="<u2").tobytes() * 1)
    ds.VOILUTSequence = [item]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.3"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    p = pydicom.dcmread(io.BytesIO(buf.getvalue()))
    f = fastdicom.dcmread(buf.getvalue())
    for tag in (0x00283002, 0x00283006):
        pe, fe = p.VOILUTSequence[0][tag], f.VOILUTSequence[0][tag]
        assert fe.VR == pe.VR
        want = pe.value if isinstance(pe.value, (bytes, int)) else list(pe.value)
        got = fe.value if isinstance(fe.value, (bytes, int)) else list(fe.value)
        assert got == want
    if entries > 1:         # (pydicom's apply_voi_lut fails on a one-entry LUT)
        arr = np.array([-3, -1, 0, 1, 2, 7] if pr else [0, 1, 2, 3, 9, 65535],
                       dtype="<i2" if pr else "<u2")
        np.testing.assert_array_equal(lut.apply_voi_lut(arr, f), apply_voi_lut(arr, p))


def test_charset_warnings_name_the_element():
    data = _explicit((0x00080005, "CS", b"ISO_IR 192"), (0x00100010, "PN", b"\xff\xfeab"),
                     (0x00100020, "LO", b"ok"))
    with pytest.warns(fastdicom.DicomWarning) as caught:
        ds = fastdicom.dcmread(data)
        assert str(ds.PatientName) == "\ufffd\ufffdab"     # the lenient decoding's value
    assert [str(w.message) for w in caught] == [
        "Value cannot be decoded with 'UTF8', using replacement characters "
        f"[offset {132 + 12 + 28 + 18}, tag (0010,0010)]"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ds.PatientID == "ok"
    # each way to the value warns at the caller's line, however deep the decoding runs
    for get in (lambda d: d.PatientName, lambda d: d[0x00100010].value,
                lambda d: d.to_json_dict()):
        with pytest.warns(fastdicom.DicomWarning, match="cannot be decoded") as caught:
            get(fastdicom.dcmread(data))
        assert {w.filename for w in caught} == {__file__}


def test_invalid_number_strings_warn_with_the_element_and_is_decimal_is_a_float():
    # an IS or DS value that is not a number was silently a str (IS "1.5" too, where
    # pydicom 3 gives the float 1.5 with a warning); now a DicomWarning naming the element,
    # the float for a decimal IS, and MalformedElementError under validation="raise"
    pydicom = pytest.importorskip("pydicom")
    buf = io.BytesIO()
    write_file(buf, [(0x00080018, "UI", "1.2.3"), (0x00180050, "DS", "x1"),
                     (0x00200013, "IS", "1.5"), (0x00200020, "IS", "2\\3.25")])
    data = buf.getvalue()
    ds = fastdicom.dcmread(io.BytesIO(data))
    ref = pydicom.dcmread(io.BytesIO(data))
    with pytest.warns(fastdicom.errors.DicomWarning, match=r"VR IS.*\(0020,0013\)"):
        value = ds.InstanceNumber
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ref.InstanceNumber
        expected_multi = list(ref[0x00200020].value)
    assert isinstance(value, float) and value == expected == 1.5 and str(value) == "1.5"
    with pytest.warns(fastdicom.errors.DicomWarning, match=r"VR IS.*\(0020,0020\)"):
        multi = ds[0x00200020].value
    assert list(multi) == expected_multi == [2, 3.25]
    assert type(multi[0]) is fastdicom.values.IS
    with pytest.warns(fastdicom.errors.DicomWarning, match=r"VR DS.*\(0018,0050\)"):
        assert ds.SliceThickness == "x1"
    strict = fastdicom.dcmread(io.BytesIO(data), validation="raise")
    with pytest.raises(fastdicom.errors.MalformedElementError, match=r"\(0020,0013\)"):
        strict.InstanceNumber
    # a valid value: no warning
    buf = io.BytesIO()
    write_file(buf, [(0x00080018, "UI", "1.2.3"), (0x00200013, "IS", " 7 ")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fastdicom.dcmread(io.BytesIO(buf.getvalue())).InstanceNumber == 7


@pytest.mark.parametrize("text", [b"1E999 ", b"inf ", b"-inf", b"nan "])
def test_json_of_a_number_that_is_no_json_number(text):
    """An IS or DS value of "1E999", "inf" or "nan" (a damaged file): to_json_dict raised
    OverflowError for the IS (not a DicomError), and wrote Infinity/NaN for the DS, which
    is no JSON (RFC 8259 section 6).  Both are kept as their text, as a malformed IS is."""
    import json
    import struct
    fd = struct.pack("<d", float(text))
    ds = fastdicom.dcmread(_explicit((0x00181151, "IS", text), (0x00181050, "DS", text),
                                     (0x00189087, "FD", fd)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ds.to_json_dict()
    want = text.decode().strip()
    assert out["00181151"] == {"vr": "IS", "Value": [want]}
    assert out["00181050"] == {"vr": "DS", "Value": [want]}
    assert out["00189087"] == {"vr": "FD", "Value": [str(float(text))]}
    text_out = ds.to_json()
    json.loads(text_out, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_json_of_a_binary_number_of_a_wrong_length(tmp_path):
    # US of 3 bytes is kept as bytes: to_json_dict wrote the text "b'\\x01\\x02\\x03'" as its
    # number; pydicom raises (and leaves it out with suppress_invalid_tags), so do we
    from fastdicom import testing
    from fastdicom.errors import MalformedElementError
    p = tmp_path / "j.dcm"
    testing.write_file(p, [(0x00080018, "UI", "1.2"), (0x00181310, "US", b"\x01\x02\x03"),
                           (0x00280010, "US", b"\x01\x02\x03\x04"), (0x00280011, "US", 4)],
                       transfer_syntax=testing.EXPLICIT_LE)
    ds = fastdicom.dcmread(p)
    with pytest.warns(fastdicom.DicomWarning):
        assert ds[0x00181310].value == b"\x01\x02\x03"
    with pytest.raises(MalformedElementError) as info:
        ds.to_json_dict()
    assert info.value.tag == 0x00181310 and info.value.path == str(p)
    assert info.value.offset == ds[0x00181310].header_offset
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pydicom.config, "convert_wrong_length_to_UN", True)
        pd = pydicom.dcmread(p)
        with pytest.raises(ValueError):
            pd.to_json_dict()
        want = pd.to_json_dict(suppress_invalid_tags=True)
    assert "00181310" not in want and want["00280010"]["Value"] == [513, 1027]
    assert ds.to_json_dict(suppress_invalid_tags=True) == want


def test_to_pydicom_of_values_pydicom_reads_but_does_not_construct(tmp_path):
    # DS/IS text that is not a number and UN bytes of a tag the dictionary calls a sequence:
    # pydicom reads them (text kept; an empty sequence) but its constructors raise, and so
    # did to_pydicom (ValueError, TypeError); it also returned a Dataset for a file
    from fastdicom import testing
    p = tmp_path / "c.dcm"
    testing.write_file(p, [(0x00080018, "UI", "1.2"), (0x00081140, "UN", b"garbage!"),
                           (0x00180050, "DS", b"abc"), (0x00200013, "IS", b"1.5x"),
                           (0x00280030, "DS", b"0.5\\x1")], transfer_syntax=testing.EXPLICIT_LE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = pydicom.dcmread(p)
        got = fastdicom.dcmread(p).to_pydicom()
        for tag in (0x00081140, 0x00180050, 0x00200013, 0x00280030):
            assert (got[tag].VR, got[tag].value) == (want[tag].VR, want[tag].value), hex(tag)
    assert isinstance(got, pydicom.dataset.FileDataset)
    assert got.filename == str(p) and got.preamble == want.preamble
    assert got.file_meta.TransferSyntaxUID == want.file_meta.TransferSyntaxUID
    made = fastdicom.Dataset()
    made.PatientID = "X"
    assert type(made.to_pydicom()) is pydicom.dataset.Dataset


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
def test_uid_values_lose_surrounding_whitespace_as_in_pydicom(tmp_path, ts):
    # " 1.2.3 " kept its leading space and "1.2\\ 3.4" its inner one (pydicom's UID()
    # strips each value): a UID compared or indexed did not match the same UID written plainly
    from fastdicom import testing, scan
    p = tmp_path / "ui.dcm"
    testing.write_file(p, [(0x00080016, "UI", b" 1.2\0"), (0x00080018, "UI", b" 1.2.3 "),
                           (0x00081150, "UI", b"1.2\\ 3.4\0"),
                           (0x00081140, "SQ", [[(0x00081155, "UI", b" 5.6 ")]]),
                           (0x0020000D, "UI", b"1.2 \\3.4 ")], transfer_syntax=ts)
    want = pydicom.dcmread(p)
    ds = fastdicom.dcmread(p)
    for kw in ("SOPClassUID", "SOPInstanceUID", "ReferencedSOPClassUID", "StudyInstanceUID"):
        assert getattr(ds, kw) == want[kw].value, kw
        assert ds[kw].value == want[kw].value, kw
    assert ds.SOPInstanceUID == "1.2.3" and ds.ReferencedSOPClassUID == ["1.2", "3.4"]
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "5.6" == \
        want.ReferencedImageSequence[0].ReferencedSOPInstanceUID
    row = scan([p], ["SOPClassUID", "SOPInstanceUID"]).to_pylist()[0]
    assert (row["SOPClassUID"], row["SOPInstanceUID"]) == ("1.2", "1.2.3")


def test_vm_of_empty_person_names_is_zero_as_in_pydicom(tmp_path):
    # an empty PN (or one of spaces) had VM 1: its PersonName value is not a str (429
    # elements of 261 corpus files differed from pydicom)
    from fastdicom import testing
    p = tmp_path / "pn.dcm"
    testing.write_file(p, [(0x00080018, "UI", "1.2"), (0x00080090, "PN", b""),
                           (0x00100010, "PN", b"  "), (0x00100020, "LO", b""),
                           (0x00101001, "PN", b"A\\ "), (0x00101060, "PN", b"B^C")])
    ds, want = fastdicom.dcmread(p), pydicom.dcmread(p)
    for tag in (0x00080090, 0x00100010, 0x00100020, 0x00101001, 0x00101060):
        assert ds[tag].VM == want[tag].VM, hex(tag)
    assert [ds[t].VM for t in (0x00080090, 0x00100010, 0x00101001, 0x00101060)] == [0, 0, 2, 1]


def test_add_and_add_new_as_in_pydicom(sample):
    ds = fastdicom.dcmread(sample)
    pd = pydicom.dcmread(io.BytesIO(sample))
    for d in (ds, pd):
        d.add_new(0x00100030, "DA", "19700101")
        d.add_new((0x0008, 0x1030), "LO", "Study")
        d.add_new("PatientSex", "CS", "O")
    ds.add(fastdicom.DataElement(0x00181030, "LO", "Protocol"))
    pd.add(pydicom.DataElement(0x00181030, "LO", "Protocol"))
    for kw in ("PatientBirthDate", "StudyDescription", "PatientSex", "ProtocolName"):
        assert getattr(ds, kw) == getattr(pd, kw), kw
    assert ds.to_json_dict() == pd.to_json_dict()


@pytest.mark.parametrize("ts", [EXPLICIT_LE, EXPLICIT_BE, IMPLICIT_LE])
def test_lut_descriptor_entries_are_unsigned_when_ss(ts, tmp_path):
    # PS3.3 C.7.6.3.1.5 / C.11.1.1: the number of entries is unsigned whatever the VR; an SS
    # descriptor of 32768 entries (bytes 00 80) is 32768, as pydicom 3 reads an explicit SS
    # one, not -32768 (pydicom leaves it negative in implicit VR).  The second value, the
    # first value mapped, stays signed.  dcmread and scan agree.
    from fastdicom.batch import scan
    path = tmp_path / "lut.dcm"
    item = [(0x00283002, "SS", [-32768, -100, 16]), (0x00283006, "OW", b"\0\0" * 4)]
    write_file(path, [(0x00080018, "UI", "1.2.3.4"), (0x00280103, "US", 1),
                      (0x00281101, "SS", [-32768, 0, 16]), (0x00283010, "SQ", [item])],
               transfer_syntax=ts)
    raw = path.read_bytes()
    assert (b"\x00\x80" if ts != EXPLICIT_BE else b"\x80\x00") in raw
    ds = fastdicom.dcmread(str(path))
    assert ds[0x00281101].VR == "SS"
    assert list(ds[0x00281101].value) == [32768, 0, 16]
    assert list(ds.VOILUTSequence[0].LUTDescriptor) == [32768, -100, 16]
    if ts != IMPLICIT_LE:
        p = pydicom.dcmread(str(path))
        assert list(p[0x00281101].value) == [32768, 0, 16]
        assert list(p.VOILUTSequence[0].LUTDescriptor) == [32768, -100, 16]
    t = scan([str(path)], tags=["RedPaletteColorLookupTableDescriptor"])
    assert t.column("RedPaletteColorLookupTableDescriptor").to_pylist() == [[32768, 0, 16]]


def test_a_failed_open_holds_no_descriptor(tmp_path):
    """The error of fastdicom.open() on a damaged file kept the half-built DicomFile (its
    traceback) and so the map's open descriptor: code keeping the errors ran out of
    descriptors ("Too many open files" after 124 with a limit of 128)."""
    import os
    from fastdicom import testing
    body = testing.encode_dataset([(0x00091010, "OB", b"\0" * 9000)]) \
        + b"\xfe\xff\x00\xe0\x00\x00\x00\x00"         # an item where an element belongs
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + testing.encode_file_meta(
        transfer_syntax=EXPLICIT_LE, sop_class_uid="1.2.3", sop_instance_uid="1.2.4") + body)
    before = len(os.listdir("/proc/self/fd"))
    kept = []
    for _ in range(50):
        with pytest.raises(fastdicom.DicomError) as info:
            fastdicom.open(bad)
        kept.append(info.value)
    assert len(os.listdir("/proc/self/fd")) == before
    assert kept[0].path == str(bad)


def test_slices_and_bad_keys_as_pydicom(sample):
    """A negative step gave the tags of [start, stop) reversed, and a step of 0 all of
    them; pydicom slices its tag list (``tags[i:j:step]``).  A key that is no tag (an int
    out of range, text, None, a float) raised OverflowError or ValueError out of ``in``,
    ``ds[key]`` and ``get``: pydicom answers False and raises KeyError."""
    import itertools
    import warnings
    fd = fastdicom.dcmread(sample)
    pd = pydicom.dcmread(io.BytesIO(sample))
    tags = [e.tag for e in pd]
    bounds = [None, 0, tags[3], tags[3] + 1, tags[-4], 0xFFFFFFFF]
    for start, stop, step in itertools.product(bounds, bounds, [None, 1, 2, -1, -3, 0]):
        key = slice(start, stop, step)
        try:
            want = sorted(e.tag for e in pd[key])
        except ValueError:
            with pytest.raises(ValueError):
                fd[key]
            continue
        assert sorted(e.tag for e in fd[key]) == want, key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # (pydicom warns on such keys)
        for key in (-1, 2 ** 32, "zz!", None, 1.5, (1,), "NotAKeyword"):
            assert (key in fd) is (key in pd) is False
            for ds in (fd, pd):
                with pytest.raises(KeyError):
                    ds[key]
            assert fd.get(key, "D") == "D"


def test_a_buffer_of_wider_items_is_read_as_its_bytes(sample):
    """dcmread takes any object with the buffer protocol: a memoryview cast to uint16, or a
    numpy array of uint16 over the file, failed as "not DICOM" (its offsets counted items,
    not bytes)."""
    raw = sample + b"\0" * (len(sample) % 2)
    want = [(e.tag, e.VR, e.value) for e in fastdicom.dcmread(raw) if e.VR != "SQ"]
    for buf in (memoryview(raw).cast("H"), np.frombuffer(raw, np.uint16),
                np.frombuffer(raw, np.uint8).reshape(2, -1) if len(raw) % 4 == 0 else
                np.frombuffer(raw, np.uint8)[::-1][::-1]):
        got = [(e.tag, e.VR, e.value) for e in fastdicom.dcmread(buf) if e.VR != "SQ"]
        assert got == want


def _cycle_sample(big_item: bool) -> bytes:
    """A file whose values need the data set to decode: a Latin-1 name, a private element
    named by its creator, and a sequence item (``big_item``: of a sequence long enough to be
    indexed on first access) whose name inherits the character set of the data set above."""
    comments = "x" * (70_000 if big_item else 10)
    item = [(0x00321032, "PN", "Grün^Åsa"), (0x0040A160, "UT", comments)]
    elements = [(0x00080005, "CS", "ISO_IR 100"), (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
                (0x00080018, "UI", "1.2.3.4.5"), (0x00090010, "LO", "GEMS_IDEN_01"),
                (0x00091001, "LO", "private value"), (0x00100010, "PN", "Müller^Jürgen"),
                (0x00400275, "SQ", [item])]
    buf = io.BytesIO()
    write_file(buf, elements)
    return buf.getvalue()


@pytest.mark.parametrize("big_item", [False, True])
def test_a_data_set_is_freed_without_the_cyclic_collector(big_item):
    """Elements and items refer to their data set weakly: once the caller lets a data set
    go, it and its buffer are freed at once, whatever was read from it; with reference
    cycles a loop over files held every one of them until the collector ran."""
    import gc
    import weakref
    raw = _cycle_sample(big_item)
    uses = [lambda ds: ds.PatientName, lambda ds: ds[0x00100010].value,
            lambda ds: [e.value for e in ds], lambda ds: ds.RequestAttributesSequence[0].RequestingPhysician,
            lambda ds: ds[0x00091001].name, lambda ds: list(ds.iterall()), lambda ds: repr(ds),
            lambda ds: ds.to_json_dict()]
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for use in uses:
            ds = fastdicom.dcmread(raw)
            ref = weakref.ref(ds)
            ctx = weakref.ref(ds.__dict__["_ctx"])
            use(ds)
            del ds
            assert ref() is None and ctx() is None
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize("big_item", [False, True])
def test_elements_and_items_decode_after_their_data_set_is_gone(big_item):
    """An element or item kept past its data set decodes as it would have with the data set
    alive: the character set, the private creator and the depth come from a data set rebuilt
    from the same index."""
    raw = _cycle_sample(big_item)
    name = fastdicom.dcmread(raw)[0x00100010]
    private = fastdicom.dcmread(raw)[0x00091001]
    item = fastdicom.dcmread(raw).RequestAttributesSequence[0]
    seq_elem = fastdicom.dcmread(raw)[0x00400275]
    assert name.value == "Müller^Jürgen"
    assert name.raw_value == "Müller^Jürgen ".encode("latin-1")
    assert private.name == "[Full fidelity]" and private.value == "private value"
    assert item.RequestingPhysician == "Grün^Åsa"    # the character set of the data set above
    assert len(item.TextValue) == (70_000 if big_item else 10)
    assert seq_elem.value[0][0x00321032].value == "Grün^Åsa"
    # an element moved into another data set keeps decoding with its own
    other = fastdicom.Dataset()
    elem = fastdicom.dcmread(raw)[0x00100010]
    other[0x00100010] = elem
    assert other.PatientName == "Müller^Jürgen"


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_give_an_equal_independent_data_set(how):
    """A pickled or deep-copied data set holds the decoded values (items recursively), the
    file meta and the read options, and no buffer: equal to the original and to pydicom's
    reading element by element, with the same pixels; changing it leaves the original as it
    was."""
    import copy
    import pickle
    pydicom = pytest.importorskip("pydicom")
    from _data import require_shared
    corpus = require_shared() / "corpus"
    clone = (lambda ds: pickle.loads(pickle.dumps(ds))) if how == "pickle" else copy.deepcopy
    checked = 0
    for rel in ("pydicom/test_files/CT_small.dcm", "pydicom/test_files/rtplan.dcm",
                "pydicom/test_files/image_dfl.dcm", "pydicom/test_files/MR_small_bigendian.dcm",
                "pydicom/test_files/chr_SQ_in_latin1.dcm", "pydicom/test_files/MR_small_RLE.dcm"):
        path = corpus / rel
        if not path.exists():
            continue
        ds = fastdicom.dcmread(path)
        copied = clone(ds)
        assert copied is not ds and copied == ds, rel
        assert copied.file_meta == ds.file_meta and copied.filename == ds.filename
        assert copied.is_little_endian == ds.is_little_endian
        compare_datasets(copied, pydicom.dcmread(str(path)))
        if "PixelData" in ds:
            np.testing.assert_array_equal(copied.pixel_array, ds.pixel_array)
        copied.PatientName = "Changed^Name"
        for item in copied.iterall():
            if item.VR == "SQ":
                item.value.clear()
        assert ds == fastdicom.dcmread(path), rel
        checked += 1
    assert checked >= 5


def test_copy_is_shallow_and_adding_or_deleting_does_not_reach_the_original():
    import copy
    raw = _cycle_sample(False)
    ds = fastdicom.dcmread(raw)
    shallow = copy.copy(ds)
    assert shallow == ds
    del shallow.PatientName
    shallow.PatientID = "new"
    assert "PatientName" in ds and "PatientID" not in ds
    assert shallow[0x00400275] is ds[0x00400275]     # the elements are shared, as in pydicom
    assert shallow.RequestAttributesSequence[0].RequestingPhysician == "Grün^Åsa"


def _sequence_with_an_odd_length(n_items: int) -> bytes:
    """A file ending in (0040,0275) SQ of ``n_items`` items, the first holding two UI values
    of odd length 3 (PS3.5 7.1.1: lengths are even; the item's and the sequence's are)."""
    import struct

    def element(tag, vr, value):
        return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value
    first = element(0x00081150, b"UI", b"1.2") + element(0x00081155, b"UI", b"1.3")
    other = element(0x00081150, b"UI", b"1.20") + element(0x00081155, b"UI", b"1.23")
    items = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
                     for body in [first] + [other] * (n_items - 1))
    buf = io.BytesIO()
    write_file(buf, [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
                     (0x00080018, "UI", "1.2.3"), (0x00100020, "LO", "ID")])
    return buf.getvalue() + struct.pack("<HH2sHI", 0x0040, 0x0275, b"SQ", 0, len(items)) + items


@pytest.mark.parametrize("n_items", [2, 5000])
def test_odd_length_in_a_sequence_is_reported_however_long_the_sequence(n_items):
    """An odd value length inside the items of a sequence raises under validation="raise" and
    warns under "warn", naming the element, also when the sequence is long enough to be
    indexed on first access (it was not reported there)."""
    from fastdicom.dataset import DEFER_SQ_BYTES
    from fastdicom.errors import MalformedElementError
    data = _sequence_with_an_odd_length(n_items)
    assert (len(data) > DEFER_SQ_BYTES) == (n_items > 2)
    with pytest.raises(MalformedElementError, match="odd value length") as info:
        ds = fastdicom.dcmread(data, validation="raise")
        ds.RequestAttributesSequence
    assert info.value.tag == 0x00081150
    with pytest.warns(UserWarning, match="odd value length"):
        ds = fastdicom.dcmread(data)
        seq = ds.RequestAttributesSequence
    assert seq[0][0x00081150].value == "1.2" and len(seq) == n_items
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(fastdicom.dcmread(data, validation="ignore").RequestAttributesSequence) == n_items


def test_private_block_create_matches_pydicom():
    """``private_block(group, creator, create=True)`` takes the first free slot, as pydicom's
    does (the oracle, on the same file), and the block's ``add_new`` / ``del`` reach the
    data set; an empty creator or an even group is a ValueError, a creator not found without
    ``create`` a KeyError."""
    pydicom = pytest.importorskip("pydicom")
    buf = io.BytesIO()
    write_file(buf, [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3"),
                     (0x00090010, "LO", "FIRST"), (0x00090011, "LO", "SECOND"),
                     (0x00090013, "LO", "FOURTH"), (0x00091101, "LO", "kept")])
    data = buf.getvalue()
    ours, ref = fastdicom.dcmread(data), pydicom.dcmread(io.BytesIO(data))
    for creator in ("NEW ONE", "NEW TWO", "SECOND"):
        a = ours.private_block(0x0009, creator, create=True)
        b = ref.private_block(0x0009, creator, create=True)
        assert a.block_start == b.block_start, creator
        a.add_new(0x01, "LO", creator.lower())
        b.add_new(0x01, "LO", creator.lower())
    assert [(e.tag, e.VR, e.value) for e in ours] == [(int(e.tag), e.VR, e.value) for e in ref]
    assert ours.private_block(0x0009, "NEW ONE")[0x01].value == "new one"
    del ours.private_block(0x0009, "SECOND")[0x01]
    assert 0x00091101 not in ours
    with pytest.raises(ValueError):
        ours.private_block(0x0009, "", create=True)
    with pytest.raises(ValueError):
        ours.private_block(0x0008, "X", create=True)
    with pytest.raises(KeyError):
        ours.private_block(0x0009, "ABSENT")


def _nested(depth: int) -> bytes:
    """A file whose (0040,A730) sequences nest ``depth`` levels deep (undefined lengths),
    each item holding a Text Value naming its level; built inside out, without recursion."""
    import struct
    body = b""
    for level in range(depth, 0, -1):
        text = f"L{level:05d}".encode()
        content = struct.pack("<HH2sH", 0x0040, 0xA160, b"UT", 0) + \
            struct.pack("<I", len(text)) + text + body
        item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + content + \
            struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
        body = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + item + \
            struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    buf = io.BytesIO()
    write_file(buf, [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.88.11"),
                     (0x00080018, "UI", "1.2.3")])
    return buf.getvalue() + body


def test_comparison_repr_walk_and_json_do_not_recurse_on_deep_nesting():
    """With ``max_depth`` raised, a data set nesting 1,500 levels compares, prints, walks and
    converts to JSON (these recursed, and raised RecursionError past 150-400 levels)."""
    depth = 1500
    data = _nested(depth)
    limits = fastdicom.Limits(max_depth=depth + 1)
    a, b = fastdicom.dcmread(data, limits=limits), fastdicom.dcmread(data, limits=limits)
    assert a == b
    text = repr(a)
    assert text.count("---------- item 1") == depth
    assert text.index("L00001") < text.index("L00002") < text.index(f"L{depth:05d}")
    seen = []
    a.walk(lambda ds, elem: seen.append(elem.value) if elem.tag == 0x0040A160 else None)
    assert seen == [f"L{k:05d}" for k in range(1, depth + 1)]
    node, levels = a.to_json_dict(), 0
    while "0040A730" in node:
        node = node["0040A730"]["Value"][0]
        levels += 1
        assert node["0040A160"]["Value"] == [f"L{levels:05d}"]
    assert levels == depth
    # one differing value at the bottom makes them differ
    c = fastdicom.dcmread(data.replace(f"L{depth:05d}".encode(), b"LXXXXX"), limits=limits)
    assert a != c


def test_changes_made_to_a_data_set_hold_for_what_outlives_it():
    """An element or item kept after its data set is gone decodes with the data set as the
    caller changed it (a new character set, Pixel Representation or private creator), not as
    the file holds it; an element added in memory keeps its private name."""
    raw = _cycle_sample(big_item=True)

    def kept(change, take):
        ds = fastdicom.dcmread(raw)
        change(ds)
        return take(ds)
    cyrillic = "Müller^Jürgen".encode("latin-1").decode("iso8859_5")
    name = kept(lambda ds: setattr(ds, "SpecificCharacterSet", "ISO_IR 144"),
                lambda ds: ds[0x00100010])
    assert str(name.value) == cyrillic
    item = kept(lambda ds: setattr(ds, "SpecificCharacterSet", "ISO_IR 144"),
                lambda ds: ds.RequestAttributesSequence[0])
    assert str(item.RequestingPhysician) == "Grün^Åsa".encode("latin-1").decode("iso8859_5")
    private = kept(lambda ds: ds[0x00090010].__setattr__("value", "BrainLAB_Conversion"),
                   lambda ds: ds[0x00091001])
    assert private.name == "[Export Platform Name]"     # (it was "[Full fidelity]")
    added = fastdicom.Dataset()
    added.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    added.add_new(0x00191002, "SL", 7)
    elem = added[0x00191002]
    del added
    assert elem.name == "[Detector Channel]"


def test_a_recovered_fault_leaves_no_cycle_holding_the_file(tmp_path):
    """A file over the first pread whose fault the reader recovers from (a wrong group
    length) is freed, map and descriptor included, as soon as it is dropped: the error raised
    and caught while reading its prefix held every caller's frame in a cycle."""
    import gc
    import struct
    import weakref
    path = tmp_path / "bad_group_length.dcm"
    write_file(path, [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3"),
                      (0x7FE00010, "OB", bytes(64 << 10))])
    data = bytearray(path.read_bytes())
    at = data.index(b"\x02\x00\x00\x00UL\x04\x00") + 8
    data[at:at + 4] = struct.pack("<I", struct.unpack("<I", data[at:at + 4])[0] + 12)
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning):
        assert len(fastdicom.dcmread(path).PixelData) == 64 << 10    # recovered
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for read in (fastdicom.dcmread, lambda p: fastdicom.open(p).dataset):
                ds = read(path)
                ref = weakref.ref(ds)
                ctx = weakref.ref(ds.__dict__["_ctx"])
                ds.PixelData
                del ds
                assert ref() is None and ctx() is None
    finally:
        if was_enabled:
            gc.enable()


def test_close_keeps_the_changes_made_to_the_data_set(tmp_path):
    path = tmp_path / "a.dcm"
    path.write_bytes(_cycle_sample(big_item=False))
    f = fastdicom.open(path)
    ds = f.dataset
    ds.PatientID = "EDITED"
    ds.ProtocolName = "NEW"
    ds.SpecificCharacterSet = "ISO_IR 144"
    n = len(ds)
    f.close()
    assert (ds.PatientID, ds.ProtocolName, len(ds)) == ("EDITED", "NEW", n)
    assert str(ds.PatientName) == "Müller^Jürgen".encode("latin-1").decode("iso8859_5")


def test_a_value_set_through_a_shallow_copy_shows_in_both():
    """copy.copy shares the elements (as pydicom's): a value set through either is what both
    give, cached keyword values, character set and pixel description included."""
    import copy
    raw = _cycle_sample(big_item=False)
    ds = fastdicom.dcmread(raw)
    shallow = copy.copy(ds)
    assert shallow.PatientName == ds.PatientName          # cached in both
    ds[0x00100010].value = "Changed^Name"
    assert shallow.PatientName == "Changed^Name" and ds.PatientName == "Changed^Name"
    shallow[0x00080005].value = "ISO_IR 144"
    cyrillic = "Grün^Åsa".encode("latin-1").decode("iso8859_5")
    assert str(ds.RequestAttributesSequence[0].RequestingPhysician) == cyrillic
    for _ in range(1000):
        copy.copy(ds)           # copies dropped at once: the shared list does not grow
    assert len(ds.__dict__["_family"]) <= 3


def test_pixel_data_follows_a_transfer_syntax_changed_in_file_meta():
    """pydicom's compress step (Pixel Data replaced by encapsulated frames and the file
    meta's Transfer Syntax UID set to RLE) and its decompress step decode as pydicom decodes
    them (the oracle); so does a Dataset built in memory."""
    pydicom = pytest.importorskip("pydicom")
    from fastdicom.testing import RLE_LOSSLESS, ct_instance_elements
    buf = io.BytesIO()
    write_file(buf, ct_instance_elements(rows=16, columns=16))
    raw = buf.getvalue()
    native = fastdicom.dcmread(raw).pixel_array
    ref = pydicom.dcmread(io.BytesIO(raw))
    ref.compress(RLE_LOSSLESS, encoding_plugin="pydicom")
    encapsulated = ref.PixelData
    np.testing.assert_array_equal(ref.pixel_array, native)
    ds = fastdicom.dcmread(raw)
    ds.PixelData = encapsulated
    ds.file_meta.TransferSyntaxUID = RLE_LOSSLESS
    np.testing.assert_array_equal(ds.pixel_array, native)
    ds.PixelData = native.tobytes()                       # and back (decompress)
    ds.file_meta.TransferSyntaxUID = fastdicom.testing.EXPLICIT_LE
    np.testing.assert_array_equal(ds.pixel_array, native)
    mem = fastdicom.Dataset()
    mem.file_meta = fastdicom.FileMetaDataset()
    mem.file_meta.TransferSyntaxUID = RLE_LOSSLESS
    for kw in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
               "SamplesPerPixel", "PhotometricInterpretation"):
        setattr(mem, kw, getattr(ref, kw))
    mem.PixelData = encapsulated
    np.testing.assert_array_equal(mem.pixel_array, native)


def test_copies_keep_private_names_and_the_parent_of_items():
    """A private element copied or pickled on its own keeps its name (its creator goes with
    it, as in pydicom); an item of a deep copy resolves an ambiguous VR from the copy's
    Pixel Representation, as the original's item does."""
    import copy
    import pickle
    raw = _cycle_sample(big_item=False)
    ds = fastdicom.dcmread(raw)
    elem = ds[0x00091001]
    for clone in (copy.copy(elem), copy.deepcopy(elem), pickle.loads(pickle.dumps(elem))):
        assert clone.name == "[Full fidelity]" and clone.value == "private value"
    ds.PixelRepresentation = 1
    for dup in (copy.deepcopy(ds), pickle.loads(pickle.dumps(ds)), ds):
        item = dup.RequestAttributesSequence[0]
        item.SmallestImagePixelValue = 5
        assert item[0x00280106].VR == "SS"


def test_private_block_and_walk_follow_pydicom_on_edge_cases():
    pydicom = pytest.importorskip("pydicom")
    buf = io.BytesIO()
    write_file(buf, [(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", "1.2.3"),
                     (0x00090010, "LO", ["A", "Z"]),
                     (0x00400275, "SQ", [[(0x00321032, "PN", "X^Y")]])])
    data = buf.getvalue()
    ours, ref = fastdicom.dcmread(data), pydicom.dcmread(io.BytesIO(data))
    with pytest.raises(KeyError):
        ours.private_block(0x0009, "A")                     # a multi-valued creator: no match
    assert ours.private_block(0x0009, "A", create=True).block_start == \
        ref.private_block(0x0009, "A", create=True).block_start
    for dataset in (ours, ref):
        seen = []

        def drop(ds, elem, seen=seen):
            seen.append(int(elem.tag))
            if elem.tag == 0x00400275:
                del ds[0x00400275]
        dataset.walk(drop)
        assert 0x00321032 not in seen                       # not into the sequence it deleted
