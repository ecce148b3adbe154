"""Tests for fastdicom.dicomdir: safe Referenced File ID resolution and corpus DICOMDIRs."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastdicom.dicomdir import read_dicomdir, resolve_file_id
from fastdicom.errors import DicomWarning, UnsafePathError
from fastdicom.series import find_series, load_series
from fastdicom.testing import write_ct_series, write_file

from _data import require_shared  # noqa: E402
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


def need_corpus() -> Path:
    return require_shared() / "corpus"


def write_dicomdir(path: Path, file_ids: list) -> Path:
    records = [[(0x00041400, "UL", 0), (0x00041410, "US", 0xFFFF),
                (0x00041420, "UL", 0), (0x00041430, "CS", "IMAGE"),
                (0x00041500, "CS", list(fid))] for fid in file_ids]
    els = [(0x00041130, "CS", "FDTEST"), (0x00041200, "UL", 0), (0x00041202, "UL", 0),
           (0x00041212, "US", 0), (0x00041220, "SQ", records)]
    write_file(path, els, sop_class_uid=MEDIA_STORAGE_DIRECTORY,
               sop_instance_uid="1.2.826.0.1.3680043.1.2.3")
    return path


@pytest.fixture()
def fileset(tmp_path):
    root = tmp_path / "media"
    paths = write_ct_series(root / "SUB", 4, 8, 8, file_prefix="IM", shuffle_names=False)
    return root, paths


def test_good_dicomdir_followed(fileset):
    root, paths = fileset
    ids = [("SUB", p.name.upper().replace(".DCM", "")) for p in paths]
    for p in paths:       # PS3.10 names: no extension
        p.rename(p.with_suffix(""))
    write_dicomdir(root / "DICOMDIR", ids)
    dd = read_dicomdir(root / "DICOMDIR")
    assert [r.record_type for r in dd.records] == ["IMAGE"] * 4
    assert dd.paths == [p.with_suffix("").resolve() for p in paths]
    stacks = find_series(root / "DICOMDIR")
    assert len(stacks) == 1 and stacks[0].num_instances == 4
    assert load_series(stacks[0]).array.shape == (4, 8, 8)


def test_case_insensitive_match_on_disk(fileset):
    root, paths = fileset
    write_dicomdir(root / "DICOMDIR", [("SUB", "IM00000")])
    (root / "SUB" / "IM00000.dcm").rename(root / "SUB" / "im00000")
    assert read_dicomdir(root / "DICOMDIR").paths == [(root / "SUB" / "im00000").resolve()]


@pytest.mark.parametrize("file_id", [
    ("..", "SECRET"),
    ("SUB", "..", "..", "SECRET"),
    ("/etc", "PASSWD"),
    ("", "ETC", "PASSWD"),
    ("SUB/../../X",),
    ("C:", "X"),
    ("TOOLONGNAME1",),
    ("lower",),
    (".",),
])
def test_unsafe_file_ids(fileset, file_id):
    root, _ = fileset
    write_dicomdir(root / "DICOMDIR", [file_id])
    with pytest.raises(UnsafePathError) as info:
        read_dicomdir(root / "DICOMDIR")
    # the error says where: the record's Referenced File ID element (the only one)
    data = (root / "DICOMDIR").read_bytes()
    assert data.count(b"\x04\x00\x00\x15") == 1
    assert info.value.offset == data.index(b"\x04\x00\x00\x15")
    assert info.value.tag == 0x00041500
    assert info.value.path == str(root / "DICOMDIR")
    with pytest.raises(UnsafePathError):
        find_series(root)


def test_symlink_leaving_root(fileset, tmp_path):
    root, _ = fileset
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "SECRET").write_bytes(b"x")
    os.symlink(outside, root / "LINK")
    os.symlink(outside / "SECRET", root / "FILE")
    for fid in (("LINK", "SECRET"), ("FILE",)):
        write_dicomdir(root / "DICOMDIR", [fid])
        with pytest.raises(UnsafePathError):
            read_dicomdir(root / "DICOMDIR")
    # a symlink that stays inside the root is fine
    (root / "SUB" / "IM00001.dcm").rename(root / "SUB" / "IM00001")
    os.symlink(root / "SUB", root / "ALIAS")
    write_dicomdir(root / "DICOMDIR", [("ALIAS", "IM00001")])
    assert read_dicomdir(root / "DICOMDIR").paths == [(root / "SUB" / "IM00001").resolve()]


def test_resolve_file_id_lenient():
    with pytest.raises(UnsafePathError):
        resolve_file_id("/tmp", ["..", "x"], strict=False)
    assert resolve_file_id("/tmp", ["a.dcm"], strict=False) == Path(os.path.realpath("/tmp/a.dcm"))


@pytest.mark.parametrize("rel,records,files", [
    ("pydicom/test_files/dicomdirtests/DICOMDIR", 52, 31),
    ("pydicom/test_files/dicomdirtests/DICOMDIR-bigEnd", 52, 31),
    ("pydicom/test_files/dicomdirtests/DICOMDIR-implicit", 52, 31),
    ("pydicom/test_files/dicomdirtests/DICOMDIR-reordered", 52, 31),
    ("pydicom/test_files/dicomdirtests/DICOMDIR-nooffset", 52, 31),
    ("pydicom/test_files/dicomdirtests/DICOMDIR-nopatient", 52, 31),
    ("pydicom/test_files/dicomdirtests/DICOMDIR-empty.dcm", 0, 0),
    ("pydicom/test_files/dicomdirtests/TINY_ALPHA/DICOMDIR", 53, 50),
    ("dcm4che/test-data/DICOMDIR", 44, 11),
    ("fo-dicom/Benchmark/DICOMDIR", 80, 20),
])
def test_corpus_dicomdirs(rel, records, files):
    corpus = need_corpus()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        dd = read_dicomdir(corpus / rel)
    assert len(dd.records) == records
    assert len(dd.paths) == files
    root = (corpus / rel).resolve().parent
    assert all(str(p).startswith(str(root)) for p in dd.paths)
    walked = list(dd.walk())
    assert len(walked) == records


def test_corpus_dicomdir_hierarchy():
    corpus = need_corpus()
    dd = read_dicomdir(corpus / "pydicom/test_files/dicomdirtests/DICOMDIR")
    assert [r.record_type for r in dd.roots] == ["PATIENT", "PATIENT"]
    study = dd.roots[0].children[0]
    assert study.record_type == "STUDY" and study.parent is dd.roots[0]
    images = [r for r in dd.walk() if r.record_type == "IMAGE"]
    assert len(images) == 31 and all(r.path.is_file() for r in images)
    assert np.all([r.parent.record_type == "SERIES" for r in images])


def test_record_sequence_not_a_sequence(fileset):
    """A DirectoryRecordSequence damaged into another VR is a MalformedElementError with its
    tag and offset (it used to raise AttributeError: 'int' object has no attribute 'get')."""
    from fastdicom.errors import MalformedElementError
    root, paths = fileset
    write_dicomdir(root / "DICOMDIR", [("SUB", "IM00000")])
    data = (root / "DICOMDIR").read_bytes()
    head = b"\x04\x00\x20\x12SQ"
    assert data.count(head) == 1
    (root / "DICOMDIR").write_bytes(data.replace(head, b"\x04\x00\x20\x12OB"))
    for fn in (read_dicomdir, find_series):
        with pytest.raises(MalformedElementError) as info:
            fn(root / "DICOMDIR")
        assert info.value.tag == 0x00041220 and info.value.offset == data.index(head)
        assert info.value.path == str(root / "DICOMDIR")


@pytest.mark.parametrize("content", [b"junk", b"\0" * 200, "not SQ"])
def test_damaged_dicomdir_found_by_walk_is_left_out(fileset, content):
    """A damaged file named DICOMDIR inside a walked folder is left out with a warning; the
    folder's series is still found (it used to fail the whole walk)."""
    root, paths = fileset
    if content == "not SQ":
        write_dicomdir(root / "DICOMDIR", [("SUB", "IM00000")])
        content = (root / "DICOMDIR").read_bytes().replace(b"\x04\x00\x20\x12SQ",
                                                           b"\x04\x00\x20\x12OB")
    (root / "DICOMDIR").write_bytes(content)
    with pytest.warns(DicomWarning, match="DICOMDIR left out"):
        stacks = find_series(root)
    assert [s.num_instances for s in stacks] == [len(paths)]
    with pytest.raises(Exception) as info:
        find_series(root / "DICOMDIR")
    from fastdicom.errors import DicomError
    assert isinstance(info.value, DicomError)


@pytest.mark.parametrize("vr", [b"US", b"UL", b"SQ"])
def test_referenced_file_id_with_a_damaged_vr(fileset, vr):
    """A ReferencedFileID whose VR was damaged into a number or a sequence raised a bare
    TypeError out of read_dicomdir and find_series; now a MalformedElementError with its tag
    and offset, and a walk leaves the DICOMDIR out with a warning."""
    from fastdicom.errors import MalformedElementError
    root, paths = fileset
    write_dicomdir(root / "DICOMDIR", [("SUB", "IM00000")])
    data = (root / "DICOMDIR").read_bytes()
    head = b"\x04\x00\x00\x15CS"
    assert data.count(head) == 1
    at = data.index(head)
    if vr == b"SQ":     # an explicit SQ keeps a 2-byte reserved field and a 4-byte length
        n = int.from_bytes(data[at + 6:at + 8], "little")
        damaged = data[:at] + b"\x04\x00\x00\x15SQ\0\0" + n.to_bytes(4, "little") + data[at + 8:]
    else:
        damaged = data.replace(head, b"\x04\x00\x00\x15" + vr)
    (root / "DICOMDIR").write_bytes(damaged)
    for fn in (read_dicomdir, find_series):
        with pytest.raises(MalformedElementError) as info:
            fn(root / "DICOMDIR")
        assert info.value.tag == 0x00041500 and info.value.offset == at
    with pytest.warns(DicomWarning, match="DICOMDIR left out"):
        stacks = find_series(root)
    assert [s.num_instances for s in stacks] == [len(paths)]


def test_dicomdir_of_64_kib_or_more(tmp_path):
    """A DirectoryRecordSequence of 64 KiB or more is indexed on its own on first access;
    read_dicomdir looked its items' positions up in the data set's index: IndexError for any
    DICOMDIR of about 1,100 records or more (the records' offsets are pydicom's)."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    n = 1300
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.FileSetID = "X"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    recs = []
    for i in range(n):
        r = Dataset()
        r.OffsetOfTheNextDirectoryRecord = 0
        r.RecordInUseFlag = 0xFFFF
        r.OffsetOfReferencedLowerLevelDirectoryEntity = 0
        r.DirectoryRecordType = "PRIVATE"
        recs.append(r)
    ds.DirectoryRecordSequence = Sequence(recs)
    ds.preamble = b"\0" * 128
    path = tmp_path / "DICOMDIR"
    ds.save_as(path, enforce_file_format=True)
    offsets = [it.seq_item_tell for it in pydicom.dcmread(path).DirectoryRecordSequence]
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = offsets[0]
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = offsets[-1]
    for a, b in zip(recs, offsets[1:]):
        a.OffsetOfTheNextDirectoryRecord = b
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size > 65536
    dd = read_dicomdir(path)
    assert [r.offset for r in dd.records] == offsets
    assert [r.offset for r in dd.roots] == offsets        # one chain of root records


def test_dicomdir_files_that_are_gone_are_named(fileset):
    # a referenced file that is not there was dropped without a word: with all of them
    # gone, "no image series found" and nothing to say why
    root, paths = fileset
    paths = [p.rename(p.with_suffix("")) for p in paths]     # PS3.10 names
    write_dicomdir(root / "DICOMDIR", [("SUB", p.name) for p in paths])
    paths[1].unlink()
    with pytest.warns(DicomWarning, match=r"1 file could not be read.*IM00001.*"
                                          r"FileNotFoundError"):
        stacks = find_series(root / "DICOMDIR")
    assert [s.num_instances for s in stacks] == [3]
    for p in paths:
        p.unlink(missing_ok=True)
    with pytest.warns(DicomWarning, match=r"4 files could not be read.*FileNotFoundError"):
        assert find_series(root / "DICOMDIR") == []
    with pytest.raises(Exception, match=r"IM00000.*left out.*FileNotFoundError"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DicomWarning)
        load_series(root / "DICOMDIR")


def test_dicomdir_under_another_name_is_followed_when_named(fileset):
    """A Media Storage Directory renamed (``DICOMDIR.dcm``, ``index``) is followed when named
    explicitly, as its header says what it is; a folder walk does not open it as one (its
    files are walked anyway), and its referenced files are not counted twice."""
    root, paths = fileset
    ids = [("SUB", p.name.upper().replace(".DCM", "")) for p in paths[:3]]
    for p in paths:
        p.rename(p.with_suffix(""))
    write_dicomdir(root / "DICOMDIR.dcm", ids)
    (root / "DICOMDIR.dcm").rename(root / "index")
    stacks = find_series(root / "index")
    assert len(stacks) == 1 and stacks[0].num_instances == 3
    assert sorted(map(str, stacks[0].paths)) == \
        sorted(str(p.with_suffix("").resolve()) for p in paths[:3])
    # with one of its files named too: each file once
    stacks = find_series([root / "index", paths[0].with_suffix("")])
    assert len(stacks) == 1 and stacks[0].num_instances == 3
    # the folder: the walk finds the four files themselves
    stacks = find_series(root)
    assert len(stacks) == 1 and stacks[0].num_instances == 4
    # a file without an image that is no DICOMDIR is still left out with a warning
    write_file(root / "other", [(0x00100010, "PN", "X")], sop_class_uid="1.2.3")
    with pytest.warns(DicomWarning, match="no image"):
        assert find_series([root / "other"]) == []
